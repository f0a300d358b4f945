"""Deterministic synthetic drone-view dataset ("synthdrone") in the VisDrone2019-DET layout.

Every command of the project must run anywhere in minutes on a CPU without downloading
VisDrone, yet the data must exercise what ZoomInNet is about: small objects whose class is
readable at the teacher's 2x scale but not at the student's 1x scale, at VisDrone's sizes,
aspects, class mix and density in the networks' input pixels. Files::

    <out>/VisDrone2019-DET-{train,val}/images/<stem>.jpg
    <out>/VisDrone2019-DET-{train,val}/annotations/<stem>.txt
    <out>/synthdrone.json          # parameters and counts, written last: completion marker

with stems ``<split id>_synth_<image number>`` (split id 0000001 for train, 0000002 for val).

Annotation lines are VisDrone's ``left,top,width,height,score,category,truncation,occlusion``
(integers): score 1 and category 1..10 for objects, score 0 and category 0 for ignored regions.

Design (format version 3; ``docs/VISDRONE_STATISTICS.md`` compares it with VisDrone):

* The 256 px frame is the teacher's input and stands for VisDrone squashed to 1024 px (the
  student sees it at 128 px for the paper's 512). Object sizes, aspects and class shares are
  VisDrone train's at that input (:mod:`.synthetic_objects`); box counts, crowds, rows and
  ignored regions are laid out by :mod:`.synthetic_layout`.
* Background: smooth low-frequency colour noise (fields, soil), roads with dashed markings
  (where vehicle rows go), roofs, dark tree blobs and thin grey marks (none annotated), then
  mild pixel noise and a random brightness/contrast per image.
* Ignored regions: packed with unannotated object-like clutter; no object is placed on them.
* Determinism: image ``i`` of a split draws from ``default_rng((seed, split_id, i))``, so it
  does not depend on how many images are generated; reruns give byte-identical files.
* Safety: a run writes into a temporary sibling folder and renames it at the end. An existing
  ``<out>`` whose marker holds the same parameters (format version included) is kept
  (skipped), one with a marker for other parameters or an older format is replaced, and any
  other non-empty ``<out>`` is refused.
"""
import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .synthetic_layout import ignored_regions, place_objects, sample_classes, sample_count
from .synthetic_objects import (CLUTTER_IDS, REFERENCE_SIZE, draw_object, paste, sample_size,
                                shape_mask)

# The version of what the generator draws (VisDrone's per-class sizes, aspects (upright, no
# rotation), shares, tile density with crowds and rows, ignored-region coverage); a folder
# whose marker holds another version is regenerated, never mixed.
FORMAT_VERSION = 3
MARKER = "synthdrone.json"
SPLIT_IDS = {"train": 1, "val": 2}
_GROUND = np.array([[95, 125, 70], [140, 122, 92], [115, 140, 85], [160, 150, 120]], float)


def _lowfreq(rng, size, grid, channels):
    """Smooth noise in ~[0, 1] of shape (size, size, channels): a bicubic-upsampled grid."""
    cells = rng.random((channels, grid, grid)).astype(np.float32)
    return np.stack([np.asarray(Image.fromarray(c, "F").resize((size, size), Image.BICUBIC))
                     for c in cells], axis=-1).astype(float)


def _background(rng, size, k):
    """Cluttered ground (lengths times ``k``) and its roads ``(axis, offset, width)``:
    low-frequency colour noise, roads with markings, roofs, trees, thin marks."""
    a, b = rng.choice(_GROUND, 2, replace=False)
    img = a + (b - a) * _lowfreq(rng, size, 4, 1) + 30 * (_lowfreq(rng, size, 9, 3) - 0.5)
    roads = []
    for _ in range(rng.integers(0, 3)):  # a grey band with a dashed centre line
        axis = int(rng.integers(2))
        view = img if axis == 0 else img.transpose(1, 0, 2)
        width = max(4, round(rng.integers(30, 70) * k))
        top = int(rng.integers(0, size - width))
        view[top:top + width] = rng.uniform(90, 120)
        dashes = (np.arange(size) + rng.integers(16)) % 16 < 8
        view[top + width // 2 - 1:top + width // 2 + 1, dashes] = 225
        roads.append((axis, top, width))
    for _ in range(rng.integers(0, 3)):  # roofs
        w, h = (max(2, round(s * k)) for s in rng.integers(30, 90, 2))
        paste(img, *rng.integers(-20, size, 2), np.ones((h, w), bool), rng.uniform(70, 200, 3))
    for _ in range(rng.integers(4, 16)):  # trees: dark round blobs
        d = max(2, round(rng.integers(8, 25) * k))
        green = np.array([35, 65, 35]) + rng.uniform(-12, 12, 3)
        paste(img, *rng.integers(-8, size, 2), shape_mask("ellipse", d, d), green)
    for _ in range(rng.integers(4, 14)):  # thin grey marks: parking lines, kerbs, poles
        length, thick = int(rng.integers(6, 18)), int(rng.integers(1, 3))
        h, w = (thick, length) if rng.random() < 0.5 else (length, thick)
        paste(img, *rng.integers(0, size, 2), np.ones((h, w), bool), rng.uniform(150, 230))
    return img, roads


def render_image(rng, size):
    """Render one ``size x size`` RGB uint8 image and its annotation rows.

    Rows are ``(left, top, width, height, score, category)``: ignored regions first (score 0,
    category 0), then objects. Lengths scale with ``size / 256``, box counts with its square.
    """
    k = size / REFERENCE_SIZE
    img, roads = _background(rng, size, k)
    ignored = ignored_regions(rng, size, k)
    for rx, ry, rw, rh in ignored:
        for _ in range(rw * rh // 80):  # dense, unannotated object-like clutter
            cls = int(rng.choice(CLUTTER_IDS))
            w, h = sample_size(rng, cls, 0.6 * k)
            if w <= rw and h <= rh:
                draw_object(img, rng, cls, rx + int(rng.integers(rw - w + 1)),
                            ry + int(rng.integers(rh - h + 1)), w, h)
    classes = sample_classes(rng, sample_count(rng, k * k))
    objects = place_objects(rng, classes, size, roads, ignored, k)
    for x, y, w, h, cls in objects:
        draw_object(img, rng, cls, x, y, w, h)
    img += rng.normal(0, 3, img.shape)
    img = (img - 128) * rng.uniform(0.9, 1.1) + 128 + rng.uniform(-12, 12)
    rows = [r + (0, 0) for r in ignored] + [(x, y, w, h, 1, c) for x, y, w, h, c in objects]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), rows


def generate_split(out_dir, split, num_images, size, seed):
    """Write ``num_images`` images of ``split`` under ``out_dir``; return the number of objects."""
    root = Path(out_dir) / f"VisDrone2019-DET-{split}"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    num_objects = 0
    for i in range(num_images):
        image, rows = render_image(np.random.default_rng((seed, SPLIT_IDS[split], i)), size)
        stem = f"{SPLIT_IDS[split]:07d}_synth_{i + 1:07d}"
        Image.fromarray(image).save(root / "images" / f"{stem}.jpg", quality=95, subsampling=0)
        lines = "".join(f"{x},{y},{w},{h},{s},{c},0,0\n" for x, y, w, h, s, c in rows)
        (root / "annotations" / f"{stem}.txt").write_text(lines)
        num_objects += sum(1 for row in rows if row[5] > 0)
    return num_objects


def _read_marker(out):
    """The parsed completion marker of ``out``, or None if it has none."""
    path = Path(out) / MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def generate_dataset(out, num_train=1250, num_val=250, size=256, seed=0):
    """Generate the train and val splits into ``out``; return ``{split: {"images", "boxes"}}``.

    Skips (and prints so) when ``out`` already holds a complete dataset with the same
    parameters. Raises ``FileExistsError`` if ``out`` exists, is not empty and carries no
    marker, and ``ValueError`` for invalid parameters.
    """
    for name, flag, value, least in (("size", "--size", size, 64), ("num_train", "--train", num_train, 0),
                                     ("num_val", "--val", num_val, 0), ("seed", "--seed", seed, 0)):
        if value < least:
            raise ValueError(f"{name} ({flag}) must be >= {least}, got {value}")
    out = Path(out)
    params = {"format_version": FORMAT_VERSION, "num_train": int(num_train),
              "num_val": int(num_val), "size": int(size), "seed": int(seed)}
    marker = _read_marker(out)
    if marker is not None and marker.get("params") == params:
        print(f"synthdrone: {out} already holds a complete dataset with these parameters; "
              "skipping generation")
        return marker["counts"]
    if marker is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists, is not empty and has no {MARKER} marker: refusing "
                              "to overwrite it (choose another output folder or empty it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        counts = {split: {"images": n, "boxes": generate_split(tmp, split, n, size, seed)}
                  for split, n in (("train", num_train), ("val", num_val))}
        text = json.dumps({"params": params, "counts": counts}, indent=2, sort_keys=True)
        (tmp / MARKER).write_text(text + "\n")
        if marker is not None:
            print(f"synthdrone: replacing {out} (made with other parameters: {marker.get('params')})")
            shutil.rmtree(out)
        elif out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return counts


def main(argv=None):
    """Command line: ``python -m zoominnet_d2.data.synthetic --out datasets/synthdrone``."""
    parser = argparse.ArgumentParser(prog="python -m zoominnet_d2.data.synthetic",
                                     description="Generate the synthetic VisDrone-format "
                                     "drone dataset (deterministic, seeded).")
    parser.add_argument("--out", default="datasets/synthdrone", help="output dataset folder")
    parser.add_argument("--train", type=int, default=1250, help="number of train images")
    parser.add_argument("--val", type=int, default=250, help="number of val images")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (>= 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (>= 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        counts = generate_dataset(args.out, args.train, args.val, args.size, args.seed)
    except ValueError as e:
        parser.error(str(e))
    except FileExistsError as e:
        raise SystemExit(f"error: {e}") from None
    summary = ", ".join(f"{s}: {c['images']} images / {c['boxes']} objects"
                        for s, c in counts.items())
    print(f"synthdrone: {args.out}: {summary} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
