"""Decoded training images kept in memory, so that each epoch does not decode them again.

Decoding is most of the cost of mapping a high-resolution sample: a real VisDrone frame took
18 ms to map with decoding and 4 ms from the cache (BENCHMARKS.md, "Training data"), ~110 ms
per batch of 8 against a 0.3-1.0 s step of the CPU-sized real-frame models. The cache is filled up to a byte budget
(``DATALOADER.DECODED_IMAGE_CACHE_MB``) and never evicts: once full, the remaining images are
decoded each time they are read. Each data-loader process has its own cache.
"""
import logging
from typing import Dict, Tuple

import numpy as np
from detectron2.data import detection_utils as utils

logger = logging.getLogger(__name__)


class DecodedImageCache:
    """``read(file_name, image_format)``: ``detection_utils.read_image``'s array, decoded once.

    Cached arrays are read-only: an augmentation that tried to change the original in place
    would otherwise corrupt every later sample of that image.
    """

    def __init__(self, budget_mb: float):
        if budget_mb < 0:
            raise ValueError(f"DATALOADER.DECODED_IMAGE_CACHE_MB must be >= 0, got {budget_mb}")
        self.budget_bytes = int(budget_mb * 2**20)
        self.used_bytes = 0
        self.full = False
        self._images: Dict[Tuple[str, str], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._images)

    def read(self, file_name: str, image_format: str) -> np.ndarray:
        """The (H, W, 3) uint8 image of ``file_name`` in ``image_format``, from the cache or
        decoded (and kept, read-only, while the budget allows)."""
        key = (file_name, image_format)
        image = self._images.get(key)
        if image is not None:
            return image
        image = utils.read_image(file_name, format=image_format)
        if self.used_bytes + image.nbytes <= self.budget_bytes:
            image.setflags(write=False)
            self._images[key] = image
            self.used_bytes += image.nbytes
        elif not self.full:
            self.full = True
            logger.info(f"decoded-image cache full at {len(self)} images ({self.used_bytes / 2**20:.0f} MB, "
                        "DATALOADER.DECODED_IMAGE_CACHE_MB): further images are decoded on every read")
        return image
