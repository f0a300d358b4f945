#!/usr/bin/env python
"""Draw the student's and teacher's distilled feature maps and the AKDP key positions of one image.

    python tools/visualize_features.py --config-file configs/synth/cskd_la.yaml \\
        --input datasets/synthdrone/VisDrone2019-DET-val/images/0000002_synth_00000.jpg \\
        [--annotations <visdrone txt>] [--teacher-weights tnet.pth] [--student-weights model.pth] \\
        [--output dir] [KEY VALUE ...]

Writes, as PNG files in the output folder (default ``<OUTPUT_DIR>/feature_maps``):

- ``<stem>_panel.png``: rows = levels, columns = student / teacher / ||t - s|| / AKDP mask;
- ``<stem>_gt.png``: the image with its ground truth (ignored regions grey and dashed);
- ``<stem>_student_l<l>.png``, ``<stem>_teacher_l<l>.png``: channel-norm heatmaps of the
  distilled maps of level l over the image (the paper's Figure 9);
- ``<stem>_akdp.png``: the AKDP key positions of every level with the GT boxes (Figure 5).

The annotations default to ``../annotations/<stem>.txt`` next to an ``images/`` folder (the
VisDrone layout). The teacher is the config's ``MODEL.ZOOMIN.TEACHER`` (its weights from
``--teacher-weights``, else ``MODEL.ZOOMIN.TEACHER.WEIGHTS``); without one, only the student
and AKDP are drawn. The student's weights: ``--student-weights``, else ``MODEL.WEIGHTS``
(empty: random initialisation), loaded without running code from the file unless
``--unsafe-load-checkpoint``. Nothing is written outside the output folder.
"""
import argparse
import os
from pathlib import Path
from typing import List, Optional

import zoominnet_d2  # noqa: F401  (first: compat fixes, registrations)
from detectron2.data import detection_utils as utils
from detectron2.modeling import build_model
from PIL import Image

from zoominnet_d2 import load_config
from zoominnet_d2.checkpoint import UNSAFE_FLAG, SafeDetectionCheckpointer
from zoominnet_d2.modeling import attach_configured_teacher
from zoominnet_d2.visualization import (
    DEFAULT_MAX_SIZE,
    DEFAULT_TILE_SIZE,
    collect_distillation_maps,
    draw_feature_panels,
    load_image_dict,
    visualization_mapper,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True,
                        help="a ZoomInNet config (e.g. configs/synth/cskd_la.yaml)")
    parser.add_argument("--input", required=True, help="the image")
    parser.add_argument("--annotations",
                        help="its VisDrone annotation .txt (default: ../annotations/<stem>.txt "
                        "if present)")
    parser.add_argument("--teacher-weights",
                        help="teacher checkpoint (default: MODEL.ZOOMIN.TEACHER.WEIGHTS)")
    parser.add_argument("--student-weights", help="student checkpoint (default: MODEL.WEIGHTS)")
    parser.add_argument("--output",
                        help="output folder (default: <OUTPUT_DIR>/feature_maps); created if missing")
    parser.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE,
                        help="longest side of the full-size pictures, px (0: the image's size)")
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE,
                        help="longest side of a panel tile, px")
    parser.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity over the image")
    parser.add_argument("--cmap", default="jet", help="matplotlib colormap of the heatmaps")
    parser.add_argument(UNSAFE_FLAG, action="store_true",
                        help="let the student checkpoint be fully unpickled (trusted files only)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser


def setup_cfg(args):
    """The frozen config of the command line, with ``--teacher-weights`` when given."""
    cfg = load_config(args.config_file, args.opts)
    if args.teacher_weights:
        cfg.MODEL.ZOOMIN.TEACHER.WEIGHTS = args.teacher_weights
    cfg.freeze()
    return cfg


def teacher_problem(cfg, explicit_weights: bool) -> Optional[str]:
    """Why the model is drawn without a teacher (None: the teacher is usable)."""
    t = cfg.MODEL.ZOOMIN.TEACHER
    if not t.CONFIG_FILE:
        if explicit_weights:
            raise SystemExit("--teacher-weights given but the config has no teacher: set "
                             "MODEL.ZOOMIN.TEACHER.CONFIG_FILE <teacher yaml>")
        return "the config has no teacher (MODEL.ZOOMIN.TEACHER.CONFIG_FILE is empty)"
    if not os.path.isfile(t.CONFIG_FILE):
        raise SystemExit(f"MODEL.ZOOMIN.TEACHER.CONFIG_FILE: no such file: {t.CONFIG_FILE} "
                         "(config paths are relative to the repository root: run from there)")
    if not t.WEIGHTS or not os.path.isfile(t.WEIGHTS):
        if explicit_weights:
            raise SystemExit(f"--teacher-weights: no such file: {t.WEIGHTS}")
        return (f"teacher weights not found ({t.WEIGHTS or 'MODEL.ZOOMIN.TEACHER.WEIGHTS is empty'}); "
                "pass --teacher-weights")
    return None


def find_annotations(image: Path) -> Optional[Path]:
    """``<split>/annotations/<stem>.txt`` for ``<split>/images/<stem>.jpg``, if it exists."""
    candidate = image.resolve().parent.parent / "annotations" / f"{image.stem}.txt"
    return candidate if image.resolve().parent.name == "images" and candidate.is_file() else None


def main(argv=None) -> List[str]:
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = setup_cfg(args)
    image_path = Path(args.input)
    if not image_path.is_file():
        parser.error(f"--input: no such file: {image_path}")
    annotation_path = Path(args.annotations) if args.annotations else find_annotations(image_path)
    if args.annotations and not annotation_path.is_file():
        parser.error(f"--annotations: no such file: {annotation_path}")

    problem = teacher_problem(cfg, bool(args.teacher_weights))
    if problem:
        print(f"No teacher: {problem}. Drawing the student's maps and AKDP only.")
    model = build_model(cfg)
    weights = args.student_weights or cfg.MODEL.WEIGHTS
    if args.student_weights and not os.path.isfile(args.student_weights):
        parser.error(f"--student-weights: no such file: {args.student_weights}")
    if weights:
        SafeDetectionCheckpointer(model, allow_unsafe=args.unsafe_load_checkpoint).load(weights)
        print(f"Student weights: {weights}")
    else:
        print("Student weights: none (random initialisation; pass --student-weights)")
    if problem is None:
        attach_configured_teacher(model, cfg)
    model.eval()

    record = load_image_dict(str(image_path), str(annotation_path) if annotation_path else None)
    print(f"Image: {image_path} ({record['width']}x{record['height']}), "
          + (f"annotations: {annotation_path} ({len(record['annotations'])} boxes, "
             f"{len(record['ignore_regions'])} ignored regions)" if annotation_path
             else "no annotations (no AKDP key positions)"))
    sample = visualization_mapper(cfg, with_teacher=model.teacher is not None)(record)
    maps = collect_distillation_maps(model, sample)
    image = utils.read_image(record["file_name"], format="RGB")
    pictures = draw_feature_panels(maps, image, record, max_size=args.max_size or None,
                                   tile_size=args.tile_size, alpha=args.alpha, cmap=args.cmap)

    out_dir = Path(args.output or os.path.join(cfg.OUTPUT_DIR, "feature_maps"))
    out_dir.mkdir(parents=True, exist_ok=True)
    order = ["panel", "gt", "akdp"] + sorted(k for k in pictures if k not in ("panel", "gt", "akdp"))
    written = []
    for name in order:
        path = out_dir / f"{record['image_id']}_{name}.png"
        Image.fromarray(pictures[name]).save(path, compress_level=3)
        written.append(str(path))
    print(f"Wrote {len(written)} files:")
    for path in written:
        print(f"  {path}")
    return written


if __name__ == "__main__":
    main()
