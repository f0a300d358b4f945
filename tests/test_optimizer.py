"""Tests of SOLVER.OPTIMIZER (zoominnet_d2/engine/optimizer.py): AdamW's parameter groups and
first step against the AdamW formula written out, SGD left to Detectron2, gradient clipping,
and an unknown name refused with the key."""
import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes before Detectron2)
from detectron2.config import get_cfg

from zoominnet_d2.config import add_zoominnet_config
from zoominnet_d2.engine import Trainer
from zoominnet_d2.engine.optimizer import build_optimizer


def _cfg(optimizer):
    cfg = add_zoominnet_config(get_cfg())
    cfg.SOLVER.OPTIMIZER = optimizer
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.WEIGHT_DECAY = 0.1
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    return cfg


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))


def _one_step(cfg, model):
    """(weights before, weights after one step, gradients) of ``model`` on a fixed input."""
    optimizer = Trainer.build_optimizer(cfg, model)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.ones(1, 3, 5, 5)).square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    optimizer.step()
    return before, [p.detach() for p in model.parameters()], grads


def test_adamw_groups_decay_weights_but_not_norms():
    model = _model()
    optimizer = build_optimizer(_cfg("AdamW"), model)
    assert isinstance(optimizer, torch.optim.AdamW)
    norm_params = {id(p) for p in model[1].parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            assert group["lr"] == 0.01
            assert group["weight_decay"] == (0.0 if id(p) in norm_params else 0.1)


def test_first_adamw_step_follows_the_formula():
    # Step 1 of AdamW: p <- p (1 - lr wd) - lr m/(sqrt(v) + eps) with m = g, v = g^2 after bias
    # correction, i.e. a step of lr against the sign of each gradient.
    before, after, grads = _one_step(_cfg("AdamW"), _model())
    decays = [0.1, 0.1, 0.0, 0.0, 0.1, 0.1]  # conv weight, bias; BN weight, bias; conv weight, bias
    for p0, p1, g, wd in zip(before, after, grads, decays):
        expected = p0 * (1 - 0.01 * wd) - 0.01 * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p1, expected, rtol=0, atol=1e-6)


def test_sgd_is_detectron2s_first_step():
    # Step 1 of SGD with momentum and weight decay: p <- p - lr (g + wd p).
    before, after, grads = _one_step(_cfg("SGD"), _model())
    decays = [0.1, 0.1, 0.0, 0.0, 0.1, 0.1]
    for p0, p1, g, wd in zip(before, after, grads, decays):
        torch.testing.assert_close(p1, p0 - 0.01 * (g + wd * p0), rtol=0, atol=1e-6)


def test_adamw_clips_gradients():
    cfg = _cfg("AdamW")
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    model = _model()
    optimizer = build_optimizer(cfg, model)
    (1000 * model(torch.ones(1, 3, 5, 5))).square().sum().backward()
    assert all(p.grad.norm() > 0.5 for p in model.parameters() if p.grad.abs().sum() > 0)
    optimizer.step()
    assert max(p.grad.norm().item() for p in model.parameters()) <= 0.5 + 1e-6


def test_unknown_optimizer_names_the_key():
    with pytest.raises(ValueError, match=r"SOLVER\.OPTIMIZER: 'Adam' is not one of SGD, AdamW"):
        build_optimizer(_cfg("Adam"), _model())
