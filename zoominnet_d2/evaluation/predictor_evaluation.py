"""Evaluating any image -> ``Instances`` predictor like a trained model.

A model outside ``train_net.py --eval-only`` (SAHI's sliced inference, a model at another test
size, an exported graph) is evaluated by Detectron2's ``inference_on_dataset`` with the
evaluator ``train_net.py`` uses for the dataset, so its ``visdrone_metrics.json`` and
``coco_instances_results.json`` come out in the same place and format.
"""
from typing import Callable, Dict, Mapping

import numpy as np
from detectron2.data import DatasetCatalog
from detectron2.data.detection_utils import read_image
from detectron2.evaluation import inference_on_dataset
from detectron2.structures import Instances

from .visdrone_evaluation import build_evaluator


class PredictorAsModel:
    """A callable in the shape of a Detectron2 model in eval mode: a list of dataset dicts
    (with ``file_name``) in, ``[{"instances": predictor(image)}]`` out, the image read in
    ``image_format`` and the instances in its original pixels."""

    def __init__(self, predictor: Callable[[np.ndarray], Instances], image_format: str):
        self.predictor = predictor
        self.image_format = image_format

    def __call__(self, batch):
        return [{"instances": self.predictor(read_image(d["file_name"], format=self.image_format))}
                for d in batch]


def evaluate_predictor(predictor: Callable[[np.ndarray], Instances], cfg, dataset_name: str,
                       output_folder: str, image_format: str = "BGR") -> Mapping[str, Dict]:
    """The metrics of ``predictor`` ((H, W, 3) uint8 image in ``image_format`` -> ``Instances``
    in that image's pixels) on every image of ``dataset_name``, from the evaluator of
    ``cfg`` for that dataset, which writes its files into ``output_folder``."""
    evaluator = build_evaluator(cfg, dataset_name, output_folder)
    batches = [[record] for record in DatasetCatalog.get(dataset_name)]
    return inference_on_dataset(PredictorAsModel(predictor, image_format), batches, evaluator)
