"""The project's ``DefaultTrainer``: cross-scale data, VisDrone evaluation, CPU DDP, safe and
complete checkpoints, and the stop-on-non-finite and feature-map hooks."""
import logging
import os
import weakref

from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer
from detectron2.engine import hooks as d2_hooks
from detectron2.engine.train_loop import AMPTrainer, SimpleTrainer, TrainerBase
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from detectron2.utils.logger import setup_logger

from ..checkpoint import SafeDetectionCheckpointer
from ..data.cross_scale_mapper import ZoomInDatasetMapper
from ..evaluation import build_evaluator
from ..visualization import FeatureVisualizationHook
from .hooks import StopOnNonFiniteLoss
from .launch import create_ddp_model

logger = logging.getLogger("zoominnet_d2")


class Trainer(DefaultTrainer):
    """DefaultTrainer with the cross-scale mapper and the VisDrone evaluator.

    Also, compared with Detectron2 v0.6's DefaultTrainer: DDP works for a model on the CPU
    (``zoominnet_d2.engine.create_ddp_model``), checkpoints are loaded safely
    (:class:`SafeDetectionCheckpointer`), the optimizer state is saved in and resumed from
    checkpoints (v0.6 saves only the iteration and the scheduler), and training stops at the
    first non-finite loss or weights before checkpointing them (:class:`StopOnNonFiniteLoss`).

    Args:
        cfg: the config.
        allow_unsafe_checkpoint: let the checkpointer fully unpickle files (``--unsafe-load-checkpoint``).
        log_period: iterations between two writes of the metrics (console, metrics.json,
            TensorBoard); Detectron2 uses 20.
    """

    def __init__(self, cfg, allow_unsafe_checkpoint: bool = False, log_period: int = 20):
        # DefaultTrainer.__init__ (v0.6) with our create_ddp_model and checkpointer; skipping
        # it rather than patching the Detectron2 functions it calls.
        TrainerBase.__init__(self)
        d2_logger = logging.getLogger("detectron2")
        if not d2_logger.isEnabledFor(logging.INFO):  # setup_logger is not called for d2
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        # Assume these objects must be constructed in this order.
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)

        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)

        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SafeDetectionCheckpointer(
            # Assume you want to save checkpoints together with logs/statistics
            model,
            cfg.OUTPUT_DIR,
            allow_unsafe=allow_unsafe_checkpoint,
            trainer=weakref.proxy(self),
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.log_period = log_period

        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        """Detectron2's hooks, with :class:`StopOnNonFiniteLoss` before the checkpointer, the
        writers' period set to ``log_period`` and, with ``MODEL.ZOOMIN.VIS_PERIOD``, the
        feature-map pictures (:class:`FeatureVisualizationHook`) before the writers."""
        ret = super().build_hooks()
        if self.cfg.MODEL.ZOOMIN.VIS_PERIOD > 0:
            writer = next((i for i, h in enumerate(ret) if isinstance(h, d2_hooks.PeriodicWriter)), len(ret))
            ret.insert(writer, FeatureVisualizationHook(self.cfg))
        for h in ret:
            if isinstance(h, d2_hooks.PeriodicWriter):
                h._period = self.log_period
        stop = StopOnNonFiniteLoss(self.cfg.SOLVER.CHECKPOINT_PERIOD, self.cfg.TEST.EVAL_PERIOD)
        first = next((i for i, h in enumerate(ret)
                      if isinstance(h, (d2_hooks.PeriodicCheckpointer, d2_hooks.EvalHook))), len(ret))
        ret.insert(first, stop)
        return ret

    def build_writers(self):
        """Detectron2's writers, smoothing over ``log_period`` iterations instead of 20: each
        write reports the median of the iterations since the previous one (with
        ``--log-period 1``, every iteration's own values)."""
        return [
            CommonMetricPrinter(self.max_iter, window_size=self.log_period),
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=self.log_period),
            TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=self.log_period),
        ]

    def state_dict(self):
        # v0.6 forgets the inner trainer's state, i.e. the optimizer (momentum buffers, lr).
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])
        else:
            logger.warning("The checkpoint has no optimizer state (saved by Detectron2's own "
                           "DefaultTrainer?): the optimizer starts afresh")

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


