"""Install an official build of Detectron2 main into a folder, for a second test run.

``make test`` runs the suite on the default install (``tools/install_detectron2.py``) and then,
with this folder first on ``PYTHONPATH``, on Detectron2 main built from the source tarball in
``../shared/detectron2-main/`` (present on development machines and in CI only). The build is
Detectron2's own ``setup.py``, compiled ops included, made once into a wheel:

1. the wheel is looked up in ``--cache`` under a key made of the tarball's sha256, the torch
   version and the Python version (the compiled ops depend on all three); if it is missing,
   ``pip wheel --no-deps --no-build-isolation`` builds it from the unpacked tarball with the
   venv's torch and ``ninja`` (about 80 s on 2 cores);
2. the wheel is installed with ``pip install --no-deps --target`` into ``--target`` unless
   ``--target`` already holds the build of that key. Its dependencies are those of the
   default install, already in the venv.

Usage: ``python tools/install_detectron2_main.py --source DIR --target DIR [--cache DIR]``
with the venv's python (the Makefile skips it when ``../shared`` is absent).
"""
import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import torch

KEY_FILE = ".zoominnet-build-key"


def _log(message: str) -> None:
    print(f"[install_detectron2_main] {message}", flush=True)


def find_tarball(source: str) -> str:
    """The one ``detectron2-main-*.tar.gz`` in ``source``."""
    found = sorted(glob.glob(os.path.join(source, "detectron2-main-*.tar.gz")))
    if len(found) != 1:
        raise SystemExit(f"expected one detectron2-main-*.tar.gz in {source}, found {found}")
    return found[0]


def build_key(tarball: str) -> str:
    """What the build depends on: the source, torch and Python."""
    with open(tarball, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return f"{digest[:16]}-torch{torch.__version__}-{python}"


def _build_env() -> dict:
    """The environment of the build, with ``ninja`` on ``PATH``: torch compiles the ops in
    parallel with it and one file at a time without it. Without a ``ninja`` on the machine,
    the PyPI package ``ninja`` is installed into the venv."""
    venv_bin = os.path.dirname(sys.executable)
    path = venv_bin + os.pathsep + os.environ.get("PATH", "")
    if shutil.which("ninja", path=path) is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "ninja"], check=True)
    return dict(os.environ, PATH=path)


def cached_wheel(tarball: str, cache_dir: str, key: str) -> str:
    """The wheel of ``key`` in the cache, built from ``tarball`` first if missing."""
    folder = os.path.join(cache_dir, f"detectron2-main-{key}")
    wheels = glob.glob(os.path.join(folder, "detectron2-*.whl"))
    if wheels:
        return wheels[0]
    _log(f"building {os.path.basename(tarball)} (compiles the CPU ops, about 80 s on 2 cores)")
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        (root,) = [os.path.join(tmp, d) for d in os.listdir(tmp)]
        out = os.path.join(tmp, "wheel")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "-w", out, root], check=True, env=_build_env())
        if not os.path.isdir(folder):  # (another build of the key may have finished first)
            os.replace(out, folder)  # complete wheels only: a stopped build leaves nothing behind
    return glob.glob(os.path.join(folder, "detectron2-*.whl"))[0]


def install(wheel: str, target: str, key: str) -> None:
    """Install ``wheel`` into ``target``, replacing an install of another key."""
    key_file = os.path.join(target, KEY_FILE)
    if os.path.isfile(key_file) and open(key_file).read() == key:
        _log(f"{target} holds the build {key}")
        return
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheel],
                   check=True)
    with open(key_file, "w") as f:
        f.write(key)
    _log(f"installed {os.path.basename(wheel)} ({key}) into {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="folder holding detectron2-main-*.tar.gz")
    parser.add_argument("--target", required=True, help="folder to install into (put it first on PYTHONPATH)")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/zoominnet_d2"),
                        help="where built wheels are kept between runs")
    args = parser.parse_args()
    tarball = find_tarball(args.source)
    key = build_key(tarball)
    install(cached_wheel(tarball, args.cache, key), os.path.abspath(args.target), key)


if __name__ == "__main__":
    main()
