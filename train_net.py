#!/usr/bin/env python
"""Train and evaluate ZoomInNet students, teachers and baselines with Detectron2.

    python train_net.py --config-file configs/cskd_la.yaml MODEL.ZOOMIN.TEACHER.WEIGHTS tnet.pth
    python train_net.py --config-file configs/cskd_la.yaml --eval-only MODEL.WEIGHTS student.pth

Without CUDA everything runs on the CPU; the user need not set MODEL.DEVICE.
"""
import logging
import os

import zoominnet_d2  # noqa: F401  (first: compat fixes, registrations)
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch

from zoominnet_d2 import add_zoominnet_config
from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper
from zoominnet_d2.evaluation import build_evaluator
from zoominnet_d2.modeling import student_config

logger = logging.getLogger("zoominnet_d2")


class Trainer(DefaultTrainer):
    """DefaultTrainer with the cross-scale mapper and the VisDrone evaluator."""

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


def setup(args):
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    if args.eval_only:
        cfg = student_config(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
