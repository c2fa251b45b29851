"""Grade a batch of submissions and write every output as each one finishes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from .ingest import IngestError, find_submissions
from .pipeline import GradeOptions, grade_submission
from .report import write_feedback, write_gradebook, write_result
from .results import SubmissionResult
from .rubric import Rubric

log = logging.getLogger(__name__)

ResultCallback = Callable[[int, int, SubmissionResult], None]


class BatchError(Exception):
    """The batch cannot start: bad submissions path or output folder."""


def grade_batch(
    submissions: Path,
    out_dir: Path,
    rubric: Rubric,
    data_dir: Path,
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
    options = GradeOptions(rubric=rubric, data_dir=data_dir, executed_dir=out_dir / "executed")
    results: list[SubmissionResult] = []
    for number, submission in enumerate(found, start=1):
        log.info("grading %s (%s)", submission.student, submission.path)
        result = grade_submission(submission.path, submission.student, options)
        write_result(result, out_dir)
        write_feedback(result, rubric, out_dir)
        results.append(result)
        write_gradebook(results, rubric, out_dir)
        if on_result is not None:
            on_result(number, len(found), result)
    return results
