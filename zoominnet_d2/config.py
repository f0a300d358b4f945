"""The project's config: ZoomInNet's keys added to Detectron2's (:func:`add_zoominnet_config`),
and the one loader of config files that the training, the teacher, deployment and the tools
share (:func:`load_config`)."""
from typing import Sequence

import torch
import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg
from detectron2.utils.file_io import PathManager


#: The choices of SOLVER.OPTIMIZER (zoominnet_d2/engine/optimizer.py builds them).
OPTIMIZERS = ("SGD", "AdamW")


class ConfigError(ValueError):
    """A config file or ``KEY VALUE`` options are wrong; the message names the file or key."""


def load_config(config_file: str, opts: Sequence = (), file_key: str = "--config-file") -> CN:
    """Detectron2's defaults with the ZoomInNet keys, merged from ``config_file`` and then the
    ``KEY VALUE`` list ``opts``; ``MODEL.DEVICE`` "cuda..." becomes "cpu" when CUDA is not
    there. Not frozen: callers set what they need and freeze.

    Args:
        file_key: what the file is called in errors, e.g. "--config-file" or
            "MODEL.ZOOMIN.TEACHER.CONFIG_FILE".

    Raises:
        ConfigError: no such file, or an unknown key or malformed value, naming the file (or
            "command-line options") and Detectron2's message; an unknown SOLVER.OPTIMIZER, so
            that it is refused before a run starts.
    """
    cfg = add_zoominnet_config(get_cfg())
    if not config_file or not PathManager.isfile(config_file):
        raise ConfigError(f"{file_key}: no such file: {config_file!r}")
    for what, merge in ((f"config file {config_file}", lambda: cfg.merge_from_file(config_file)),
                        ("command-line options", lambda: cfg.merge_from_list(list(opts)))):
        try:
            merge()
        except (KeyError, AssertionError, ValueError, TypeError, yaml.YAMLError) as e:
            msg = e.args[0] if e.args else type(e).__name__
            raise ConfigError(f"{what}: {msg}") from e
    if cfg.SOLVER.OPTIMIZER not in OPTIMIZERS:
        raise ConfigError(f"SOLVER.OPTIMIZER: {cfg.SOLVER.OPTIMIZER!r} is not one of "
                          f"{', '.join(OPTIMIZERS)}")
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    return cfg


def add_zoominnet_config(cfg: CN) -> CN:
    """Add the ZoomInNet keys (``MODEL.ZOOMIN``, ``INPUT.SQUARE_SIZE`` and ``NATIVE_DOWNSCALE``,
    ``DATALOADER.DECODED_IMAGE_CACHE_MB``, ``SOLVER.OPTIMIZER``, ``TEST.*``) to ``cfg``."""
    _C = cfg

    # Resize every image to SQUARE_SIZE x SQUARE_SIZE, ignoring its aspect ratio, as the
    # authors' configs do (keep_ratio=False; 512 for the student, 1024 for the teacher).
    # 0 keeps Detectron2's ResizeShortestEdge (INPUT.MIN_SIZE_* / MAX_SIZE_*).
    _C.INPUT.SQUARE_SIZE = 0
    # Instead of a resize to a size, downsample the original image (after INPUT.CROP in
    # training) by this integer factor; 1 keeps the native pixels. A student with
    # NATIVE_DOWNSCALE = INPUT_SCALE x its teacher's then trains on the teacher's view of the
    # same crop downsampled (teacher 1: native 512x512 crops, student 2: the same crops at
    # 256x256) and is evaluated on whole frames downsampled the same way. 0: off (SQUARE_SIZE
    # or Detectron2's shortest-edge resize). Excludes SQUARE_SIZE.
    _C.INPUT.NATIVE_DOWNSCALE = 0
    # Keep up to this many MB of decoded training images in memory (per data-loader process),
    # so that they are decoded once instead of every epoch (zoominnet_d2/data/image_cache.py).
    # 0: off. Mapping a real VisDrone frame took 18 ms with decoding, 4 ms cached (BENCHMARKS.md).
    _C.DATALOADER.DECODED_IMAGE_CACHE_MB = 0
    # "SGD" (Detectron2's, with SOLVER.MOMENTUM and NESTEROV) or "AdamW" (the same parameter
    # groups, BASE_LR, decoupled WEIGHT_DECAY, schedule and CLIP_GRADIENTS;
    # zoominnet_d2/engine/optimizer.py).
    _C.SOLVER.OPTIMIZER = "SGD"

    # ZoomInNet's keys: alignment, distillation, AKDP and the teacher.
    _C.MODEL.ZOOMIN = CN()
    # How the student's maps are brought to the teacher's grid:
    #   "none": direct CSKD (Table 3 "SNet + CSKD"): the student is a plain RetinaNet and the
    #           teacher's maps are average-pooled down to the student's grid;
    #   "la":   layer adaption: the head towers run at the student's resolution, their outputs
    #           are upsampled 2x (nearest) and only the final cls/box convs run on the 2x grid,
    #           with anchors at the teacher's strides expressed in the student's input;
    #   "fa":   feature-level alignment: the student's FPN gives P2-P6 (set MODEL.FPN.IN_FEATURES
    #           to res2-res5 and MODEL.RETINANET.IN_FEATURES to p2-p6), paired with teacher P3-P7.
    _C.MODEL.ZOOMIN.ALIGN = "none"
    # Tensors that are distilled, one per level pair: "fpn" (the FPN outputs that feed the head;
    # for LA upsampled 2x, nearest) or "tower" (the concatenated cls and box tower outputs, on
    # which the final convs sit). The paper does not say; "fpn" follows FGFI and the paper's
    # Figure 3 (distillation between the feature pyramids).
    _C.MODEL.ZOOMIN.DISTILL_FEATURES = "fpn"
    # LA at inference: compute the final convs of the 2x-upsampled towers as sub-pixel convs on
    # the 1x grid (the same outputs, 16/36 of their multiply-adds, no upsampled copy;
    # zoominnet_d2/modeling/subpixel.py). Faster where the head is wide (R50, 256 channels:
    # SNet + LA / SNet CPU time 1.06 instead of 1.11 at 512 px), slower for the slim CPU
    # models (32 channels: 26.5 instead of 22.8 ms at 128 px). Training and GFLOPs counts
    # always use the upsample-then-conv form.
    _C.MODEL.ZOOMIN.SUBPIXEL_INFERENCE = False
    # Weight of the position-aware L2 loss, lambda_distill in Eq. 22 (paper: 0.01).
    _C.MODEL.ZOOMIN.DISTILL_WEIGHT = 0.01
    # Scale of the distilled maps: "raw" (the paper's Eq. 19, the maps as they are) or
    # "level_rms" (each level's teacher and student map divided by its own root mean square
    # over the batch first, zoominnet_d2/modeling/losses.py). With a BatchNorm per level in the
    # head, a level's scale does not change the teacher's detections and can drift in its
    # training (P6/P7 have no normalisation); "raw" then makes the student copy that scale.
    _C.MODEL.ZOOMIN.DISTILL_SCALE = "raw"
    # Indices of the level pairs that are distilled (0: the finest prediction level, e.g. P3;
    # LA's first level on the 2x grid). Empty: every level (the paper). The others still get
    # AKDP masks (logged) but add nothing to the loss.
    _C.MODEL.ZOOMIN.DISTILL_LEVELS = []

    # Every VIS_PERIOD training iterations, draw the student's and teacher's feature maps
    # and the AKDP key positions of one fixed training image to TensorBoard. 0: off.
    _C.MODEL.ZOOMIN.VIS_PERIOD = 0

    # Key positions from anchor / ground-truth IoU (AKDP, Eqs. 11-18).
    _C.MODEL.ZOOMIN.AKDP = CN()
    # Anchors over which max_IOU(g) and lambda (Eqs. 13-15) are taken: "level" (each level on
    # its own) or "image" (the anchors of all levels together).
    _C.MODEL.ZOOMIN.AKDP.SCOPE = "level"
    # Fixed lambda instead of mean + std of the IoU map (Eq. 15); FGFI uses 0.5.
    # A negative value selects the adaptive lambda of the paper.
    _C.MODEL.ZOOMIN.AKDP.LAMBDA = -1.0

    # The frozen teacher that a CSKD student distils from.
    _C.MODEL.ZOOMIN.TEACHER = CN()
    # Config file of the teacher (a plain RetinaNet trained at INPUT_SCALE x the student's
    # input). Empty: no teacher and no distillation (e.g. "SNet + LA"). The teacher is built
    # for training only: evaluation, inference and FLOP counting build the student alone.
    _C.MODEL.ZOOMIN.TEACHER.CONFIG_FILE = ""
    # The teacher's checkpoint (a Detectron2 .pth); loaded strictly: missing, unexpected or
    # mis-shaped keys are an error.
    _C.MODEL.ZOOMIN.TEACHER.WEIGHTS = ""
    # Teacher input size / student input size. LA and FA need 2 (a one-level grid shift).
    _C.MODEL.ZOOMIN.TEACHER.INPUT_SCALE = 2.0
    # Also store the teacher's weights (as "teacher.*") in the student's checkpoints.
    _C.MODEL.ZOOMIN.TEACHER.SAVE_IN_CHECKPOINT = False

    # Apply the VisDrone rule in evaluation: ground truth and detections with >= 50% of their
    # area inside an ignored region (category 0) are removed before matching, as the official
    # toolkit does.
    _C.TEST.VISDRONE_IGNORE_RULE = True
    return cfg
