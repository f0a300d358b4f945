"""The optimizer of ``SOLVER.OPTIMIZER``: Detectron2's SGD, or AdamW with the same parameter
groups, learning-rate schedule and gradient clipping."""
import torch
from detectron2.solver import build_optimizer as build_sgd_optimizer
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping

from ..config import OPTIMIZERS


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.SOLVER.OPTIMIZER`` for ``model``'s trainable parameters.

    "SGD" is Detectron2's own (``detectron2.solver.build_optimizer``). "AdamW" takes the same
    parameter groups (``SOLVER.WEIGHT_DECAY_NORM`` for norm layers, ``BIAS_LR_FACTOR`` and
    ``WEIGHT_DECAY_BIAS`` for biases), ``SOLVER.BASE_LR`` and ``SOLVER.WEIGHT_DECAY`` (decoupled,
    as AdamW applies it) and ``SOLVER.CLIP_GRADIENTS``; ``MOMENTUM`` and ``NESTEROV`` do not apply.
    Detectron2 v0.6's config has no optimizer choice (its LazyConfig path does).

    Raises:
        ValueError: an unknown ``SOLVER.OPTIMIZER``, naming the key and the choices.
    """
    name = cfg.SOLVER.OPTIMIZER
    if name == "SGD":
        return build_sgd_optimizer(cfg, model)
    if name != "AdamW":
        raise ValueError(f"SOLVER.OPTIMIZER: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    return maybe_add_gradient_clipping(cfg, torch.optim.AdamW)(
        params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
