"""Jobs of an experiment run side by side on the machine's cores, each after the jobs it needs.

On a 2-core CPU one training process does not keep both cores busy: a second intra-op thread
speeds a demo stage up only 1.5x, while two one-thread processes side by side train 1.25-1.34x
the steps per second of one two-thread process (BENCHMARKS.md, "Training stages side by side").
So ``tools/demo.py`` runs its independent stages two at a time, a distilled or fine-tuned
stage once its teacher is trained.

A job is started with the number of intra-op threads it may use: ``cores // parallel`` while
another job runs or is ready to start beside it, all ``cores`` when it is the only one that can
run (no job would start beside it before it ends, since only a finished job makes others ready).
"""
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple


class Job(NamedTuple):
    name: str
    # Does the work with at most this many intra-op threads (e.g. a train_net.py subprocess
    # with OMP_NUM_THREADS); raises on failure.
    run: Callable[[int], None]
    # Relative cost (the demo's SNet stage = 1), for the ETA only.
    cost: float
    # Names of jobs that must finish before this one starts; a name that is not among the
    # jobs run (e.g. a stage finished earlier) is already satisfied.
    needs: Tuple[str, ...] = ()


def run_jobs(jobs: Sequence[Job], parallel: int, cores: int, log: Callable[[str], None],
             cancel: Optional[Callable[[], None]] = None) -> None:
    """Run ``jobs``, at most ``parallel`` at once, each after its ``needs``, ready jobs in the
    order given. ``log`` gets a line when a job starts (its threads and an ETA) and ends.

    If a job fails, ``cancel`` is called (it should stop the running jobs, e.g. terminate their
    subprocesses), no further job starts, and the first failure is raised once the running
    jobs have returned.

    Raises:
        ValueError: ``parallel`` is below 1, a job needs itself or a job that needs it
            (nothing could start), or two jobs share a name.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, got {parallel}")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names must be unique: {names}")
    pending: List[Job] = list(jobs)
    running: Dict[Future, Job] = {}
    started: Dict[str, float] = {}
    eta = _Eta(parallel)
    failure: Optional[BaseException] = None

    def ready() -> List[Job]:
        blocked = {j.name for j in pending} | {j.name for j in running.values()}
        return [j for j in pending if not blocked & set(j.needs)]

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        while pending or running:
            startable = ready() if failure is None else []
            if not running and not startable:
                if failure is None:
                    raise ValueError(f"jobs wait on each other: {[(j.name, j.needs) for j in pending]}")
                break
            for job in startable[:parallel - len(running)]:
                alone = not running and len(startable) == 1
                threads = cores if alone else max(1, cores // parallel)
                log(f"{job.name}: starting on {threads} thread(s); "
                    f"{eta.hint(pending, [(j, started[j.name]) for j in running.values()])}")
                pending.remove(job)
                started[job.name] = time.time()
                running[pool.submit(job.run, threads)] = job
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                seconds = time.time() - started[job.name]
                error = future.exception()
                if error is None:
                    log(f"{job.name}: done in {seconds:.0f} s")
                    eta.finished(job, seconds)
                elif failure is None:
                    failure = error
                    pending.clear()
                    if cancel is not None:
                        cancel()
    if failure is not None:
        raise failure


class _Eta:
    """Time left for the jobs not yet done, from the seconds per unit of cost of the finished
    ones: the pending jobs' cost and the running jobs' unfinished part, ``parallel`` at a time
    (or as many as are left, if fewer)."""

    def __init__(self, parallel: int):
        self.parallel = parallel
        self.seconds = self.cost = 0.0

    def finished(self, job: Job, seconds: float) -> None:
        self.seconds += seconds
        self.cost += job.cost

    def hint(self, pending: Sequence[Job], running: Sequence[Tuple[Job, float]]) -> str:
        if not self.cost:
            return "ETA after the first job"
        per_unit = self.seconds / self.cost
        now = time.time()
        units = sum(j.cost for j in pending) + sum(max(0.0, j.cost - (now - t) / per_unit) for j, t in running)
        side_by_side = max(1, min(self.parallel, len(pending) + len(running)))
        return f"about {units * per_unit / side_by_side / 60:.0f} min left for all jobs"
