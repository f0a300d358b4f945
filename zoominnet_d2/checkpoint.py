"""Checkpoint loading that cannot run code from the checkpoint file unless asked to.

A pickle can name any importable callable and have the unpickler call it (``os.system``
included). Detectron2's ``DetectionCheckpointer`` reads ``.pkl`` files with ``pickle.load``
and ``.pyth`` files with ``torch.load(f)``, and everything else with fvcore's
``torch.load(f, map_location="cpu")``, which is only safe because
torch >= 2.6 defaults to ``weights_only=True`` (an environment variable,
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``, turns that off). :class:`SafeDetectionCheckpointer`
reads ``.pth``/``.pyth`` with ``torch.load(..., weights_only=True)`` (numpy arrays allowed
too) and ``.pkl`` with an unpickler that knows only numpy arrays, numpy scalars and dtypes
and ``OrderedDict`` (all that Detectron2's and Caffe2's model-zoo ``.pkl`` files hold,
besides dicts, lists, strings and numbers, which need no lookup). Anything else is an
:class:`UnsafeCheckpointError` naming the file and the callable, unless
``allow_unsafe=True`` (``--unsafe-load-checkpoint``).

``MODEL.WEIGHTS x.pth?matching_heuristics=True`` loads ``x.pth`` with Detectron2's
name-matching heuristics (``align_and_update_state_dicts``); any other query in the path is
a ``ValueError``. Detectron2 main does this in ``DetectionCheckpointer``; on Detectron2 v0.6,
which has no query handling, :class:`_PathQueryCheckpointer` provides the same.
"""
import collections
import contextlib
import functools
import pickle
import re
from typing import Any, Dict, Tuple
from urllib.parse import parse_qs, urlparse

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.file_io import PathManager

__all__ = ["SafeDetectionCheckpointer", "StrictCheckpointer", "UnsafeCheckpointError", "UNSAFE_FLAG", "safe_pickle_load"]

UNSAFE_FLAG = "--unsafe-load-checkpoint"


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint file that would import or call something other than plain data."""


def _refusal(filename: str, reason: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"refusing to load checkpoint {filename}: {reason}. Loading it could run code from the "
        f"file; checkpoints saved by Detectron2 or ZoomInNet never need that. If you trust the "
        f"file's source, pass {UNSAFE_FLAG} (SafeDetectionCheckpointer(..., allow_unsafe=True))."
    )


@functools.lru_cache(maxsize=None)
def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    """{(module, name) as a pickle names it: object} for what model-zoo files need: numpy
    arrays (protocols 2-5), numpy scalars and dtypes, OrderedDict, and ``_codecs.encode``
    (bytes at protocol 2). None of these can call anything else. numpy 2 renamed
    ``numpy.core`` to ``numpy._core``; files pickled with numpy 1 (or Python 2) name the old
    module, which is mapped to the new objects without importing it."""
    import _codecs
    import numpy as np

    core = np._core if hasattr(np, "_core") else np.core
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _codecs.encode,
    }
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = core.multiarray.scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, filename: str):
        super().__init__(file, encoding="latin1")
        self._filename = filename

    def find_class(self, module: str, name: str):
        try:
            return _allowed_globals()[(module, name)]
        except KeyError:
            raise _refusal(self._filename, f"it needs {module}.{name}, which is not plain data") from None


def safe_pickle_load(file, filename: str) -> Any:
    """``pickle.load(file, encoding="latin1")`` that only rebuilds plain data and numpy
    arrays; anything else raises :class:`UnsafeCheckpointError` before it is called."""
    return _RestrictedUnpickler(file, filename).load()


def _numpy_safe_globals():
    """Context in which ``torch.load(weights_only=True)`` also reads numpy arrays."""
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5: tensors only
        return contextlib.nullcontext()
    import numpy as np

    allowed = [(obj, f"{m}.{n}") for (m, n), obj in _allowed_globals().items() if m.startswith("numpy")]
    # torch also checks the class of each rebuilt object: numpy's dtype subclasses.
    allowed += sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGSUV"}, key=str)
    return torch.serialization.safe_globals(allowed)


def _torch_load(file, filename: str, weights_only: bool) -> Any:
    """``torch.load`` of an open file onto the CPU; with ``weights_only``, tensors, numpy
    arrays and plain data only (anything else is an :class:`UnsafeCheckpointError`)."""
    if not weights_only:
        return torch.load(file, map_location=torch.device("cpu"), weights_only=False)
    try:
        with _numpy_safe_globals():
            return torch.load(file, map_location=torch.device("cpu"), weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is long; the name of the global it refused is the useful part.
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found is None:  # not a forbidden callable: a damaged file
            raise pickle.UnpicklingError(f"cannot read checkpoint {filename}: {e}") from e
        raise _refusal(filename, f"it needs {found.group(1)}, which is not plain data") from None


class _PathQueryCheckpointer(DetectionCheckpointer):
    """Detectron2 main's path-query handling and ``_torch_load`` hook, for Detectron2 v0.6.

    ``load`` strips the query from the path and keeps it for ``_load_file``, which reads
    ``.pkl`` and ``.pyth`` files with Detectron2's readers (no query applies to them, as on
    main) and anything else with ``self._torch_load`` (defined by the subclass), then applies
    the query: ``matching_heuristics=True`` sets the checkpoint's ``matching_heuristics``;
    anything else is a ``ValueError``.
    """

    _query_url = None  # the parsed path of the load in progress

    def load(self, path, *args, **kwargs):
        self._query_url = urlparse(path or "")
        try:
            return super().load(self._query_url._replace(query="").geturl(), *args, **kwargs)
        finally:
            self._query_url = None

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if filename.endswith((".pkl", ".pyth")):
            return super()._load_file(filename)
        loaded = self._torch_load(filename)
        if "model" not in loaded:
            loaded = {"model": loaded}
        queries = parse_qs(self._query_url.query) if self._query_url else {}
        if queries.pop("matching_heuristics", None) == ["True"]:
            loaded["matching_heuristics"] = True
        if queries:
            raise ValueError(f"Unsupported query remaining: {queries}, original filename: "
                             f"{self._query_url.geturl()} (only matching_heuristics=True is understood)")
        return loaded


# Detectron2 main reads torch files through DetectionCheckpointer._torch_load and handles the
# path query itself; v0.6 needs both from _PathQueryCheckpointer.
_Base = DetectionCheckpointer if hasattr(DetectionCheckpointer, "_torch_load") else _PathQueryCheckpointer


class SafeDetectionCheckpointer(_Base):
    """:class:`DetectionCheckpointer` whose loading never runs code from the file.

    Torch files (``.pth`` and any other suffix) are read by the ``_torch_load`` override;
    ``.pkl`` and ``.pyth`` files, which Detectron2 reads inline with ``pickle.load`` and
    ``torch.load`` in ``_load_file``, by the ``_load_file`` override (everything else is
    left to Detectron2's ``_load_file``, including the path query).

    Args:
        allow_unsafe: load as Detectron2 does (full unpickling, which can run code from the
            file). Only for files from a trusted source.
        others: as :class:`DetectionCheckpointer`.
    """

    def __init__(self, model, save_dir="", *, allow_unsafe: bool = False, save_to_disk=None, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.allow_unsafe = allow_unsafe

    def _torch_load(self, f: str) -> Any:
        with PathManager.open(f, "rb") as file:
            return _torch_load(file, f, weights_only=not self.allow_unsafe)

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if self.allow_unsafe or not filename.endswith((".pkl", ".pyth")):
            return super()._load_file(filename)
        with PathManager.open(filename, "rb") as f:
            if filename.endswith(".pkl"):
                return self._format_pkl(safe_pickle_load(f, filename), filename)
            data = _torch_load(f, filename, weights_only=True)
        # pycls checkpoint, as DetectionCheckpointer reads it
        if not isinstance(data, dict) or "model_state" not in data:
            raise ValueError(f"Cannot load .pyth file {filename}; pycls checkpoints must contain 'model_state'.")
        state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
        return {"model": state, "__author__": "pycls", "matching_heuristics": True}

    def _format_pkl(self, data: Any, filename: str) -> Dict[str, Any]:
        """What ``DetectionCheckpointer._load_file`` makes of the data of a ``.pkl`` file."""
        if not isinstance(data, dict):
            raise ValueError(f"{filename}: expected a dict of weights, got {type(data).__name__}")
        if "model" in data and "__author__" in data:
            # Detectron2 model zoo format
            self.logger.info("Reading a file from '{}'".format(data["__author__"]))
            return data
        # Caffe2 / Detectron1 model zoo
        if "blobs" in data:
            data = data["blobs"]
        data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
        return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}


class StrictCheckpointer(SafeDetectionCheckpointer):
    """A :class:`SafeDetectionCheckpointer` whose loading fails when the weights do not fit
    the model, with a ``ValueError`` that names the file and the keys.

    Detectron2 only logs such keys, which is right for initialising from ImageNet weights; a
    frozen teacher, or a student to deploy, with random parts would silently give wrong
    features or detections.

    Args:
        refuse: the incompatibilities that are errors: "missing" (model weights the file
            lacks), "unexpected" (file weights the model lacks), "mis-shaped" (in both, in
            another shape).
        role: how the error names the model, e.g. "the teacher config".
        others: as :class:`SafeDetectionCheckpointer`.
    """

    KINDS = ("missing", "unexpected", "mis-shaped")

    def __init__(self, model, save_dir="", *, refuse: Tuple[str, ...] = KINDS, role: str = "the model", **kwargs):
        super().__init__(model, save_dir, **kwargs)
        unknown = set(refuse) - set(self.KINDS)
        if unknown:
            raise ValueError(f"refuse: unknown kinds {sorted(unknown)}, expected some of {self.KINDS}")
        self.refuse, self.role, self.loading = tuple(refuse), role, ""

    def load(self, path: str, *args, **kwargs):
        self.loading = path
        return super().load(path, *args, **kwargs)

    def _load_model(self, checkpoint: Dict[str, Any]):
        if not isinstance(checkpoint.get("model"), dict):
            raise ValueError(f"{self.loading}: not a Detectron2 checkpoint (no 'model' state dict)")
        return super()._load_model(checkpoint)

    def _log_incompatible_keys(self, incompatible) -> None:  # fvcore's hook after loading
        super()._log_incompatible_keys(incompatible)
        # fvcore drops mis-shaped weights before loading, so they are also among the missing.
        shaped = {key for key, _, _ in incompatible.incorrect_shapes}
        found = {
            "missing": [k for k in incompatible.missing_keys if k not in shaped],
            "unexpected": list(incompatible.unexpected_keys),
            "mis-shaped": [f"{k} {tuple(file)} (model: {tuple(model)})"
                           for k, file, model in incompatible.incorrect_shapes],
        }
        problems = [f"{kind} ({len(found[kind])}): {', '.join(found[kind][:8])}{' ...' if len(found[kind]) > 8 else ''}"
                    for kind in self.refuse if found[kind]]
        if problems:
            raise ValueError(f"{self.loading} does not fit {self.role}: " + "; ".join(problems))
