"""What ``tools/predict.py`` reads: image files (one, a folder or a glob) or one video.

Images are decoded with Detectron2's ``read_image`` (PIL, as the datasets are); a file that
cannot be decoded, truncated ones included, is reported and skipped. Video frames come from
OpenCV (BGR) and are converted to the config's channel order.
"""
import glob
import os
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np
from detectron2.data.detection_utils import read_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm")


@dataclass
class Frame:
    """One input: ``name`` (file stem, or ``<video stem>_<frame index>``), ``path`` and the
    decoded (H, W, 3) uint8 ``image``, or None with the decoding ``error``."""

    name: str
    path: str
    image: Optional[np.ndarray]
    error: str = ""


def is_video(spec: str) -> bool:
    """Whether ``spec`` is an existing file with a video extension (``VIDEO_EXTENSIONS``)."""
    return os.path.isfile(spec) and spec.lower().endswith(VIDEO_EXTENSIONS)


def image_paths(spec: str) -> List[str]:
    """The image files ``spec`` names: a file, a folder (its images, not recursive) or a glob.

    Raises:
        FileNotFoundError: nothing matches ``spec``.
    """
    if os.path.isdir(spec):
        paths = [os.path.join(spec, f) for f in os.listdir(spec) if f.lower().endswith(IMAGE_EXTENSIONS)]
    elif os.path.isfile(spec):
        paths = [spec]
    else:
        paths = [p for p in glob.glob(spec) if os.path.isfile(p)]
    if not paths:
        raise FileNotFoundError(f"--input {spec}: no such file, or no image in that folder / glob")
    return sorted(paths)


def read_images(paths: List[str], image_format: str) -> Iterator[Frame]:
    """Decode each path in turn; an undecodable file is a Frame with ``error`` set."""
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            yield Frame(name, path, read_image(path, format=image_format))
        except (OSError, ValueError, SyntaxError) as e:  # what PIL raises for bad/truncated files
            yield Frame(name, path, None, f"{type(e).__name__}: {e}")


class Video:
    """An opened video file: ``fps``, ``size`` (W, H), ``num_frames`` and its frames.

    Raises:
        OSError: OpenCV cannot open it (message: one line naming the file).
    """

    def __init__(self, path: str, image_format: str):
        self.path, self.image_format = path, image_format
        self.capture = cv2.VideoCapture(path)
        if not self.capture.isOpened():
            raise OSError(f"cannot open video {path} (not a video, or a codec OpenCV lacks)")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.size: Tuple[int, int] = (int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                      int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.num_frames = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def frames(self) -> Iterator[Frame]:
        """The video's frames in order, named ``<stem>_<index:06d>``, each (H, W, 3) uint8 in
        ``image_format``; the capture is released at the end or when the loop stops."""
        stem = os.path.splitext(os.path.basename(self.path))[0]
        index = 0
        try:
            while True:
                ok, bgr = self.capture.read()
                if not ok:
                    return
                image = bgr[:, :, ::-1] if self.image_format == "RGB" else bgr
                yield Frame(f"{stem}_{index:06d}", self.path, np.ascontiguousarray(image))
                index += 1
        finally:
            self.capture.release()
