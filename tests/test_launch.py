"""The launcher's and DDP's choices (zoominnet_d2.engine.launch, zoominnet_d2.engine.ddp):
Detectron2's launch with GPUs, CPU processes by Detectron2 (main) or the project's workers
(v0.6), and the CPU-capable ``create_ddp_model`` only where a CPU run needs it. The real
2-process run is in test_training.py."""
import importlib
import os

import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes before Detectron2)


def test_launch_chooses_gpus_or_cpu_processes(monkeypatch):
    """Enough GPUs: Detectron2's launch (NCCL), unchanged; too few: a clear error instead of
    silently training on the CPU; one process: main runs here."""
    launch_mod = importlib.import_module("zoominnet_d2.engine.launch")  # (the package exports the function)

    calls = []
    monkeypatch.setattr(launch_mod, "_d2_launch", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    launch_mod.launch(print, 2, dist_url="auto", args=("x",))
    assert calls and calls[0][0][:2] == (print, 2) and calls[0][1]["dist_url"] == "auto"
    with pytest.raises(ValueError, match="--num-gpus 3, but this machine has 2 CUDA device"):
        launch_mod.launch(print, 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ran = []
    launch_mod.launch(lambda *a: ran.append(a), 1, args=(1, 2))
    assert ran == [(1, 2)] and len(calls) == 1


def test_cpu_processes_started_by_detectron2_where_it_can(monkeypatch):
    """Without CUDA, 2 processes: Detectron2's own launch where it runs CPU processes (main),
    the project's Gloo workers where it cannot (v0.6); either way each process gets its share
    of the cores and an explicit URL."""
    from detectron2.utils import comm

    launch_mod = importlib.import_module("zoominnet_d2.engine.launch")
    d2_calls, mp_calls = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(launch_mod, "_d2_launch", lambda *a, **k: d2_calls.append((a, k)))
    monkeypatch.setattr(launch_mod.mp, "start_processes", lambda fn, **k: mp_calls.append((fn, k)))
    launch_mod.launch(len, 2, dist_url="auto", args=("abc",))
    assert launch_mod.D2_LAUNCHES_CPU_PROCESSES == hasattr(comm, "create_local_process_group")
    if launch_mod.D2_LAUNCHES_CPU_PROCESSES:
        assert not mp_calls and len(d2_calls) == 1
        (worker_main, nprocs), kwargs = d2_calls[0]
        url = kwargs["dist_url"]
    else:
        assert not d2_calls and len(mp_calls) == 1
        fn, kwargs = mp_calls[0]
        assert fn is launch_mod._cpu_worker and kwargs["nprocs"] == 2
        worker_main, _, nprocs, _, url, _, _ = kwargs["args"]
    assert nprocs == 2 and url.startswith("tcp://127.0.0.1:")
    assert worker_main.func is launch_mod._with_core_share and worker_main.args == (len, 2)

    threads = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    try:
        assert worker_main("abc") == 3
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(threads)


def test_cpu_ddp_only_for_multi_process_cpu_runs(monkeypatch):
    """``DefaultTrainer.__init__`` gets the CPU-capable ``create_ddp_model`` only in a
    multi-process CPU run, and only while the trainer is built."""
    from detectron2.config import get_cfg
    from detectron2.engine import defaults
    from detectron2.utils import comm

    from zoominnet_d2.engine import create_ddp_model
    from zoominnet_d2.engine.ddp import cpu_capable_ddp

    original = defaults.create_ddp_model
    cfg = get_cfg()
    for world, device, patched in ((1, "cpu", False), (2, "cuda", False), (2, "cpu", True)):
        monkeypatch.setattr(comm, "get_world_size", lambda: world)
        cfg.MODEL.DEVICE = device
        with cpu_capable_ddp(cfg):
            assert (defaults.create_ddp_model is create_ddp_model) == patched, (world, device)
        assert defaults.create_ddp_model is original
    with pytest.raises(RuntimeError), cpu_capable_ddp(cfg):
        raise RuntimeError("construction failed")
    assert defaults.create_ddp_model is original
