"""DistributedDataParallel for models on the CPU as well as on GPUs.

Detectron2's ``create_ddp_model`` (v0.6 and main) passes ``device_ids=[local rank]``, which
``DistributedDataParallel`` rejects for a module on the CPU (it needs ``device_ids=None``
there). :func:`create_ddp_model` picks ``device_ids`` from the model's device;
:func:`cpu_capable_ddp` makes ``DefaultTrainer.__init__`` use it.
"""
import contextlib

import torch
from detectron2.engine import create_ddp_model as _d2_create_ddp_model
from detectron2.engine import defaults as _d2_defaults
from detectron2.utils import comm

__all__ = ["cpu_capable_ddp", "create_ddp_model"]


def create_ddp_model(model, *, fp16_compression=False, **kwargs):
    """:func:`detectron2.engine.create_ddp_model` for GPU or CPU models.

    ``find_unused_parameters`` stays False: every trainable parameter of the model must get
    a gradient in each step (the ZoomInNet teacher is not a submodule, so DDP never sees it).
    """
    if comm.get_world_size() > 1 and "device_ids" not in kwargs:
        device = next(model.parameters()).device
        kwargs["device_ids"] = [comm.get_local_rank()] if device.type == "cuda" else None
    return _d2_create_ddp_model(model, fp16_compression=fp16_compression, **kwargs)


@contextlib.contextmanager
def cpu_capable_ddp(cfg):
    """Context in which ``DefaultTrainer.__init__`` wraps a CPU model with :func:`create_ddp_model`.

    ``DefaultTrainer.__init__`` calls ``detectron2.engine.defaults.create_ddp_model`` by its
    module-level name, with no argument or hook that could pass ``device_ids``. Only in a
    multi-process run on the CPU (``cfg.MODEL.DEVICE``), and only while the context is open,
    that name is bound to :func:`create_ddp_model`; GPU and single-process runs use
    Detectron2's function untouched.
    """
    if comm.get_world_size() == 1 or torch.device(cfg.MODEL.DEVICE).type != "cpu":
        yield
        return
    original = _d2_defaults.create_ddp_model
    _d2_defaults.create_ddp_model = create_ddp_model
    try:
        yield
    finally:
        _d2_defaults.create_ddp_model = original
