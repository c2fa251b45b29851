"""Grading on a local Dask cluster: the same results as local grading, and failed
tasks, dead workers and unreachable schedulers handled without stopping the batch."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="Dask is not installed: pip install 'ex5-grader[dask]'")

from conftest import SUBMISSIONS  # noqa: E402
from grader import dask_executor  # noqa: E402
from grader.dask_executor import (  # noqa: E402
    DaskClusterError,
    DaskUnavailableError,
    GradedNotebook,
    run_on_dask,
)
from grader.ingest import Submission  # noqa: E402
from grader.mnist import BUILTIN_DIR  # noqa: E402
from grader.pipeline import GradeOptions, grade_submission  # noqa: E402
from grader.results import GRADED, GRADER_ERROR, SubmissionResult  # noqa: E402
from notebooks import write_notebook  # noqa: E402

pytestmark = pytest.mark.slow

SAMPLES = ["ox47ukev", "eb34tuwo"]  # correct, padding=2


def comparable(result: SubmissionResult) -> dict:
    document = result.to_document()
    document.pop("timings")
    document["training"].pop("seconds", None)
    document["training"].pop("reused", None)
    return document


@pytest.fixture()
def notebooks(tmp_path: Path) -> list[Submission]:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in SAMPLES:
        shutil.copy(SUBMISSIONS / f"{name}.ipynb", folder)
    return [Submission(name, folder / f"{name}.ipynb") for name in SAMPLES]


@pytest.fixture()
def options(rubric) -> GradeOptions:
    return GradeOptions(rubric=rubric, data_dir=BUILTIN_DIR)


def test_dask_equals_local(notebooks, options, tmp_path):
    missing = Submission("gone", tmp_path / "gone.ipynb")
    executed_dir = tmp_path / "executed"
    finished: list[tuple[SubmissionResult, int]] = []

    def finish(result: SubmissionResult) -> None:
        finished.append((result, os.getpid()))

    started = time.monotonic()
    run_on_dask([*notebooks, missing], dataclasses.replace(options, executed_dir=executed_dir),
                None, finish, workers=2)
    print(f"run_on_dask took {time.monotonic() - started:.1f} s")

    by_student = {result.student: result for result, _ in finished}
    assert sorted(by_student) == sorted([*SAMPLES, "gone"])
    assert len(finished) == 3
    assert {pid for _, pid in finished} == {os.getpid()}

    assert by_student["gone"].status == GRADER_ERROR
    assert "reading the notebook" in by_student["gone"].reason
    assert by_student["gone"].total == 0

    for submission in notebooks:
        local = grade_submission(submission.path, submission.student, options)
        remote = by_student[submission.student]
        assert remote.status == GRADED
        assert comparable(remote) == comparable(local)
        assert (executed_dir / f"{submission.student}.ipynb").is_file()


def test_task_error_names_worker(notebooks, options):
    finished: list[SubmissionResult] = []
    # grade_submission raises on an unknown sandbox mode before it reads the notebook,
    # so the task itself fails on the worker.
    broken = dataclasses.replace(options, sandbox="no-such-mode")

    run_on_dask(notebooks[:1], broken, None, finished.append, workers=1)

    assert len(finished) == 1
    assert finished[0].status == GRADER_ERROR
    assert "ValueError" in finished[0].reason
    assert "on Dask worker tcp://127.0.0.1:" in finished[0].reason


def test_failures_retried_once(notebooks, options, tmp_path, monkeypatch):
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    # A nested function is pickled by value, so the workers run it without importing
    # this test module.
    def grade_or_fail(task, setup):
        with open(attempts / task.student, "a") as stream:
            stream.write("attempt\n")
        if task.student == "dies":
            time.sleep(1)  # lets the client fetch the other results before the worker dies
            os._exit(3)
        if task.student == "raises":
            raise RuntimeError("broken on purpose")
        result = SubmissionResult(student=task.student, source=task.file_name, status=GRADED)
        return GradedNotebook(result, None)

    monkeypatch.setattr(dask_executor, "grade_on_worker", grade_or_fail)
    path = notebooks[0].path
    todo = [Submission("works", path), Submission("raises", path), Submission("dies", path)]
    finished: list[SubmissionResult] = []

    run_on_dask(todo, options, None, finished.append, workers=2)

    by_student = {result.student: result for result in finished}
    assert sorted(by_student) == ["dies", "raises", "works"]
    assert by_student["works"].status == GRADED
    assert by_student["dies"].status == GRADER_ERROR
    assert "died" in by_student["dies"].reason
    assert by_student["raises"].status == GRADER_ERROR
    assert "RuntimeError: broken on purpose" in by_student["raises"].reason
    assert (attempts / "dies").read_text().count("attempt") == 2
    assert (attempts / "raises").read_text().count("attempt") == 2
    assert (attempts / "works").read_text().count("attempt") == 1


def test_unreachable_scheduler_raises(notebooks, options):
    started = time.monotonic()
    expected = "connecting to the Dask scheduler at tcp://127.0.0.1:1 failed: Timed out"
    with pytest.raises(DaskClusterError, match=expected):
        run_on_dask(notebooks, options, "tcp://127.0.0.1:1", lambda result: None, connect_timeout=2)
    assert time.monotonic() - started < 15


def test_invalid_scheduler_address_raises(notebooks, options):
    with pytest.raises(DaskClusterError, match="invalid Dask scheduler address '127.0.0.1'"):
        run_on_dask(notebooks, options, "127.0.0.1", lambda result: None, connect_timeout=2)


def test_missing_distributed_raises(notebooks, options, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(DaskUnavailableError, match=r"pip install 'ex5-grader\[dask\]'"):
        run_on_dask(notebooks, options, None, lambda result: None)


def test_empty_todo_starts_nothing(options, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    run_on_dask([], options, None, lambda result: None)


def test_worker_rejects_other_data(options, tmp_path):
    setup = dataclasses.replace(dask_executor._worker_setup(options), data_sha256="0" * 64)
    with pytest.raises(dask_executor.WorkerSetupError, match="MNIST files"):
        dask_executor._worker_options(setup, tmp_path)


def test_worker_rejects_other_version(options, tmp_path, monkeypatch):
    setup = dataclasses.replace(dask_executor._worker_setup(options), grader_version="0.0.1")
    monkeypatch.setattr(dask_executor, "_grader_version", lambda: "9.9.9")
    with pytest.raises(dask_executor.WorkerSetupError, match="runs ex5-grader 9.9.9"):
        dask_executor._worker_options(setup, tmp_path)


def test_worker_options_use_local_copies(options, tmp_path):
    setup = dask_executor._worker_setup(options)
    worker_options = dask_executor._worker_options(setup, tmp_path)
    reference = worker_options.rubric.reference_module
    assert reference != options.rubric.reference_module
    assert reference.is_relative_to(tmp_path)
    assert reference.read_bytes() == options.rubric.reference_module.read_bytes()
    assert worker_options.rubric.digest == options.rubric.digest
    assert worker_options.data_dir == BUILTIN_DIR
    assert worker_options.cache_dir == tmp_path / "grader-training-cache"
    assert worker_options.executed_dir is None
    assert tmp_path in worker_options.hidden


def test_worker_options_same_every_task(options, tmp_path):
    # A change would make grade_submission restart the model check process.
    setup = dask_executor._worker_setup(options)
    first = dask_executor._worker_options(setup, tmp_path)
    second = dask_executor._worker_options(setup, tmp_path)
    assert second == first


def test_worker_options_without_reference(options, tmp_path):
    kit_rubric = dataclasses.replace(options.rubric, reference_module=None)
    setup = dask_executor._worker_setup(dataclasses.replace(options, rubric=kit_rubric))
    assert setup.reference_source is None
    worker_options = dask_executor._worker_options(setup, tmp_path)
    assert worker_options.rubric.reference_module is None
    assert not (tmp_path / "grader-reference").exists()


def test_lost_scheduler_fails_the_rest(notebooks, options, monkeypatch):
    from distributed import LocalCluster

    def grade_quickly(task, setup):
        result = SubmissionResult(student=task.student, source=task.file_name, status=GRADED)
        return GradedNotebook(result, None)

    monkeypatch.setattr(dask_executor, "grade_on_worker", grade_quickly)
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0")
    finished: list[SubmissionResult] = []

    def finish(result: SubmissionResult) -> None:
        finished.append(result)
        if len(finished) == 1:
            cluster.close()  # the scheduler goes away after the first result

    path = notebooks[0].path
    todo = [Submission(name, path) for name in ("first", "second", "third")]
    try:
        run_on_dask(todo, options, cluster.scheduler_address, finish, connect_timeout=2)
    finally:
        cluster.close()

    assert [result.student for result in finished] == ["first", "second", "third"]
    assert finished[0].status == GRADED
    for result in finished[1:]:
        assert result.status == GRADER_ERROR
        assert "connection to the Dask scheduler was lost" in result.reason


def test_scheduler_without_workers_raises(notebooks, options, monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setattr(dask_executor, "WORKER_WAIT_SECONDS", 1.0)
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        with pytest.raises(DaskClusterError, match="has no workers after 1 s"):
            run_on_dask(notebooks, options, cluster.scheduler_address, lambda result: None)


def test_worker_with_threads_rejected(notebooks, options):
    from distributed import LocalCluster

    finished: list[SubmissionResult] = []
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        run_on_dask(notebooks[:1], options, cluster.scheduler_address, finished.append)

    assert len(finished) == 1
    assert finished[0].status == GRADER_ERROR
    assert "WorkerSetupError: this worker runs 2 threads" in finished[0].reason


def test_limits_only_warning_with_dask(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_notebook(folder / "ab12cdef.ipynb", ["x = 1"])
    completed = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(tmp_path / "out"),
         "--executor", "dask", "--workers", "1", "--sandbox", "none"],
        capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = [line for line in completed.stderr.splitlines() if "resource limits only" in line]
    assert lines == ["WARNING grader.pipeline: student code runs with resource limits only: "
                     "bubblewrap was turned off (prefer='none')"]
