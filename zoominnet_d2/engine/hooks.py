"""Training hooks."""
import math
from typing import List

import torch
from detectron2.engine import HookBase

__all__ = ["StopOnNonFiniteLoss", "non_finite_tensors"]


def non_finite_tensors(module: torch.nn.Module) -> List[str]:
    """Names of the parameters and floating-point buffers of ``module`` holding a NaN or inf."""
    named = [(n, t) for n, t in list(module.named_parameters()) + list(module.named_buffers())
             if t.is_floating_point() and t.numel() > 0]
    if not named:
        return []
    # One reduction per tensor and a single device sync (amax propagates NaN).
    peaks = torch.stack([t.detach().abs().amax().float() for _, t in named])
    bad = (~torch.isfinite(peaks)).nonzero().flatten().tolist()
    return [named[i][0] for i in bad]


class StopOnNonFiniteLoss(HookBase):
    """Stop training with a ``FloatingPointError`` naming the iteration at the first
    non-finite loss, or non-finite weights, before a checkpoint of that state is written.

    Register it *before* :class:`detectron2.engine.hooks.PeriodicCheckpointer` (hooks run
    in list order). Detectron2's ``SimpleTrainer`` already raises for a non-finite total loss
    in ``run_step``, before the optimizer step and before any hook's ``after_step``, so a
    NaN loss never reaches the checkpointer. What it misses is an optimizer step that turns
    the weights (or BatchNorm statistics) non-finite while the loss that produced it was
    still finite (a learning rate far too high): the next periodic checkpoint, and
    ``last_checkpoint``, would then hold that model. This hook checks the model's parameters
    and buffers after every iteration at which a checkpoint is written (every
    ``checkpoint_period`` and the last one) or an evaluation runs, and checks the reported
    losses after every iteration (for trainers that do not).

    Args:
        checkpoint_period: ``SOLVER.CHECKPOINT_PERIOD``.
        eval_period: ``TEST.EVAL_PERIOD`` (0: none).
    """

    def __init__(self, checkpoint_period: int, eval_period: int = 0):
        self._periods = [p for p in (checkpoint_period, eval_period) if p and p > 0]

    def after_step(self):
        it = self.trainer.iter
        self._check_losses(it)
        last = it + 1 >= self.trainer.max_iter
        if last or any((it + 1) % p == 0 for p in self._periods):
            bad = non_finite_tensors(self.trainer.model)
            if bad:
                names = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
                raise FloatingPointError(
                    f"Weights became infinite or NaN at iteration={it} ({names}); training stopped "
                    "before a checkpoint of them was written (the last checkpoint is unchanged)"
                )

    def _check_losses(self, it: int) -> None:
        latest = self.trainer.storage.latest()
        bad = {k: v for k, (v, i) in latest.items()
               if i == it and (k == "total_loss" or k.startswith("loss")) and not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f"Loss became infinite or NaN at iteration={it}: {bad}")
