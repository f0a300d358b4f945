"""``SafeDetectionCheckpointer`` on the installed Detectron2: files that would run code are
refused, plain ones (.pth, model-zoo .pkl, pycls .pyth) load, and path queries
(``MODEL.WEIGHTS x.pth?matching_heuristics=True``) are honoured, unknown ones rejected.

Detectron2 main handles the query in ``DetectionCheckpointer``; on v0.6 the project's
back-port does. Both must give what these tests assert.
"""
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes before Detectron2)
from detectron2.checkpoint import DetectionCheckpointer

from zoominnet_d2.checkpoint import SafeDetectionCheckpointer, UnsafeCheckpointError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Pwn:
    """Unpickling this runs ``touch <path>``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _tiny_model():
    return torch.nn.Sequential(torch.nn.Linear(2, 3))


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_code_running_checkpoint_is_refused(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    payload = {"model": {"0.weight": np.zeros((3, 2), np.float32)}, "__author__": "x", "extra": Pwn(marker)}
    if suffix == ".pth":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(UnsafeCheckpointError) as e:
        SafeDetectionCheckpointer(_tiny_model()).load(str(path))
    msg = str(e.value)
    assert str(path) in msg and "--unsafe-load-checkpoint" in msg
    assert f"it needs {os.system.__module__}.system" in msg
    assert not marker.exists()


def test_plain_checkpoints_load(tmp_path):
    """A Detectron2 .pth, a model-zoo .pkl of numpy arrays (protocols 2 and 4, numpy 1's
    ``numpy.core`` names too) and a Caffe2-style ``blobs`` .pkl all load."""
    weight = np.arange(6, dtype=np.float32).reshape(3, 2)
    bias = np.array([1.0, 2.0, 3.0], dtype=np.float32)

    def check(path):
        model = _tiny_model()
        SafeDetectionCheckpointer(model).load(str(path))
        assert torch.equal(model[0].weight.detach(), torch.from_numpy(weight))
        assert torch.equal(model[0].bias.detach(), torch.from_numpy(bias))

    pth = tmp_path / "model.pth"
    torch.save({"model": {"0.weight": torch.from_numpy(weight), "0.bias": torch.from_numpy(bias)},
                "iteration": 3}, pth)
    check(pth)
    numpy_pth = tmp_path / "numpy.pth"  # numpy arrays in a .pth (as some converters write)
    torch.save({"model": {"0.weight": weight, "0.bias": bias}, "__author__": "test",
                "matching_heuristics": True}, numpy_pth)
    check(numpy_pth)
    zoo = {"model": {"0.weight": weight, "0.bias": bias}, "__author__": "test", "matching_heuristics": True}
    for protocol in (2, 4):
        data = pickle.dumps(zoo, protocol=protocol)
        path = tmp_path / f"zoo{protocol}.pkl"
        path.write_bytes(data)
        check(path)
    legacy = tmp_path / "legacy.pkl"  # as pickled by numpy 1 (e.g. Detectron2's R-50.pkl)
    legacy.write_bytes(pickle.dumps(zoo, protocol=2).replace(b"numpy._core", b"numpy.core"))
    check(legacy)
    caffe2 = tmp_path / "caffe2.pkl"
    caffe2.write_bytes(pickle.dumps({"blobs": {"0.weight": weight, "0.bias": bias,
                                               "0.bias_momentum": bias}}, protocol=2))
    check(caffe2)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 3))


def _short_names_file(tmp_path, extra=None):
    """A checkpoint naming the parameters ``weight``/``bias`` where the model has
    ``0.weight``/``0.bias``: only Detectron2's name-matching heuristics can load it."""
    weight, bias = torch.arange(6.0).reshape(3, 2), torch.tensor([1.0, 2.0, 3.0])
    path = tmp_path / "short_names.pth"
    torch.save({"model": {"weight": weight, "bias": bias}, **(extra or {})}, path)
    return path, weight, bias


def test_matching_heuristics_query_is_honoured(tmp_path):
    path, weight, bias = _short_names_file(tmp_path)
    model = _model()
    SafeDetectionCheckpointer(model).load(f"{path}?matching_heuristics=True")
    assert torch.equal(model[0].weight.detach(), weight)
    assert torch.equal(model[0].bias.detach(), bias)
    for plain in (str(path), f"{path}?matching_heuristics=False"):  # without: names do not match
        model = _model()
        before = model[0].weight.detach().clone()
        SafeDetectionCheckpointer(model).load(plain)
        assert torch.equal(model[0].weight.detach(), before), plain


def test_query_is_handled_as_detectron2_main_does(tmp_path):
    """The project's checkpointer gives what a plain Detectron2 (main) checkpointer gives for
    the same query; on v0.6, whose own checkpointer cannot open ``x.pth?...``, it gives
    what main gives."""
    path, weight, _ = _short_names_file(tmp_path)
    if not hasattr(DetectionCheckpointer, "_torch_load"):
        with pytest.raises(AssertionError, match="not found"):
            DetectionCheckpointer(_model()).load(f"{path}?matching_heuristics=True")
        pytest.skip("Detectron2 v0.6: no query handling to compare with (the back-port's result is "
                    "checked in test_matching_heuristics_query_is_honoured)")
    ours, theirs = _model(), _model()
    SafeDetectionCheckpointer(ours).load(f"{path}?matching_heuristics=True")
    DetectionCheckpointer(theirs).load(f"{path}?matching_heuristics=True")
    assert torch.equal(ours[0].weight.detach(), theirs[0].weight.detach())
    assert torch.equal(ours[0].weight.detach(), weight)


@pytest.mark.parametrize("query", ["foo=1", "matching_heuristics=True&strict=1"])
def test_unknown_query_is_rejected(tmp_path, query):
    path, _, _ = _short_names_file(tmp_path)
    model = _model()
    before = model[0].weight.detach().clone()
    with pytest.raises(ValueError, match=r"Unsupported query remaining: .*(foo|strict)") as e:
        SafeDetectionCheckpointer(model).load(f"{path}?{query}")
    assert str(path) in str(e.value)
    assert torch.equal(model[0].weight.detach(), before)


def test_query_does_not_bypass_safe_loading(tmp_path):
    """The query path reads the file through the safe loader too."""
    import datetime

    path, _, _ = _short_names_file(tmp_path, extra={"saved_on": datetime.date(2024, 1, 1)})
    with pytest.raises(UnsafeCheckpointError, match="datetime.date"):
        SafeDetectionCheckpointer(_model()).load(f"{path}?matching_heuristics=True")
    model = _model()
    SafeDetectionCheckpointer(model, allow_unsafe=True).load(f"{path}?matching_heuristics=True")
    assert torch.equal(model[0].bias.detach(), torch.tensor([1.0, 2.0, 3.0]))


def test_pyth_checkpoint_loads_safely(tmp_path):
    """A pycls ``.pyth`` file (``model_state``) loads by name matching; one needing a
    non-data callable is refused."""
    import datetime

    weight = np.arange(6, dtype=np.float32).reshape(3, 2)
    path = tmp_path / "pycls.pyth"
    torch.save({"model_state": {"weight": torch.from_numpy(weight), "bias": torch.zeros(3),
                                "bn.num_batches_tracked": torch.tensor(1)}}, path)
    model = _model()
    SafeDetectionCheckpointer(model).load(str(path))
    assert torch.equal(model[0].weight.detach(), torch.from_numpy(weight))
    evil = tmp_path / "evil.pyth"
    torch.save({"model_state": {}, "saved_on": datetime.date(2024, 1, 1)}, evil)
    with pytest.raises(UnsafeCheckpointError, match=str(evil)):
        SafeDetectionCheckpointer(_model()).load(str(evil))


def test_model_weights_query_through_the_trainer(tmp_path, monkeypatch):
    """``MODEL.WEIGHTS x.pth?matching_heuristics=True`` on train_net's command line loads a
    checkpoint whose backbone keys lack the ``backbone.`` prefix."""
    import train_net
    from detectron2.modeling import build_model

    from zoominnet_d2.data.synthetic import generate_dataset
    from zoominnet_d2.data.visdrone import register_visdrone

    generate_dataset(tmp_path / "synthdrone", num_train=4, num_val=1, size=64, seed=0)
    register_visdrone(tmp_path / "synthdrone", prefix="zcheckpoint")
    opts = ["MODEL.RESNETS.STEM_OUT_CHANNELS", "8", "MODEL.RESNETS.RES2_OUT_CHANNELS", "8",
            "MODEL.FPN.OUT_CHANNELS", "16", "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0",
            "DATASETS.TRAIN", "('zcheckpoint_train',)", "DATASETS.TEST", "()", "OUTPUT_DIR", str(tmp_path / "out")]
    config = str(REPO / "configs/synth/snet.yaml")
    torch.manual_seed(1)
    source = build_model(train_net.build_config(train_net.argument_parser().parse_args(
        ["--config-file", config, *opts])))
    state = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in source.state_dict().items()}
    path = tmp_path / "renamed.pth"
    torch.save({"model": state}, path)

    args = train_net.argument_parser().parse_args(
        ["--config-file", config, *opts, "MODEL.WEIGHTS", f"{path}?matching_heuristics=True"])
    trainer = train_net.Trainer(train_net.setup(args))
    trainer.resume_or_load(resume=False)
    loaded = trainer.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items() if k.startswith("backbone."))
    assert os.path.isfile(path)  # the query is not part of the file name
