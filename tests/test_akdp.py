"""Tests of AKDP (zoominnet_d2.modeling.akdp) against a brute-force loop over Eqs. 11-18."""
import math
from collections import Counter
import resource
import statistics
import time

import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes before Detectron2)
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.structures import Boxes

from zoominnet_d2.modeling import akdp, akdp_dense, akdp_window
from zoominnet_d2.modeling.akdp import akdp_mask, akdp_masks_batch


# ---------------------------------------------------------------- brute-force reference


def ref_iou(a, b):
    """Eq. 12 by its formula, in Python floats (float64)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def ref_akdp(anchor_levels, grid_sizes, gts, scope, lam):
    """Eqs. 11-18 with loops over anchors and boxes.

    anchor_levels: per level a list of (x1, y1, x2, y2), ordered (y, x, a).
    Returns (masks as nested lists [H][W] of bool, smallest relative margin |iou - thresh|
    over the entries whose outcome a float32 rounding could change).
    """
    iou = [[[ref_iou(a, g) for g in gts] for a in level] for level in anchor_levels]
    groups = [[l] for l in range(len(iou))] if scope == "level" else [list(range(len(iou)))]
    thresh = {}
    for group in groups:
        rows = [row for l in group for row in iou[l]]
        if not rows or not gts:
            continue
        entries = [v for row in rows for v in row]
        max_iou = [max(row[g] for row in rows) for g in range(len(gts))]
        if lam is None:
            std = statistics.stdev(entries) if len(entries) > 1 else 0.0
            lam_g = statistics.fmean(entries) + std
        else:
            lam_g = lam
        for l in group:
            thresh[l] = [lam_g * m for m in max_iou]
    masks, margin = [], math.inf
    for l, (h, w) in enumerate(grid_sizes):
        a_per = len(anchor_levels[l]) // (h * w)
        mask = [[False] * w for _ in range(h)]
        for y in range(h):
            for x in range(w):
                for a in range(a_per):
                    for g in range(len(gts)):
                        v, t = iou[l][(y * w + x) * a_per + a][g], thresh[l][g]
                        if v > t:
                            mask[y][x] = True
                        if not (v == 0.0 and t == 0.0):
                            margin = min(margin, abs(v - t) / max(t, 1e-12))
        masks.append(mask)
    return masks, margin


def as_lists(masks):
    return [m.tolist() for m in masks]


# ---------------------------------------------------------------- random data


def random_case(seed, grid_sizes=((3, 4), (2, 2)), num_anchors=3, max_gts=6):
    """Grid-like anchors (jittered sizes) on a 32x32 image and 1..max_gts random boxes.
    Coordinates are float32 values, so that Boxes (always float32) hold them exactly."""
    gen = torch.Generator().manual_seed(seed)
    levels = []
    for h, w in grid_sizes:
        sy, sx = 32.0 / h, 32.0 / w
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        cy = ((ys.float() + 0.5) * sy).reshape(-1, 1).expand(-1, num_anchors)
        cx = ((xs.float() + 0.5) * sx).reshape(-1, 1).expand(-1, num_anchors)
        half_w = (0.3 + torch.rand(h * w, num_anchors, generator=gen)) * sx
        half_h = (0.3 + torch.rand(h * w, num_anchors, generator=gen)) * sy
        boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)
        levels.append(boxes.reshape(-1, 4).float())
    g = int(torch.randint(1, max_gts + 1, (1,), generator=gen))
    xy = torch.rand(g, 2, generator=gen) * 28
    wh = 1 + torch.rand(g, 2, generator=gen) * 12
    gts = torch.cat([xy, xy + wh], dim=1).float()
    return levels, list(grid_sizes), gts


def check_against_reference(levels, grid_sizes, gts, scope, lam, **kw):
    got = akdp_mask([Boxes(t) for t in levels], grid_sizes, Boxes(gts), scope=scope, lam=lam, **kw)
    expected, margin = ref_akdp([t.tolist() for t in levels], grid_sizes, gts.tolist(), scope, lam)
    # float32 IoU vs float64 reference: outcomes agree unless an IoU is within rounding of
    # its threshold; the seeds are chosen so that none is.
    assert margin > 1e-5
    assert [tuple(m.shape) for m in got] == [tuple(s) for s in grid_sizes]
    assert all(m.dtype == torch.bool for m in got)
    assert as_lists(got) == expected
    return expected


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("lam", [None, 0.5])
@pytest.mark.parametrize("scope", ["level", "image"])
@pytest.mark.parametrize("seed", range(6))
def test_matches_bruteforce(seed, scope, lam):
    grids = ((3, 4), (2, 2)) if seed % 2 else ((3, 4), (2, 2), (1, 2))
    levels, grid_sizes, gts = random_case(seed, grids)
    expected = check_against_reference(levels, grid_sizes, gts, scope, lam)
    flat = [v for m in expected for row in m for v in row]
    assert any(flat) and not all(flat)  # a meaningful case
    # the two-pass path with the smallest blocks (one anchor each)
    check_against_reference(levels, grid_sizes, gts, scope, lam, chunk_entries=1)


def test_scopes_differ():
    """Level 0 holds an anchor with IoU 0.9, level 1 at best 0.3 with the same box: with
    lambda 0.5 the level-1 anchor is key per level (0.3 > 0.15) but not per image
    (0.3 < 0.45)."""
    gt = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    level0 = Boxes(torch.tensor([[0.0, 0.0, 10.0, 9.0], [50.0, 50.0, 60.0, 60.0]]))
    level1 = Boxes(torch.tensor([[0.0, 0.0, 10.0, 3.0], [50.0, 50.0, 60.0, 60.0]]))
    args = ([level0, level1], [(1, 2), (2, 1)], gt)
    per_level = akdp_mask(*args, scope="level", lam=0.5)
    per_image = akdp_mask(*args, scope="image", lam=0.5)
    assert per_level[0].tolist() == per_image[0].tolist() == [[True, False]]
    assert per_level[1].tolist() == [[True], [False]]
    assert per_image[1].tolist() == [[False], [False]]


def make_generator_anchors():
    gen = DefaultAnchorGenerator(
        sizes=[[8.0], [16.0], [32.0]],
        aspect_ratios=[[0.5, 1.0, 2.0]],
        strides=[4, 8, 16],
        offset=0.0,
    )
    grid_sizes = [(8, 10), (4, 5), (2, 3)]
    features = [torch.zeros(1, 1, h, w) for h, w in grid_sizes]
    return gen(features), grid_sizes, [4, 8, 16]


def test_anchor_layout_assumption():
    """DefaultAnchorGenerator orders anchors (y, x, a): index (y*W + x)*A + a."""
    anchors, grid_sizes, strides = make_generator_anchors()
    for boxes, (h, w), s in zip(anchors, grid_sizes, strides):
        a_per = len(boxes) // (h * w)
        assert a_per == 3
        centers = boxes.get_centers().view(h, w, a_per, 2)
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        expected = torch.stack([xs * s, ys * s], dim=-1).float()[:, :, None, :]
        torch.testing.assert_close(centers, expected.expand_as(centers), atol=1e-4, rtol=0)


@pytest.mark.parametrize("lam", [None, 0.5])
@pytest.mark.parametrize("scope", ["level", "image"])
def test_default_anchor_generator(scope, lam):
    anchors, grid_sizes, _ = make_generator_anchors()
    gts = torch.tensor(
        [
            [3.0, 5.0, 11.0, 14.0],
            [20.0, 2.0, 27.5, 6.25],
            [13.0, 11.0, 36.0, 29.0],
            [1.0, 20.0, 5.0, 30.0],
        ]
    )
    levels = [b.tensor for b in anchors]
    expected = check_against_reference(levels, grid_sizes, gts, scope, lam)
    assert any(v for m in expected for row in m for v in row)


@pytest.mark.parametrize("scope", ["level", "image"])
def test_no_ground_truth(scope):
    anchors, grid_sizes, _ = make_generator_anchors()
    masks = akdp_mask(anchors, grid_sizes, Boxes(torch.zeros(0, 4)), scope=scope)
    assert [tuple(m.shape) for m in masks] == grid_sizes
    assert all(m.dtype == torch.bool and not m.any() for m in masks)


def test_gt_equal_to_anchor_is_key():
    anchors, grid_sizes, _ = make_generator_anchors()
    level, y, x, a = 1, 2, 3, 1
    h, w = grid_sizes[level]
    anchor = anchors[level].tensor[(y * w + x) * 3 + a]
    others = torch.tensor([[0.0, 0.0, 3.0, 3.0], [30.0, 20.0, 39.0, 31.0]])
    gts = torch.cat([anchor[None], others])
    for scope in ("level", "image"):
        for lam in (None, 0.5):
            masks = akdp_mask(anchors, grid_sizes, Boxes(gts), scope=scope, lam=lam)
            assert masks[level][y, x], (scope, lam)


def test_single_entry_std_is_zero():
    """One anchor and one box: std is taken as 0 (not NaN), so lambda = the IoU itself."""
    anchor = Boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0]]))
    half = Boxes(torch.tensor([[0.0, 0.0, 4.0, 2.0]]))  # IoU 0.5 -> thresh 0.25 -> key
    for scope in ("level", "image"):
        assert akdp_mask([anchor], [(1, 1)], half, scope=scope)[0].tolist() == [[True]]
    # IoU 1 -> lambda 1 -> thresh 1, and 1 > 1 is false: the formula's own consequence.
    assert akdp_mask([anchor], [(1, 1)], anchor)[0].tolist() == [[False]]
    assert akdp_mask([anchor], [(1, 1)], anchor, lam=0.5)[0].tolist() == [[True]]


def test_level_without_overlap_is_all_false_without_nan():
    anchors, grid_sizes, _ = make_generator_anchors()
    far = Boxes(torch.tensor([[500.0, 500.0, 510.0, 510.0]]))
    for scope in ("level", "image"):
        masks = akdp_mask(anchors, grid_sizes, far, scope=scope)
        assert not any(m.any() for m in masks)


def test_all_zero_level_in_image_scope():
    """A level whose IoU map is all zero, next to one that overlaps the boxes."""
    overlapping = Boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 2.0, 6.0, 6.0]]))
    far = Boxes(torch.tensor([[100.0, 100.0, 104.0, 104.0]] * 2))
    gt = Boxes(torch.tensor([[1.0, 1.0, 5.0, 5.0]]))
    for scope in ("level", "image"):
        masks = akdp_mask([overlapping, far], [(1, 2), (2, 1)], gt, scope=scope)
        assert masks[1].tolist() == [[False], [False]]
        assert masks[0].any()


@pytest.mark.parametrize("lam", [None, 0.5])
@pytest.mark.parametrize("scope", ["level", "image"])
def test_chunked_equals_one_pass(scope, lam, monkeypatch):
    levels, grid_sizes, gts = random_case(7, ((16, 16), (8, 8), (4, 4)), max_gts=40)
    gts = torch.cat([gts, levels[0][::37]])  # some boxes exactly equal to anchors
    args = ([Boxes(t) for t in levels], grid_sizes, Boxes(gts))

    calls = []
    real_iou = akdp_dense.pairwise_iou

    def counting_iou(a, b):
        calls.append((len(a), len(b), tuple(a.tensor[0].tolist())))
        return real_iou(a, b)

    monkeypatch.setattr(akdp_dense, "pairwise_iou", counting_iou)
    num_anchors = sum(len(t) for t in levels)

    one_pass = as_lists(akdp_mask(*args, scope=scope, lam=lam))
    assert sum(n for n, _, _ in calls) <= num_anchors  # no anchor's IoU computed twice
    assert any(v for m in one_pass for row in m for v in row)

    for budget in (len(gts) * 5 + 3, len(gts) * 37 - 1, 1000):
        calls.clear()
        chunked = as_lists(akdp_mask(*args, scope=scope, lam=lam, chunk_entries=budget))
        assert chunked == one_pass, budget
        # two passes: pass 2 recomputes exactly the blocks of pass 1 (a scope whose map
        # fits the budget is done in one)
        counts = Counter(calls)
        assert len(counts) > 1 and set(counts.values()) <= {1, 2}, budget
        if budget < min(len(t) for t in levels) * len(gts):
            assert set(counts.values()) == {2}, budget
        assert max(n * g for n, g, _ in calls) <= max(budget, len(gts)), budget

    # the module default is read at call time
    monkeypatch.setattr(akdp, "IOU_CHUNK_ENTRIES", 500)
    calls.clear()
    assert as_lists(akdp_mask(*args, scope=scope, lam=lam)) == one_pass
    assert calls and max(n * g for n, g, _ in calls) <= 500


def test_masks_batch():
    anchors, grid_sizes, _ = make_generator_anchors()
    gts = [
        Boxes(torch.tensor([[3.0, 5.0, 11.0, 14.0]])),
        Boxes(torch.zeros(0, 4)),
        Boxes(torch.tensor([[13.0, 11.0, 36.0, 29.0], [1.0, 20.0, 5.0, 30.0]])),
    ]
    batch = akdp_masks_batch(anchors, grid_sizes, gts, scope="image", lam=0.5)
    assert [tuple(m.shape) for m in batch] == [(3, h, w) for h, w in grid_sizes]
    for i, g in enumerate(gts):
        single = akdp_mask(anchors, grid_sizes, g, scope="image", lam=0.5)
        assert all(torch.equal(b[i], s) for b, s in zip(batch, single))
    assert not any(b[1].any() for b in batch)
    empty = akdp_masks_batch(anchors, grid_sizes, [])
    assert [tuple(m.shape) for m in empty] == [(0, h, w) for h, w in grid_sizes]


def test_invalid_inputs():
    anchors, grid_sizes, _ = make_generator_anchors()
    gt = Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]]))
    with pytest.raises(ValueError, match="multiple"):
        akdp_mask([Boxes(anchors[0].tensor[:-1])], grid_sizes[:1], gt)
    with pytest.raises(ValueError, match="grid sizes"):
        akdp_mask(anchors, grid_sizes[:2], gt)
    with pytest.raises(ValueError, match="scope"):
        akdp_mask(anchors, grid_sizes, gt, scope="batch")


def test_memory_bound_1000_gts_200k_anchors():
    """1,000 boxes x 200,000 anchors: the full IoU map would be 800 MB in float32."""
    gen = torch.Generator().manual_seed(0)
    grid_sizes = [(160, 250), (80, 125)]  # x 4 anchors = 160,000 + 40,000
    levels = []
    for (h, w), s in zip(grid_sizes, (4.0, 8.0)):
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        c = torch.stack([xs, ys], -1).float().mul(s).reshape(-1, 1, 2).expand(-1, 4, 2)
        half = torch.tensor([1.0, 1.5, 2.0, 3.0]).mul(s).view(1, 4, 1).expand_as(c)
        levels.append(Boxes(torch.cat([c - half, c + half], -1).reshape(-1, 4)))
    assert sum(len(b) for b in levels) == 200_000
    xy = torch.rand(1000, 2, generator=gen) * torch.tensor([990.0, 630.0])
    gts = Boxes(torch.cat([xy, xy + 2 + torch.rand(1000, 2, generator=gen) * 30], 1))

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    masks = akdp_mask(levels, grid_sizes, gts)
    elapsed = time.perf_counter() - t0
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert [tuple(m.shape) for m in masks] == grid_sizes
    assert masks[0].any() and not masks[0].all()
    assert growth_mb < 500, growth_mb
    assert elapsed < 60, elapsed  # ~3 s on 2 CPU cores; generous for loaded machines


# ---------------------------------------------------------------- window path (separable grids)


def grid_anchor_case(seed, num_gts=25):
    """DefaultAnchorGenerator anchors (3 levels, 6 anchors per cell) on a 64x48 image and random
    boxes: small and large (up to 80 px, larger than every anchor), some crossing the image
    border, some equal to anchors, one degenerate (zero width)."""
    gen = torch.Generator().manual_seed(seed)
    offset = 0.5 if seed % 2 else 0.0
    anchor_gen = DefaultAnchorGenerator(
        sizes=[[8.0, 11.0], [16.0, 22.0], [32.0, 45.0]],
        aspect_ratios=[[0.5, 1.0, 2.0]],
        strides=[4, 8, 16],
        offset=offset,
    )
    grid_sizes = [(12, 16), (6, 8), (3, 4)]
    anchors = anchor_gen([torch.zeros(1, 1, h, w) for h, w in grid_sizes])
    wh = torch.empty(num_gts, 2).uniform_(0.0, math.log(80.0), generator=gen).exp()
    xy = torch.rand(num_gts, 2, generator=gen) * torch.tensor([84.0, 68.0]) - 10.0 - wh / 2
    gts = torch.cat([xy, xy + wh], dim=1)
    level0 = anchors[0].tensor
    picks = torch.randint(0, len(level0), (3,), generator=gen)
    degenerate = torch.tensor([[20.0, 10.0, 20.0, 30.0]])
    gts = torch.cat([gts, level0[picks], degenerate]).float()
    return anchors, grid_sizes, gts


def run_counting(monkeypatch, fn):
    calls = []
    real_iou = akdp_dense.pairwise_iou

    def counting_iou(a, b):
        calls.append((len(a), len(b)))
        return real_iou(a, b)

    monkeypatch.setattr(akdp_dense, "pairwise_iou", counting_iou)
    out = fn()
    monkeypatch.setattr(akdp_dense, "pairwise_iou", real_iou)
    return out, calls


def test_separable_grid_detection():
    anchors, grid_sizes, _ = make_generator_anchors()
    for boxes, (h, w) in zip(anchors, grid_sizes):
        grid = akdp.separable_grid(boxes.tensor, h, w, 3)
        assert grid is not None
        x1, x2, y1, y2 = grid
        assert x1.shape == x2.shape == (w, 3) and y1.shape == y2.shape == (h, 3)
    h, w = grid_sizes[0]
    t = anchors[0].tensor.clone()
    t[17, 2] += 1e-3  # one anchor off the grid
    assert akdp.separable_grid(t, h, w, 3) is None
    t[17, 2] = float("nan")
    assert akdp.separable_grid(t, h, w, 3) is None
    levels, jittered_sizes, _ = random_case(0)  # per-cell jittered sizes: not a separable grid
    for t, (h, w) in zip(levels, jittered_sizes):
        assert akdp.separable_grid(t, h, w, 3) is None


@pytest.mark.parametrize("seed", range(4))
def test_window_iou_equals_pairwise_iou(seed):
    """The elementwise IoU of the window path, scattered into a dense map, is bit-identical to
    ``pairwise_iou`` over all anchors x boxes (so every nonzero entry is a candidate)."""
    anchors, grid_sizes, gts = grid_anchor_case(seed)
    for boxes, (h, w) in zip(anchors, grid_sizes):
        t = boxes.tensor
        a = len(t) // (h * w)
        grid = akdp.separable_grid(t, h, w, a)
        expected = akdp_dense.pairwise_iou(Boxes(t), Boxes(gts)).view(h * w, a, len(gts))
        for cells_per_chunk in (10**9, 7):
            win = akdp_window.WindowLevel(grid, h, w, a, gts, cells_per_chunk)
            dense = torch.zeros_like(expected)
            seen = torch.zeros(h * w, len(gts), dtype=torch.int64)
            for chunk in win.chunks:
                iou, box, cell = win.iou(chunk)
                assert iou.dtype == torch.float32 and iou.shape == (len(box), a)
                dense[cell, :, box] = iou
                seen.index_put_((cell, box), torch.ones_like(box), accumulate=True)
            assert int(seen.max()) <= 1  # no (cell, box) pair computed twice
            assert torch.equal(dense, expected)
            assert win.num_cells < h * w * len(gts)  # windows, not the full map


@pytest.mark.parametrize("chunk_entries", [None, 97, 5000])
@pytest.mark.parametrize("lam", [None, 0.5])
@pytest.mark.parametrize("scope", ["level", "image"])
@pytest.mark.parametrize("seed", range(5))
def test_window_path_equals_dense_path(seed, scope, lam, chunk_entries, monkeypatch):
    anchors, grid_sizes, gts = grid_anchor_case(seed)
    kw = dict(scope=scope, lam=lam, chunk_entries=chunk_entries)
    window, calls = run_counting(monkeypatch, lambda: akdp_mask(anchors, grid_sizes, Boxes(gts), **kw))
    assert not calls  # all three levels took the window path
    monkeypatch.setattr(akdp, "separable_grid", lambda *args: None)
    dense, calls = run_counting(monkeypatch, lambda: akdp_mask(anchors, grid_sizes, Boxes(gts), **kw))
    assert calls
    assert [m.dtype for m in window] == [torch.bool] * 3
    assert as_lists(window) == as_lists(dense)
    flat = [v for m in as_lists(window) for row in m for v in row]
    assert any(flat)
    if lam is not None:  # adaptive lambda is tiny here (mostly zeros): nearly all key
        assert not all(flat)


@pytest.mark.parametrize("lam", [None, 0.5])
def test_mixed_grid_and_dense_levels(lam, monkeypatch):
    """Image scope with a jittered (dense path) level next to grid (window path) levels."""
    anchors, grid_sizes, gts = grid_anchor_case(11)
    t = anchors[1].tensor.clone()
    t[5, 0] -= 0.25
    mixed = [anchors[0], Boxes(t), anchors[2]]
    got = akdp_mask(mixed, grid_sizes, Boxes(gts), scope="image", lam=lam)
    monkeypatch.setattr(akdp, "separable_grid", lambda *args: None)
    dense = akdp_mask(mixed, grid_sizes, Boxes(gts), scope="image", lam=lam)
    assert as_lists(got) == as_lists(dense)


@pytest.mark.parametrize("lam", [None, 0.5])
@pytest.mark.parametrize("scope", ["level", "image"])
def test_window_path_bruteforce_small(scope, lam):
    """A small grid case through the window path against the brute-force reference."""
    anchor_gen = DefaultAnchorGenerator(
        sizes=[[6.0, 9.0], [14.0]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[4, 8], offset=0.5
    )
    grid_sizes = [(5, 6), (3, 3)]
    anchors = anchor_gen([torch.zeros(1, 1, h, w) for h, w in grid_sizes])
    gts = torch.tensor([[2.0, 3.0, 9.0, 8.5], [14.0, 1.0, 30.0, 22.0], [-4.0, 12.0, 5.0, 19.0]])
    assert all(
        akdp.separable_grid(b.tensor, h, w, len(b) // (h * w)) is not None
        for b, (h, w) in zip(anchors, grid_sizes)
    )
    expected = check_against_reference([b.tensor for b in anchors], grid_sizes, gts, scope, lam)
    assert any(v for m in expected for row in m for v in row)


def test_memory_bound_1000_gts_800k_grid_anchors():
    """1,000 boxes x 786k DefaultAnchorGenerator anchors (LA anchors at 1024): the window path
    stays well under 200 MB and is fast."""
    anchor_gen = DefaultAnchorGenerator(
        sizes=[[12.0, 15.12, 19.05], [24.0, 30.24, 38.10], [48.0, 60.48, 76.20],
               [96.0, 120.95, 152.39], [192.0, 241.90, 304.78]],
        aspect_ratios=[[0.5, 1.0, 2.0]],
        strides=[4, 8, 16, 32, 64],
        offset=0.0,
    )
    grid_sizes = [(256, 256), (128, 128), (64, 64), (32, 32), (16, 16)]
    anchors = anchor_gen([torch.zeros(1, 1, h, w) for h, w in grid_sizes])
    assert sum(len(b) for b in anchors) == 785_664
    gen = torch.Generator().manual_seed(0)
    wh = torch.empty(1000, 2).uniform_(math.log(4.0), math.log(96.0), generator=gen).exp()
    xy = torch.rand(1000, 2, generator=gen) * (1024 - wh)
    gts = Boxes(torch.cat([xy, xy + wh], 1))

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    for scope in ("level", "image"):
        masks = akdp_mask(anchors, grid_sizes, gts, scope=scope)
        assert [tuple(m.shape) for m in masks] == grid_sizes
        assert masks[0].any() and not masks[0].all()
    elapsed = time.perf_counter() - t0
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert growth_mb < 200, growth_mb
    assert elapsed < 30, elapsed  # ~0.35 s on 1 CPU thread; generous for loaded machines
