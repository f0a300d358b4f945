"""Pinned numbers: the losses (focal, box, distillation) and the AKDP key-position masks of a
fixed batch, bit for bit, for every alignment and both distilled tensors.

The expected values were computed once and are written below as float hex strings and mask
digests; any change of the training computation (order of operations included) shows here.
Weights are filled from a generator by parameter name, so the numbers do not depend on the
order in which modules are constructed.
"""
import hashlib
import math
from pathlib import Path

import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes first)
from detectron2.config import get_cfg
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from zoominnet_d2 import add_zoominnet_config
from zoominnet_d2.modeling import build_model_with_teacher

from tiny_models import write_teacher_yaml

SYNTH = Path(__file__).resolve().parents[1] / "configs" / "synth"
SHRINK = ["MODEL.RESNETS.STEM_OUT_CHANNELS", 8, "MODEL.RESNETS.RES2_OUT_CHANNELS", 8,
          "MODEL.FPN.OUT_CHANNELS", 16, "MODEL.RETINANET.NUM_CONVS", 1]

# (config, DISTILL_FEATURES) -> {loss name: float.hex()} and the masks' digest, recorded on an
# x86_64 CPU with torch's AVX512 kernels (torch.backends.cpu.get_cpu_capability()).
RECORDED_ON = "AVX512"
EXPECTED = {
    ("cskd_la.yaml", "fpn"): {
        "losses": {"loss_box_reg": "0x1.a4a3160000000p-1", "loss_cls": "0x1.6572260000000p+8",
                   "loss_distill": "0x1.b1de8e0000000p-4"},
        "masks": "5ed3c9ec3add37d8"},
    ("cskd_la.yaml", "tower"): {
        "losses": {"loss_box_reg": "0x1.a4a3160000000p-1", "loss_cls": "0x1.6572260000000p+8",
                   "loss_distill": "0x1.7763cc0000000p-4"},
        "masks": "5ed3c9ec3add37d8"},
    ("cskd_fa.yaml", "fpn"): {
        "losses": {"loss_box_reg": "0x1.0038cc0000000p+0", "loss_cls": "0x1.4c1d5c0000000p+8",
                   "loss_distill": "0x1.2b9ebc0000000p-3"},
        "masks": "5ed3c9ec3add37d8"},
    ("snet_cskd.yaml", "fpn"): {
        "losses": {"loss_box_reg": "0x1.df55300000000p-3", "loss_cls": "0x1.8182800000000p+6",
                   "loss_distill": "0x1.90f3280000000p-4"},
        "masks": "634d7a814d2cf1cc"},
}


def _fill(model: torch.nn.Module, seed: int) -> None:
    """Deterministic weights and BN statistics, drawn per name in sorted order."""
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for name in sorted(state):
            t = state[name]
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))


def _cfg(config: str, opts=()):
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(SYNTH / config))
    cfg.merge_from_list(SHRINK + list(opts))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory):
    from detectron2.modeling import build_model

    folder = tmp_path_factory.mktemp("pinned_teacher")
    config = write_teacher_yaml(folder / "tnet.yaml")
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.MODEL.DEVICE = "cpu"
    teacher = build_model(cfg)
    _fill(teacher, seed=11)
    weights = folder / "model_final.pth"
    torch.save({"model": teacher.state_dict()}, weights)
    return str(config), str(weights)


def _batch():
    """Two samples: 128x128 and 96x128 student images, their 2x teacher views, 3 and 5 boxes."""
    gen = torch.Generator().manual_seed(5)
    out = []
    for (h, w), n in (((128, 128), 3), ((96, 128), 5)):
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.8, h * 0.8])
        wh = 4 + torch.rand(n, 2, generator=gen) * 24
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(torch.cat([xy, xy + wh], 1))
        inst.gt_classes = torch.randint(0, 10, (n,), generator=gen)
        out.append({
            "image": torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8),
            "teacher_image": torch.randint(0, 256, (3, 2 * h, 2 * w), generator=gen, dtype=torch.uint8),
            "instances": inst,
        })
    return out


def _digest(masks) -> str:
    h = hashlib.sha256()
    for m in masks:
        h.update(str(tuple(m.shape)).encode())
        h.update(m.to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


CASES = [("cskd_la.yaml", "fpn"), ("cskd_la.yaml", "tower"), ("cskd_fa.yaml", "fpn"),
         ("snet_cskd.yaml", "fpn")]


@pytest.mark.parametrize("config,features", CASES)
def test_losses_and_masks_are_pinned(teacher_files, config, features):
    t_config, t_weights = teacher_files
    cfg = _cfg(config, ["MODEL.ZOOMIN.TEACHER.CONFIG_FILE", t_config,
                        "MODEL.ZOOMIN.TEACHER.WEIGHTS", t_weights,
                        "MODEL.ZOOMIN.DISTILL_FEATURES", features])
    model = build_model_with_teacher(cfg)
    _fill(model, seed=3)
    model.train()
    batch = _batch()
    with EventStorage():
        losses = model(batch)
    got = {k: float(v).hex() for k, v in sorted(losses.items())}
    masks = _key_position_masks(model, batch)
    assert all(math.isfinite(float(v)) for v in losses.values())
    assert set(got) == {"loss_cls", "loss_box_reg", "loss_distill"}
    assert losses["loss_distill"] > 0 and any(m.any() for m in masks)
    expected = EXPECTED[(config, features)]
    assert _digest(masks) == expected["masks"]
    if torch.backends.cpu.get_cpu_capability() == RECORDED_ON:
        assert got == expected["losses"]
    else:  # other vector kernels sum in another order: equal up to float32 rounding
        for name, value in expected["losses"].items():
            assert float(losses[name]) == pytest.approx(float.fromhex(value), rel=1e-5), name


def _key_position_masks(model, batch):
    """The AKDP masks (#lvl (N, Hi, Wi)) that the model distils on for ``batch``."""
    return model.inspect_distillation(batch).masks
