"""zoominnet_d2.modeling.subpixel: LA's final convs on the 1x grid compute what the
upsample-then-conv form computes, and the LA student's detections do not change."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deploy_helpers import assert_same_detections, synthetic_images, tiny_cfg, tiny_student
from zoominnet_d2.modeling.subpixel import conv3x3_of_upsampled, phase_kernels


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (16, 16)])
def test_equals_conv_of_the_upsampled_map(size):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 9, 3, padding=1)
    x = torch.randn(2, 16, *size)
    expected = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    actual = conv3x3_of_upsampled(x, conv)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_phase_kernels_sum_the_kernel_rows_read_by_each_phase():
    # A brute-force reference: phase a of output row 2i + a reads upsampled rows 2i + a - 1,
    # 2i + a, 2i + a + 1, i.e. input rows floor((2i + a + d) / 2) for d = -1, 0, 1.
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    kernels = phase_kernels(weight)
    for a in (0, 1):
        for b in (0, 1):
            expected = torch.zeros(3, 2, 2, 2, dtype=torch.float64)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    # input row i - 1 + a + p with p in {0, 1}
                    p, q = (a + dy) // 2 + 1 - a, (b + dx) // 2 + 1 - b
                    expected[:, :, p, q] += weight[:, :, dy + 1, dx + 1]
            torch.testing.assert_close(kernels[a, b], expected)


def test_refuses_other_convs():
    with pytest.raises(ValueError, match="3x3"):
        conv3x3_of_upsampled(torch.zeros(1, 4, 3, 3), nn.Conv2d(4, 4, 1))


@pytest.mark.parametrize("config", ["configs/synth/la.yaml", "configs/synth/cskd_la.yaml"])
def test_la_student_detections_unchanged(config):
    cfg = tiny_cfg(config)
    fast_cfg = tiny_cfg(config, "MODEL.ZOOMIN.SUBPIXEL_INFERENCE", "True")
    reference, fast = tiny_student(cfg).eval(), tiny_student(fast_cfg).eval()
    assert not reference.head.subpixel_inference and fast.head.subpixel_inference
    images = synthetic_images(2, cfg.INPUT.SQUARE_SIZE, seed=1)
    inputs = [{"image": torch.as_tensor(i.transpose(2, 0, 1).copy())} for i in images]
    with torch.no_grad():
        expected, actual = reference(inputs), fast(inputs)
    for ref, out in zip(expected, actual):
        assert len(ref["instances"]) > 10
        assert_same_detections(ref["instances"], out["instances"])


def test_training_and_flop_counts_keep_the_upsampled_form():
    """Training losses do not depend on the key (the paper's form is trained), and GFLOPs
    count the paper's form."""
    import sys
    from pathlib import Path

    from detectron2.utils.events import EventStorage

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    try:
        from count_flops import count_gflops, load_config
    finally:
        sys.path.pop(0)
    on = load_config("configs/synth/la.yaml", ["MODEL.ZOOMIN.SUBPIXEL_INFERENCE", "True"])
    assert count_gflops(on, 128) == count_gflops(load_config("configs/synth/la.yaml"), 128)
    image = synthetic_images(1, 128, seed=2)[0]
    batch = [{"image": torch.as_tensor(image.transpose(2, 0, 1).copy()), "instances": _instances()}]
    losses = []
    for value in ("True", "False"):
        model = tiny_student(tiny_cfg("configs/synth/la.yaml", "MODEL.ZOOMIN.SUBPIXEL_INFERENCE", value)).train()
        with EventStorage():
            losses.append(model(batch))
    with_key, without = losses
    for name in with_key:
        assert torch.equal(with_key[name], without[name]), name


def _instances():
    from detectron2.structures import Boxes, Instances

    inst = Instances((128, 128))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 30.0, 40.0], [60.0, 50.0, 70.0, 58.0]]))
    inst.gt_classes = torch.tensor([0, 3])
    return inst
