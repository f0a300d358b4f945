"""The student as one traceable graph: image in, dense per-level predictions and anchors out.

:class:`DenseStudentGraph` is what ``tools/export.py`` writes to ONNX and TorchScript:
normalisation and padding (``model.preprocess_image``), backbone, head (for LA: the 2x
upsampling and the final convs on the 2x grid), the sigmoid, and the anchors of the model's
own anchor generator (LA: on the 2x grid). Box decoding, top-k and NMS are data-dependent and
stay outside, in :func:`zoominnet_d2.deploy.postprocess.detect`, the same code for every
backend. The graph is traced for one fixed input size, so the anchors are constants of it.
"""
from typing import List, Tuple

from detectron2.modeling.meta_arch.dense_detector import permute_to_N_HWA_K
from torch import Tensor, nn


def output_names(num_levels: int) -> List[str]:
    """Names of the graph's outputs: scores, deltas and anchors of each level, in that order."""
    return [f"{kind}_{i}" for kind in ("scores", "deltas", "anchors") for i in range(num_levels)]


def split_outputs(outputs: List[Tensor]) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
    """(scores, deltas, anchors), each a list over levels, from the flat output list."""
    n = len(outputs) // 3
    return list(outputs[:n]), list(outputs[n:2 * n]), list(outputs[2 * n:])


class DenseStudentGraph(nn.Module):
    """A Detectron2 RetinaNet-style student as image -> dense predictions.

    Uses only the model's public parts (``preprocess_image``, ``backbone``, ``head``,
    ``head_in_features``, ``anchor_generator``, ``num_classes``).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # Eval mode for the whole graph: exporters restore the wrapper's own mode after
        # tracing, and a wrapper left in training mode would switch BatchNorm to batch stats.
        self.eval()

    @property
    def num_levels(self) -> int:
        return len(self.model.head_in_features)

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        """
        Args:
            image: (1, 3, H, W) float, the config's INPUT.FORMAT channel order, 0-255,
                already resized to the model's input size.

        Returns:
            #lvl scores (1, Ri, K) (sigmoid), then #lvl deltas (1, Ri, 4), then #lvl
            anchors (Ri, 4) XYXY in input pixels; Ri = Hi * Wi * A on the prediction grid.
        """
        images = self.model.preprocess_image([{"image": image[0]}])
        features = self.model.backbone(images.tensor)
        features = [features[f] for f in self.model.head_in_features]
        # The head may return more than (logits, deltas), e.g. tower outputs for distillation.
        logits, deltas = self.model.head(features)[:2]
        scores = [permute_to_N_HWA_K(x, self.model.num_classes).sigmoid() for x in logits]
        deltas = [permute_to_N_HWA_K(x, 4) for x in deltas]
        anchors = [a.tensor for a in self.model.anchor_generator(features)]
        return tuple(scores + deltas + anchors)

