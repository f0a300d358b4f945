"""Shared pytest fixtures."""
from pathlib import Path

import pytest

import zoominnet_d2  # noqa: F401  (applies the Detectron2 compat fixes before any test imports it)


@pytest.fixture
def visdrone_real_root() -> Path:
    """Folder of the real VisDrone-DET examples, kept outside the repository."""
    root = Path(__file__).resolve().parents[1].parent / "shared/data/visdrone_real"
    if not root.is_dir():
        pytest.skip("../shared/data/visdrone_real not present (only on developer machines)")
    return root
