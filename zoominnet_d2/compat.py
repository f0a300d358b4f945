"""Make Detectron2 import and run on Python 3.11, torch 2.x, Pillow 10+, numpy 2 and
setuptools without ``pkg_resources``.

Applied by ``import zoominnet_d2`` before anything from Detectron2 is imported. Every fix
checks first whether the thing it replaces is missing and whether the installed Detectron2
needs it: the compiled-ops stub only for an install without ``detectron2._C``; ``Image.LINEAR``
and the numpy aliases only for a Detectron2 whose source uses them (v0.6; main does not);
the ``pkg_resources`` shim wherever setuptools lacks it (v0.6 and main both import it). Each
fix returns True when it changed something, which the tests use to check that it is applied
only where needed.
"""
import contextlib
import functools
import importlib.util
import os
import re
import sys
import types

_MISSING_OP_HINT = (
    "detectron2._C.{name} is a compiled Detectron2 op, absent from this pure-Python install "
    "of Detectron2 v0.6 (built by tools/install_detectron2.py). RetinaNet and ZoomInNet do "
    "not use it; install an official Detectron2 build to use models that do."
)


class MissingCompiledOpError(RuntimeError):
    """Raised when code calls a compiled Detectron2 op that this install does not have."""


class _MissingCompiledOps(types.ModuleType):
    """Stand-in for ``detectron2._C``: importable, but every op raises a clear error.

    ``detectron2.utils.collect_env`` (called by ``default_setup``) asks it for compiler
    versions, so those three queries answer instead of raising.
    """

    def get_compiler_version(self) -> str:
        return "not built (pure-Python Detectron2)"

    def get_cuda_version(self) -> str:
        return "not built (pure-Python Detectron2)"

    def has_cuda(self) -> bool:
        return False

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingCompiledOpError(_MISSING_OP_HINT.format(name=name))


def stub_missing_compiled_ops() -> bool:
    """Breakage: ``detectron2.layers`` runs ``from detectron2 import _C`` at import time
    (deform_conv, rotated_boxes, roi_align_rotated), which fails without the C++ build."""
    if "detectron2._C" in sys.modules or importlib.util.find_spec("detectron2._C") is not None:
        return False
    import detectron2

    stub = _MissingCompiledOps("detectron2._C")
    sys.modules["detectron2._C"] = stub
    detectron2._C = stub
    return True


@functools.lru_cache(maxsize=None)
def _detectron2_source() -> str:
    """The text of the installed Detectron2's Python files, read without importing them."""
    spec = importlib.util.find_spec("detectron2")
    texts = []
    for root in spec.submodule_search_locations if spec else ():
        for folder, _, files in os.walk(root):
            for name in sorted(f for f in files if f.endswith(".py")):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                    texts.append(f.read())
    return "\n".join(texts)


def detectron2_uses_pil_linear() -> bool:
    """Whether the installed Detectron2's code names ``Image.LINEAR`` (v0.6 does)."""
    return re.search(r"\bImage\.LINEAR\b", _detectron2_source()) is not None


def detectron2_uses_numpy_aliases() -> bool:
    """Whether the installed Detectron2's code uses ``np.int``/``np.float``/``np.bool`` (v0.6 does)."""
    return re.search(r"\bnp\.(?:int|float|bool)\b", _detectron2_source()) is not None


def restore_pil_linear() -> bool:
    """Breakage: Pillow 10 removed ``Image.LINEAR``, a default argument in
    ``detectron2.data.transforms.transform`` of v0.6 (evaluated at import time)."""
    from PIL import Image

    if hasattr(Image, "LINEAR") or not detectron2_uses_pil_linear():
        return False
    Image.LINEAR = Image.BILINEAR
    return True


def restore_numpy_aliases() -> bool:
    """Breakage: numpy 1.24 removed ``np.int``/``np.float``/``np.bool``, which Detectron2 v0.6
    uses, e.g. in ``data/build.py`` (the class histogram of every training loader)."""
    import numpy as np

    if not detectron2_uses_numpy_aliases():
        return False
    changed = False
    for alias, builtin in (("int", int), ("float", float), ("bool", bool)):
        try:
            getattr(np, alias)
        except AttributeError:
            setattr(np, alias, builtin)
            changed = True
    return changed


def import_model_zoo_without_pkg_resources() -> bool:
    """Breakage: setuptools 81 dropped ``pkg_resources``, which ``detectron2.model_zoo``
    (v0.6 and main) imports at module level for ``resource_filename``.

    The shim is placed in ``sys.modules`` only while ``detectron2.model_zoo`` imports and is
    removed afterwards, so no other library mistakes it for the real ``pkg_resources``.
    """
    if importlib.util.find_spec("pkg_resources") is not None:
        return False
    if "detectron2.model_zoo" in sys.modules:
        return False
    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = _resource_filename
    sys.modules["pkg_resources"] = shim
    try:
        import detectron2.model_zoo  # noqa: F401  (binds the shim as its global)
    finally:
        del sys.modules["pkg_resources"]
    return True


def _resource_filename(package: str, resource: str) -> str:
    """``pkg_resources.resource_filename`` for packages installed as plain directories."""
    import importlib.resources

    return str(importlib.resources.files(package).joinpath(resource))


@contextlib.contextmanager
def _quiet_jit_deprecation():
    """torch 2.10+ warns on every ``torch.jit.script`` call; Detectron2 v0.6 scripts a few
    helpers at import time. Silence that one warning during the import only."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        yield


def apply() -> dict:
    """Apply every fix that is needed; return ``{fix name: applied}``."""
    applied = {}
    with _quiet_jit_deprecation():
        for fix in (stub_missing_compiled_ops, restore_pil_linear, restore_numpy_aliases,
                    import_model_zoo_without_pkg_resources):
            applied[fix.__name__] = fix()
        import detectron2.layers  # noqa: F401  (scripted helpers, under the warning filter)
    return applied
