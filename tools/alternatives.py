"""What a user weighs against ZoomInNet, evaluated like its models (``tools/demo.py``).

Training rows (stages, trained by ``experiment.run_stages`` from the teacher's weights):

- ``finetune_lr1`` / ``finetune_lr2``: TNet's weights fine-tuned at 1x, the paper's Table 9
  with its two learning-rate settings (``configs/{synth,real}/finetune_lr*.yaml``).

Test-time rows (SNet's weights, no training):

- ``snet_test2x``: SNet on the teacher's input (the paper's Table 2, "train 512 + test 1024");
- ``snet_sliced`` / ``snet_sliced_full``: SAHI's sliced inference of SNet on the image at the
  teacher's resolution, slices of the student's input size overlapping by ``OVERLAP``,
  without / with SAHI's full-image pass (:func:`slicing_config`: at 1x for the synthetic
  configs' square resize, at native resolution for the real-frame configs).

Each test-time row is evaluated with the dataset's evaluator into
``<out>/<name>/inference/<dataset>/`` like a stage (reused when there). GFLOPs count every
forward pass: slices x the student's GFLOPs at the slice size, plus the full-image pass.
"""
import os
from collections import Counter
from typing import Callable, Dict, List, NamedTuple

import numpy as np

from experiment import Stage, log, metrics_file, trained_config
from results_table import collect_row, input_size


def finetune_stages(config_dir: str) -> List[Stage]:
    """The fine-tuning stages of a config folder (``configs/synth`` or ``configs/real``)."""
    return [Stage(f"finetune_{lr}", f"{config_dir}/finetune_{lr}.yaml", f"TNet fine-tuned at 1x ({lr})", 0.5,
                  teacher_as="MODEL.WEIGHTS") for lr in ("lr1", "lr2")]


# Slice overlap of the sliced rows (SAHI's default).
OVERLAP = 0.2


class InferenceRow(NamedTuple):
    name: str
    label: str
    # "test2x" (SNet at the teacher's input) or "sliced" (SAHI slices at the teacher's resolution).
    kind: str
    full_image_pass: bool = False


TEST_TIME_ROWS = [
    InferenceRow("snet_test2x", "SNet tested at 2x", "test2x"),
    InferenceRow("snet_sliced", "SNet on SAHI slices (2x)", "sliced"),
    InferenceRow("snet_sliced_full", "SNet on SAHI slices (2x) + full image", "sliced", True),
]


def teacher_input_opts(teacher_cfg) -> List[str]:
    """Config overrides that give a student the teacher's test-time input."""
    keys = ("SQUARE_SIZE", "MIN_SIZE_TEST", "MAX_SIZE_TEST", "NATIVE_DOWNSCALE")
    return [item for key in keys for item in (f"INPUT.{key}", str(getattr(teacher_cfg.INPUT, key)))]


def slicing_config(student_cfg):
    """The student's config for slices at the teacher's resolution: a fixed square resize
    (the synthetic configs) leaves a slice of the student's input size as it is; a fixed
    downscale (``INPUT.NATIVE_DOWNSCALE``, the real-frame configs) becomes 1, native pixels,
    so that SAHI's full-image pass then also runs at native resolution, i.e. at 2x."""
    cfg = student_cfg.clone()
    cfg.defrost()
    if cfg.INPUT.NATIVE_DOWNSCALE > 0:
        cfg.INPUT.NATIVE_DOWNSCALE = 1
    return cfg


class SlicedPredictor:
    """BGR image -> ``Instances``: the image brought to the teacher's test input, SAHI's sliced
    prediction of the student on it, the boxes mapped back to the image's pixels."""

    def __init__(self, student_cfg, weights: str, teacher_cfg, full_image_pass: bool, overlap: float = OVERLAP):
        from zoominnet_d2.data.cross_scale_mapper import build_zoomin_augmentation
        from zoominnet_d2.deploy.predictor import TorchPredictor
        from zoominnet_d2.deploy.sahi_model import ZoomInSahiModel

        self.model = ZoomInSahiModel(confidence_threshold=student_cfg.MODEL.RETINANET.SCORE_THRESH_TEST,
                                     load_at_init=False, device="cpu")
        self.model.set_model(TorchPredictor(slicing_config(student_cfg), weights))
        self.to_teacher_input = build_zoomin_augmentation(teacher_cfg, is_train=False)
        self.slice_size = input_size(student_cfg)
        self.full_image_pass = full_image_pass
        self.overlap = overlap
        self.max_detections = student_cfg.TEST.DETECTIONS_PER_IMAGE

    def __call__(self, image: np.ndarray):
        from detectron2.data import transforms as T
        from detectron2.structures import Boxes, Instances

        from zoominnet_d2.deploy.sahi_model import sliced_instances

        large, transforms = T.apply_augmentations(self.to_teacher_input, image)
        found = sliced_instances(self.model, np.ascontiguousarray(large[:, :, ::-1]), self.slice_size, self.overlap,
                                 self.full_image_pass, self.max_detections)
        result = Instances(image.shape[:2], scores=found.scores, pred_classes=found.pred_classes)
        boxes = transforms.inverse().apply_box(found.pred_boxes.tensor.numpy())
        result.pred_boxes = Boxes(np.asarray(boxes, dtype=np.float32))
        return result


def slices_per_image(student_cfg, teacher_cfg, image_sizes, overlap: float = OVERLAP) -> float:
    """Mean number of SAHI slices (the student's input size) per image of ``image_sizes``
    ((h, w) originals) brought to the teacher's test input."""
    from detectron2.data import transforms as T
    from sahi.slicing import get_slice_bboxes

    from zoominnet_d2.data.cross_scale_mapper import build_zoomin_augmentation

    side = input_size(student_cfg)
    augs = build_zoomin_augmentation(teacher_cfg, is_train=False)
    sizes = Counter(image_sizes)  # a dataset has few distinct sizes
    slices = 0
    for (h, w), images in sizes.items():
        large, _ = T.apply_augmentations(augs, np.zeros((h, w, 3), np.uint8))
        slices += images * len(get_slice_bboxes(large.shape[0], large.shape[1], slice_height=side, slice_width=side,
                                                overlap_height_ratio=overlap, overlap_width_ratio=overlap))
    return slices / sum(sizes.values())


def sliced_gflops(student_cfg, teacher_cfg, image_sizes, full_image_pass: bool, overlap: float = OVERLAP) -> float:
    """Mean GFLOPs per image of a sliced row over images of ``image_sizes`` ((h, w) originals):
    every slice at the student's input size, plus the full-image pass."""
    from count_flops import count_gflops

    per_slice = count_gflops(student_cfg, input_size(student_cfg))
    full_cfg = slicing_config(student_cfg)
    full = count_gflops(full_cfg, input_size(full_cfg)) if full_image_pass else 0.0
    return slices_per_image(student_cfg, teacher_cfg, image_sizes, overlap) * per_slice + full


def test_time_predictors(snet: Stage, snet_dir: str, tnet: Stage, tnet_dir: str) -> Dict[str, Callable]:
    """{row name: BGR image -> Instances} of the test-time rows, from SNet's trained weights."""
    from zoominnet_d2.deploy.predictor import TorchPredictor

    weights = os.path.join(snet_dir, "model_final.pth")
    student_cfg, teacher_cfg = trained_config(snet, snet_dir), trained_config(tnet, tnet_dir)
    predictors = {}
    for row in TEST_TIME_ROWS:
        if row.kind == "test2x":
            cfg = student_cfg.clone()
            cfg.merge_from_list(teacher_input_opts(teacher_cfg))
            predictors[row.name] = TorchPredictor(cfg, weights)
        else:
            predictors[row.name] = SlicedPredictor(student_cfg, weights, teacher_cfg, row.full_image_pass)
    return predictors


def evaluate_test_time_rows(predictors: Dict[str, Callable], out: str, snet: Stage, snet_dir: str, tnet: Stage,
                            tnet_dir: str, dataset: str, force: bool, tag: str) -> List[Dict]:
    """Evaluate the test-time rows (``predictors`` of :func:`test_time_predictors`) on
    ``dataset`` into ``out/<row>`` (finished ones reused); their table rows (without CPU times)."""
    from count_flops import count_gflops
    from detectron2.data import DatasetCatalog

    from zoominnet_d2.evaluation.predictor_evaluation import evaluate_predictor

    student_cfg, teacher_cfg = trained_config(snet, snet_dir), trained_config(tnet, tnet_dir)
    sizes = [(d["height"], d["width"]) for d in DatasetCatalog.get(dataset)]
    rows = []
    for row in TEST_TIME_ROWS:
        folder = os.path.join(out, row.name)
        if force or not os.path.isfile(metrics_file(folder, dataset)):
            log(tag, f"{row.name}: evaluating {row.label} on {dataset}")
            evaluate_predictor(predictors[row.name], student_cfg, dataset,
                               os.path.dirname(metrics_file(folder, dataset)))
        result = collect_row(Stage(row.name, snet.config, row.label, 0.0), folder, dataset, train_dir=snet_dir)
        if row.kind == "test2x":
            result["input"] = input_size(teacher_cfg)
            result["GFLOPs"] = round(count_gflops(student_cfg, result["input"]), 3)
        else:
            result["input"] = f"{input_size(student_cfg)} x slices"
            result["GFLOPs"] = round(sliced_gflops(student_cfg, teacher_cfg, sizes, row.full_image_pass), 3)
        rows.append(result)
    return rows
