#!/usr/bin/env python
"""Count the student's inference GFLOPs with fvcore (one multiply-add = one flop).

    python tools/count_flops.py --config-file configs/cskd_la.yaml [--size 512]

Counts backbone + FPN + head on one size x size image (default: the config's
INPUT.SQUARE_SIZE, else its largest MIN_SIZE_TEST) (the convention of Table 3;
post-processing such as NMS is not counted). The teacher is never built. The last line
printed is ``GFLOPs: <value>``.
"""
import argparse
import logging

import zoominnet_d2  # noqa: F401  (first: compat fixes, registrations)
import torch
from detectron2.modeling import build_model
from fvcore.nn import FlopCountAnalysis
from torch import nn

from zoominnet_d2 import load_config as load_project_config


class DenseForward(nn.Module):
    """backbone -> head of a Detectron2 dense detector, on a normalised image tensor.

    Detectron2's own ``detectron2.utils.analysis.FlopCountAnalysis`` would do this, but it
    imports ``detectron2.export`` (caffe2), which does not import on current torch.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        """(N, 3, H, W) normalised image -> the head's outputs (class logits and box deltas,
        each #lvl (N, A*K or A*4, H_l, W_l)), without decoding."""
        features = self.model.backbone(image)
        return self.model.head([features[f] for f in self.model.head_in_features])


def count_gflops(cfg, size: int) -> float:
    """Student GFLOPs (multiply-adds / 1e9) for one ``size`` x ``size`` image."""
    cfg = cfg.clone()
    cfg.defrost()
    # The paper's accounting of LA: the final convs on the upsampled 2x grid.
    cfg.MODEL.ZOOMIN.SUBPIXEL_INFERENCE = False
    model = build_model(cfg).eval()
    flops = FlopCountAnalysis(DenseForward(model), torch.zeros(1, 3, size, size))
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return flops.total() / 1e9


def load_config(config_file: str, opts=()):
    """The config of ``config_file`` + ``opts`` for counting: on the CPU, without weights."""
    cfg = load_project_config(config_file, opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    return cfg


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--size", type=int, help="square input side, px (default: the config's)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    size = args.size or cfg.INPUT.SQUARE_SIZE or cfg.INPUT.MIN_SIZE_TEST
    gflops = count_gflops(cfg, size)
    print(f"GFLOPs: {gflops:.2f}")
    return gflops


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # the command prints only the count; not in main() (tests)
    main()
