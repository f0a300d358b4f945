"""Deterministic synthetic drone-view dataset ("synthdrone") in the VisDrone2019-DET layout.

Every command of the project must run anywhere in minutes on a CPU without downloading
VisDrone, yet the data must exercise what ZoomInNet is about: small objects whose class is
readable at the teacher's 2x scale but not at the student's 1x scale. Files::

    <out>/VisDrone2019-DET-{train,val}/images/<stem>.jpg
    <out>/VisDrone2019-DET-{train,val}/annotations/<stem>.txt
    <out>/synthdrone.json          # parameters and counts, written last: completion marker

with stems ``<split id>_synth_<image number>`` (split id 0000001 for train, 0000002 for val).

Annotation lines are VisDrone's ``left,top,width,height,score,category,truncation,occlusion``
(integers): score 1 and category 1..10 for objects, score 0 and category 0 for ignored regions.

Design:

* Objects: the ten VisDrone classes with a VisDrone-like imbalance (many cars, pedestrians and
  motors, few buses and tricycles), 10-40 per 256 px image, mostly 10-50 px long (buses and
  trucks up to ~100 px), about 80% under 32x32 px in area. Classes differ by shape (ellipse, ring, rounded or plain rectangle),
  aspect ratio, colour palette and a coarse internal pattern (truck cab, bus windows, ...).
* Fine-pattern pairs: car/van and pedestrian/people share palette, shape and sizes; van adds
  1-px horizontal stripes and people a 1-px checkerboard of +-``FINE_AMPLITUDE`` grey levels,
  in absolute image coordinates (row / row+column parity). Every 2x2 block aligned with the
  pixel grid averages back to the flat colour, so a 2x downsample (the student's view) erases
  the difference that the full-resolution image (the teacher's view, at 2x) shows. Patterns
  are luminance only, object colours stay within ``[_LO, _HI]`` so the patterns never clip,
  and the JPEGs are saved without chroma subsampling.
* Background: smooth low-frequency colour noise (fields, soil), roads with dashed markings,
  roofs, dark tree blobs and thin grey marks (none annotated), then mild pixel noise and a
  random brightness/contrast per image.
* Ignored regions: in ~30% of images 1-2 rectangles of 30-80 px (scaled down for smaller
  images) packed with unannotated object-like clutter; no object is placed over them.
* Determinism: image ``i`` of a split draws from ``default_rng((seed, split_id, i))``, so it
  does not depend on how many images are generated; reruns give byte-identical files.
* Safety: a run writes into a temporary sibling folder and renames it at the end. An existing
  ``<out>`` whose marker holds the same parameters is kept (skipped), one with a marker for
  other parameters is replaced, and any other non-empty ``<out>`` is refused.
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

FORMAT_VERSION = 2  # 2: objects at ~2x the size of version 1 (flight altitude 1.7-2.5)
MARKER = "synthdrone.json"
SPLIT_IDS = {"train": 1, "val": 2}
FINE_AMPLITUDE = 30.0
_LO, _HI = 60.0, 190.0  # object colour range: +-FINE_AMPLITUDE after contrast stays in 0..255

_VEHICLES = np.array([[190, 190, 190], [150, 150, 155], [170, 55, 50], [55, 75, 150],
                      [75, 75, 80], [185, 175, 140]], float)
_CLOTHES = np.array([[180, 65, 60], [65, 85, 170], [190, 170, 75], [75, 140, 85]], float)
_BICYCLES = np.array([[45, 45, 50], [95, 75, 55]], float)
_TRUCKS = np.array([[200, 120, 45], [90, 130, 95]], float)
_TRICYCLES = np.array([[60, 140, 170], [170, 90, 150]], float)
_AWNINGS = np.array([[70, 150, 60], [190, 65, 55]], float)
_BUSES = np.array([[200, 180, 45], [60, 120, 180]], float)
_MOTORS = np.array([[45, 45, 50], [150, 35, 35]], float)
_GROUND = np.array([[95, 125, 70], [140, 122, 92], [115, 140, 85], [160, 150, 120]], float)

# category: (sampling weight, long side px, aspect long/short, shape, pattern, palette)
CLASSES = {
    1: (0.190, (6, 11), (1.2, 1.8), "ellipse", "flat", _CLOTHES),  # pedestrian
    2: (0.090, (6, 11), (1.2, 1.8), "ellipse", "checker", _CLOTHES),  # people
    3: (0.050, (9, 15), (2.5, 3.5), "ring", "flat", _BICYCLES),  # bicycle
    4: (0.300, (11, 21), (1.7, 2.3), "rrect", "flat", _VEHICLES),  # car
    5: (0.090, (11, 21), (1.7, 2.3), "rrect", "stripes", _VEHICLES),  # van
    6: (0.050, (20, 34), (2.3, 3.0), "rect", "cab", _TRUCKS),  # truck
    7: (0.035, (8, 13), (1.0, 1.4), "rect", "centre", _TRICYCLES),  # tricycle
    8: (0.025, (8, 13), (1.0, 1.4), "rect", "awning", _AWNINGS),  # awning-tricycle
    9: (0.035, (26, 40), (2.6, 3.4), "rect", "windows", _BUSES),  # bus
    10: (0.135, (5, 9), (1.6, 2.2), "ellipse", "dot", _MOTORS),  # motor
}
_IDS = np.array(list(CLASSES))
_WEIGHTS = np.array([spec[0] for spec in CLASSES.values()])
_CLUTTER_IDS = np.array([1, 2, 4, 5, 10])  # small confusers drawn inside ignored regions


def _unit_grid(h, w):
    """Pixel-centre coordinates of an ``h x w`` box scaled to [-1, 1]: ``(u, v)`` = (x, y)."""
    v, u = np.mgrid[0:h, 0:w].astype(float)
    return (u + 0.5) / w * 2 - 1, (v + 0.5) / h * 2 - 1


def _mask(shape, h, w):
    """Boolean ``h x w`` mask of an ellipse, elliptic ring, rectangle or rounded rectangle."""
    u, v = _unit_grid(h, w)
    r = u * u + v * v
    if shape == "ellipse":
        return r <= 1
    if shape == "ring":
        return (r <= 1) & (r >= 0.3)
    mask = np.ones((h, w), bool)
    if shape == "rrect":
        mask[[0, 0, -1, -1], [0, -1, 0, -1]] = False
    return mask


def _paste(img, x, y, mask, colour):
    """Paint ``colour`` ((3,) or (h, w, 3)) where ``mask`` is set, top-left at (x, y), clipped."""
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, img.shape[1]), min(y + h, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    m = mask[y0 - y:y1 - y, x0 - x:x1 - x]
    c = np.broadcast_to(colour, mask.shape + (3,))[y0 - y:y1 - y, x0 - x:x1 - x]
    img[y0:y1, x0:x1][m] = c[m]


def _lowfreq(rng, size, grid, channels):
    """Smooth noise in ~[0, 1] of shape (size, size, channels): a bicubic-upsampled grid."""
    cells = rng.random((channels, grid, grid)).astype(np.float32)
    return np.stack([np.asarray(Image.fromarray(c, "F").resize((size, size), Image.BICUBIC))
                     for c in cells], axis=-1).astype(float)


def _background(rng, size):
    """Cluttered ground: low-frequency colour noise, roads with markings, roofs, trees, marks."""
    a, b = rng.choice(_GROUND, 2, replace=False)
    img = a + (b - a) * _lowfreq(rng, size, 4, 1) + 30 * (_lowfreq(rng, size, 9, 3) - 0.5)
    for _ in range(rng.integers(0, 3)):  # roads: a grey band with a dashed centre line
        view = img if rng.random() < 0.5 else img.transpose(1, 0, 2)
        width = int(rng.integers(18, 40))
        top = int(rng.integers(0, size - width))
        view[top:top + width] = rng.uniform(90, 120)
        dashes = (np.arange(size) + rng.integers(16)) % 16 < 8
        view[top + width // 2 - 1:top + width // 2 + 1, dashes] = 225
    for _ in range(rng.integers(0, 3)):  # roofs
        w, h = rng.integers(24, 64, 2)
        _paste(img, *rng.integers(-20, size, 2), np.ones((h, w), bool), rng.uniform(70, 200, 3))
    for _ in range(rng.integers(4, 16)):  # trees: dark round blobs
        d = int(rng.integers(8, 25))
        green = np.array([35, 65, 35]) + rng.uniform(-12, 12, 3)
        _paste(img, *rng.integers(-8, size, 2), _mask("ellipse", d, d), green)
    for _ in range(rng.integers(4, 14)):  # thin grey marks: parking lines, kerbs, poles
        length, thick = int(rng.integers(6, 18)), int(rng.integers(1, 3))
        h, w = (thick, length) if rng.random() < 0.5 else (length, thick)
        _paste(img, *rng.integers(0, size, 2), np.ones((h, w), bool), rng.uniform(150, 230))
    return img


def _sample_size(rng, cls, scale):
    """(w, h, horizontal) of an object of class ``cls`` at per-image size factor ``scale``."""
    _, lengths, aspects, *_ = CLASSES[cls]
    long_side = rng.uniform(*lengths) * scale
    long_px, short_px = max(2, round(long_side)), max(2, round(long_side / rng.uniform(*aspects)))
    horizontal = bool(rng.random() < 0.5)
    return (long_px, short_px, horizontal) if horizontal else (short_px, long_px, horizontal)


def _draw_object(img, rng, cls, x, y, w, h, horizontal):
    """Draw one object of class ``cls`` in the box (x, y, w, h), long axis horizontal or not."""
    _, _, _, shape, pattern, palette = CLASSES[cls]
    colour = np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 8, 3), _LO, _HI)
    patch = np.tile(colour, (h, w, 1))
    u, v = _unit_grid(h, w)
    along, across = (u, v) if horizontal else (v, u)
    rows, cols = np.mgrid[y:y + h, x:x + w]
    if pattern == "stripes":  # 1-px rows, cancels in any grid-aligned 2x2 block
        patch += np.where(rows % 2 == 0, FINE_AMPLITUDE, -FINE_AMPLITUDE)[..., None]
    elif pattern == "checker":
        patch += np.where((rows + cols) % 2 == 0, FINE_AMPLITUDE, -FINE_AMPLITUDE)[..., None]
    elif pattern == "cab":
        patch[along < -0.4] *= 0.55
    elif pattern == "centre":
        patch[(np.abs(u) < 0.45) & (np.abs(v) < 0.45)] *= 0.4
    elif pattern == "awning":
        patch[along > 0] = (225, 220, 200)
    elif pattern == "windows":
        step = (cols - x) if horizontal else (rows - y)
        patch[(np.abs(across) > 0.4) & (np.abs(across) < 0.85) & (np.abs(along) < 0.9)
              & (step % 6 < 3)] = (40, 50, 60)
    elif pattern == "dot":
        patch[(np.abs(u) < 0.35) & (np.abs(v) < 0.35)] = (230, 230, 230)
    _paste(img, x, y, _mask(shape, h, w), patch)


def _overlap(a, b):
    """Intersection area of boxes ``a`` and ``b`` given as (x, y, w, h)."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(iw, 0) * max(ih, 0)


def render_image(rng, size):
    """Render one ``size x size`` RGB uint8 image and its annotation rows.

    Rows are ``(left, top, width, height, score, category)``: ignored regions first (score 0,
    category 0), then objects. Objects avoid ignored regions and cover at most 15% of the
    smaller of two overlapping boxes, so none is hidden.
    """
    img = _background(rng, size)
    k = min(1.0, size / 256)
    ignored = []
    if rng.random() < 0.3:
        for _ in range(rng.integers(1, 3)):
            rw, rh = (int(s) for s in np.round(rng.integers(30, 81, 2) * k))
            rx, ry = int(rng.integers(0, size - rw + 1)), int(rng.integers(0, size - rh + 1))
            for _ in range(rw * rh // 60):  # dense, unannotated object-like clutter
                cls = int(rng.choice(_CLUTTER_IDS))
                w, h, horizontal = _sample_size(rng, cls, 0.7)
                if w <= rw and h <= rh:
                    _draw_object(img, rng, cls, rx + int(rng.integers(rw - w + 1)),
                                 ry + int(rng.integers(rh - h + 1)), w, h, horizontal)
            ignored.append((rx, ry, rw, rh))
    # Flight altitude. At 1.7-2.5x the class lengths, objects relative to the image are about
    # VisDrone's at the paper's input sizes (median side ~18 px at the teacher's 256 px, ~9 px
    # at the student's 128 px), and still mostly under 32x32 px. Smaller images shrink them (k).
    scale = rng.uniform(1.7, 2.5) * k
    objects = []
    for _ in range(max(3, round(rng.integers(10, 41) * k * k))):
        cls = int(rng.choice(_IDS, p=_WEIGHTS))
        w, h, horizontal = _sample_size(rng, cls, scale)
        for _ in range(20):
            box = (int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1)), w, h)
            if not any(_overlap(box, r) for r in ignored) and all(
                    _overlap(box, o) <= 0.15 * min(w * h, o[2] * o[3]) for o in objects):
                _draw_object(img, rng, cls, *box, horizontal)
                objects.append(box + (1, cls))
                break
    img += rng.normal(0, 3, img.shape)
    img = (img - 128) * rng.uniform(0.9, 1.1) + 128 + rng.uniform(-12, 12)
    rows = [r + (0, 0) for r in ignored] + objects
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


def generate_dataset(out, num_train=300, num_val=60, size=256, seed=0):
    """Generate the train and val splits into ``out``; return ``{split: {"images", "boxes"}}``.

    Skips (and prints so) when ``out`` already holds a complete dataset with the same
    parameters. Raises ``FileExistsError`` if ``out`` exists, is not empty and carries no
    marker, and ``ValueError`` for invalid parameters.
    """
    if size < 64 or num_train < 0 or num_val < 0 or seed < 0:
        raise ValueError("need size >= 64 and non-negative image counts and seed")
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
            print(f"synthdrone: replacing {out} (generated with other parameters)")
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
    parser.add_argument("--train", type=int, default=300, help="number of train images")
    parser.add_argument("--val", type=int, default=60, help="number of val images")
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
