"""Install Detectron2 v0.6 as a pure-Python distribution, unless one is already importable.

Detectron2 is not on PyPI under its own name. ``pb1-detectron2==0.6`` is a source
distribution whose Python files are identical to upstream v0.6, but it lacks the C++
sources of the optional compiled ops (``detectron2._C``), so ``pip install`` of it fails
while compiling them, and recent pip refuses to even download it (one of its extras names a
direct URL). RetinaNet and ZoomInNet need none of the compiled ops, so this script:

1. does nothing when ``import detectron2`` already works (an official build is kept as is);
2. downloads the sdist from the package index, checks its sha256;
3. builds a wheel named ``detectron2`` 0.6 from its ``detectron2/`` package (plus the
   ``model_zoo/configs`` yaml files) with no extension modules, and pip-installs it.

Usage: ``python tools/install_detectron2.py [--cache DIR]`` with the target venv's python.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request

SDIST_NAME = "pb1-detectron2-0.6.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
INDEX_URL = os.environ.get("ZOOMINNET_INDEX_URL", "https://pypi.org/simple")

# Detectron2 v0.6's own runtime requirements (its setup.py), minus the ones only used by
# its optional projects, with bounds that still work on Python 3.11.
REQUIREMENTS = [
    "Pillow>=7.1",
    "matplotlib",
    "pycocotools>=2.0.2",
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "tensorboard",
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "omegaconf>=2.1",
    "hydra-core>=1.1",
    "scipy>1.5.1",
]

MINIMAL_SETUP = """
from setuptools import setup, find_packages
setup(
    name="detectron2",
    version="0.6",
    description="Detectron2 v0.6 (pure Python, from pb1-detectron2, no compiled ops)",
    packages=find_packages(include=["detectron2", "detectron2.*"]),
    package_data={{"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]}},
    install_requires={requirements!r},
    python_requires=">=3.7",
)
"""


def detectron2_importable() -> bool:
    """True when ``import detectron2`` works in a fresh interpreter of this Python."""
    result = subprocess.run([sys.executable, "-c", "import detectron2"], capture_output=True)
    return result.returncode == 0


def sdist_url() -> str:
    """Look the sdist's URL up in the index's JSON simple API (PEP 691)."""
    request = urllib.request.Request(
        f"{INDEX_URL}/pb1-detectron2/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        files = json.load(response)["files"]
    for entry in files:
        if entry["filename"] == SDIST_NAME:
            return entry["url"]
    raise RuntimeError(f"{SDIST_NAME} not listed at {INDEX_URL}/pb1-detectron2/")


def fetch_sdist(cache_dir: str) -> str:
    """Return the path of the verified sdist, downloading it into ``cache_dir`` if needed."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, SDIST_NAME)
    if not os.path.exists(path):
        print(f"[install_detectron2] downloading {SDIST_NAME}", flush=True)
        partial = path + ".part"
        with urllib.request.urlopen(sdist_url(), timeout=300) as response, open(partial, "wb") as f:
            shutil.copyfileobj(response, f)
        os.replace(partial, path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != SDIST_SHA256:
        os.remove(path)
        raise RuntimeError(f"sha256 mismatch for {SDIST_NAME}: got {digest}, want {SDIST_SHA256}")
    return path


def build_and_install(sdist: str) -> None:
    """Unpack the sdist, lay out a pure-Python source tree and pip-install it."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        (root,) = [os.path.join(tmp, d) for d in os.listdir(tmp)]
        src = os.path.join(tmp, "src")
        shutil.copytree(os.path.join(root, "detectron2"), os.path.join(src, "detectron2"))
        # Upstream's setup.py symlinks configs/ into model_zoo/ at build time; copy instead.
        configs = os.path.join(src, "detectron2", "model_zoo", "configs")
        if not os.path.exists(configs):
            shutil.copytree(os.path.join(root, "configs"), configs)
        with open(os.path.join(src, "setup.py"), "w") as f:
            f.write(MINIMAL_SETUP.format(requirements=REQUIREMENTS))
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", src], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/zoominnet_d2"),
                        help="where the downloaded sdist is kept between runs")
    args = parser.parse_args()
    if detectron2_importable():
        print("[install_detectron2] detectron2 already importable: kept as is")
        return
    build_and_install(fetch_sdist(args.cache))
    print("[install_detectron2] installed detectron2 0.6 (pure Python)")


if __name__ == "__main__":
    main()
