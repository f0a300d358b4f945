"""Evaluation on VisDrone-DET: COCO-API AP (paper protocol, maxDets=100, and maxDets=500)
with the VisDrone ignore rule, and the official result-file writer."""
from .ignore_regions import ignored_area, in_ignored_regions
from .result_writer import format_visdrone_lines, write_visdrone_results
from .visdrone_evaluation import (
    VisDroneEvaluator,
    build_evaluator,
    derive_metrics,
    protocol_description,
    run_coco_eval,
)

__all__ = [
    "VisDroneEvaluator",
    "build_evaluator",
    "derive_metrics",
    "format_visdrone_lines",
    "ignored_area",
    "in_ignored_regions",
    "protocol_description",
    "run_coco_eval",
    "write_visdrone_results",
]
