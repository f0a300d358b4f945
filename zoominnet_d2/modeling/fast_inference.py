"""Per-level decoding with the same detections as Detectron2's, without its full sort when
the top candidates are determined by their scores.

Detectron2's ``DenseDetector._decode_per_level_predictions`` keeps every score above
``test_score_thresh`` (a boolean-mask index and a ``nonzero`` of the same mask: two passes),
sorts *all* kept scores and takes the first ``test_topk_candidates``. On the 2x grid of
SNet + LA a level has 4x the anchors of SNet's, so 4x the scores to sort.

:func:`decode_per_level` returns exactly what that method returns:

- first the k largest scores (``topk``, a partial selection: a few ms for the 1.5 M scores of
  SNet + LA's P3 at 512, where sorting the ~300,000 above 0.05 takes tens of ms; see
  ``tools/benchmark_deploy.py``). When the k largest scores are all above the threshold
  and distinct, they *are* the reference's candidates in the reference's order (any sort
  orders distinct values alike), so only they are gathered and sorted;
- otherwise (fewer candidates than k, or equal scores among the k largest, whose order
  depends on how the installed Detectron2 ranks all candidates: v0.6 sorts them, main takes
  ``topk``) it calls that very method.
"""
import copy
from types import SimpleNamespace
from typing import Tuple

import torch
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.structures import Boxes, Instances
from torch import Tensor


def decode_per_level(
    box2box_transform: Box2BoxTransform,
    anchors: Boxes,
    pred_scores: Tensor,
    pred_deltas: Tensor,
    score_thresh: float,
    topk_candidates: int,
    image_size: Tuple[int, int],
) -> Instances:
    """What ``DenseDetector._decode_per_level_predictions`` returns, bit for bit.

    Args:
        box2box_transform: the model's box coder.
        anchors: Boxes (R, 4), the anchors of this level, R = Hi*Wi*A.
        pred_scores: (R, K) class probabilities (after sigmoid).
        pred_deltas: (R, 4) box regression deltas.
        score_thresh: scores must exceed it.
        topk_candidates: at most this many candidates are kept.
        image_size: (height, width) of the image the boxes belong to.

    Returns:
        Instances with ``pred_boxes`` (M, 4) XYXY, ``scores`` (M,) in decreasing order and
        ``pred_classes`` (M,), M <= topk_candidates.
    """
    flat = pred_scores.reshape(-1)
    flat_idxs = _distinct_top_candidates(flat, score_thresh, topk_candidates)
    if flat_idxs is None:
        # Detectron2's own method; it reads nothing of its detector but the box coder.
        holder = SimpleNamespace(box2box_transform=box2box_transform)
        return DenseDetector._decode_per_level_predictions(
            holder, anchors, pred_scores, pred_deltas, score_thresh, topk_candidates, image_size)
    scores, order = flat[flat_idxs].sort(descending=True)  # distinct values: one order
    flat_idxs = flat_idxs[order]
    num_classes = pred_scores.shape[1]
    anchor_idxs, class_idxs = flat_idxs // num_classes, flat_idxs % num_classes
    boxes = box2box_transform.apply_deltas(pred_deltas[anchor_idxs], anchors.tensor[anchor_idxs])
    return Instances(image_size, pred_boxes=Boxes(boxes), scores=scores, pred_classes=class_idxs)


def _distinct_top_candidates(flat: Tensor, score_thresh: float, k: int):
    """Ascending flat indices (k,) of the k largest scores of ``flat`` (S,) if they all exceed
    ``score_thresh`` and are distinct; else None."""
    if k >= flat.numel():
        return None
    top = flat.topk(k).values  # (k,), decreasing
    if not bool(top[-1] > score_thresh) or bool((top[1:] == top[:-1]).any()):
        return None
    flat_idxs = torch.nonzero(flat >= top[-1]).squeeze(1)
    # top[-1] is distinct from the others, but equal scores may lie just below the top k.
    return flat_idxs if len(flat_idxs) == k else None


class FastDecodeMixin:
    """Mixin for a ``DenseDetector`` subclass (first among the bases): per-level decoding by
    :func:`decode_per_level`; everything else unchanged."""

    def _decode_per_level_predictions(self, anchors, pred_scores, pred_deltas, score_thresh,
                                      topk_candidates, image_size) -> Instances:
        return decode_per_level(self.box2box_transform, anchors, pred_scores, pred_deltas,
                                score_thresh, topk_candidates, image_size)


def with_detectron2_decoding(model):
    """A shallow copy of ``model`` (the same modules and weights) that decodes with Detectron2's
    own ``DenseDetector._decode_per_level_predictions``, for comparing both decodings."""
    reference = copy.copy(model)
    reference.__class__ = type(f"Detectron2Decoding{type(model).__name__}", (type(model),),
                               {"_decode_per_level_predictions": DenseDetector._decode_per_level_predictions})
    return reference
