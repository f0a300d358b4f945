"""Training engine pieces on top of Detectron2's: a CPU-capable multi-process ``launch``, a
``create_ddp_model`` for CPU models, and the non-finite loss/weights stop hook."""
from .hooks import StopOnNonFiniteLoss, non_finite_tensors
from .launch import create_ddp_model, launch

__all__ = ["StopOnNonFiniteLoss", "create_ddp_model", "launch", "non_finite_tensors"]
