"""The project's ``DefaultTrainer``: cross-scale data, VisDrone evaluation, CPU DDP, safe and
complete checkpoints, and the stop-on-non-finite and feature-map hooks."""
import logging
import os
import weakref

from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer
from detectron2.engine import hooks as d2_hooks
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter

from ..checkpoint import SafeDetectionCheckpointer
from ..data.cross_scale_mapper import ZoomInDatasetMapper
from ..evaluation import build_evaluator
from ..modeling import attach_configured_teacher
from .feature_hook import FeatureVisualizationHook
from .ddp import cpu_capable_ddp
from .hooks import StopOnNonFiniteLoss
from .optimizer import build_optimizer

logger = logging.getLogger("zoominnet_d2")


class Trainer(DefaultTrainer):
    """DefaultTrainer with the cross-scale mapper and the VisDrone evaluator.

    Also: DDP works for a model on the CPU (:func:`cpu_capable_ddp`), checkpoints are loaded
    safely (:class:`SafeDetectionCheckpointer`), the optimizer state is saved in and resumed
    from checkpoints (by Detectron2 main itself, here on v0.6, which saves only the iteration
    and the hooks), a checkpoint without it resumes with a warning and a fresh optimizer, and
    training stops at the first non-finite loss or weights before checkpointing them
    (:class:`StopOnNonFiniteLoss`).

    Args:
        cfg: the config.
        allow_unsafe_checkpoint: let the checkpointer fully unpickle files (``--unsafe-load-checkpoint``).
        log_period: iterations between two writes of the metrics (console, metrics.json,
            TensorBoard); Detectron2 uses 20.
    """

    def __init__(self, cfg, allow_unsafe_checkpoint: bool = False, log_period: int = 20):
        # Both read by build_hooks() (and log_period by build_writers()) in super().__init__.
        self.log_period = log_period
        self.allow_unsafe_checkpoint = allow_unsafe_checkpoint
        with cpu_capable_ddp(cfg):
            super().__init__(cfg)

    def build_hooks(self):
        """Detectron2's hooks, with :class:`StopOnNonFiniteLoss` before the checkpointer, the
        metrics written every ``log_period`` iterations and, with ``MODEL.ZOOMIN.VIS_PERIOD``,
        the feature-map pictures (:class:`FeatureVisualizationHook`) before the writers.

        Also replaces the checkpointer by a :class:`SafeDetectionCheckpointer` (saving is the
        same): DefaultTrainer has no builder for it, but creates it just before calling this,
        so the PeriodicCheckpointer hook built here gets the safe one too."""
        self.checkpointer = SafeDetectionCheckpointer(
            self.model, self.cfg.OUTPUT_DIR, allow_unsafe=self.allow_unsafe_checkpoint, trainer=weakref.proxy(self)
        )
        ret = [d2_hooks.PeriodicWriter(self.build_writers(), period=self.log_period)
               if isinstance(h, d2_hooks.PeriodicWriter) else h for h in super().build_hooks()]
        if self.cfg.MODEL.ZOOMIN.VIS_PERIOD > 0:
            writer = next((i for i, h in enumerate(ret) if isinstance(h, d2_hooks.PeriodicWriter)), len(ret))
            ret.insert(writer, FeatureVisualizationHook(self.cfg))
        stop = StopOnNonFiniteLoss(self.cfg.SOLVER.CHECKPOINT_PERIOD, self.cfg.TEST.EVAL_PERIOD)
        first = next((i for i, h in enumerate(ret)
                      if isinstance(h, (d2_hooks.PeriodicCheckpointer, d2_hooks.EvalHook))), len(ret))
        ret.insert(first, stop)
        return ret

    def build_writers(self):
        """Detectron2's writers, smoothing over ``log_period`` iterations instead of 20: each
        write reports the median of the iterations since the previous one (with
        ``--log-period 1``, every iteration's own values).

        Built once per trainer: ``DefaultTrainer.build_hooks`` asks for them for the
        PeriodicWriter that :meth:`build_hooks` replaces, and a second set would open a second
        TensorBoard event file."""
        if not hasattr(self, "_metric_writers"):
            self._metric_writers = [
                CommonMetricPrinter(self.max_iter, window_size=self.log_period),
                JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=self.log_period),
                TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=self.log_period),
            ]
        return self._metric_writers

    def state_dict(self):
        ret = super().state_dict()
        if "_trainer" not in ret:  # saved by Detectron2 main itself, not by v0.6
            # The inner trainer's state: the optimizer (momentum buffers, lr), AMP's grad scaler.
            ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        if "_trainer" not in state_dict:
            logger.warning("The checkpoint has no optimizer state (saved by Detectron2 v0.6's own "
                           "DefaultTrainer?): the optimizer starts afresh")
            # Detectron2 main's DefaultTrainer.load_state_dict reads "_trainer" unconditionally:
            # it gets the current (fresh) state.
            state_dict = {**state_dict, "_trainer": self._trainer.state_dict()}
        d2_loads_trainer = "_trainer" in super().state_dict()  # main: yes; v0.6: no
        super().load_state_dict(state_dict)
        if not d2_loads_trainer:
            self._trainer.load_state_dict(state_dict["_trainer"])

    @classmethod
    def build_model(cls, cfg):
        """The model with, when ``MODEL.ZOOMIN.TEACHER.CONFIG_FILE`` is set, its frozen teacher
        attached (read from its files): distillation is set up here, for training only."""
        return attach_configured_teacher(super().build_model(cfg), cfg)

    @classmethod
    def build_optimizer(cls, cfg, model):
        """Detectron2's SGD or AdamW, as ``SOLVER.OPTIMIZER`` says (:func:`.optimizer.build_optimizer`)."""
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        with_teacher = bool(cfg.MODEL.ZOOMIN.TEACHER.CONFIG_FILE)
        mapper = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=with_teacher)
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=ZoomInDatasetMapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluator(cfg, dataset_name, output_folder)
