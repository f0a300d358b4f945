"""Datasets: VisDrone-DET registration and the embedded synthetic drone dataset."""
from .visdrone import VISDRONE_CLASSES, load_visdrone, register_visdrone

__all__ = ["VISDRONE_CLASSES", "load_visdrone", "register_visdrone"]
