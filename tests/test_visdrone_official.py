"""Tests of the official VisDrone-DET toolkit metrics (zoominnet_d2.evaluation.official_*):
one hand-made case per rule, and random lines against the reference.

Expected values of the hand-made cases are worked out by hand in the comments from the
MATLAB code; every case is also checked against ``official_reference`` (plain loops written
from the MATLAB code). Real frames and the command: tests/test_evaluate_visdrone.py.
"""
import math

import numpy as np
import pytest

import official_reference as reference
from zoominnet_d2.data.visdrone import VISDRONE_CLASSES
from zoominnet_d2.evaluation import evaluate_official, in_ignored_regions
from zoominnet_d2.evaluation.official_protocol import outside_ignored_regions

KEYS = reference.KEYS
SIZE = (200, 200)  # height, width of the hand-made images


def gt(x, y, w, h, category=1, score=1):
    return [x, y, w, h, score, category]


def det(x, y, w, h, score, category=1):
    return [x, y, w, h, score, category]


def official(images):
    """evaluate_official, checked against the reference; the metrics."""
    images = [(np.array(g, float).reshape(-1, 6), np.array(d, float).reshape(-1, 6), *size)
              for g, d, size in images]
    metrics, _ = evaluate_official(images, VISDRONE_CLASSES)
    expected, per_class = reference.evaluate(images)
    assert_equal_to_reference(metrics, expected, per_class)
    return metrics


def assert_equal_to_reference(metrics, expected, per_class):
    reference.assert_equal(metrics, expected, per_class, VISDRONE_CLASSES)


# ----------------------------------------------------------------------------- rules
def test_classes_are_weighted_by_the_images_containing_them():
    # Pedestrians in 3 images, all found (AP 100); a car in 1 image, missed (AP 0):
    # (3 * 100 + 1 * 0) / 4 = 75, where a class mean would give 50.
    hit = [gt(10, 10, 20, 20)], [det(10, 10, 20, 20, 0.9)], SIZE
    with_car = [gt(10, 10, 20, 20), gt(100, 100, 20, 20, category=4)], hit[1], SIZE
    metrics = official([with_car, hit, hit])
    assert metrics["AP"] == pytest.approx(75.0)
    assert metrics["AR1"] == pytest.approx(75.0)
    assert metrics["AP-pedestrian"] == pytest.approx(100.0) and metrics["AP-car"] == 0.0
    assert math.isnan(metrics["AP-bus"])


def test_detection_cap_takes_the_first_lines_of_all_classes():
    objects = [gt(10, 10, 20, 20), gt(100, 100, 20, 20, category=4)]
    lines = [det(150, 150, 20, 20, 0.3, category=4),  # a car false positive first
             det(10, 10, 20, 20, 0.9), det(100, 100, 20, 20, 0.8, category=4)]
    metrics = official([(objects, lines, SIZE)])
    # Cap 1 keeps only line 1 (no pedestrian, a car FP): AR1 = 0 although the pedestrian
    # detection has the highest score. Cap 10 keeps all: recall 1 for both classes. AP ranks
    # the car detections by score: the hit (0.8) before the FP (0.3), so AP = 100.
    assert metrics["AR1"] == 0.0
    assert metrics["AR10"] == pytest.approx(100.0)
    assert metrics["AP"] == pytest.approx(100.0)
    # In score order, cap 1 holds the pedestrian: (100 + 0) / 2.
    assert official([(objects, [lines[1], lines[2], lines[0]], SIZE)])["AR1"] == \
        pytest.approx(50.0)


def test_ap_integrates_precision_over_all_recall_points():
    objects = [gt(10, 10, 20, 20), gt(50, 10, 20, 20), gt(90, 10, 20, 20)]
    lines = [det(10, 10, 20, 20, 0.9), det(150, 150, 20, 20, 0.8), det(50, 10, 20, 20, 0.7)]
    metrics = official([(objects, lines, SIZE)])
    # recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3 -> interpolated 1, 2/3, 2/3:
    # AP = 1/3 * 1 + 1/3 * 2/3 = 5/9 (COCO's 101 points give 56/101).
    assert metrics["AP"] == pytest.approx(500 / 9)
    assert metrics["AR1"] == pytest.approx(100 / 3)
    assert metrics["AR10"] == pytest.approx(200 / 3)


def test_ignored_regions_are_painted_one_pixel_larger_at_their_left_and_top():
    region = np.array([[100, 100, 50, 50]], float)  # painted over 0-based pixels 99..149
    boxes = np.array([
        [98, 120, 2, 2],     # pixels 98-99: half covered -> dropped (a continuous rule: 0%)
        [97, 120, 2, 2],     # pixels 97-98: kept
        [120, 98, 2, 2],     # top edge, rows 98-99: dropped
        [149, 120, 2, 2],    # right edge, pixels 149-150: half covered -> dropped
        [150, 120, 2, 2],    # pixels 150-151: kept
        [120, 150, 2, 2],    # bottom edge: kept
        [98.5, 120, 1, 1],   # MATLAB round(98.5) = 99: covered (numpy's rint gives 98)
    ])
    kept = outside_ignored_regions(boxes, region, *SIZE)
    assert kept.tolist() == [False, True, False, False, True, True, False]
    assert (~in_ignored_regions(boxes, region)).tolist() == [True, True, True, False, True,
                                                             True, True]
    # A box crossing the left border moves to x = 1 with its width kept: (-10, 20, 20, 20) is
    # summed over pixels 1..20, half of them in the region painted from pixel 11: dropped,
    # though the box, [-10, 10), does not reach the region.
    strip = np.array([[12, 0, 50, 200]], float)
    assert not outside_ignored_regions(np.array([[-10, 20, 20, 20]], float), strip, *SIZE).any()
    assert not in_ignored_regions([[-10, 20, 20, 20]], strip).any()

    objects = [gt(10, 10, 20, 20), [100, 100, 50, 50, 0, 0]]
    # The FP at the region's left edge is dropped: AP 100; one pixel further left it counts
    # (ranked first): precision 1/2 at recall 1, AP 50.
    assert official([(objects, [det(98, 120, 2, 2, 0.9), det(10, 10, 20, 20, 0.5)],
                      SIZE)])["AP"] == pytest.approx(100.0)
    assert official([(objects, [det(97, 120, 2, 2, 0.9), det(10, 10, 20, 20, 0.5)],
                      SIZE)])["AP"] == pytest.approx(50.0)


def test_score_0_ground_truth_is_ignore_but_counts_in_the_recall_denominator():
    objects = [gt(10, 10, 20, 20), gt(100, 100, 40, 40, score=0)]
    lines = [det(110, 110, 10, 10, 0.95),  # inside the score-0 box: IoF 1, neither TP nor FP
             det(10, 10, 20, 20, 0.8)]
    images = [(np.array(objects, float), np.array(lines, float), *SIZE)]
    metrics, counts = evaluate_official(images, VISDRONE_CLASSES)
    # n = 2 (the score-0 box counts): recall 0, 1/2; precision 0, 1 -> AP = AR = 50.
    assert metrics["AP"] == pytest.approx(50.0) and metrics["AR10"] == pytest.approx(50.0)
    assert counts["gt"] == 2 and counts["gt_score_0"] == 1
    assert_equal_to_reference(metrics, *reference.evaluate(images))
    # With score 1 the small detection is a false positive ranked first: AP = 1/2 * 1/2.
    objects[1][4] = 1
    assert official([(objects, lines, SIZE)])["AP"] == pytest.approx(25.0)


def test_categories_0_and_11_take_cap_places_and_match_nothing():
    objects = [gt(10, 10, 20, 20), gt(10, 10, 20, 20, category=11, score=0)]
    lines = [det(10, 10, 20, 20, 0.99, category=11), det(10, 10, 20, 20, 0.98, category=0),
             det(10, 10, 20, 20, 0.9)]
    images = [(np.array(objects, float), np.array(lines, float), *SIZE)]
    metrics, counts = evaluate_official(images, VISDRONE_CLASSES)
    assert metrics["AR1"] == 0.0 and metrics["AR10"] == pytest.approx(100.0)
    assert metrics["AP"] == pytest.approx(100.0)
    assert counts["detection_categories_outside_1_10"] == {"0": 1, "11": 1}
    assert_equal_to_reference(metrics, *reference.evaluate(images))


def test_ties_follow_matlabs_stable_sort():
    # Equal scores in one image: line 1 (IoU 0.6) is matched first, line 2 (IoU 0.9) second.
    # IoU 0.5-0.6: TP, FP -> 100; 0.65-0.9: FP, TP -> 50; 0.95: 0. Mean 60 (90 if line 2
    # came first, as with argsort()[::-1]).
    objects = [gt(10, 10, 20, 20)]
    lines = [det(10, 10, 20, 12, 0.5), det(10, 10, 20, 18, 0.5)]
    assert official([(objects, lines, SIZE)])["AP"] == pytest.approx(60.0)
    # Equal scores in two images: image 1's FP ranks before image 2's TP: recall 0, 1/2;
    # precision 0, 1/2 -> AP 25 (50 in the other order).
    first = [gt(10, 10, 20, 20)], [det(150, 150, 20, 20, 0.5)], SIZE
    second = [gt(10, 10, 20, 20)], [det(10, 10, 20, 20, 0.5)], SIZE
    assert official([first, second])["AP"] == pytest.approx(25.0)
    assert official([second, first])["AP"] == pytest.approx(50.0)
    # Equal IoU (360/440) with two boxes: the later box is taken, so the second detection
    # (exactly on the first box) is a TP at every threshold: IoU 0.5-0.8 -> 100,
    # 0.85-0.95 -> 25; mean 77.5 (62.5 if the first box were taken).
    objects = [gt(10, 10, 20, 20), gt(14, 10, 20, 20)]
    lines = [det(12, 10, 20, 20, 0.9), det(10, 10, 20, 20, 0.8)]
    assert official([(objects, lines, SIZE)])["AP"] == pytest.approx(77.5)


def test_no_ground_truth_or_no_detections():
    metrics = official([([], [det(0, 0, 5, 5, 1.0)], SIZE)])
    assert all(math.isnan(metrics[k]) for k in KEYS)
    metrics = official([([gt(10, 10, 20, 20)], [], SIZE)])
    assert all(metrics[k] == 0.0 for k in KEYS)


def random_images(seed, n_images=3, n_objects=40, n_det=150, height=240, width=320):
    """Random lines: all classes, 'others', score-0 boxes, regions (some at the border),
    detections with decimals, tied scores and lines out of score order."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        xy = rng.integers(-5, [width, height], (n_objects, 2))
        objects = np.column_stack([xy, rng.integers(2, 50, (n_objects, 2)),
                                   rng.random(n_objects) > 0.1,
                                   rng.choice([1, 2, 3, 4, 4, 4, 5, 10, 11], n_objects)]).astype(float)
        regions = np.column_stack([rng.integers(-3, [width, height], (3, 2)),
                                   rng.integers(5, 80, (3, 2)), np.zeros((3, 2))])
        lines = objects[rng.integers(0, n_objects, n_det)]
        lines[:, :4] += rng.normal(0, 2, (n_det, 4)) * (rng.random((n_det, 1)) < 0.8)
        lines[:, 4] = np.round(rng.random(n_det), 1)
        lines[:, 5] = np.where(rng.random(n_det) < 0.8, lines[:, 5],
                               rng.integers(0, 12, n_det))
        images.append((np.concatenate([regions, objects]), lines, height, width))
    return images


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_reference_on_random_lines(seed):
    images = random_images(seed)
    images[0] = (images[0][0], np.concatenate([images[0][1]] * 4), *images[0][2:])  # > 500
    metrics, counts = evaluate_official(images, VISDRONE_CLASSES)
    assert counts["detections_beyond_cap"] > 0 and counts["gt_in_ignored_regions"] > 0
    assert metrics["AR100"] < metrics["AR500"]
    assert_equal_to_reference(metrics, *reference.evaluate(images))


def test_benchmark_module_measures_and_renders(import_tool):
    benchmark_official_eval = import_tool("benchmark_official_eval")
    result = benchmark_official_eval.measure(repeats=1, num_images=3)
    assert result["images"] == 3 and result["seconds_in_memory"] > 0
    assert 0 < result["AP"] < 100
    lines = benchmark_official_eval.render(result)
    assert lines[0].startswith("## Official VisDrone-DET metrics")
    assert any(line.startswith("| `evaluate_official`") for line in lines)
