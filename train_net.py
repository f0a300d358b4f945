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
import argparse
import logging
import os
import sys
import weakref

import zoominnet_d2  # noqa: F401  (first: compat fixes, registrations)
import torch
import yaml
from detectron2.config import get_cfg
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup
from detectron2.engine import hooks as d2_hooks
from detectron2.engine.train_loop import AMPTrainer, SimpleTrainer, TrainerBase
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

from zoominnet_d2 import add_zoominnet_config
from zoominnet_d2.checkpoint import UNSAFE_FLAG, SafeDetectionCheckpointer
from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper
from zoominnet_d2.engine import StopOnNonFiniteLoss, create_ddp_model, launch
from zoominnet_d2.evaluation import build_evaluator
from zoominnet_d2.modeling import student_config
from zoominnet_d2.visualization import FeatureVisualizationHook

logger = logging.getLogger("zoominnet_d2")


class ConfigError(ValueError):
    """The config file or the command-line options are wrong (message names what)."""


class Trainer(DefaultTrainer):
    """DefaultTrainer with the cross-scale mapper and the VisDrone evaluator.

    Also, compared with Detectron2 v0.6's DefaultTrainer: DDP works for a model on the CPU
    (``zoominnet_d2.engine.create_ddp_model``), checkpoints are loaded safely
    (:class:`SafeDetectionCheckpointer`), the optimizer state is saved in and resumed from
    checkpoints (v0.6 saves only the iteration and the scheduler), and training stops at the
    first non-finite loss or weights before checkpointing them (:class:`StopOnNonFiniteLoss`).

    Args:
        cfg: the config.
        allow_unsafe_checkpoint: let the checkpointer fully unpickle files (``--unsafe-load-checkpoint``).
        log_period: iterations between two writes of the metrics (console, metrics.json,
            TensorBoard); Detectron2 uses 20.
    """

    def __init__(self, cfg, allow_unsafe_checkpoint: bool = False, log_period: int = 20):
        # DefaultTrainer.__init__ (v0.6) with our create_ddp_model and checkpointer; skipping
        # it rather than patching the Detectron2 functions it calls.
        TrainerBase.__init__(self)
        d2_logger = logging.getLogger("detectron2")
        if not d2_logger.isEnabledFor(logging.INFO):  # setup_logger is not called for d2
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        # Assume these objects must be constructed in this order.
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)

        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)

        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SafeDetectionCheckpointer(
            # Assume you want to save checkpoints together with logs/statistics
            model,
            cfg.OUTPUT_DIR,
            allow_unsafe=allow_unsafe_checkpoint,
            trainer=weakref.proxy(self),
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.log_period = log_period

        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        """Detectron2's hooks, with :class:`StopOnNonFiniteLoss` before the checkpointer, the
        writers' period set to ``log_period`` and, with ``MODEL.ZOOMIN.VIS_PERIOD``, the
        feature-map pictures (:class:`FeatureVisualizationHook`) before the writers."""
        ret = super().build_hooks()
        if self.cfg.MODEL.ZOOMIN.VIS_PERIOD > 0:
            writer = next((i for i, h in enumerate(ret) if isinstance(h, d2_hooks.PeriodicWriter)), len(ret))
            ret.insert(writer, FeatureVisualizationHook(self.cfg))
        for h in ret:
            if isinstance(h, d2_hooks.PeriodicWriter):
                h._period = self.log_period
        stop = StopOnNonFiniteLoss(self.cfg.SOLVER.CHECKPOINT_PERIOD, self.cfg.TEST.EVAL_PERIOD)
        first = next((i for i, h in enumerate(ret)
                      if isinstance(h, (d2_hooks.PeriodicCheckpointer, d2_hooks.EvalHook))), len(ret))
        ret.insert(first, stop)
        return ret

    def build_writers(self):
        """Detectron2's writers, smoothing over ``log_period`` iterations instead of 20: each
        write reports the median of the iterations since the previous one (with
        ``--log-period 1``, every iteration's own values)."""
        return [
            CommonMetricPrinter(self.max_iter, window_size=self.log_period),
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=self.log_period),
            TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=self.log_period),
        ]

    def state_dict(self):
        # v0.6 forgets the inner trainer's state, i.e. the optimizer (momentum buffers, lr).
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])
        else:
            logger.warning("The checkpoint has no optimizer state (saved by Detectron2's own "
                           "DefaultTrainer?): the optimizer starts afresh")

    @classmethod
    def build_train_loader(cls, cfg):
        with_teacher = bool(cfg.MODEL.ZOOMIN.TEACHER.CONFIG_FILE)
        mapper = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=with_teacher)
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=ZoomInDatasetMapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluator(cfg, dataset_name, output_folder)


def argument_parser():
    """Detectron2's argument parser plus ``--unsafe-load-checkpoint`` and ``--log-period``."""
    parser = default_argument_parser()
    for action in parser._actions:
        if "--num-gpus" in action.option_strings:
            action.help = ("number of training processes *per machine*: one per GPU, or, "
                           "without CUDA, CPU processes communicating over Gloo")
    parser.add_argument(
        UNSAFE_FLAG, action="store_true",
        help="load checkpoints with full unpickling (Python's pickle.load for .pkl, "
        "torch.load(weights_only=False) for .pth), which can run arbitrary code stored in the "
        "file. By default only tensors, numpy arrays and plain data are read and a file that "
        "needs more is refused. Use only for files from a source you trust.",
    )
    parser.add_argument("--log-period", type=_positive_int, default=20, metavar="N",
                        help="write the training metrics (console, metrics.json, TensorBoard) "
                        "every N iterations (default: 20)")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_config(args):
    """The frozen config of the command line; no side effects.

    Raises:
        ConfigError: missing config file, unknown key, malformed option or value.
    """
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    if not args.config_file or not PathManager.isfile(args.config_file):
        raise ConfigError(f"--config-file: no such file: {args.config_file!r}")
    for what, merge in ((f"config file {args.config_file}", lambda: cfg.merge_from_file(args.config_file)),
                        ("command-line options", lambda: cfg.merge_from_list(args.opts))):
        try:
            merge()
        except (KeyError, AssertionError, ValueError, TypeError, yaml.YAMLError) as e:
            msg = e.args[0] if e.args else type(e).__name__
            raise ConfigError(f"{what}: {msg}") from e
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    if args.eval_only:
        cfg = student_config(cfg)
    cfg.freeze()
    return cfg


def _config_path(cfg) -> str:
    return os.path.join(cfg.OUTPUT_DIR, "config.yaml")


def setup(args):
    cfg = build_config(args)
    # default_setup() writes OUTPUT_DIR/config.yaml before anything is built. An earlier
    # run's config.yaml belongs with that run's checkpoints: put it back until this run has
    # built its model and data and loaded its weights (save_config() in main).
    path = _config_path(cfg)
    earlier = None
    if comm.is_main_process() and cfg.OUTPUT_DIR and PathManager.isfile(path):
        with PathManager.open(path, "rb") as f:
            earlier = f.read()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="zoominnet_d2")
    if earlier is not None:
        _write_atomically(path, earlier)
        logger.info(f"Keeping the earlier run's {path} until this run has started")
    return cfg


def save_config(cfg) -> None:
    """Write OUTPUT_DIR/config.yaml (as default_setup does), once the run has started."""
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        _write_atomically(_config_path(cfg), cfg.dump().encode())
        logger.info(f"Full config saved to {_config_path(cfg)}")


def _write_atomically(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(args):
    cfg = setup(args)
    allow_unsafe = getattr(args, "unsafe_load_checkpoint", False)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        SafeDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR, allow_unsafe=allow_unsafe).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        # No save_config(): the student-only config of an evaluation must not replace the
        # config.yaml of a training run in the same folder (a fresh folder got one in setup).
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
