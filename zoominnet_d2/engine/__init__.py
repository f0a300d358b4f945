"""Training engine on top of Detectron2's: the project's ``Trainer``, ``train_net.py``'s
command line and set-up, a CPU-capable multi-process ``launch``, ``create_ddp_model`` for CPU
models, and the non-finite loss/weights stop hook."""
from ..config import ConfigError
from .ddp import create_ddp_model
from .hooks import StopOnNonFiniteLoss, non_finite_tensors
from .launch import launch
from .setup import argument_parser, build_config, save_config, setup
from .trainer import Trainer

__all__ = ["ConfigError", "StopOnNonFiniteLoss", "Trainer", "argument_parser", "build_config",
           "create_ddp_model", "launch", "non_finite_tensors", "save_config", "setup"]
