"""Deploying the student: its config (the project's :func:`~zoominnet_d2.config.load_config`),
build and load it alone, export it (ONNX, TorchScript, a student-only checkpoint), post-process
exported outputs, predict on images and videos."""
from ..config import load_config
from .exporters import FORMATS, export_student
from .graph import DenseStudentGraph
from .postprocess import DecodeSettings, detect
from .predictor import BACKENDS, ExportedPredictor, TorchPredictor, build_predictor
from .student import build_student, load_student, save_student_checkpoint

__all__ = ["BACKENDS", "FORMATS", "DecodeSettings", "DenseStudentGraph", "ExportedPredictor",
           "TorchPredictor", "build_predictor", "build_student", "detect", "export_student",
           "load_config", "load_student", "save_student_checkpoint"]
