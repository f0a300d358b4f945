"""BatchNorm in the FPN and the RetinaNet head (``MODEL.FPN.NORM`` / ``MODEL.RETINANET.NORM``
"BN", as in ``configs/real``): the head's BN is Detectron2's domain-specific ``CycleBatchNormList``,
one BN per level, chosen by how many times it has been called. Every path of ZoomInNet that runs
the head's towers (the LA / FA student's predictions, the tower distillation, the teacher's
towers) must call them once per level in level order, or a level is normalized with another
level's statistics. Checked against the towers computed by hand with level i's BN."""
from pathlib import Path

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import CycleBatchNormList
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

import zoominnet_d2  # noqa: F401  (compat fixes first)
from zoominnet_d2 import add_zoominnet_config
from zoominnet_d2.modeling import build_model_with_teacher
from zoominnet_d2.modeling.teacher import FrozenTeacher

from tiny_models import write_teacher_yaml

SYNTH = Path(__file__).resolve().parents[1] / "configs" / "synth"
NORMS = ["MODEL.FPN.NORM", "BN", "MODEL.RETINANET.NORM", "BN"]
SHRINK = ["MODEL.RESNETS.STEM_OUT_CHANNELS", 8, "MODEL.RESNETS.RES2_OUT_CHANNELS", 8,
          "MODEL.FPN.OUT_CHANNELS", 16, "MODEL.RETINANET.NUM_CONVS", 1]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _cfg(config: Path, opts=()):
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.merge_from_list(list(opts) + NORMS)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def _scramble_statistics(model):
    """Distinct running statistics per BN, so that using another level's BN changes the output."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def _towers_by_hand(subnet, features):
    """Each level's tower with that level's BN of every CycleBatchNormList, in eval mode."""
    out = []
    for level, x in enumerate(features):
        for layer in subnet:
            if isinstance(layer, CycleBatchNormList):
                x = layer[level](x) * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)
            else:
                x = layer(x)
        out.append(x)
    return out


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A shrunk synth teacher with BN in its FPN and head and distinct statistics per BN."""
    folder = tmp_path_factory.mktemp("bn_teacher")
    base = write_teacher_yaml(folder / "tiny_tnet.yaml")
    config = folder / "tnet.yaml"
    config.write_text(f'_BASE_: "{base}"\nMODEL:\n  FPN: {{NORM: BN}}\n  RETINANET: {{NORM: BN}}\n')
    torch.manual_seed(5)
    model = build_model(_cfg(config))
    _scramble_statistics(model)
    weights = folder / "model_final.pth"
    torch.save({"model": model.state_dict()}, weights)
    return config, weights


def _cycles_at_start(model) -> bool:
    return all(m._pos == 0 for m in model.modules() if isinstance(m, CycleBatchNormList))


@pytest.mark.parametrize("align,subpixel", [("la", False), ("la", True), ("fa", False), ("none", False)])
def test_student_head_normalizes_each_level_with_its_own_bn(align, subpixel):
    config = SYNTH / {"la": "la.yaml", "fa": "fa.yaml", "none": "snet.yaml"}[align]
    torch.manual_seed(0)
    model = build_model(_cfg(config, SHRINK + ["MODEL.ZOOMIN.SUBPIXEL_INFERENCE", subpixel])).eval()
    _scramble_statistics(model)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        fpn = model.backbone(x)
        features = [fpn[f] for f in model.head_in_features]
        logits, bbox_reg = model.head(features)
        up = getattr(model.head, "upsample", 1)

        def upsample(t):
            return torch.nn.functional.interpolate(t, scale_factor=up, mode="nearest") if up > 1 else t

        cls_towers = _towers_by_hand(model.head.cls_subnet, features)
        box_towers = _towers_by_hand(model.head.bbox_subnet, features)
    assert len(features) == 5 and _cycles_at_start(model)
    for level in range(len(features)):
        torch.testing.assert_close(logits[level], model.head.cls_score(upsample(cls_towers[level])),
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(bbox_reg[level], model.head.bbox_pred(upsample(box_towers[level])),
                                   rtol=1e-4, atol=1e-4)


def test_teacher_towers_normalize_each_level_with_its_own_bn(teacher):
    config, weights = teacher
    frozen = FrozenTeacher.from_files(_cfg(config), str(weights))
    image = torch.randint(0, 256, (3, 128, 160), dtype=torch.uint8)
    out = frozen.features([image], (128, 160), with_towers=True)
    model = frozen.model
    with torch.no_grad():
        fpn = out["fpn"]
        expected = [torch.cat(pair, 1) for pair in zip(_towers_by_hand(model.head.cls_subnet, fpn),
                                                       _towers_by_hand(model.head.bbox_subnet, fpn))]
    assert _cycles_at_start(model)
    for got, want in zip(out["tower"], expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("distill", ["fpn", "tower"])
def test_distillation_step_keeps_every_level_on_its_bn_and_the_teacher_frozen(teacher, distill):
    config, weights = teacher
    cfg = _cfg(SYNTH / "la.yaml", SHRINK + ["MODEL.ZOOMIN.DISTILL_FEATURES", distill])
    cfg.MODEL.ZOOMIN.TEACHER.CONFIG_FILE, cfg.MODEL.ZOOMIN.TEACHER.WEIGHTS = str(config), str(weights)
    torch.manual_seed(0)
    model = build_model_with_teacher(cfg).train()
    teacher_model = model.teacher.model
    before = {k: v.clone() for k, v in teacher_model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    # Two samples: in training a BN needs more than one value per channel (P7 is 1x1 here).
    batch = [{"image": torch.randint(0, 256, (3, 128, 128), generator=gen, dtype=torch.uint8),
              "teacher_image": torch.randint(0, 256, (3, 256, 256), generator=gen, dtype=torch.uint8),
              "instances": Instances((128, 128), gt_boxes=Boxes(torch.tensor([[5.0, 6.0, 20.0, 30.0],
                                                                              [40.0, 10.0, 90.0, 60.0]])),
                                     gt_classes=torch.tensor([0, 3]))} for _ in range(2)]
    with EventStorage():
        losses = model(batch)
    sum(losses.values()).backward()
    assert torch.isfinite(losses["loss_distill"]) and losses["loss_distill"] > 0
    assert _cycles_at_start(model) and _cycles_at_start(teacher_model)
    after = teacher_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
