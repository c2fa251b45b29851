"""Gradebook exports for learning-management systems, written from a finished run's
result documents with pandas.

Column conventions (each LMS matches rows on one id column and ignores the others):

- ``full``: every rubric item's points, as ``gradebook.csv``, plus names and feedback.
- ``moodle``: the assignment's offline grading worksheet ("Download grading
  worksheet", then "Upload grading worksheet"): ``Identifier`` ("Participant N", N
  the participant id from the folder names of Moodle's submission download),
  ``Full name``, ``Grade``, ``Maximum grade`` and ``Feedback comments``. Moodle matches
  rows on ``Identifier`` only, so this export needs Moodle student ids.
- ``canvas``: the gradebook import: ``Student``, ``ID`` (the Canvas user id, as in
  the file names of Canvas's submission download), ``SIS User ID``, ``SIS Login ID``,
  ``Section`` and one column named after the assignment holding the points.
- ``ilias``: ``Login``, ``Name``, ``Mark`` and ``Comment`` for entering marks of an
  exercise assignment in StudOn/ILIAS; the id is the login from the folder names of
  the ILIAS submission download.

NOTE: the Moodle and Canvas layouts follow those systems' documented import columns.
The ILIAS layout was not checked against a real ILIAS import, so map its columns by
hand there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .report import spreadsheet_safe
from .results import GRADED, SubmissionResult

FORMATS = ("full", "moodle", "canvas", "ilias")


class ExportError(Exception):
    """The run folder cannot be exported; the message explains why."""


def load_results(out_dir: Path) -> list[SubmissionResult]:
    """Read every result document of a finished run."""
    folder = out_dir / "results"
    if not folder.is_dir():
        raise ExportError(f"{folder} not found: run `grader grade ... --out {out_dir}` first")
    results = []
    for path in sorted(folder.glob("*.json")):
        try:
            results.append(SubmissionResult.from_document(json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, TypeError, KeyError) as error:
            raise ExportError(f"{path} is not a result document of this grader version: {error}") from error
    if not results:
        raise ExportError(f"{folder} contains no result documents")
    return results


def feedback_text(result: SubmissionResult) -> str:
    """Summarise a result in one line per rubric item that lost points, for LMS comments."""
    if result.status != GRADED:
        return f"Not graded ({result.status}): {result.reason}"
    lost = [f"{item.id}: {item.points:g}/{item.max_points:g}. {item.message}"
            for item in result.items if item.points < item.max_points]
    header = f"{result.total:g}/{result.max_total:g} points."
    return "\n".join([header, *lost]) if lost else header + " Everything is correct."


def export_frame(results: list[SubmissionResult], kind: str, assignment: str) -> pd.DataFrame:
    """Build the export table for ``kind`` (one of FORMATS)."""
    if kind == "full":
        rows = []
        for result in results:
            row = {"student": result.student, "name": result.name, "status": result.status,
                   "total": result.total, "max_total": result.max_total}
            row.update({item.id: item.points for item in result.items})
            row["feedback"] = feedback_text(result)
            rows.append(row)
        return pd.DataFrame(rows)
    if kind == "moodle":
        return pd.DataFrame({
            "Identifier": [f"Participant {r.student}" for r in results],
            "Full name": [r.name for r in results],
            "Grade": [r.total for r in results],
            "Maximum grade": [r.max_total for r in results],
            "Feedback comments": [feedback_text(r) for r in results],
        })
    if kind == "canvas":
        return pd.DataFrame({
            "Student": [r.name for r in results],
            "ID": [r.student for r in results],
            "SIS User ID": ["" for _ in results],
            "SIS Login ID": ["" for _ in results],
            "Section": ["" for _ in results],
            assignment: [r.total for r in results],
        })
    if kind == "ilias":
        return pd.DataFrame({
            "Login": [r.student for r in results],
            "Name": [r.name for r in results],
            "Mark": [r.total for r in results],
            "Comment": [feedback_text(r) for r in results],
        })
    raise ExportError(f"unknown export format {kind!r}; choose one of {', '.join(FORMATS)}")


def merge_roster(frame: pd.DataFrame, roster: Path, id_column: str) -> pd.DataFrame:
    """Add the roster's columns to the export, matched on the roster's first column."""
    try:
        table = pd.read_csv(roster, dtype=str, sep=None, engine="python")
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ExportError(f"cannot read roster {roster}: {error}") from error
    if table.empty or len(table.columns) == 0:
        raise ExportError(f"roster {roster} has no rows")
    key = table.columns[0]
    table = table.rename(columns={key: id_column})
    return frame.merge(table, on=id_column, how="left", suffixes=("", " (roster)"))


def write_export(out_dir: Path, kind: str, assignment: str = "Exercise 5",
                 roster: Path | None = None) -> Path:
    """Write ``OUT/exports/<kind>.csv``; return its path."""
    frame = export_frame(load_results(out_dir), kind, assignment)
    if roster is not None:
        id_column = {"full": "student", "moodle": "Identifier", "canvas": "ID", "ilias": "Login"}[kind]
        frame = merge_roster(frame, roster, id_column)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: spreadsheet_safe(v) if isinstance(v, str) else v)
    path = out_dir / "exports" / f"{kind}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
