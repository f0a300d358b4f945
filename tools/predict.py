#!/usr/bin/env python
"""Run the student on images or a video: pictures, VisDrone result files, one COCO JSON.

    python tools/predict.py --config-file configs/cskd_la.yaml --weights output/cskd_la/model_final.pth \\
        --input <image | folder | glob | video> --output DIR [--score-thresh 0.3] [--overwrite]
    python tools/predict.py --config-file C --backend onnx --model student.onnx --input ... --output DIR

Only the student is built (a CSKD config's teacher is never read). ``--backend onnx`` /
``torchscript`` runs a file of ``tools/export.py`` instead of the PyTorch model. What is
written: see ``zoominnet_d2/deploy/writers.py``. An image that cannot be decoded is named,
skipped and counted; the last line gives the images per second of the whole loop (decoding,
inference, drawing and writing).
"""
import argparse
import logging
import os
import sys
import time

import zoominnet_d2  # noqa: F401  (first: compat fixes, registrations)
from detectron2.data import MetadataCatalog
from detectron2.data.catalog import Metadata
from tqdm import tqdm

from zoominnet_d2.data import VISDRONE_CLASSES
from zoominnet_d2.deploy import BACKENDS, build_predictor, load_config
from zoominnet_d2.deploy.sources import Video, image_paths, is_video, read_images
from zoominnet_d2.deploy.writers import ResultWriter, prepare_output_dir


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, help="the student's (or its CSKD) config")
    parser.add_argument("--weights", default="", help="checkpoint (.pth) for --backend torch")
    parser.add_argument("--input", required=True, help="an image, a folder, a quoted glob or a video")
    parser.add_argument("--output", required=True, help="folder for the results")
    parser.add_argument("--score-thresh", type=float, help="keep detections above it "
                        "(default: MODEL.RETINANET.SCORE_THRESH_TEST of the config)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--model", default="", help="file of tools/export.py for --backend onnx/torchscript")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that holds files")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def metadata_of(cfg):
    """Class names to draw: those of the config's test dataset, else VisDrone's."""
    if cfg.DATASETS.TEST:
        meta = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        if len(meta.get("thing_classes", [])) == cfg.MODEL.RETINANET.NUM_CLASSES:
            return meta
    return Metadata(name="visdrone", thing_classes=list(VISDRONE_CLASSES))


def run(args) -> dict:
    """The whole run; returns counts and the images per second."""
    cfg = load_config(args.config_file, args.opts)
    if args.score_thresh is not None:
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = args.score_thresh
    video = Video(args.input, cfg.INPUT.FORMAT) if is_video(args.input) else None
    paths = [] if video else image_paths(args.input)
    frames = video.frames() if video else read_images(paths, cfg.INPUT.FORMAT)
    predictor = build_predictor(cfg, args.backend, weights=args.weights, model_path=args.model)
    prepare_output_dir(args.output, args.overwrite)
    writer = ResultWriter(args.output, metadata_of(cfg), rgb=cfg.INPUT.FORMAT == "RGB")
    if video:
        writer.open_video(os.path.splitext(os.path.basename(args.input))[0], video.fps, video.size)
    done, skipped = 0, []
    start = time.perf_counter()
    for frame in tqdm(frames, total=video.num_frames if video else len(paths), unit="img"):
        if frame.image is None:
            tqdm.write(f"skipped {frame.path}: {frame.error}")
            skipped.append(frame.path)
            continue
        writer.add(frame.name, frame.image, predictor(frame.image))
        done += 1
    elapsed = time.perf_counter() - start
    json_path = writer.close()
    rate = done / elapsed if elapsed > 0 else 0.0
    print(f"{done} image(s) in {elapsed:.1f} s: {rate:.2f} images/s; {len(skipped)} skipped "
          f"(unreadable); results in {args.output} ({os.path.basename(json_path)}, pictures/, visdrone/)")
    return {"images": done, "skipped": skipped, "images_per_s": rate}


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        run(args)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
