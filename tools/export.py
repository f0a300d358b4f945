#!/usr/bin/env python
"""Export the student: ONNX, TorchScript, or a student-only checkpoint.

    python tools/export.py --config-file configs/cskd_la.yaml --weights output/cskd_la/model_final.pth \\
        --format onnx|torchscript|pth --output F [--size 512] [--overwrite]

onnx / torchscript: the student traced for one square input of ``--size`` (default: the
config's INPUT.SQUARE_SIZE, else MIN_SIZE_TEST), normalisation, backbone, head (LA: 2x
upsampling, final convs and anchors on the 2x grid) and sigmoid inside; box decoding, top-k
and NMS in ``zoominnet_d2.deploy.postprocess.detect``, which ``tools/predict.py --backend
onnx`` uses. pth: ``{"model": state_dict}`` of the student only (no teacher, no optimizer),
for ``train_net.py --eval-only MODEL.WEIGHTS F`` and ``tools/predict.py --weights F``.
"""
import argparse
import logging
import sys

import zoominnet_d2  # noqa: F401  (first: compat fixes, registrations)

from zoominnet_d2.deploy import FORMATS, export_student, load_config, load_student
from zoominnet_d2.deploy.exporters import check_writable, default_size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", required=True, help="the trained student's checkpoint")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True, help="file to write")
    parser.add_argument("--size", type=int, help="square input side, px (onnx, torchscript)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        check_writable(args.output, args.overwrite)
        cfg = load_config(args.config_file, args.opts)
        model = load_student(cfg, args.weights)
        size = args.size or default_size(cfg)
        export_student(model, args.format, args.output, size)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({args.format}" + (f", {size}x{size} input)" if args.format != "pth" else ")"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
