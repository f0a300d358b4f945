"""Time of the official VisDrone-DET metrics on a VisDrone-val-sized evaluation.

548 images (VisDrone2019-DET-val's count) of 1360x765 pixels, 71 annotated objects each (the
val mean), 4 ignored regions, and 500 detections per image (the toolkit's cap): jittered
copies of the objects with some class confusions, false positives anywhere (some in the
ignored regions), scores with ties, decimals in the boxes. Timed: ``evaluate_official`` on
the in-memory lines, and ``tools/evaluate_visdrone.py``'s work on the same data written as
official files (reading the annotation and result files, then evaluating).

``python tools/benchmark_official_eval.py`` prints the markdown; ``measure()`` returns the
figures and ``render(result)`` the markdown lines.
"""
import os
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from host import machine  # noqa: E402
from zoominnet_d2.data.visdrone import VISDRONE_CLASSES  # noqa: E402
from zoominnet_d2.evaluation.official_protocol import evaluate_official  # noqa: E402
from zoominnet_d2.evaluation.visdrone_txt import read_visdrone_txt  # noqa: E402

IMAGES, OBJECTS, REGIONS, DETECTIONS = 548, 71, 4, 500
HEIGHT, WIDTH = 765, 1360


def synthetic_lines(num_images: int = IMAGES, seed: int = 0) -> List[tuple]:
    """``(gt, det, height, width)`` per image, as :func:`evaluate_official` takes them."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num_images):
        wh = np.exp(rng.uniform(np.log(6), np.log(120), (OBJECTS, 2))).round()
        xy = rng.integers(0, [WIDTH - 120, HEIGHT - 120], (OBJECTS, 2))
        cls = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], OBJECTS,
                         p=[.2, .07, .03, .4, .07, .04, .03, .02, .02, .12])
        objects = np.column_stack([xy, wh, np.ones(OBJECTS), cls])
        regions = np.column_stack([rng.integers(0, [WIDTH - 200, HEIGHT - 200], (REGIONS, 2)),
                                   rng.integers(20, 200, (REGIONS, 2)), np.zeros((REGIONS, 2))])
        source = rng.integers(0, OBJECTS, DETECTIONS)
        det = objects[source].copy()
        det[:, :4] += rng.normal(0, 0.05, (DETECTIONS, 4)) * det[:, [2, 3, 2, 3]]
        false = rng.random(DETECTIONS) < 0.3
        det[false, :2] = rng.uniform(0, [WIDTH, HEIGHT], (false.sum(), 2))
        confused = rng.random(DETECTIONS) < 0.1
        det[confused, 5] = rng.integers(1, 11, confused.sum())
        det[:, 4] = np.round(rng.random(DETECTIONS), 3)
        det = det[np.argsort(-det[:, 4], kind="stable")]
        images.append((np.concatenate([regions, objects]), det, HEIGHT, WIDTH))
    return images


def _write(images: List[tuple], folder: str) -> List[tuple]:
    """Write the lines as official files; return ``(annotation, result)`` paths per image."""
    paths = []
    for i, (gt, det, _, _) in enumerate(images):
        ann, res = os.path.join(folder, f"{i:07d}_gt.txt"), os.path.join(folder, f"{i:07d}.txt")
        with open(ann, "w") as f:
            f.writelines(",".join(f"{v:g}" for v in row) + ",0,0\n" for row in gt)
        with open(res, "w") as f:
            f.writelines(",".join(repr(float(v)) for v in row) + ",-1,-1\n" for row in det)
        paths.append((ann, res))
    return paths


def measure(repeats: int = 3, num_images: int = IMAGES) -> Dict:
    """Median seconds of the in-memory evaluation and of reading the files + evaluating,
    and the (official) AP of the synthetic detections."""
    images = synthetic_lines(num_images)
    in_memory, from_files = [], []
    with tempfile.TemporaryDirectory() as folder:
        paths = _write(images, folder)
        for _ in range(repeats):
            start = time.perf_counter()
            metrics, _ = evaluate_official(images, VISDRONE_CLASSES)
            in_memory.append(time.perf_counter() - start)
            start = time.perf_counter()
            read = [(read_visdrone_txt(a, annotation=True), read_visdrone_txt(r, annotation=False),
                     HEIGHT, WIDTH) for a, r in paths]
            evaluate_official(read, VISDRONE_CLASSES)
            from_files.append(time.perf_counter() - start)
    return {
        "images": num_images, "objects_per_image": OBJECTS, "detections_per_image": DETECTIONS,
        "seconds_in_memory": float(np.median(in_memory)),
        "seconds_from_files": float(np.median(from_files)),
        "repeats": repeats, "AP": metrics["AP"],
        "machine": f"{machine()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
                   f"load {os.getloadavg()[0]:.1f}",
    }


def render(result: Dict) -> List[str]:
    """Markdown lines of a :func:`measure` result."""
    return [
        "## Official VisDrone-DET metrics: evaluation speed",
        "",
        f"{result['images']} images x {result['objects_per_image']} objects x "
        f"{result['detections_per_image']} detections (VisDrone val at the toolkit's cap), "
        f"median of {result['repeats']} runs, {result['machine']} (official AP of these "
        f"detections: {result['AP']:.1f}):",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| `evaluate_official` on in-memory lines (`results[\"visdrone\"]`) | "
        f"{result['seconds_in_memory']:.2f} |",
        f"| read 2 x {result['images']} official txt files + evaluate "
        f"(`tools/evaluate_visdrone.py`) | {result['seconds_from_files']:.2f} |",
    ]


if __name__ == "__main__":
    print("\n".join(render(measure())))
