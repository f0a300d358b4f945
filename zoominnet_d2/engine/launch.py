"""Multi-process training that also works without CUDA.

:func:`launch` keeps Detectron2's launcher (NCCL) when there are enough GPUs and otherwise
runs the same number of CPU processes over Gloo. Detectron2 main's ``launch`` does that
itself; Detectron2 v0.6's is GPU only (every worker asserts ``torch.cuda.is_available()``,
joins an NCCL group and calls ``torch.cuda.set_device``), so there the CPU processes are
started by :func:`_cpu_worker`.
"""
import functools
import logging
import os
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as _d2_launch
from detectron2.utils import comm

__all__ = ["DEFAULT_TIMEOUT", "launch"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=30)

# Detectron2's launch runs CPU processes over Gloo since its PR #4720, which came just before
# PR #4742 added comm.create_local_process_group (Detectron2 main has both, v0.6 neither).
D2_LAUNCHES_CPU_PROCESSES = hasattr(comm, "create_local_process_group")


def _find_free_port() -> int:
    """A free TCP port on this machine (as Detectron2's ``_find_free_port``; it may, rarely,
    be taken by another process before the workers bind it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def launch(main_func, num_gpus_per_machine, num_machines=1, machine_rank=0, dist_url=None, args=(),
           timeout=DEFAULT_TIMEOUT):
    """Run ``main_func(*args)`` in ``num_gpus_per_machine`` processes on each machine.

    Same arguments as :func:`detectron2.engine.launch`. With CUDA and at least
    ``num_gpus_per_machine`` devices this *is* Detectron2's launch (one process per GPU,
    NCCL). Without CUDA, the processes run on the CPU and communicate over Gloo, each with
    its share of the cores; the number of processes is still given by
    ``num_gpus_per_machine`` (``--num-gpus``), so the same command line works on both kinds
    of machine. One process in total: ``main_func`` runs in this process.

    Raises:
        ValueError: CUDA is available but has fewer devices than asked for (training on
            the CPU instead would be silent and very slow: hide the GPUs with
            ``CUDA_VISIBLE_DEVICES=`` to ask for CPU processes), or ``dist_url`` is missing
            or "auto" in a multi-machine job.
    """
    world_size = num_machines * num_gpus_per_machine
    if torch.cuda.is_available():
        if num_gpus_per_machine > torch.cuda.device_count():
            raise ValueError(
                f"--num-gpus {num_gpus_per_machine}, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); to train with "
                f"{num_gpus_per_machine} CPU processes instead, hide the GPUs with CUDA_VISIBLE_DEVICES="
            )
        return _d2_launch(main_func, num_gpus_per_machine, num_machines=num_machines,
                          machine_rank=machine_rank, dist_url=dist_url, args=args, timeout=timeout)
    if world_size <= 1:
        return main_func(*args)

    if dist_url is None or dist_url == "auto":
        if num_machines != 1:
            raise ValueError("a multi-machine job needs an explicit --dist-url (tcp://host:port)")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    worker_main = functools.partial(_with_core_share, main_func, num_gpus_per_machine)
    if D2_LAUNCHES_CPU_PROCESSES:
        return _d2_launch(worker_main, num_gpus_per_machine, num_machines=num_machines,
                          machine_rank=machine_rank, dist_url=dist_url, args=args, timeout=timeout)
    mp.start_processes(
        _cpu_worker,
        nprocs=num_gpus_per_machine,
        args=(worker_main, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _with_core_share(main_func, num_procs_per_machine, *args):
    """``main_func(*args)`` in a CPU process that takes its share of the machine's cores
    (unless ``OMP_NUM_THREADS`` says otherwise) instead of each process taking all of them."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_procs_per_machine))
    return main_func(*args)


def _cpu_worker(local_rank, main_func, world_size, num_procs_per_machine, machine_rank, dist_url,
                args, timeout=DEFAULT_TIMEOUT):
    """One CPU training process for Detectron2 v0.6: Gloo process group, the local group,
    then main (as Detectron2 main's ``_distributed_worker`` does without CUDA)."""
    global_rank = machine_rank * num_procs_per_machine + local_rank
    try:
        dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size,
                                rank=global_rank, timeout=timeout)
    except Exception:
        logger.error("Process group URL: %s", dist_url)
        raise
    _create_local_process_group(num_procs_per_machine, machine_rank, world_size)
    # As Detectron2: a barrier right away avoids a possible timeout after init_process_group.
    comm.synchronize()
    main_func(*args)
    dist.destroy_process_group()


def _create_local_process_group(num_procs_per_machine: int, machine_rank: int, world_size: int) -> None:
    """The group of the processes on this machine, used by ``comm.get_local_rank()``.

    Detectron2 v0.6 has no public way to set it (main has ``comm.create_local_process_group``):
    its own worker assigns ``comm._LOCAL_PROCESS_GROUP``, which this does the same way
    (every process must call ``new_group`` for every machine's group, in the same order).
    """
    assert comm._LOCAL_PROCESS_GROUP is None
    for i in range(world_size // num_procs_per_machine):
        ranks_on_i = list(range(i * num_procs_per_machine, (i + 1) * num_procs_per_machine))
        group = dist.new_group(ranks_on_i)
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
