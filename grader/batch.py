"""Grade a batch of submissions, in parallel worker processes, and write every output
as soon as each submission is done.

A rerun on the same output folder reuses the result of every submission whose file
and rubric are unchanged, so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil

from . import results
from .ingest import IngestError, Submission, collect_submissions
from .overview import write_overview
from .similarity import find_similar
from .pipeline import (
    GradeOptions,
    finish_model,
    grade_notebook,
    grade_submission,
    grading_sandbox,
    model_checker,
    start_services,
)
from .report import write_feedback, write_gradebook, write_result
from .results import SubmissionResult
from .rubric import Rubric

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "assignment" / "exercise5.ipynb"

# Called after each result: submissions done, submissions in all, the result, and
# whether it was reused from an earlier run because file and rubric are unchanged.
ResultCallback = Callable[[int, int, SubmissionResult, bool], None]
# Called once the submissions are found, with their number and the number of workers.
StartCallback = Callable[[int, int], None]
# The format of log lines, in the CLI and in worker processes.
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
# How often a submission is retried after its worker process died.
MAX_WORKER_DEATHS = 2


class BatchError(Exception):
    """The batch cannot start: bad submissions path or output folder."""


@dataclass(frozen=True)
class BatchSettings:
    """Batch settings: worker count, reuse of earlier results, data, roster and sandbox."""

    data_dir: Path
    workers: int = 0  # 0 means one per CPU core
    regrade: bool = False  # grade again even when file and rubric are unchanged
    roster: Path | None = None  # CSV of enrolled students; those without a submission get a row
    sandbox: str = "auto"  # auto (bubblewrap when it works), bubblewrap, or none
    template: Path | None = DEFAULT_TEMPLATE  # the assignment notebook, left out of similarity
    executor: str = "local"  # local worker processes, or dask
    scheduler: str | None = None  # Dask scheduler address; None starts a local Dask cluster
    variant_secret: bytes | None = None  # course secret of per-student 5.1 variants


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _read_stored_result(path: Path) -> SubmissionResult | None:
    """Read a result document written by an earlier run; None, with a warning, if unreadable."""
    try:
        return SubmissionResult.from_document(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning("ignoring unreadable earlier result %s: %s", path, error)
        return None


def _previous_result(out_dir: Path, submission: Submission, rubric: Rubric) -> SubmissionResult | None:
    """Return the stored result when the submission's file and the rubric are unchanged."""
    path = out_dir / "results" / f"{submission.student}.json"
    previous = _read_stored_result(path) if path.is_file() else None
    if previous is None:
        return None
    if previous.status == results.GRADER_ERROR or previous.rubric_sha256 != rubric.digest:
        return None
    if previous.content_sha256 != results.file_sha256(submission.path):
        return None
    return previous


def _earlier_results(out_dir: Path, current: set[str]) -> list[SubmissionResult]:
    """Load the stored results of students outside this batch, so that grading a late
    submission into a class's output folder keeps everyone else's gradebook row."""
    stored = (_read_stored_result(path) for path in sorted((out_dir / "results").glob("*.json"))
              if path.stem not in current)
    return [result for result in stored if result is not None]


def _failed_result(submission: Submission, rubric: Rubric, reason: str,
                   status: str = results.GRADER_ERROR) -> SubmissionResult:
    source = submission.path.name if submission.path else ""
    result = SubmissionResult(student=submission.student, source=source, status=status,
                              reason=reason, name=submission.name,
                              max_total=rubric.max_total, rubric_sha256=rubric.digest)
    result.zero_items(rubric.items, reason)
    result.notes.extend(submission.warnings)
    return result


def _ungradable_result(submission: Submission, rubric: Rubric) -> SubmissionResult | None:
    """Return the result of a submission that cannot be graded: missing or invalid."""
    if submission.missing:
        return _failed_result(submission, rubric, "no submission", results.MISSING)
    if submission.problem or submission.path is None:
        reason = submission.problem or "no notebook found"
        return _failed_result(submission, rubric, reason, results.INVALID_SUBMISSION)
    return None


def _run_parallel(todo: list[Submission], options: GradeOptions, workers: int,
                  finish: Callable[[SubmissionResult], None]) -> None:
    """Grade ``todo`` in worker processes; a pool whose worker dies is replaced.

    The workers run the notebooks, and this process checks and trains their models
    meanwhile (``finish_model``), so a worker starts its next notebook at once.
    """
    deaths: dict[str, int] = {}
    pending = list(todo)
    context = multiprocessing.get_context("spawn")
    # Started from this thread, which outlives it (see the NOTE in grader/sandbox.py).
    model_checker(options)[0].start()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-models") as model_pool:
        while pending:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                     initializer=_start_worker,
                                     initargs=(options, logging.getLogger().level)) as pool:
                try:
                    pending = _collect(pool, model_pool, pending, options, finish, deaths)
                except KeyboardInterrupt:
                    # Workers ignore Ctrl-C, so the batch stops here at once; their kernels
                    # end with them (bubblewrap's die-with-parent, or the process tree kill).
                    _kill_children()
                    pool.shutdown(wait=False, cancel_futures=True)
                    model_pool.shutdown(wait=False, cancel_futures=True)
                    raise


def _kill_children() -> None:
    """Kill this process's children but multiprocessing's resource tracker: killed, it
    would be started again by the pool's shutdown and print errors about semaphores
    that it never saw."""
    for child in psutil.Process().children():
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                child.kill()
        except psutil.NoSuchProcess:
            continue


def _start_worker(options: GradeOptions, log_level: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A spawned worker starts without the CLI's logging set-up.
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    start_services(options, check_models=False)


def _collect(pool: ProcessPoolExecutor, model_pool: ThreadPoolExecutor, pending: list[Submission],
             options: GradeOptions, finish: Callable[[SubmissionResult], None],
             deaths: dict[str, int]) -> list[Submission]:
    """Submit ``pending`` to ``pool``, check each model on ``model_pool`` and finish each
    result; return the submissions to retry."""
    futures: dict[Future[Any], Submission] = {
        pool.submit(grade_notebook, s.path, s.student, options): s for s in pending
    }
    checking: set[Future[SubmissionResult]] = set()
    retry = []
    while futures or checking:
        done, _ = wait([*futures, *checking], return_when=FIRST_COMPLETED)
        for future in done:
            if future in checking:
                checking.discard(future)
                finish(future.result())
                continue
            submission = futures.pop(future)
            try:
                result, job = future.result()
            except BrokenProcessPool:
                deaths[submission.student] = deaths.get(submission.student, 0) + 1
                if deaths[submission.student] >= MAX_WORKER_DEATHS:
                    log.error("worker died twice while grading %s", submission.student)
                    finish(_failed_result(submission, options.rubric,
                                          "the grading worker process died twice"))
                else:
                    retry.append(submission)
                continue
            if job is None:
                finish(result)
            else:
                checking.add(model_pool.submit(finish_model, result, job, options))
    return retry


def _check_output_folder(out_dir: Path) -> None:
    """Create the output folder and make sure files can be written there, before any
    notebook runs."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchError(f"output folder {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".grader-write-test-"):
            pass
    except OSError as error:
        raise BatchError(f"cannot write to output folder {out_dir}: {error.strerror}") from error


def grade_batch(
    submissions: Path,
    out_dir: Path,
    rubric: Rubric,
    settings: BatchSettings,
    on_result: ResultCallback | None = None,
    on_start: StartCallback | None = None,
) -> list[SubmissionResult]:
    """Grade every submission under ``submissions`` and write the outputs to ``out_dir``."""
    if settings.variant_secret is not None:
        # Results of another secret must not be reused, so the secret enters the digest.
        secret_digest = hashlib.sha256(settings.variant_secret).hexdigest()
        rubric = dataclasses.replace(
            rubric, digest=hashlib.sha256(f"{rubric.digest}:{secret_digest}".encode()).hexdigest())
    _check_output_folder(out_dir)
    with tempfile.TemporaryDirectory(prefix="grader-ingest-") as scratch:
        try:
            found = collect_submissions(submissions, Path(scratch), settings.roster)
        except IngestError as error:
            raise BatchError(str(error)) from error
        if not found:
            raise BatchError(f"no submissions found in {submissions}")
        source = submissions if submissions.is_dir() else submissions.parent
        hidden = (source.resolve(), out_dir.resolve(), Path(scratch).resolve())
        workers = min(settings.workers or default_workers(), len(found))
        if on_start is not None:
            # Roster students without a submission have a row, but nothing to grade.
            on_start(sum(not submission.missing for submission in found), workers)
        return _grade_found(found, out_dir, rubric, settings, workers, hidden, on_result)


def _grade_found(found: list[Submission], out_dir: Path, rubric: Rubric, settings: BatchSettings,
                 workers: int, hidden: tuple[Path, ...],
                 on_result: ResultCallback | None) -> list[SubmissionResult]:
    started = time.monotonic()
    options = GradeOptions(
        rubric=rubric,
        data_dir=settings.data_dir,
        executed_dir=out_dir / "executed",
        cache_dir=out_dir / ".cache" / "training",
        # Workers share the cores, so kernels never oversubscribe the CPU.
        kernel_threads=max(1, default_workers() // workers),
        sandbox=settings.sandbox,
        hidden=hidden,
        variant_secret=settings.variant_secret,
    )
    finished: dict[str, SubmissionResult] = {}

    names = {submission.student: submission for submission in found}
    earlier = _earlier_results(out_dir, set(names))
    if earlier:
        log.warning("%s keeps %d earlier results of students not in this batch in the gradebook",
                    out_dir, len(earlier))
    for submission in found:
        for warning in submission.warnings:
            log.warning("%s: %s", submission.student, warning)

    def finish(result: SubmissionResult, reused: bool = False) -> None:
        submission = names[result.student]
        result.name = submission.name
        for warning in submission.warnings:
            if warning not in result.notes:
                result.notes.append(warning)
        started = time.monotonic()
        write_feedback(result, rubric, out_dir)
        # A reused result keeps the timings of the run that graded it.
        result.timings.setdefault("render", round(time.monotonic() - started, 3))
        write_result(result, out_dir)
        finished[result.student] = result
        write_gradebook([*earlier, *finished.values()], rubric, out_dir)
        if on_result is not None:
            on_result(len(finished), len(found), result, reused)

    todo = []
    for submission in found:
        ungradable = _ungradable_result(submission, rubric)
        if ungradable is not None:
            finish(ungradable)
            continue
        previous = None if settings.regrade else _previous_result(out_dir, submission, rubric)
        if previous is not None:
            log.info("reusing the earlier result of %s: file and rubric unchanged", submission.student)
            finish(previous, reused=True)
        else:
            todo.append(submission)
    if todo:
        grading_sandbox(options)  # here, so the batch warns whichever executor runs the notebooks
    if settings.executor == "dask":
        # Imported here: the Dask executor imports this module, and Dask is optional.
        from .dask_executor import run_on_dask

        run_on_dask(todo, options, settings.scheduler, finish, workers=workers)
    elif workers <= 1:
        if todo:
            start_services(options)
        for submission in todo:
            finish(grade_submission(submission.path, submission.student, options))
    else:
        _run_parallel(todo, options, workers, finish)
    ordered = [finished[submission.student] for submission in found]
    notebooks = {s.student: s.path for s in found
                 if s.path is not None and finished[s.student].status == results.GRADED}
    template = settings.template if settings.template and settings.template.is_file() else None
    pairs = find_similar(notebooks, template)
    write_overview([*earlier, *ordered], rubric, out_dir, time.monotonic() - started, pairs)
    return ordered
