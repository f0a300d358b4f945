"""tools/side_by_side.py: jobs side by side after the jobs they need, and experiment's stage jobs."""
import os
import threading
import time

import pytest


@pytest.fixture
def side_by_side(import_tool):
    return import_tool("side_by_side")


def recording_jobs(side_by_side, specs, fail=()):
    """Jobs that sleep briefly and record (name, threads, start, end); ``specs``: (name, needs)."""
    log, lock = [], threading.Lock()

    def make(name):
        def run(threads):
            began = time.perf_counter()
            time.sleep(0.05)
            if name in fail:
                raise RuntimeError(f"{name} failed")
            with lock:
                log.append((name, threads, began, time.perf_counter()))
        return run

    return [side_by_side.Job(name, make(name), 1.0, needs) for name, needs in specs], log


DEMO_LIKE = [("tnet", ()), ("snet", ()), ("la", ()), ("cskd_la", ("tnet",)), ("rows", ("snet", "tnet")),
             ("ft1", ("tnet",)), ("ft2", ("tnet",))]


@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_every_job_runs_once_after_its_needs_and_never_more_than_parallel_at_once(side_by_side, parallel):
    jobs, log = recording_jobs(side_by_side, DEMO_LIKE)
    side_by_side.run_jobs(jobs, parallel, cores=2, log=lambda msg: None)
    assert sorted(name for name, *_ in log) == sorted(name for name, _ in DEMO_LIKE)
    spans = {name: (start, end) for name, _, start, end in log}
    for name, needs in DEMO_LIKE:
        for need in needs:
            assert spans[need][1] <= spans[name][0], f"{name} started before {need} ended"
    # Brute force: at every start, count the jobs whose span covers it.
    for name, (start, _) in spans.items():
        running = sum(1 for s, e in spans.values() if s <= start < e)
        assert running <= parallel


def test_threads_split_between_jobs_side_by_side_and_whole_for_a_job_alone(side_by_side):
    # tnet and snet start together (one core each); cskd_la is then the only job that can run.
    jobs, log = recording_jobs(side_by_side, [("tnet", ()), ("snet", ()), ("cskd_la", ("tnet", "snet"))])
    side_by_side.run_jobs(jobs, parallel=2, cores=2, log=lambda msg: None)
    threads = {name: t for name, t, *_ in log}
    assert threads == {"tnet": 1, "snet": 1, "cskd_la": 2}


def test_a_need_outside_the_jobs_is_already_met(side_by_side):
    jobs, log = recording_jobs(side_by_side, [("cskd_la", ("tnet",))])
    side_by_side.run_jobs(jobs, parallel=2, cores=2, log=lambda msg: None)
    assert [(name, t) for name, t, *_ in log] == [("cskd_la", 2)]


def test_a_failure_cancels_the_running_jobs_starts_no_more_and_is_raised(side_by_side):
    jobs, log = recording_jobs(side_by_side, [("tnet", ()), ("snet", ()), ("cskd_la", ("tnet",))], fail=("tnet",))
    cancelled = []
    with pytest.raises(RuntimeError, match="tnet failed"):
        side_by_side.run_jobs(jobs, parallel=2, cores=2, log=lambda msg: None, cancel=lambda: cancelled.append(1))
    assert cancelled == [1]
    assert "cskd_la" not in [name for name, *_ in log]


def test_fewer_than_one_job_at_a_time_is_refused(side_by_side):
    jobs, _ = recording_jobs(side_by_side, [("a", ())])
    with pytest.raises(ValueError, match="parallel must be at least 1"):
        side_by_side.run_jobs(jobs, parallel=0, cores=2, log=lambda msg: None)


def test_jobs_that_wait_on_each_other_are_refused(side_by_side):
    jobs, _ = recording_jobs(side_by_side, [("a", ("b",)), ("b", ("a",))])
    with pytest.raises(ValueError, match="wait on each other"):
        side_by_side.run_jobs(jobs, parallel=2, cores=2, log=lambda msg: None)


def test_stage_jobs_reuse_finished_stages_and_give_the_distilled_stage_its_teacher(import_tool, tmp_path,
                                                                                  monkeypatch):
    experiment = import_tool("experiment")
    done = tmp_path / "snet"
    metrics = experiment.metrics_file(str(done), "synthdrone_val")
    os.makedirs(os.path.dirname(metrics))
    open(metrics, "w").close()
    (done / "model_final.pth").touch()
    stages = [experiment.Stage("tnet", "configs/synth/tnet.yaml", "TNet", 1.9),
              experiment.Stage("snet", "configs/synth/snet.yaml", "SNet", 1.0),
              experiment.Stage("cskd_la", "configs/synth/cskd_la.yaml", "CSKD", 2.2,
                               teacher_as="MODEL.ZOOMIN.TEACHER.WEIGHTS")]
    jobs = experiment.stage_jobs(stages, str(tmp_path), 3, False, "/data", "synthdrone_val", "test")
    assert [(j.name, j.needs) for j in jobs] == [("tnet", ()), ("cskd_la", ("tnet",))]
    calls = []
    monkeypatch.setattr(experiment, "run_train_net", lambda args, env, *rest: calls.append((args, env)))
    jobs[1].run(1)
    args, env = calls[0]
    assert env["OMP_NUM_THREADS"] == "1" and env["DETECTRON2_DATASETS"] == "/data"
    assert args[args.index("SEED") + 1] == "3"
    assert args[args.index("MODEL.ZOOMIN.TEACHER.WEIGHTS") + 1] == str(tmp_path / "tnet" / "model_final.pth")


def test_eta_counts_pending_jobs_and_the_unfinished_part_of_running_ones(side_by_side):
    eta = side_by_side._Eta(parallel=2)
    job = side_by_side.Job("x", lambda threads: None, 1.0)
    assert eta.hint([], []) == "ETA after the first job"
    eta.finished(job, 60.0)  # 60 s per unit of cost
    pending = [job._replace(name="p", cost=3.0)]
    running = [(job._replace(name="r", cost=2.0), time.time() - 60.0)]  # one of its two units done
    # (3 + 1) units x 60 s, two at a time: 2 min
    assert eta.hint(pending, running) == "about 2 min left for all jobs"
    # The last job alone runs on its own, not two at a time: 3 units x 60 s
    assert eta.hint(pending, []) == "about 3 min left for all jobs"
