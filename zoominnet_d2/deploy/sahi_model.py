"""SAHI's sliced inference for the models of this project.

:class:`ZoomInSahiModel` is a SAHI ``DetectionModel`` built from a project config and a
weights file: the student alone (a CSKD config's teacher is not read), each slice and the
full-image pass through the config's own test transform (e.g. the synthetic configs' fixed
128 px square resize). :func:`sliced_instances` runs SAHI's ``get_sliced_prediction`` (its
slicing and its merging) and returns Detectron2 ``Instances``, as the other predictors do.

    model = ZoomInSahiModel(model_path="model_final.pth", config_path="configs/synth/la.yaml")
    result = sahi.predict.get_sliced_prediction(rgb_image, model, slice_height=128, slice_width=128)
"""
from typing import Optional, Sequence

import numpy as np
import torch
from detectron2.structures import Boxes, Instances
from sahi.models.detectron2 import Detectron2DetectionModel
from sahi.predict import get_sliced_prediction

from ..config import load_config
from ..data.visdrone import VISDRONE_CLASSES
from .predictor import TorchPredictor


class ZoomInSahiModel(Detectron2DetectionModel):
    """A SAHI detection model running a ZoomInNet student (``TorchPredictor``).

    Args (besides SAHI's ``DetectionModel`` ones):
        model_path: the student's weights (a Detectron2 ``.pth``, e.g. ``model_final.pth``).
        config_path: the project config the weights were trained with.
        opts: ``KEY VALUE`` config overrides, as on train_net.py's command line.

    Category ids are the model's (0..NUM_CLASSES-1), named by VisDrone's classes unless a
    ``category_mapping`` is given. SAHI hands images over in RGB; they are converted to the
    config's ``INPUT.FORMAT`` here.
    """

    def __init__(self, *args, opts: Sequence[str] = (), **kwargs):
        self.opts = list(opts)
        super().__init__(*args, **kwargs)

    def load_model(self) -> None:
        if not self.config_path:
            raise ValueError("ZoomInSahiModel needs config_path (the project config of the weights)")
        cfg = load_config(self.config_path, self.opts, file_key="config_path")
        self.set_model(TorchPredictor(cfg, self.model_path))

    def set_model(self, model: TorchPredictor, **kwargs) -> None:
        """Use an already loaded ``TorchPredictor``."""
        self.model = model
        if self.category_mapping is None:
            num_classes = model.cfg.MODEL.RETINANET.NUM_CLASSES
            names = VISDRONE_CLASSES if num_classes <= len(VISDRONE_CLASSES) else range(num_classes)
            self.category_mapping = {str(i): str(name) for i, name in zip(range(num_classes), names)}
        self.category_names = list(self.category_mapping.values())

    def perform_inference(self, image: np.ndarray) -> None:
        """Detections of one (H, W, 3) RGB uint8 image, kept for SAHI's conversion (in the
        layout of Detectron2's ``DefaultPredictor``, which the parent class converts)."""
        if self.model is None:
            raise RuntimeError("the model is not loaded: call load_model()")
        if self.model.cfg.INPUT.FORMAT == "BGR":
            image = image[:, :, ::-1]
        self._original_predictions = {"instances": self.model(image)}


def sliced_instances(model: ZoomInSahiModel, rgb_image: np.ndarray, slice_size: int, overlap: float,
                     full_image_pass: bool, max_detections: Optional[int] = None) -> Instances:
    """SAHI's sliced prediction of ``model`` on an (H, W, 3) RGB image as ``Instances``
    (``pred_boxes`` XYXY in the image's pixels, ``scores``, ``pred_classes``), at most
    ``max_detections`` of the highest scores.

    Slices are ``slice_size`` squares overlapping by ``overlap``; ``full_image_pass`` adds
    SAHI's standard prediction on the whole image before merging. The merging is SAHI's
    class-wise NMS at the model's own NMS IoU threshold (``MODEL.RETINANET.NMS_THRESH_TEST``):
    what SAHI itself switches to for confidence thresholds below 0.1, as AP evaluation uses,
    chosen here explicitly instead of its box-enlarging default (greedy merging by IoS).
    """
    result = get_sliced_prediction(
        rgb_image, model, slice_height=slice_size, slice_width=slice_size, overlap_height_ratio=overlap,
        overlap_width_ratio=overlap, perform_standard_pred=full_image_pass, postprocess_type="NMS",
        postprocess_match_metric="IOU", postprocess_match_threshold=model.model.cfg.MODEL.RETINANET.NMS_THRESH_TEST,
        verbose=0)
    found = result.object_prediction_list
    found = sorted(found, key=lambda p: -p.score.value)[:max_detections]
    instances = Instances(rgb_image.shape[:2])
    boxes = [p.bbox.to_xyxy() for p in found]
    instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    instances.scores = torch.tensor([p.score.value for p in found], dtype=torch.float32)
    instances.pred_classes = torch.tensor([p.category.id for p in found], dtype=torch.int64)
    return instances
