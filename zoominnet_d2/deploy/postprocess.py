"""Detections from the dense outputs of an exported student: decoding, top-k, NMS.

:func:`detect` is RetinaNet's inference (``RetinaNet.inference_single_image``) on the outputs
of :class:`zoominnet_d2.deploy.graph.DenseStudentGraph`, whichever runtime computed them:
per level the candidates above the score threshold, at most ``topk`` of them
(:func:`~zoominnet_d2.modeling.fast_inference.decode_per_level`, which gives Detectron2's
result bit for bit), their boxes decoded with ``Box2BoxTransform``, then per-class
``batched_nms`` and the ``max_detections`` best.
"""
from dataclasses import dataclass
from typing import List, Tuple

from detectron2.config import CfgNode
from detectron2.layers import batched_nms
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.structures import Boxes, Instances
from torch import Tensor

from ..modeling.fast_inference import decode_per_level


@dataclass
class DecodeSettings:
    """RetinaNet's test-time settings, read from the keys ``RetinaNet.from_config`` reads."""

    box2box_transform: Box2BoxTransform
    score_thresh: float
    topk_candidates: int
    nms_thresh: float
    max_detections: int

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "DecodeSettings":
        r = cfg.MODEL.RETINANET
        return cls(
            box2box_transform=Box2BoxTransform(weights=r.BBOX_REG_WEIGHTS),
            score_thresh=r.SCORE_THRESH_TEST,
            topk_candidates=r.TOPK_CANDIDATES_TEST,
            nms_thresh=r.NMS_THRESH_TEST,
            max_detections=cfg.TEST.DETECTIONS_PER_IMAGE,
        )


def detect(scores: List[Tensor], deltas: List[Tensor], anchors: List[Tensor],
           image_size: Tuple[int, int], settings: DecodeSettings) -> Instances:
    """Detections of one image, in the coordinates of the network's input.

    Args:
        scores: #lvl (1, Ri, K) or (Ri, K) class probabilities.
        deltas: #lvl (1, Ri, 4) or (Ri, 4) box deltas.
        anchors: #lvl (Ri, 4) XYXY anchors.
        image_size: (height, width) of the network's input (``detector_postprocess`` clips
            to it when it scales the boxes to the original image).
        settings: thresholds and the box coder.

    Returns:
        Instances with ``pred_boxes`` (M, 4) XYXY, ``scores`` (M,) decreasing, ``pred_classes`` (M,).
    """
    per_level = [
        decode_per_level(settings.box2box_transform, Boxes(a), s.reshape(len(a), -1), d.reshape(len(a), 4),
                         settings.score_thresh, settings.topk_candidates, image_size)
        for s, d, a in zip(scores, deltas, anchors)
    ]
    pred = Instances.cat(per_level)
    keep = batched_nms(pred.pred_boxes.tensor, pred.scores, pred.pred_classes, settings.nms_thresh)
    return pred[keep[: settings.max_detections]]
