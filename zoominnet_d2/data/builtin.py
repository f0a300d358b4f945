"""Register the project's datasets at import, as ``detectron2.data.datasets.builtin`` does.

Registration is lazy: no file is read until a dataset is used. Both live under
``$DETECTRON2_DATASETS`` (default ``datasets/``):

- ``visdrone2019_{train,val,test_dev}``: the official VisDrone2019-DET layout;
- ``synthdrone_{train,val}``: the embedded synthetic dataset in the same layout, made by
  ``python -m zoominnet_d2.data.synthetic --out datasets/synthdrone``.
"""
import os

from .visdrone import register_visdrone

_root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
register_visdrone(_root, prefix="visdrone2019")
# The generator writes no test split.
register_visdrone(os.path.join(_root, "synthdrone"), prefix="synthdrone", splits=("train", "val"))
