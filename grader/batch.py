"""Grade a batch of submissions, in parallel worker processes, and write every output
as soon as each submission is done.

A rerun on the same output folder reuses the result of every submission whose file
and rubric are unchanged, so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import results
from .ingest import IngestError, Submission, find_submissions
from .pipeline import GradeOptions, grade_submission
from .report import write_feedback, write_gradebook, write_result
from .results import SubmissionResult
from .rubric import Rubric

log = logging.getLogger(__name__)

ResultCallback = Callable[[int, int, SubmissionResult], None]
# How often a submission is retried after its worker process died.
MAX_WORKER_DEATHS = 2


class BatchError(Exception):
    """The batch cannot start: bad submissions path or output folder."""


@dataclass(frozen=True)
class BatchSettings:
    """How a batch runs: worker count, reuse of earlier results, and where data lives."""

    data_dir: Path
    workers: int = 0  # 0 means one per CPU core
    regrade: bool = False  # grade again even when file and rubric are unchanged


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _previous_result(out_dir: Path, submission: Submission, rubric: Rubric) -> SubmissionResult | None:
    """Return the stored result when the submission's file and the rubric are unchanged."""
    path = out_dir / "results" / f"{submission.student}.json"
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        previous = SubmissionResult.from_document(document)
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning("ignoring unreadable earlier result %s: %s", path, error)
        return None
    if previous.status == results.GRADER_ERROR or previous.rubric_sha256 != rubric.digest:
        return None
    if previous.content_sha256 != results.file_sha256(submission.path):
        return None
    return previous


def _failed_result(submission: Submission, rubric: Rubric, reason: str) -> SubmissionResult:
    result = SubmissionResult(student=submission.student, source=submission.path.name,
                              status=results.GRADER_ERROR, reason=reason,
                              max_total=rubric.max_total, rubric_sha256=rubric.digest)
    result.zero_items(rubric.items, reason)
    return result


def _run_parallel(todo: list[Submission], options: GradeOptions, workers: int,
                  finish: Callable[[SubmissionResult], None]) -> None:
    """Grade ``todo`` in worker processes; a pool whose worker dies is replaced."""
    deaths: dict[str, int] = {}
    pending = list(todo)
    context = multiprocessing.get_context("spawn")
    while pending:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures: dict[Future[SubmissionResult], Submission] = {
                pool.submit(grade_submission, s.path, s.student, options): s for s in pending
            }
            pending = []
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    submission = futures.pop(future)
                    try:
                        finish(future.result())
                    except BrokenProcessPool:
                        deaths[submission.student] = deaths.get(submission.student, 0) + 1
                        if deaths[submission.student] >= MAX_WORKER_DEATHS:
                            log.error("worker died twice while grading %s", submission.student)
                            finish(_failed_result(submission, options.rubric,
                                                  "the grading worker process died twice"))
                        else:
                            pending.append(submission)


def grade_batch(
    submissions: Path,
    out_dir: Path,
    rubric: Rubric,
    settings: BatchSettings,
    on_result: ResultCallback | None = None,
) -> list[SubmissionResult]:
    """Grade every submission under ``submissions`` and write the outputs to ``out_dir``."""
    try:
        found = find_submissions(submissions)
    except IngestError as error:
        raise BatchError(str(error)) from error
    if not found:
        raise BatchError(f"no .ipynb files found in {submissions}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BatchError(f"cannot create output folder {out_dir}: {error.strerror}") from error

    workers = min(settings.workers or default_workers(), len(found))
    options = GradeOptions(
        rubric=rubric,
        data_dir=settings.data_dir,
        executed_dir=out_dir / "executed",
        cache_dir=out_dir / ".cache" / "training",
        # Workers share the cores, so kernels never oversubscribe the CPU.
        kernel_threads=max(1, default_workers() // workers),
    )
    finished: dict[str, SubmissionResult] = {}

    def finish(result: SubmissionResult) -> None:
        write_result(result, out_dir)
        write_feedback(result, rubric, out_dir)
        finished[result.student] = result
        write_gradebook(finished.values(), rubric, out_dir)
        if on_result is not None:
            on_result(len(finished), len(found), result)

    todo = []
    for submission in found:
        previous = None if settings.regrade else _previous_result(out_dir, submission, rubric)
        if previous is not None:
            log.info("reusing the earlier result of %s: file and rubric unchanged", submission.student)
            finish(previous)
        else:
            todo.append(submission)
    if workers <= 1:
        for submission in todo:
            finish(grade_submission(submission.path, submission.student, options))
    else:
        _run_parallel(todo, options, workers, finish)
    return [finished[submission.student] for submission in found]
