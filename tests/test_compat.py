"""The Detectron2 v0.6 compatibility fixes of ``zoominnet_d2.compat``.

Two kinds of checks:

- in this process (``import zoominnet_d2`` ran in conftest.py): what the fixes make work -
  ``detectron2._C`` ops fail clearly, ``collect_env_info``, ``Image.LINEAR``, ``np.int`` in
  the class histogram, the model zoo without ``pkg_resources``; and every fix, called again,
  reports that it changed nothing;
- in a fresh interpreter (subprocess), with ``compat.py`` loaded on its own (importing
  ``zoominnet_d2.compat`` would run the package's ``apply()`` first): each fix is applied
  exactly when the thing it replaces is missing and the installed Detectron2 uses it (v0.6
  uses ``Image.LINEAR`` and ``np.int``, main neither), leaves a present one untouched, and
  is idempotent.
"""
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import zoominnet_d2  # noqa: F401  (compat fixes first)
from zoominnet_d2 import compat

REPO = Path(__file__).resolve().parents[1]
COMPAT_PY = REPO / "zoominnet_d2" / "compat.py"
FIXES = ("stub_missing_compiled_ops", "restore_pil_linear", "restore_numpy_aliases",
         "import_model_zoo_without_pkg_resources")

# True when this environment has the real thing, i.e. the fix must not touch it.
# (`import zoominnet_d2` imported detectron2.layers, so detectron2._C is in sys.modules; the
# stub has no __spec__, so importlib.util.find_spec cannot be asked about it any more.)
HAS_REAL_C = "detectron2._C" in sys.modules and not isinstance(
    sys.modules["detectron2._C"], compat._MissingCompiledOps)
HAS_REAL_PKG_RESOURCES = importlib.util.find_spec("pkg_resources") is not None
USES_PIL_LINEAR = compat.detectron2_uses_pil_linear()
USES_NUMPY_ALIASES = compat.detectron2_uses_numpy_aliases()


def run_fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter with ``compat`` = compat.py loaded standalone
    (without the package's ``apply()``); the code sets ``out`` (a JSON-able dict)."""
    prelude = textwrap.dedent(f"""
        import importlib.util, json, sys, warnings
        warnings.simplefilter("ignore")
        _spec = importlib.util.spec_from_file_location("compat_under_test", {str(COMPAT_PY)!r})
        compat = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(compat)
        out = {{}}
    """)
    epilogue = "\nprint('@@RESULT@@' + json.dumps(out))\n"
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code) + epilogue],
        cwd=str(REPO), capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    line = [l for l in proc.stdout.splitlines() if l.startswith("@@RESULT@@")][-1]
    return json.loads(line[len("@@RESULT@@"):])


# --------------------------------------------------------------------------------------
# In this process, after `import zoominnet_d2`
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fix", FIXES)
def test_second_call_changes_nothing(fix):
    assert getattr(compat, fix)() is False


def test_apply_again_changes_nothing():
    assert compat.apply() == {fix: False for fix in FIXES}


@pytest.mark.skipif(HAS_REAL_C, reason="a compiled detectron2._C is installed")
def test_missing_compiled_op_raises_clear_error():
    from detectron2 import _C

    assert isinstance(_C, compat._MissingCompiledOps)
    with pytest.raises(compat.MissingCompiledOpError) as info:
        _C.nms_rotated  # noqa: B018
    msg = str(info.value)
    assert "nms_rotated" in msg
    assert "RetinaNet and ZoomInNet do not use it" in msg
    assert issubclass(compat.MissingCompiledOpError, RuntimeError)
    # Dunder lookups (hasattr/inspect/copy/pickle probes) are ordinary AttributeErrors.
    assert getattr(_C, "__wrapped__", None) is None


@pytest.mark.skipif(HAS_REAL_C, reason="a compiled detectron2._C is installed")
def test_layer_using_compiled_op_fails_with_op_name():
    """A Detectron2 layer built on _C imports fine and fails only when called."""
    import torch
    from detectron2.layers import ROIAlignRotated

    layer = ROIAlignRotated((2, 2), spatial_scale=1.0, sampling_ratio=0)
    rois = torch.tensor([[0.0, 4.0, 4.0, 4.0, 4.0, 0.0]])
    with pytest.raises(compat.MissingCompiledOpError, match="roi_align_rotated_forward"):
        layer(torch.zeros(1, 1, 8, 8), rois)


@pytest.mark.skipif(HAS_REAL_C, reason="a compiled detectron2._C is installed")
def test_stub_answers_version_queries():
    from detectron2 import _C

    assert isinstance(_C.get_compiler_version(), str)
    assert isinstance(_C.get_cuda_version(), str)
    assert _C.has_cuda() is False


def test_collect_env_info_works():
    from detectron2.utils.collect_env import collect_env_info

    info = collect_env_info()
    assert "detectron2" in info and "PyTorch" in info


def test_pil_linear_exists_and_resize_transform_works():
    from PIL import Image
    from detectron2.data import transforms as T

    assert hasattr(Image, "LINEAR") or not USES_PIL_LINEAR
    # The default interp of ResizeTransform was Image.LINEAR (bound at import time).
    img = (np.arange(6 * 8 * 3) % 256).astype(np.uint8).reshape(6, 8, 3)
    assert T.ResizeTransform(6, 8, 12, 16).apply_image(img).shape == (12, 16, 3)


def test_numpy_aliases_resolve_and_class_histogram_works():
    for alias, builtin in (("int", int), ("float", float), ("bool", bool)):
        if not USES_NUMPY_ALIASES and alias not in vars(np):
            continue  # this Detectron2 does not use the alias: none is added
        assert getattr(np, alias) is not None
        assert np.dtype(getattr(np, alias)) == np.dtype(builtin)
    from detectron2.data.build import print_instances_class_histogram

    dicts = [{"annotations": [{"category_id": 0}, {"category_id": 1}, {"category_id": 1}]}]
    print_instances_class_histogram(dicts, ["a", "b"])  # uses np.int


def test_model_zoo_config_file():
    from detectron2 import model_zoo

    path = model_zoo.get_config_file("COCO-Detection/retinanet_R_50_FPN_1x.yaml")
    assert Path(path).is_file()


@pytest.mark.skipif(HAS_REAL_PKG_RESOURCES, reason="the real pkg_resources is installed")
def test_pkg_resources_shim_not_left_in_sys_modules():
    assert "pkg_resources" not in sys.modules
    with pytest.raises(ImportError):
        import pkg_resources  # noqa: F401


# --------------------------------------------------------------------------------------
# Fresh interpreters: each fix applied only where needed, idempotent
# --------------------------------------------------------------------------------------


def test_pil_linear_applied_only_if_missing():
    out = run_fresh("""
        from PIL import Image
        out["had"] = hasattr(Image, "LINEAR")
        out["uses"] = compat.detectron2_uses_pil_linear()
        out["first"] = compat.restore_pil_linear()
        out["linear_is_bilinear"] = getattr(Image, "LINEAR", None) == Image.BILINEAR
        out["second"] = compat.restore_pil_linear()
    """)
    assert out["uses"] == USES_PIL_LINEAR
    assert out["first"] == (out["uses"] and not out["had"])
    # present wherever Pillow has it or Detectron2 needs it; absent otherwise
    assert out["linear_is_bilinear"] == (out["had"] or out["uses"])
    assert out["second"] is False


def test_pil_linear_present_is_left_alone():
    out = run_fresh("""
        from PIL import Image
        sentinel = object()
        Image.LINEAR = sentinel
        out["applied"] = compat.restore_pil_linear()
        out["untouched"] = Image.LINEAR is sentinel
    """)
    assert out == {"applied": False, "untouched": True}


def test_numpy_aliases_applied_only_if_missing():
    out = run_fresh("""
        import numpy as np
        def has(a):
            try:
                getattr(np, a)
                return True
            except AttributeError:
                return False
        out["uses"] = compat.detectron2_uses_numpy_aliases()
        out["missing"] = not all(has(a) for a in ("int", "float", "bool"))
        out["first"] = compat.restore_numpy_aliases()
        out["after"] = [np.dtype(getattr(np, a)).kind if has(a) else None for a in ("int", "float", "bool")]
        out["second"] = compat.restore_numpy_aliases()
    """)
    assert out["uses"] == USES_NUMPY_ALIASES
    assert out["first"] == (out["uses"] and out["missing"])
    if out["uses"] or not out["missing"]:
        assert out["after"] == ["i", "f", "b"]
    else:  # nothing added for a Detectron2 that does not use them
        assert None in out["after"]
    assert out["second"] is False


def test_numpy_alias_present_is_left_alone():
    """Only the missing aliases are added; one that exists is kept as it is."""
    out = run_fresh("""
        import numpy as np
        sentinel = type("Sentinel", (), {})
        np.int = sentinel
        out["float_missing"] = "float" not in vars(np)
        out["uses"] = compat.detectron2_uses_numpy_aliases()
        out["applied"] = compat.restore_numpy_aliases()
        out["int_untouched"] = np.int is sentinel
        out["float_is_builtin"] = getattr(np, "float", None) is float
    """)
    assert out["int_untouched"]
    assert out["applied"] == (out["float_missing"] and out["uses"])
    if out["applied"]:
        assert out["float_is_builtin"]


@pytest.mark.skipif(HAS_REAL_C, reason="a compiled detectron2._C is installed")
def test_compiled_ops_stub_applied_only_if_missing():
    out = run_fresh("""
        import importlib.util, sys
        out["needed"] = importlib.util.find_spec("detectron2._C") is None
        out["first"] = compat.stub_missing_compiled_ops()
        from detectron2 import _C
        out["is_stub"] = isinstance(_C, compat._MissingCompiledOps)
        try:
            _C.box_iou_rotated
            out["error"] = None
        except compat.MissingCompiledOpError as e:
            out["error"] = str(e)
        out["second"] = compat.stub_missing_compiled_ops()
        out["same_module"] = sys.modules["detectron2._C"] is _C
    """)
    assert out["needed"] and out["first"] is True
    assert out["is_stub"] and out["same_module"]
    assert "box_iou_rotated" in out["error"] and "RetinaNet and ZoomInNet" in out["error"]
    assert out["second"] is False


def test_compiled_ops_present_are_left_alone():
    out = run_fresh("""
        import sys, types
        real = types.ModuleType("detectron2._C")
        sys.modules["detectron2._C"] = real
        out["applied"] = compat.stub_missing_compiled_ops()
        out["untouched"] = sys.modules["detectron2._C"] is real
    """)
    assert out == {"applied": False, "untouched": True}


@pytest.mark.skipif(HAS_REAL_PKG_RESOURCES, reason="the real pkg_resources is installed")
def test_model_zoo_shim_applied_only_if_missing_and_removed():
    out = run_fresh("""
        import os, sys
        # model_zoo imports detectron2.modeling, which needs the earlier fixes (apply()'s order)
        compat.stub_missing_compiled_ops(), compat.restore_pil_linear(), compat.restore_numpy_aliases()
        out["first"] = compat.import_model_zoo_without_pkg_resources()
        out["shim_left"] = "pkg_resources" in sys.modules
        try:
            import pkg_resources
            out["importable"] = True
        except ImportError:
            out["importable"] = False
        from detectron2 import model_zoo
        path = model_zoo.get_config_file("COCO-Detection/retinanet_R_50_FPN_1x.yaml")
        out["config_exists"] = os.path.isfile(path)
        out["second"] = compat.import_model_zoo_without_pkg_resources()
    """)
    assert out == {"first": True, "shim_left": False, "importable": False,
                   "config_exists": True, "second": False}


def test_real_pkg_resources_is_left_alone():
    """With a pkg_resources importable, the fix does nothing (and imports nothing)."""
    out = run_fresh("""
        import importlib.machinery, sys, types
        real = types.ModuleType("pkg_resources")
        real.__spec__ = importlib.machinery.ModuleSpec("pkg_resources", None)
        sys.modules["pkg_resources"] = real
        out["applied"] = compat.import_model_zoo_without_pkg_resources()
        out["model_zoo_imported"] = "detectron2.model_zoo" in sys.modules
        out["untouched"] = sys.modules["pkg_resources"] is real
    """)
    assert out == {"applied": False, "model_zoo_imported": False, "untouched": True}


def test_import_zoominnet_d2_in_fresh_interpreter():
    """``import zoominnet_d2`` applies exactly the needed fixes; a second ``apply()`` none."""
    out = run_fresh("""
        import importlib.util, sys
        from PIL import Image
        import numpy as np
        out["needed"] = {
            "stub_missing_compiled_ops": importlib.util.find_spec("detectron2._C") is None,
            "restore_pil_linear": not hasattr(Image, "LINEAR") and compat.detectron2_uses_pil_linear(),
            "restore_numpy_aliases": not all(hasattr(np, a) for a in ("int", "float", "bool"))
                and compat.detectron2_uses_numpy_aliases(),
            "import_model_zoo_without_pkg_resources":
                importlib.util.find_spec("pkg_resources") is None,
        }
        out["applied"] = compat.apply()
        out["again"] = compat.apply()
        import zoominnet_d2  # its own apply() must now find nothing to do either
        out["package_again"] = zoominnet_d2.compat.apply()
        out["pkg_resources_in_sys_modules"] = "pkg_resources" in sys.modules
        from detectron2.utils.collect_env import collect_env_info
        out["collect_env"] = "detectron2" in collect_env_info()
    """)
    assert out["applied"] == out["needed"]
    assert not any(out["again"].values())
    assert not any(out["package_again"].values())
    if out["needed"]["import_model_zoo_without_pkg_resources"]:
        assert out["pkg_resources_in_sys_modules"] is False
    assert out["collect_env"]


def test_uses_are_read_from_the_installed_detectron2_source(tmp_path):
    """``detectron2_uses_*`` read the source of the ``detectron2`` that would be imported,
    without importing it: a package naming ``Image.LINEAR`` and ``np.float`` (as v0.6 does)
    needs both fixes, one naming only ``Image.BILINEAR``, ``np.int64`` and ``np.float_`` none."""
    for name, code, expected in (("old", "interp = Image.LINEAR\nx = np.float(1)\n", [True, True]),
                                 ("new", "interp = Image.BILINEAR\nx = np.int64(1) + np.float_(1)\n", [False, False])):
        package = tmp_path / name / "detectron2"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
        (package / "data" / "transform.py").write_text(code)
        out = run_fresh(f"""
            sys.path.insert(0, {str(tmp_path / name)!r})
            out["uses"] = [compat.detectron2_uses_pil_linear(), compat.detectron2_uses_numpy_aliases()]
            out["imported"] = "detectron2" in sys.modules
        """)
        assert out == {"uses": expected, "imported": False}, name
