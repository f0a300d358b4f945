"""tools/box_sizes.py: anchor coverage against boxes placed on known anchors, and detection
sizes against numpy on a hand-made detections file."""
import json
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def box_sizes(import_tool):
    return import_tool("box_sizes")


def register(name: str, tmp_path: Path, boxes_xywh) -> str:
    image = tmp_path / f"{name}.png"
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(image)
    record = {"file_name": str(image), "image_id": name, "height": 128, "width": 128,
              "annotations": [{"bbox": list(b), "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0, "iscrowd": 0}
                              for b in boxes_xywh]}
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: [dict(record)])
    MetadataCatalog.get(name).set(thing_classes=[str(i) for i in range(10)])
    return name


def test_anchor_coverage_counts_boxes_on_an_anchor(box_sizes, tmp_path):
    from zoominnet_d2 import load_config

    cfg = load_config(str(REPO / "configs/synth/snet.yaml"))
    stride, size = 8, cfg.MODEL.ANCHOR_GENERATOR.SIZES[0][0]  # p3's smallest anchor (24 px)
    centre = (8 + cfg.MODEL.ANCHOR_GENERATOR.OFFSET) * stride  # an anchor centre of p3
    # A 128 px image at the synth student's 128 px input: the boxes stay as they are. One box is
    # that square anchor (IoU 1); a 4 px box has IoU <= 16 / 24^2 with every anchor.
    on_anchor = (centre - size / 2, centre - size / 2, size, size)
    tiny = (20.0, 20.0, 4.0, 4.0)
    name = register("box_sizes_anchors", tmp_path, [on_anchor, tiny])
    cfg.defrost()
    cfg.DATASETS.TEST = (name,)
    result = box_sizes.anchor_coverage(cfg)
    assert result["boxes"] == 2
    assert result["best_iou_ge_0.5"] == 0.5 and result["best_iou_ge_0.4"] == 0.5
    assert np.median([size, 4.0]) == pytest.approx(result["side_quartiles"][1], abs=0.1)
    expected = [brute_force_anchors_at_iou(b, cfg, 128) for b in (on_anchor, tiny)]
    assert expected[0] >= 1 and expected[1] == 0, expected
    assert result["anchors_iou_ge_0.5_per_box"] == pytest.approx(np.mean(expected))


def brute_force_anchors_at_iou(box_xywh, cfg, side: int, threshold: float = 0.5) -> int:
    """Anchors with IoU >= threshold, by a loop over every anchor of every level: centre
    ((x + offset) * stride, (y + offset) * stride), width sqrt(size^2 / ratio), height width * ratio."""
    x0, y0, w, h = box_xywh
    gen = cfg.MODEL.ANCHOR_GENERATOR
    count = 0
    for level, sizes in enumerate(gen.SIZES):
        stride = 8 * 2 ** level
        cells = -(-side // stride)
        for y in range(cells):
            for x in range(cells):
                cx, cy = (x + gen.OFFSET) * stride, (y + gen.OFFSET) * stride
                for size in sizes:
                    for ratio in gen.ASPECT_RATIOS[0]:
                        aw = (size * size / ratio) ** 0.5
                        ah = aw * ratio
                        iw = max(0.0, min(x0 + w, cx + aw / 2) - max(x0, cx - aw / 2))
                        ih = max(0.0, min(y0 + h, cy + ah / 2) - max(y0, cy - ah / 2))
                        inter = iw * ih
                        count += inter / (w * h + aw * ah - inter) >= threshold
    return count


def test_detection_sizes_medians(box_sizes, tmp_path):
    name = register("box_sizes_detections", tmp_path, [(0, 0, 10, 20), (5, 5, 30, 40), (1, 1, 2, 2)])
    stage = tmp_path / "stage"
    folder = stage / "inference" / name
    folder.mkdir(parents=True)
    detections = [{"image_id": name, "category_id": 0, "bbox": [0, 0, w, h], "score": s}
                  for w, h, s in [(10, 10, 0.9), (20, 40, 0.5), (30, 50, 0.4), (99, 99, 0.1)]]
    (folder / "coco_instances_results.json").write_text(json.dumps(detections))
    gt, found = box_sizes.detection_sizes([str(stage)], name, score=0.3)
    assert (gt["per_image"], gt["median_w"], gt["median_h"]) == (3.0, 10.0, 20.0)
    assert (found["per_image"], found["median_w"], found["median_h"]) == (3.0, 20.0, 40.0)
    with pytest.raises(SystemExit, match="no detections file"):
        box_sizes.detection_sizes([str(tmp_path / "missing")], name, score=0.3)
