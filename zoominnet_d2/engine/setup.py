"""Command line and config set-up of ``train_net.py``: Detectron2's argument parser and
``default_setup`` with one-line config errors and an earlier run's ``config.yaml`` kept until
the new run has started."""
import argparse
import logging
import os
import sys

from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

from ..checkpoint import UNSAFE_FLAG
from ..config import load_config

logger = logging.getLogger("zoominnet_d2")


EPILOG = """
--num-gpus N is the number of training processes *per machine*: one per GPU, or, without
CUDA, N CPU processes communicating over Gloo. --resume continues from OUTPUT_DIR's
last_checkpoint; MODEL.WEIGHTS x.pth?matching_heuristics=True loads x.pth by matching
parameter names heuristically.

Examples:
    $ {prog} --config-file configs/cskd_la.yaml MODEL.ZOOMIN.TEACHER.WEIGHTS tnet.pth
    $ {prog} --config-file configs/cskd_la.yaml --eval-only MODEL.WEIGHTS student.pth
    $ {prog} --config-file configs/synth/snet.yaml --num-gpus 2 --dist-url auto
    (machine 0)$ {prog} --machine-rank 0 --num-machines 2 --dist-url tcp://HOST:PORT [...]
    (machine 1)$ {prog} --machine-rank 1 --num-machines 2 --dist-url tcp://HOST:PORT [...]
"""


def argument_parser():
    """Detectron2's argument parser plus ``--unsafe-load-checkpoint`` and ``--log-period``;
    its epilog says what ``--num-gpus`` means without CUDA."""
    parser = default_argument_parser(epilog=EPILOG.format(prog=os.path.basename(sys.argv[0])))
    parser.add_argument(
        UNSAFE_FLAG, action="store_true",
        help="load checkpoints with full unpickling (Python's pickle.load for .pkl, "
        "torch.load(weights_only=False) for .pth), which can run arbitrary code stored in the "
        "file. By default only tensors, numpy arrays and plain data are read and a file that "
        "needs more is refused. Use only for files from a source you trust.",
    )
    parser.add_argument("--log-period", type=_positive_int, default=20, metavar="N",
                        help="write the training metrics (console, metrics.json, TensorBoard) "
                        "every N iterations (default: 20)")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_config(args):
    """The frozen config of the command line (:func:`zoominnet_d2.config.load_config`); no
    side effects.

    Raises:
        ConfigError: missing config file, unknown key, malformed option or value.
    """
    cfg = load_config(args.config_file, args.opts)
    cfg.freeze()
    return cfg


def _config_path(cfg) -> str:
    return os.path.join(cfg.OUTPUT_DIR, "config.yaml")


def setup(args):
    """The frozen config of ``args`` (:func:`build_config`) after Detectron2's
    ``default_setup`` (logging, seed, environment info), with the project's logger too."""
    cfg = build_config(args)
    # default_setup() writes OUTPUT_DIR/config.yaml before anything is built. An earlier
    # run's config.yaml belongs with that run's checkpoints: put it back until this run has
    # built its model and data and loaded its weights (save_config() in main).
    path = _config_path(cfg)
    earlier = None
    if comm.is_main_process() and cfg.OUTPUT_DIR and PathManager.isfile(path):
        with PathManager.open(path, "rb") as f:
            earlier = f.read()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="zoominnet_d2")
    if earlier is not None:
        _write_atomically(path, earlier)
        logger.info(f"Keeping the earlier run's {path} until this run has started")
    return cfg


def save_config(cfg) -> None:
    """Write OUTPUT_DIR/config.yaml (as default_setup does), once the run has started."""
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        _write_atomically(_config_path(cfg), cfg.dump().encode())
        logger.info(f"Full config saved to {_config_path(cfg)}")


def _write_atomically(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


