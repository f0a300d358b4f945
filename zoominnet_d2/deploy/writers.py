"""What ``tools/predict.py`` writes into its output folder, one run at a time:

- ``pictures/<name>.jpg``: the image with its detections (Detectron2's ``Visualizer``:
  boxes, class names, scores);
- ``visdrone/<name>.txt``: the official VisDrone-DET result file
  (:func:`zoominnet_d2.evaluation.write_visdrone_results`);
- ``coco_results.json``: all detections of the run in the COCO results format
  (``image_id`` = name, ``category_id`` = VisDrone category = class + 1, ``bbox`` XYWH);
- for a video, ``<video stem>.mp4``: the annotated frames (OpenCV, mp4v).

A folder that already holds files is refused unless ``overwrite``; then only the files
of this run are replaced.
"""
import json
import os
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from detectron2.structures import BoxMode, Instances
from detectron2.utils.visualizer import Visualizer

from ..evaluation import write_visdrone_results

COCO_RESULTS = "coco_results.json"


def prepare_output_dir(path: str, overwrite: bool) -> None:
    """Create ``path``; refuse (FileExistsError) a non-empty folder unless ``overwrite``."""
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise FileExistsError(f"output folder {path} already holds files; pass --overwrite to "
                              f"write into it (files of the same names are replaced)")
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"--output {path} is a file, not a folder")
    os.makedirs(path, exist_ok=True)


class ResultWriter:
    """Pictures, VisDrone txt files and the COCO JSON of one run.

    Args:
        output_dir: a folder made by :func:`prepare_output_dir`.
        metadata: Detectron2 metadata with ``thing_classes`` (the names drawn).
        rgb: images given to :meth:`add` are RGB (else BGR).
    """

    def __init__(self, output_dir: str, metadata, rgb: bool):
        self.output_dir, self.metadata, self.rgb = output_dir, metadata, rgb
        for sub in ("pictures", "visdrone"):
            os.makedirs(os.path.join(output_dir, sub), exist_ok=True)
        self.coco: List[Dict] = []
        self.video: Optional[cv2.VideoWriter] = None

    def add(self, name: str, image: np.ndarray, instances: Instances) -> np.ndarray:
        """Write the picture and the txt file of one image; returns the picture (BGR)."""
        boxes = BoxMode.convert(instances.pred_boxes.tensor.numpy(), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
        scores, classes = instances.scores.numpy(), instances.pred_classes.numpy()
        write_visdrone_results([{"image_id": name, "boxes": boxes, "scores": scores, "classes": classes}],
                               os.path.join(self.output_dir, "visdrone"))
        self.coco += [{"image_id": name, "category_id": int(c) + 1, "bbox": [float(v) for v in b],
                       "score": float(s)} for b, s, c in zip(boxes, scores, classes)]
        rgb = image if self.rgb else image[:, :, ::-1]
        drawn = Visualizer(rgb, self.metadata).draw_instance_predictions(instances).get_image()[:, :, ::-1]
        cv2.imwrite(os.path.join(self.output_dir, "pictures", f"{name}.jpg"), drawn)
        if self.video is not None:
            self.video.write(np.ascontiguousarray(drawn))
        return drawn

    def open_video(self, stem: str, fps: float, size: Tuple[int, int]) -> str:
        """Also write the pictures from now on as frames of ``<stem>.mp4``; returns its path."""
        path = os.path.join(self.output_dir, f"{stem}.mp4")
        self.video = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.video.isOpened():
            raise OSError(f"OpenCV cannot write the video {path}")
        return path

    def close(self) -> str:
        """Finish the video and write the COCO JSON; returns the JSON's path."""
        if self.video is not None:
            self.video.release()
        path = os.path.join(self.output_dir, COCO_RESULTS)
        with open(path, "w") as f:
            json.dump(self.coco, f)
        return path
