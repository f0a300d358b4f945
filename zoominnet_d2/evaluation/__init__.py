"""Evaluation on VisDrone-DET: COCO-API AP (paper protocol, maxDets=100, and maxDets=500)
with the VisDrone ignore rule, the official VisDrone-DET toolkit's metrics, and the official
result-file reader and writer."""
from .coco_protocol import derive_metrics, protocol_description, run_coco_eval
from .ignore_regions import ignored_area, in_ignored_regions
from .official_protocol import METRIC_KEYS, evaluate_official
from .report import OFFICIAL_PROTOCOL
from .result_writer import format_visdrone_lines, result_lines, write_visdrone_results
from .visdrone_evaluation import VisDroneEvaluator, build_evaluator, official_inputs
from .visdrone_txt import read_visdrone_txt

__all__ = [
    "METRIC_KEYS",
    "OFFICIAL_PROTOCOL",
    "VisDroneEvaluator",
    "build_evaluator",
    "derive_metrics",
    "evaluate_official",
    "format_visdrone_lines",
    "ignored_area",
    "in_ignored_regions",
    "official_inputs",
    "protocol_description",
    "read_visdrone_txt",
    "result_lines",
    "run_coco_eval",
    "write_visdrone_results",
]
