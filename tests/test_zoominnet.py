"""ZoomInNet: frozen teacher, checkpoints, strict teacher loading, LA/FA shapes, the
cross-scale mapper, a short CSKD run, AKDP logging and the GFLOPs fingerprint.

Models are the synth CPU configs shrunk further (stem/res2 8, FPN 16 channels, 1 conv per
tower); the teacher is such a model with calibrated BN statistics, saved once per module.
Everything runs on one torch thread: on a shared 2-core machine that is several times faster
than two threads for these tiny convolutions.
"""
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoominnet_d2  # noqa: F401  (compat fixes first)
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from detectron2.solver import build_optimizer
from detectron2.structures import BoxMode, Boxes, Instances
from detectron2.utils.events import EventStorage
from PIL import Image

from zoominnet_d2 import ConfigError, add_zoominnet_config
from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper, scale_transforms
from zoominnet_d2.modeling import ZoomInNet, akdp_masks_batch, build_model_with_teacher
from zoominnet_d2.modeling.alignment import ZoomInRetinaNetHead
from zoominnet_d2.modeling.teacher import load_teacher_weights
from zoominnet_d2.modeling.losses import position_aware_l2

from tiny_models import write_teacher_yaml

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "configs" / "synth"
ALIGN_CONFIGS = {"la": "la.yaml", "fa": "fa.yaml", "none": "snet.yaml"}
SHRINK = {
    "MODEL.RESNETS.STEM_OUT_CHANNELS": 8,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 8,
    "MODEL.FPN.OUT_CHANNELS": 16,
    "MODEL.RETINANET.NUM_CONVS": 1,
}
ODD_SIZES = [(97, 131), (128, 128), (200, 77)]


# --------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _shrink_opts():
    return [x for kv in SHRINK.items() for x in kv]


def make_cfg(align="la", teacher=None, opts=()):
    """A shrunk synth student config for ``align``; with ``teacher`` (files), distilling."""
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(SYNTH / ALIGN_CONFIGS[align]))
    cfg.merge_from_list(_shrink_opts() + list(opts))
    cfg.MODEL.DEVICE = "cpu"
    if teacher is not None:
        cfg.MODEL.ZOOMIN.TEACHER.CONFIG_FILE = str(teacher.config)
        cfg.MODEL.ZOOMIN.TEACHER.WEIGHTS = str(teacher.weights)
    return cfg


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A shrunk synth teacher (256 px) saved to disk: .config, .weights, .state (a copy).

    Its BN running statistics are calibrated on noise (cumulative average) so that in eval
    mode its features have a sane scale and any drift of the statistics would be visible.
    """
    folder = tmp_path_factory.mktemp("teacher")
    config = write_teacher_yaml(folder / "tnet.yaml")
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(123)
    model = build_model(cfg)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns, "the synth teacher is expected to have trainable BN"
    for bn in bns:
        bn.momentum = None
    model.train()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for _ in range(2):
            x = torch.randint(0, 256, (2, 3, 128, 128), generator=gen).float()
            model.backbone((x - model.pixel_mean) / model.pixel_std)
    for bn in bns:
        bn.momentum = 0.1
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    weights = folder / "model_final.pth"
    torch.save({"model": state}, weights)
    return SimpleNamespace(config=config, weights=weights, state=state, folder=folder)


def make_instances(h, w, boxes, classes=None):
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    if classes is None:
        classes = [i % 10 for i in range(len(inst.gt_boxes))]
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


def make_input(h, w, boxes=None, seed=0, scale=2):
    """Random uint8 student image (3, h, w), teacher image (3, s*h, s*w) and boxes."""
    gen = torch.Generator().manual_seed(seed)
    if boxes is None:  # two boxes inside the image, one small, one larger
        boxes = [[0.1 * w, 0.1 * h, 0.3 * w, 0.35 * h], [0.5 * w, 0.4 * h, 0.95 * w, 0.9 * h]]
    return {
        "image": torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8),
        "teacher_image": torch.randint(0, 256, (3, scale * h, scale * w), generator=gen,
                                       dtype=torch.uint8),
        "instances": make_instances(h, w, boxes),
    }


def train_step(model, optimizer, batch):
    with EventStorage():
        losses = model(batch)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    return {k: v.item() for k, v in losses.items()}


# --------------------------------------------------------------------------------------
# the frozen teacher
# --------------------------------------------------------------------------------------


def test_teacher_frozen_during_student_training(teacher):
    cfg = make_cfg("la", teacher)
    torch.manual_seed(0)
    model = build_model_with_teacher(cfg)
    frozen = model.teacher.model
    teacher_params = list(frozen.parameters())
    assert teacher_params and all(not p.requires_grad for p in teacher_params)
    # Loaded exactly from the checkpoint.
    for k, v in frozen.state_dict().items():
        assert torch.equal(v, teacher.state[k]), k

    optimizer = build_optimizer(cfg, model)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not in_optimizer & {id(p) for p in teacher_params}
    assert {id(p) for p in model.parameters() if p.requires_grad} <= in_optimizer
    assert not any(n.startswith("teacher") for n, _ in model.named_parameters())

    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # as SimpleTrainer does
    assert model.training and not frozen.training
    batch = [make_input(64, 64, seed=1), make_input(64, 64, seed=2)]
    for _ in range(3):
        losses = train_step(model, optimizer, batch)
        assert math.isfinite(losses["loss_distill"]) and losses["loss_distill"] > 0
        model.train()
    assert not frozen.training
    assert all(m.training is False for m in frozen.modules())
    assert all(p.grad is None for p in teacher_params)
    # Parameters *and* buffers (BN running mean/var, num_batches_tracked): bit-identical.
    for k, v in frozen.state_dict().items():
        assert torch.equal(v, teacher.state[k]), f"teacher {k} changed"
    bn_means = [k for k in teacher.state if k.endswith("running_mean")]
    assert bn_means and any(teacher.state[k].abs().sum() > 0 for k in bn_means)
    # ... while the student did train.
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if "weight" in k)


def test_missing_teacher_image_is_a_clear_error(teacher):
    model = build_model_with_teacher(make_cfg("none", teacher))
    batch = [make_input(64, 64)]
    del batch[0]["teacher_image"]
    with EventStorage(), pytest.raises(KeyError, match="teacher_image"):
        model(batch)


# --------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------


def test_state_dict_has_no_teacher_keys_by_default(teacher):
    model = build_model_with_teacher(make_cfg("la", teacher))
    keys = list(model.state_dict())
    assert keys and not [k for k in keys if k.startswith("teacher.")]


def test_state_dict_with_teacher_when_asked(teacher):
    cfg = make_cfg("la", teacher, ["MODEL.ZOOMIN.TEACHER.SAVE_IN_CHECKPOINT", True])
    model = build_model_with_teacher(cfg)
    state = model.state_dict()
    teacher_keys = {k[len("teacher."):] for k in state if k.startswith("teacher.")}
    assert teacher_keys == set(teacher.state)
    assert torch.equal(state["teacher.head.cls_score.weight"], teacher.state["head.cls_score.weight"])
    # The student's own keys are still there.
    assert "head.cls_score.weight" in state and "backbone.fpn_lateral3.weight" in state


@pytest.mark.parametrize("save_teacher", [False, True])
def test_student_checkpoint_loads_without_teacher_files(teacher, tmp_path, save_teacher):
    # A private copy of the teacher's files, deleted before evaluation.
    tdir = tmp_path / "teacher"
    tdir.mkdir()
    files = SimpleNamespace(config=write_teacher_yaml(tdir / "tnet.yaml"), weights=tdir / "t.pth")
    files.weights.write_bytes(teacher.weights.read_bytes())
    cfg = make_cfg("la", files, ["MODEL.ZOOMIN.TEACHER.SAVE_IN_CHECKPOINT", save_teacher])
    torch.manual_seed(0)
    model = build_model_with_teacher(cfg)
    train_step(model, build_optimizer(cfg, model), [make_input(64, 64)])
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("student")
    files.weights.unlink()
    files.config.unlink()

    eval_model = build_model(cfg)
    assert eval_model.teacher is None
    DetectionCheckpointer(eval_model).load(str(tmp_path / "student.pth"))
    trained, loaded = model.state_dict(), eval_model.state_dict()
    student_keys = {k for k in trained if not k.startswith("teacher.")}
    assert set(loaded) == student_keys
    for k in student_keys:
        assert torch.equal(trained[k], loaded[k]), k
    eval_model.eval()
    with torch.no_grad():
        out = eval_model([{"image": make_input(97, 131)["image"], "height": 97, "width": 131}])
    assert out[0]["instances"].image_size == (97, 131)


# --------------------------------------------------------------------------------------
# strict teacher loading and config checks
# --------------------------------------------------------------------------------------


def _corrupt(state, kind):
    state = dict(state)
    if kind == "missing":
        key = "backbone.fpn_lateral4.weight"
        del state[key]
    elif kind == "unexpected":
        key = "backbone.fpn_extra.weight"
        state[key] = torch.zeros(3)
    else:
        key = "head.cls_score.weight"
        state[key] = torch.zeros(5, 16, 3, 3)
    return state, key


@pytest.mark.parametrize("kind", ["missing", "unexpected", "mis-shaped"])
def test_teacher_checkpoint_must_fit_exactly(teacher, tmp_path, kind):
    state, key = _corrupt(teacher.state, kind)
    bad = tmp_path / f"teacher_{kind}.pth"
    torch.save({"model": state}, bad)
    cfg = make_cfg("la", SimpleNamespace(config=teacher.config, weights=bad))
    with pytest.raises(ValueError) as info:
        build_model_with_teacher(cfg)
    msg = str(info.value)
    assert key in msg and str(bad) in msg and kind in msg


def test_load_teacher_weights_accepts_a_plain_state_dict(teacher, tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(teacher.state, plain)  # no {"model": ...} wrapper
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(teacher.config))
    cfg.MODEL.DEVICE = "cpu"
    t = build_model(cfg)
    load_teacher_weights(t, str(plain))
    assert torch.equal(t.state_dict()["head.bbox_pred.weight"], teacher.state["head.bbox_pred.weight"])
    with pytest.raises(ValueError, match="plain.pth"):  # the student's keys differ (no P7 ...)
        load_teacher_weights(build_model(make_cfg("fa")), str(plain))


def test_teacher_of_other_width_names_its_config(teacher):
    cfg = make_cfg("la", teacher, ["MODEL.FPN.OUT_CHANNELS", 32])
    with pytest.raises(ValueError, match="MODEL.FPN.OUT_CHANNELS") as info:
        build_model_with_teacher(cfg)
    assert str(teacher.config) in str(info.value) and "16 != student 32" in str(info.value)


def test_unknown_akdp_scope_names_the_key():
    with pytest.raises(ValueError, match="MODEL.ZOOMIN.AKDP.SCOPE .*'levels'"):
        build_model(make_cfg("la", opts=["MODEL.ZOOMIN.AKDP.SCOPE", "levels"]))


def test_missing_teacher_weights_file(teacher, tmp_path):
    missing = tmp_path / "nowhere" / "teacher.pth"
    cfg = make_cfg("la", SimpleNamespace(config=teacher.config, weights=missing))
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_model_with_teacher(cfg)


def test_empty_teacher_weights(teacher):
    cfg = make_cfg("la", teacher)
    cfg.MODEL.ZOOMIN.TEACHER.WEIGHTS = ""
    with pytest.raises(ValueError, match="WEIGHTS"):
        build_model_with_teacher(cfg)


def test_missing_teacher_config_file(teacher, tmp_path):
    missing = tmp_path / "tnet_missing.yaml"
    cfg = make_cfg("la", SimpleNamespace(config=missing, weights=teacher.weights))
    with pytest.raises(ConfigError, match=rf"MODEL\.ZOOMIN\.TEACHER\.CONFIG_FILE: no such file: '{missing}'"):
        build_model_with_teacher(cfg)


@pytest.mark.parametrize("align", ["la", "fa", "none"])
def test_teacher_at_wrong_input_size(teacher, tmp_path, align):
    config = write_teacher_yaml(tmp_path / "tnet192.yaml", square=192)
    cfg = make_cfg(align, SimpleNamespace(config=config, weights=teacher.weights))
    with pytest.raises(ValueError, match="INPUT_SCALE") as info:
        build_model_with_teacher(cfg)
    assert "192" in str(info.value) and "128" in str(info.value)


@pytest.mark.parametrize("align", ["la", "fa"])
def test_la_fa_need_a_2x_teacher(teacher, tmp_path, align):
    config = write_teacher_yaml(tmp_path / "tnet384.yaml", square=384)
    cfg = make_cfg(align, SimpleNamespace(config=config, weights=teacher.weights),
                   ["MODEL.ZOOMIN.TEACHER.INPUT_SCALE", 3.0])
    with pytest.raises(ValueError, match="2x"):
        build_model_with_teacher(cfg)


def test_direct_cskd_with_a_3x_teacher(teacher, tmp_path):
    """ALIGN none pools the teacher's maps to the student's grid: any integer scale works."""
    config = write_teacher_yaml(tmp_path / "tnet384.yaml", square=384)
    cfg = make_cfg("none", SimpleNamespace(config=config, weights=teacher.weights),
                   ["MODEL.ZOOMIN.TEACHER.INPUT_SCALE", 3.0])
    model = build_model_with_teacher(cfg)
    with EventStorage():
        losses = model([make_input(97, 131, scale=3)])
    assert torch.isfinite(losses["loss_distill"]) and losses["loss_distill"] > 0


# --------------------------------------------------------------------------------------
# alignment shapes, odd image sizes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [[(97, 131)], ODD_SIZES], ids=["97x131", "mixed"])
@pytest.mark.parametrize("align", ["la", "fa", "none"])
def test_alignment_shapes_odd_sizes(teacher, align, sizes):
    model = build_model_with_teacher(make_cfg(align, teacher))
    model.train()
    batch = [make_input(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    with EventStorage():
        losses = model(batch)
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_distill"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_distill"] > 0

    # The grids, checked directly.
    images = model.preprocess_image(batch)
    H, W = images.tensor.shape[-2:]
    # Padded to the coarsest level's stride (128 for P3-P7, 64 for FA's P2-P6), so the 2x
    # teacher batch has exactly twice the student's grids.
    coarsest = max(model.backbone.output_shape()[f].stride for f in model.head_in_features)
    assert coarsest == (64 if align == "fa" else 128)
    assert H % coarsest == 0 and W % coarsest == 0
    with torch.no_grad():
        feats = model.backbone(images.tensor)
        features = [feats[f] for f in model.head_in_features]
        logits, deltas, towers = model.head.forward_with_towers(features)
        anchors = model.anchor_generator(features)
        t_out = model.teacher.features([x["teacher_image"] for x in batch], (2 * H, 2 * W),
                                       with_towers=True)
    A = model.anchor_generator.num_anchors[0]
    K = model.num_classes
    u = 2 if align == "la" else 1
    assert model.teacher.model.head_in_features == ["p3", "p4", "p5", "p6", "p7"]
    if align == "fa":
        assert model.head_in_features == ["p2", "p3", "p4", "p5", "p6"]
    else:
        assert model.head_in_features == ["p3", "p4", "p5", "p6", "p7"]
    total = 0
    for f, lg, dl, tw, anc, t_fpn, t_tower in zip(features, logits, deltas, towers, anchors,
                                                   t_out["fpn"], t_out["tower"]):
        n, c, h, w = f.shape
        assert lg.shape == (n, A * K, u * h, u * w)
        assert dl.shape == (n, A * 4, u * h, u * w)
        assert tw.shape == (n, 2 * c, u * h, u * w)
        assert len(anc) == (u * h) * (u * w) * A
        total += (u * h) * (u * w) * A
        if align in ("la", "fa"):
            # LA: teacher level l on the 2x head grid; FA: student p(l) == teacher p(l+1).
            assert t_fpn.shape == (n, c, u * h, u * w)
            assert t_tower.shape == tw.shape
        else:
            assert t_fpn.shape == (n, c, 2 * h, 2 * w)
    assert sum(len(a) for a in anchors) == total


@pytest.mark.parametrize("align", ["la", "fa", "none"])
def test_tower_distillation_odd_size(teacher, align):
    model = build_model_with_teacher(make_cfg(align, teacher, ["MODEL.ZOOMIN.DISTILL_FEATURES", "tower"]))
    with EventStorage():
        losses = model([make_input(97, 131)])
    assert torch.isfinite(losses["loss_distill"]) and losses["loss_distill"] > 0


@pytest.mark.parametrize("align", ["la", "fa"])
def test_inference_odd_sizes(align):
    model = build_model(make_cfg(align)).eval()
    batch = [{"image": make_input(h, w)["image"], "height": 2 * h, "width": 2 * w}
             for h, w in ODD_SIZES]
    with torch.no_grad():
        out = model(batch)
    for (h, w), o in zip(ODD_SIZES, out):
        inst = o["instances"]
        assert inst.image_size == (2 * h, 2 * w)
        assert len(inst) > 0 and torch.isfinite(inst.pred_boxes.tensor).all()


def test_la_anchors_on_the_2x_grid():
    """LA anchors: the teacher's anchors (strides 8..128, sizes 24..) expressed at 1x."""
    model = build_model(make_cfg("la"))
    gen = model.anchor_generator
    assert list(gen.strides) == [4, 8, 16, 32, 64]
    f = [torch.zeros(1, 16, 2, 3)]
    anchors = gen(f)[0].tensor.view(4, 6, -1, 4)  # (2H, 2W, A, 4)
    centers = (anchors[..., :2] + anchors[..., 2:]) / 2
    assert torch.allclose(centers[1, 2, 0], torch.tensor([2 * 4.0, 1 * 4.0]))  # (x, y) of (1, 2)
    sizes = (anchors[0, 0, :, 2:] - anchors[0, 0, :, :2]).prod(-1).sqrt()
    assert torch.allclose(sizes.round(decimals=2).unique().sort().values,
                          torch.tensor([12.0, 15.12, 19.05]), atol=0.05)


def test_head_without_upsampling_is_retinanet_head():
    cfg = make_cfg("none")
    model = build_model(cfg)
    shapes = [model.backbone.output_shape()[f] for f in model.head_in_features]
    plain = RetinaNetHead(cfg, shapes)
    ours = ZoomInRetinaNetHead(cfg, shapes, upsample=1)
    ours.load_state_dict(plain.state_dict())
    feats = [torch.randn(1, 16, s, s) for s in (8, 4, 2, 1, 1)]
    with torch.no_grad():
        for a, b in zip(plain(feats), ours(feats)):
            for x, y in zip(a, b):
                assert torch.equal(x, y)


# --------------------------------------------------------------------------------------
# the cross-scale mapper
# --------------------------------------------------------------------------------------


def _write_original(path: Path, h=75, w=101, seed=0) -> np.ndarray:
    """High-frequency content (1-px checkerboard + noise) with a left/right asymmetry, so
    that a 2x upsample of the 1x view differs clearly from the 2x view of the original, and
    left/right and top/bottom asymmetries, so that flips show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = 60 + 80 * ((yy + xx) % 2)[..., None] + rng.integers(0, 40, (h, w, 3))
    img[:, : w // 3] //= 3  # dark left third
    img[: h // 4] += 60  # bright top quarter
    img = img.clip(0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)  # PNG: lossless
    return img


def _dataset_dict(path: Path, h=75, w=101):
    return {
        "file_name": str(path), "height": h, "width": w, "image_id": 0,
        "annotations": [{"bbox": [10.0, 20.0, 30.0, 40.0], "bbox_mode": BoxMode.XYWH_ABS,
                         "category_id": 3, "iscrowd": 0}],
    }


def _pil_resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1))).int()


@pytest.mark.parametrize("flip", ["horizontal", "vertical"])
def test_mapper_teacher_is_2x_of_original_with_same_flip(tmp_path, flip):
    path = tmp_path / "img.png"
    _write_original(path)
    original = utils.read_image(str(path), format="BGR")  # what the mapper reads
    cfg = make_cfg("la")
    augs = [T.Resize((64, 64)), T.RandomFlip(prob=1.0, horizontal=flip == "horizontal",
                                             vertical=flip == "vertical")]
    mapper = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True, augmentations=augs)
    out = mapper(_dataset_dict(path))
    student, teacher_img = out["image"], out["teacher_image"]
    assert student.dtype == teacher_img.dtype == torch.uint8
    assert student.shape == (3, 64, 64) and teacher_img.shape == (3, 128, 128)

    axis = 1 if flip == "horizontal" else 0
    ref_t = np.flip(_pil_resize(original, 128, 128), axis)
    ref_s = np.flip(_pil_resize(original, 64, 64), axis)
    assert (teacher_img.int() - _chw(ref_t)).abs().max() <= 1
    assert (student.int() - _chw(ref_s)).abs().max() <= 1
    # Not the unflipped view ...
    unflipped = _chw(_pil_resize(original, 128, 128))
    assert (teacher_img.int() - unflipped).abs().float().mean() > 10
    # ... and not an upsampled student image (which the exact reference above would not
    # match within 1 grey level: mean differences of ~8 here).
    for mode in ("nearest", "bilinear"):
        up = F.interpolate(student[None].float(), scale_factor=2, mode=mode)[0]
        assert (teacher_img.float() - up).abs().mean() > 4, mode

    # Boxes in the student's frame, flipped the same way.
    box = out["instances"].gt_boxes.tensor[0]
    x0, y0, x1, y1 = 10 * 64 / 101, 20 * 64 / 75, 40 * 64 / 101, 60 * 64 / 75
    expected = [64 - x1, y0, 64 - x0, y1] if flip == "horizontal" else [x0, 64 - y1, x1, 64 - y0]
    assert torch.allclose(box, torch.tensor(expected), atol=1e-3)
    assert out["instances"].gt_classes.tolist() == [3]


def test_mapper_random_flip_from_config_is_shared(tmp_path):
    path = tmp_path / "img.png"
    _write_original(path)
    original = utils.read_image(str(path), format="BGR")
    cfg = make_cfg("la", opts=["INPUT.SQUARE_SIZE", 64, "INPUT.RANDOM_FLIP", "horizontal"])
    mapper = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)
    refs = {
        flipped: (_chw(np.flip(_pil_resize(original, 64, 64), 1) if flipped else _pil_resize(original, 64, 64)),
                  _chw(np.flip(_pil_resize(original, 128, 128), 1) if flipped else _pil_resize(original, 128, 128)))
        for flipped in (False, True)
    }
    np.random.seed(0)
    seen = set()
    for _ in range(8):
        out = mapper(_dataset_dict(path))
        matches = [f for f, (s, _) in refs.items() if (out["image"].int() - s).abs().max() <= 1]
        assert len(matches) == 1
        flipped = matches[0]
        seen.add(flipped)
        assert (out["teacher_image"].int() - refs[flipped][1]).abs().max() <= 1
    assert seen == {False, True}


def test_mapper_shortest_edge_resize_teacher_exactly_2x(tmp_path):
    path = tmp_path / "img.png"
    _write_original(path)
    original = utils.read_image(str(path), format="BGR")
    cfg = make_cfg("la", opts=["INPUT.SQUARE_SIZE", 0, "INPUT.MIN_SIZE_TRAIN", (64,),
                               "INPUT.MAX_SIZE_TRAIN", 1000, "INPUT.RANDOM_FLIP", "none"])
    out = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)(_dataset_dict(path))
    h, w = out["image"].shape[-2:]
    assert h == 64 and w == 86  # 101 * 64 / 75 = 86.2
    assert out["teacher_image"].shape == (3, 2 * h, 2 * w)
    assert (out["teacher_image"].int() - _chw(_pil_resize(original, 2 * h, 2 * w))).abs().max() <= 1


def test_mapper_eval_and_student_only(tmp_path):
    path = tmp_path / "img.png"
    _write_original(path)
    cfg = make_cfg("la")
    out = ZoomInDatasetMapper(cfg, is_train=False)(_dataset_dict(path))
    assert out["image"].shape == (3, 128, 128)  # INPUT.SQUARE_SIZE
    assert "teacher_image" not in out and "annotations" not in out and "instances" not in out
    out = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=False)(_dataset_dict(path))
    assert "teacher_image" not in out and len(out["instances"]) == 1


def test_mapper_rejects_fractional_scale():
    cfg = make_cfg("none", opts=["MODEL.ZOOMIN.TEACHER.INPUT_SCALE", 1.5])
    with pytest.raises(ValueError, match="INPUT_SCALE"):
        ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)


def test_mapper_keeps_configured_crop(tmp_path):
    """INPUT.CROP.ENABLED is honoured (as by DatasetMapper), not silently dropped, with and
    without the teacher (tests/test_cross_scale_crops.py checks the regions)."""
    path = tmp_path / "img.png"
    _write_original(path)
    cfg = make_cfg("la", opts=["INPUT.CROP.ENABLED", True, "INPUT.CROP.TYPE", "absolute",
                               "INPUT.CROP.SIZE", [40, 50]])
    student_only = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=False)
    assert any(isinstance(a, T.RandomCrop) for a in student_only.augmentations.augs)
    assert student_only(_dataset_dict(path))["image"].shape == (3, 128, 128)
    with_teacher = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)
    out = with_teacher(_dataset_dict(path))
    assert out["image"].shape == (3, 128, 128) and out["teacher_image"].shape == (3, 256, 256)


def test_scale_transforms():
    tl = T.TransformList([T.ResizeTransform(75, 101, 64, 64), T.HFlipTransform(64),
                          T.NoOpTransform(), T.ResizeTransform(64, 64, 32, 48),
                          T.VFlipTransform(32)])
    out = scale_transforms(tl, 2).transforms
    assert [type(t) for t in out] == [T.ResizeTransform, T.HFlipTransform, T.ResizeTransform,
                                      T.VFlipTransform]
    assert (out[0].h, out[0].w, out[0].new_h, out[0].new_w) == (75, 101, 128, 128)
    assert out[1].width == 128
    assert (out[2].h, out[2].w, out[2].new_h, out[2].new_w) == (128, 128, 64, 96)
    assert out[3].height == 64
    # A flip before the resize acts on the original.
    out = scale_transforms(T.TransformList([T.HFlipTransform(101), T.ResizeTransform(75, 101, 64, 64)]), 2)
    assert out.transforms[0].width == 101


def test_scale_transforms_rejects_unsupported_transforms():
    rotation = T.RotationTransform(64, 64, 30)
    with pytest.raises(NotImplementedError, match="RotationTransform"):
        scale_transforms(T.TransformList([T.ResizeTransform(75, 101, 64, 64), rotation]), 2)


# --------------------------------------------------------------------------------------
# a short CSKD run; no boxes; AKDP logging
# --------------------------------------------------------------------------------------


def _synthetic_samples(n, seed=0, size=128):
    """Noise with bright rectangles: the teacher sees the 128 px original, the student its
    2x2 average (64 px); boxes in the student's frame."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        img = rng.integers(60, 120, (size, size, 3)).astype(np.float32)
        boxes, classes = [], []
        for _ in range(3):
            w, h = rng.integers(10, 40, 2)
            x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
            img[y0:y0 + h, x0:x0 + w] = rng.integers(150, 255, 3)
            boxes.append([x0 / 2, y0 / 2, (x0 + w) / 2, (y0 + h) / 2])
            classes.append(int(rng.integers(0, 10)))
        t = torch.as_tensor(img.transpose(2, 0, 1))
        s = F.avg_pool2d(t[None], 2)[0]
        samples.append({"image": s.round().to(torch.uint8), "teacher_image": t.to(torch.uint8),
                        "instances": make_instances(size // 2, size // 2, boxes, classes)})
    return samples


def _cskd_run(teacher, weight, steps=36, clip=False):
    """The raw distillation loss (before its weight) of each step of a short LA CSKD run.

    Plain SGD unless ``clip``: the synth configs clip each parameter's gradient norm, which
    also lets the feature distance of a run without distillation shrink (to 0.78 of its
    start in 36 steps), so the control below is measured without it."""
    data = _synthetic_samples(4)
    cfg = make_cfg("la", teacher, ["MODEL.ZOOMIN.DISTILL_WEIGHT", weight, "SOLVER.CLIP_GRADIENTS.ENABLED", clip])
    torch.manual_seed(0)
    model = build_model_with_teacher(cfg)
    model.train()
    optimizer = build_optimizer(cfg, model)
    raw = []
    with EventStorage() as storage:
        for it in range(steps):
            losses = model([data[(2 * it) % 4], data[(2 * it + 1) % 4]])
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            storage.step()
            assert all(torch.isfinite(v) for v in losses.values()), it
            raw.append(losses["loss_distill"].item() / weight)
    return np.array(raw)


def test_short_cskd_run_decreases_distillation_loss(teacher):
    distilled = _cskd_run(teacher, 0.01)
    assert (distilled > 0).all()
    first, last = distilled[:5].mean(), distilled[-5:].mean()
    assert last < 0.5 * first, (first, last)
    # Control: with (almost) no distillation weight the same feature distance does not
    # shrink like that, so the decrease above is the distillation's doing.
    control = _cskd_run(teacher, 1e-5)
    assert control[-5:].mean() > 0.8 * control[:5].mean(), control
    assert last < 0.5 * control[-5:].mean()


def test_short_cskd_run_with_gradient_clipping_still_decreases_it_most(teacher):
    """With the synth configs' clipping the distance shrinks without distillation too, but
    the distilled run ends far below that control."""
    distilled = _cskd_run(teacher, 0.01, clip=True)
    control = _cskd_run(teacher, 1e-5, clip=True)
    assert distilled[-5:].mean() < 0.5 * distilled[:5].mean()
    assert distilled[-5:].mean() < 0.5 * control[-5:].mean(), (distilled, control)


def _distill_loss_with_teacher_p7_scaled(teacher, distill_scale, factor):
    """loss_distill of one fixed batch when the teacher's P7 map is ``factor`` x its own
    (its last conv's weight and bias multiplied: what AdamW's drift did to a real teacher)."""
    cfg = make_cfg("la", teacher, ["MODEL.ZOOMIN.DISTILL_SCALE", distill_scale])
    torch.manual_seed(0)
    model = build_model_with_teacher(cfg)
    p7 = model.teacher.model.backbone.top_block.p7
    with torch.no_grad():
        p7.weight.mul_(factor)
        p7.bias.mul_(factor)
    model.train()
    with EventStorage():
        return model([make_input(128, 160, seed=1), make_input(128, 160, seed=2)])["loss_distill"].item()


def test_level_rms_distillation_ignores_a_teacher_levels_scale(teacher):
    """DISTILL_SCALE "level_rms": a 30x teacher P7 leaves the loss as it is; "raw" (Eq. 19)
    grows with it, P7 (every position a key one at these sizes) taking over the loss."""
    normalized = [_distill_loss_with_teacher_p7_scaled(teacher, "level_rms", f) for f in (1.0, 30.0)]
    assert normalized[0] > 0
    assert math.isclose(normalized[0], normalized[1], rel_tol=1e-4), normalized
    raw = [_distill_loss_with_teacher_p7_scaled(teacher, "raw", f) for f in (1.0, 30.0)]
    assert raw[1] > 3 * raw[0], raw


def test_distill_levels_sums_only_the_chosen_levels(teacher):
    """DISTILL_LEVELS [0, 1, 2]: loss_distill is the weight times Eq. 21 of P3-P5's pairs
    alone, each computed here from the pairs the model distils (independent of the level loop)."""
    batch = [make_input(128, 160, seed=1), make_input(128, 160, seed=2)]

    def losses(opts):
        torch.manual_seed(0)
        model = build_model_with_teacher(make_cfg("la", teacher, opts))
        model.train()
        with EventStorage():
            return model, model(batch)["loss_distill"].item()

    model, chosen = losses(["MODEL.ZOOMIN.DISTILL_LEVELS", "[0, 1, 2]"])
    _, every = losses([])
    with torch.no_grad():
        pairs = model.inspect_distillation(batch)
    per_level = [position_aware_l2(t, s, m).item() for t, s, m in zip(pairs.teacher, pairs.student, pairs.masks)]
    weight = model.distill_weight
    assert math.isclose(chosen, weight * sum(per_level[:3]), rel_tol=1e-4), (chosen, per_level)
    assert math.isclose(every, weight * sum(per_level), rel_tol=1e-4), (every, per_level)
    assert per_level[3] > 0 and per_level[4] > 0


def test_distill_levels_out_of_range_names_the_key():
    with pytest.raises(ValueError, match="MODEL.ZOOMIN.DISTILL_LEVELS .*0..4"):
        build_model(make_cfg("la", opts=["MODEL.ZOOMIN.DISTILL_LEVELS", "[5]"]))


def test_unknown_distill_scale_names_the_key():
    with pytest.raises(ValueError, match="MODEL.ZOOMIN.DISTILL_SCALE"):
        build_model(make_cfg("la", opts=["MODEL.ZOOMIN.DISTILL_SCALE", "rms"]))


@pytest.mark.parametrize("align", ["la", "fa", "none"])
def test_no_boxes_zero_distillation_loss(teacher, align):
    model = build_model_with_teacher(make_cfg(align, teacher))
    model.train()
    empty = make_input(97, 131, boxes=[])
    with EventStorage() as storage:
        losses = model([empty])
    assert losses["loss_distill"].item() == 0.0
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert storage.latest()["akdp/key_fraction_l0"][0] == 0.0

    # Mixed with an image that has boxes: finite and positive.
    model.zero_grad()
    with EventStorage():
        losses = model([empty, make_input(97, 131, seed=3)])
    assert torch.isfinite(losses["loss_distill"]) and losses["loss_distill"] > 0
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("align", ["la", "fa"])
def test_key_fraction_logged_per_level(teacher, align):
    model = build_model_with_teacher(make_cfg(align, teacher))
    model.train()
    batch = [make_input(97, 131, seed=1), make_input(128, 128, seed=2)]
    with EventStorage() as storage:
        model(batch)
    latest = storage.latest()
    levels = len(model.head_in_features)
    assert sorted(k for k in latest if k.startswith("akdp/")) == [
        f"akdp/key_fraction_l{i}" for i in range(levels)]

    # The logged fractions are those of the AKDP masks on the prediction grid.
    images = model.preprocess_image(batch)
    with torch.no_grad():
        feats = model.backbone(images.tensor)
    features = [feats[f] for f in model.head_in_features]
    anchors = model.anchor_generator(features)
    u = 2 if align == "la" else 1
    grids = [(u * f.shape[-2], u * f.shape[-1]) for f in features]
    masks = akdp_masks_batch(anchors, grids, [x["instances"].gt_boxes for x in batch])
    for i, mask in enumerate(masks):
        value = latest[f"akdp/key_fraction_l{i}"][0]
        assert 0.0 < value <= 1.0
        assert value == pytest.approx(mask.float().mean().item())


def test_zoominnet_is_registered():
    from detectron2.modeling import META_ARCH_REGISTRY

    assert META_ARCH_REGISTRY.get("ZoomInNet") is ZoomInNet


# --------------------------------------------------------------------------------------
# the GFLOPs fingerprint (docs/DESIGN.md section 3)
# --------------------------------------------------------------------------------------


def test_gflops_fingerprint_of_synth_configs():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from count_flops import count_gflops, load_config
    finally:
        sys.path.remove(str(REPO / "tools"))
    size = 128
    flops = {name: count_gflops(load_config(str(SYNTH / f"{name}.yaml")), size) * 1e9
             for name in ("snet", "la", "fa", "fa_thin")}
    assert flops["la"] > flops["snet"]
    assert flops["fa"] > flops["fa_thin"] > flops["snet"]
    # cskd_* configs count like their students (the teacher is never built for FLOPs).
    assert count_gflops(load_config(str(SYNTH / "cskd_la.yaml")), size) * 1e9 == flops["la"]

    # LA - SNet == 3 extra copies of (cls_score + bbox_pred) on the 1x grid: the final convs
    # run on 4x as many positions.
    cfg = load_config(str(SYNTH / "la.yaml"))
    c_in = cfg.MODEL.FPN.OUT_CHANNELS  # RetinaNet tower convs keep the FPN width
    a = len(cfg.MODEL.ANCHOR_GENERATOR.SIZES[0]) * len(cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0])
    k = cfg.MODEL.RETINANET.NUM_CLASSES
    strides = [8, 16, 32, 64, 128]  # P3-P7 at 1x
    positions = sum(math.ceil(size / s) ** 2 for s in strides)
    one_copy = positions * 9 * c_in * (a * k + a * 4)
    delta = flops["la"] - flops["snet"]
    assert delta == pytest.approx(3 * one_copy, rel=0.005), (delta, 3 * one_copy)


# --------------------------------------------------------------------------------------
# initialisation, crowded images, broken images
# --------------------------------------------------------------------------------------


def test_pkl_initialisation_does_not_collide_with_the_teacher(teacher, tmp_path):
    """MODEL.WEIGHTS in Detectron2's model-zoo .pkl format (suffix-matched names) loads into
    the student of a model that holds a teacher: no "multiple keys" error, the student gets
    the weights, the teacher keeps its own."""
    import pickle

    model = build_model_with_teacher(make_cfg("la", teacher))
    donor = build_model(make_cfg("la"))  # a different random init, same architecture
    blobs = {k.replace("backbone.bottom_up.", ""): v.numpy() for k, v in donor.state_dict().items()
             if k.startswith("backbone.bottom_up.")}
    path = tmp_path / "R-tiny.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": blobs, "__author__": "test", "matching_heuristics": True}, f)
    teacher_before = {k: v.clone() for k, v in model.teacher.model.state_dict().items()}
    DetectionCheckpointer(model).load(str(path))
    for k, v in donor.state_dict().items():
        if k.startswith("backbone.bottom_up.") and v.dtype.is_floating_point:
            assert torch.equal(model.state_dict()[k], v), k
    for k, v in model.teacher.model.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k


def test_distillation_with_1000_boxes_is_finite(teacher):
    """A crowded image (1,000 small boxes, VisDrone's worst case) gives a finite, positive
    loss_distill and finite gradients."""
    torch.manual_seed(0)
    model = build_model_with_teacher(make_cfg("la", teacher)).train()
    xy = torch.rand(1000, 2) * 120
    wh = torch.rand(1000, 2) * 12 + 2
    boxes = torch.cat([xy, (xy + wh).clamp(max=128)], dim=1).tolist()
    with EventStorage():
        losses = model([make_input(128, 128, boxes)])
    assert math.isfinite(losses["loss_distill"].item()) and losses["loss_distill"].item() > 0
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_truncated_jpeg_is_a_clear_error_naming_the_file(tmp_path):
    """A JPEG cut short (header intact, data missing) fails in the mapper with the file name,
    not deep inside PIL or the training loop."""
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:400])
    cfg = make_cfg("la")
    mapper = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)
    with pytest.raises(ValueError, match="cut.jpg"):
        mapper({"file_name": str(path), "height": 64, "width": 64, "image_id": "cut", "annotations": []})
