"""Find the submissions in a folder and give each a student id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


class IngestError(Exception):
    """The submissions path cannot be read; the message says why."""


@dataclass(frozen=True)
class Submission:
    """One student's notebook file."""

    student: str
    path: Path


def student_id(name: str) -> str:
    """Make a file-name-safe student id from a file stem."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "unnamed"


def find_submissions(folder: Path) -> list[Submission]:
    """List the ``.ipynb`` files directly in ``folder``, sorted by student id.

    The student id is the file stem. Hidden files and Jupyter checkpoints are skipped.
    """
    if not folder.exists():
        raise IngestError(f"submissions folder {folder} not found")
    if folder.is_file():
        if folder.suffix != ".ipynb":
            raise IngestError(f"{folder} is not a folder or an .ipynb notebook")
        return [Submission(student_id(folder.stem), folder)]
    submissions: dict[str, Submission] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix != ".ipynb":
            continue
        student = student_id(path.stem)
        if student in submissions:
            raise IngestError(f"{path.name} and {submissions[student].path.name} give the same id {student}")
        submissions[student] = Submission(student, path)
    return sorted(submissions.values(), key=lambda s: s.student)
