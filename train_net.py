#!/usr/bin/env python
"""Train and evaluate ZoomInNet students, teachers and baselines with Detectron2.

    python train_net.py --config-file configs/cskd_la.yaml MODEL.ZOOMIN.TEACHER.WEIGHTS tnet.pth
    python train_net.py --config-file configs/cskd_la.yaml --eval-only MODEL.WEIGHTS student.pth
    python train_net.py --config-file configs/cskd_la.yaml --resume     # continue a stopped run
    python train_net.py --config-file configs/synth/snet.yaml --num-gpus 2 --dist-url auto

Without CUDA everything runs on the CPU; the user need not set MODEL.DEVICE, and
``--num-gpus N`` then trains with N CPU processes (Gloo). ``IMS_PER_BATCH`` is the total batch
over all processes, as in Detectron2.

Checkpoints (``MODEL.WEIGHTS``, the one resumed from, ``.pkl`` model-zoo files) are loaded
without running code from the file; ``--unsafe-load-checkpoint`` lifts that for trusted files.
A run that fails before training starts leaves an earlier run's ``config.yaml`` in
``OUTPUT_DIR`` as it was; training stops at the first non-finite loss or weights without
checkpointing them.
"""
import sys

import zoominnet_d2  # noqa: F401  (first: compat fixes, registrations)
from detectron2.modeling import build_model
from zoominnet_d2.checkpoint import SafeDetectionCheckpointer
from zoominnet_d2.engine import ConfigError, Trainer, argument_parser, build_config, launch, save_config, setup

__all__ = ["Trainer", "argument_parser", "build_config", "main", "setup"]


def main(args):
    cfg = setup(args)
    allow_unsafe = getattr(args, "unsafe_load_checkpoint", False)
    if args.eval_only:
        # The student alone: build_model reads no teacher files, even for a CSKD config.
        model = build_model(cfg)
        SafeDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR, allow_unsafe=allow_unsafe).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        # No save_config(): an evaluation's config must not replace the config.yaml of a
        # training run in the same folder (a fresh folder got one in setup).
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg, allow_unsafe_checkpoint=allow_unsafe, log_period=getattr(args, "log_period", 20))
    trainer.resume_or_load(resume=args.resume)
    save_config(cfg)
    return trainer.train()


if __name__ == "__main__":
    args = argument_parser().parse_args()
    print("Command Line Args:", args)
    try:
        build_config(args)  # report config mistakes once, before any process is started
    except ConfigError as e:
        sys.exit(f"train_net.py: error: {e}")
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
