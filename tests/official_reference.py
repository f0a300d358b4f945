"""An independent reference of the official VisDrone-DET toolkit, for the tests.

Written line by line from the MATLAB code of VisDrone2018-DET-toolkit (``saveAnnoRes.m``,
``dropObjectsInIgr.m``, ``createIntImg.m``, ``calcAccuracy.m``, ``evalRes.m``, ``compOas.m``,
``VOCap.m``), with plain Python loops and 1-based indexing helpers, and sharing no code with
``zoominnet_d2.evaluation``. Slow (loops over classes x thresholds x caps x images x
detections x boxes): for a few images only.
"""
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

KEYS = ("AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500")


def matlab_round(value):
    """MATLAB's round: halves away from zero (exact, via Decimal)."""
    return float(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def matlab_colon(a, d, b):
    """MATLAB's a:d:b for a b that is a whole number of steps d from a, as MathWorks
    describes it: symmetric about the midpoint, the first half a + k*d, the second b - k*d."""
    n = int(round((b - a) / d))
    out = [0.0] * (n + 1)
    for k in range(n // 2 + 1):
        out[k] = a + k * d
        out[n - k] = b - k * d
    if n % 2 == 0:
        out[n // 2] = (a + b) / 2
    return out


def drop_objects_in_igr(gt, det, img_height, img_width):
    """dropObjectsInIgr.m. gt, det: lists of 6-element lists. Returns (newgt, newdet)."""
    curgt = [row for row in gt if row[5] != 0]
    igr_region = [[max(1, v) for v in row[:4]] for row in gt if row[5] == 0]
    if not igr_region:
        return curgt, list(det)
    igr_map = np.zeros((img_height, img_width))
    for x, y, w, h in igr_region:
        x, y, w, h = int(x), int(y), int(w), int(h)
        # MATLAB igrMap(y:min(H,y+h), x:min(W,x+w)) = 1, 1-based and inclusive.
        for row in range(y, min(img_height, y + h) + 1):
            igr_map[row - 1, x - 1:min(img_width, x + w)] = 1
    int_igr_map = igr_map.cumsum(axis=0).cumsum(axis=1)  # createIntImg.m

    def at(i, j):  # intIgrMap(i, j), 1-based
        return int_igr_map[int(i) - 1, int(j) - 1]

    def keep(row):
        pos = [max(1, matlab_round(v)) for v in row[:4]]
        x = max(1, min(img_width, pos[0]))
        y = max(1, min(img_height, pos[1]))
        w, h = pos[2], pos[3]
        tl = at(y, x)
        tr = at(y, min(img_width, x + w))
        bl = at(max(1, min(img_height, y + h)), x)
        br = at(max(1, min(img_height, y + h)), min(img_width, x + w))
        igr_val = tl + br - tr - bl
        return igr_val / (h * w) < 0.5

    return [row for row in curgt if keep(row)], [row for row in det if keep(row)]


def comp_oas(dt, gt, ig):
    """compOas.m."""
    oa = [[0.0] * len(gt) for _ in dt]
    for i, d in enumerate(dt):
        de = (d[0] + d[2], d[1] + d[3])
        da = d[2] * d[3]
        for j, g in enumerate(gt):
            ge = (g[0] + g[2], g[1] + g[3])
            ga = g[2] * g[3]
            w = min(de[0], ge[0]) - max(d[0], g[0])
            if w <= 0:
                continue
            h = min(de[1], ge[1]) - max(d[1], g[1])
            if h <= 0:
                continue
            t = w * h
            u = da if ig[j] else da + ga - t
            oa[i][j] = t / u
    return oa


def eval_res(gt0, dt0, thr):
    """evalRes.m with mul = 0. gt0 rows [x y w h ignore], dt0 rows [x y w h score].
    Returns (gt rows [x y w h match], dt rows [x y w h score match])."""
    dt = [list(r) for r in sorted(dt0, key=lambda r: -r[4])]  # stable, like MATLAB's sort
    gt = [list(r) for r in sorted(gt0, key=lambda r: r[4])]
    for r in gt:
        r[4] = -r[4]
    for r in dt:
        r.append(0)
    oa = comp_oas([r[:4] for r in dt], [r[:4] for r in gt], [r[4] == -1 for r in gt])
    for d in range(len(dt)):
        bst_oa, bstg, bstm = thr, 0, 0
        for g in range(len(gt)):
            m = gt[g][4]
            if m == 1:
                continue
            if bstm != 0 and m == -1:
                break
            if oa[d][g] < bst_oa:
                continue
            bst_oa, bstg = oa[d][g], g
            bstm = 1 if m == 0 else -1
        if bstm == -1:
            dt[d][5] = bstm
        elif bstm == 1:
            gt[bstg][4] = bstm
            dt[d][5] = bstm
    return gt, dt


def voc_ap(rec, prec):
    """VOCap.m."""
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap = 0.0
    for i in range(1, len(mrec)):
        if mrec[i] != mrec[i - 1]:
            ap += (mrec[i] - mrec[i - 1]) * mpre[i]
    return ap


def evaluate(images):
    """saveAnnoRes.m + calcAccuracy.m. images: list of (gt rows, det rows, height, width),
    rows as 6-number sequences. Returns (dict of the 7 metrics, (10,) per-class AP with NaN
    for classes not evaluated)."""
    allgt, alldet = [], []
    for gt, det, height, width in images:
        newgt, newdet = drop_objects_in_igr([list(map(float, r)) for r in gt],
                                            [list(map(float, r)) for r in det], height, width)
        for r in newgt:  # score 0 -> ignore flag 1, score 1 -> 0
            r[4] = 1.0 if r[4] == 0 else (0.0 if r[4] == 1 else r[4])
        allgt.append(newgt)
        alldet.append(newdet)

    ap = np.zeros((10, 10))
    ar = np.zeros((10, 10, 4))
    eval_class = []
    for id_class in range(1, 11):
        for gt in allgt:
            if any(r[5] == id_class for r in gt):
                eval_class.append(id_class)
        for x, thr in enumerate(matlab_colon(0.5, 0.05, 0.95)):
            for y, max_dets in enumerate([1, 10, 100, 500]):
                gt_match, det_match = [], []
                for gt, det in zip(allgt, alldet):
                    gt0 = [r[:5] for r in gt if r[5] == id_class]
                    dt0 = [r[:5] for r in det[:min(len(det), max_dets)] if r[5] == id_class]
                    gt1, dt1 = eval_res(gt0, dt0, thr)
                    gt_match += [r[4] for r in gt1]
                    det_match += [(r[4], r[5]) for r in dt1]
                det_match = sorted(det_match, key=lambda r: -r[0])  # stable
                tp, rec, count = [], [], 0
                for _, m in det_match:
                    count += m == 1
                    tp.append(count)
                    rec.append(count / max(1, len(gt_match)))
                if rec:
                    ar[id_class - 1, x, y] = max(rec) * 100
            fp, count = [], 0
            for _, m in det_match:
                count += m == 0
                fp.append(count)
            prec = [t / max(1, f + t) for t, f in zip(tp, fp)]
            ap[id_class - 1, x] = voc_ap(rec, prec) * 100

    rows = [c - 1 for c in eval_class]

    def mean2(values):
        return float(np.mean(values)) if len(rows) else float("nan")

    metrics = {"AP": mean2(ap[rows, :]), "AP50": mean2(ap[rows, 0]), "AP75": mean2(ap[rows, 5]),
               "AR1": mean2(ar[rows, :, 0]), "AR10": mean2(ar[rows, :, 1]),
               "AR100": mean2(ar[rows, :, 2]), "AR500": mean2(ar[rows, :, 3])}
    per_class = np.array([ap[c].mean() if c + 1 in eval_class else float("nan")
                          for c in range(10)])
    return metrics, per_class


def assert_equal(metrics, expected, per_class, class_names):
    """``metrics`` (the implementation's, with ``AP-<name>`` keys) equal the reference's
    ``(expected, per_class)`` to 1e-9 (floating-point summation order)."""
    assert [metrics[k] for k in KEYS] == pytest.approx([expected[k] for k in KEYS], abs=1e-9,
                                                       nan_ok=True)
    assert [metrics[f"AP-{n}"] for n in class_names] == pytest.approx(
        per_class.tolist(), abs=1e-9, nan_ok=True)
