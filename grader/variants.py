"""Per-student variants of task 5.1: every student gets their own numbers.

A student's problem comes from an HMAC-SHA256 of their student id keyed with a
course secret that only the instructor has. The notebook carries the numbers for the
student to read, but grading recomputes them from the id and the secret, so editing
the numbers in the notebook gains nothing. A student who submits someone else's
notebook is graded against their own numbers, so the copied 5.1 answers are wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace
from pathlib import Path

import nbformat

from .backprop import BackpropProblem
from .practice import generate_problem, problem_notebook
from .rubric import Rubric, RubricError

ASSIGNMENT = Path(__file__).resolve().parent.parent / "assignment" / "exercise5.ipynb"
# Cell id of the assignment's 5.1 task text, replaced per student.
TASK_CELL = "task-5-1"


def read_secret(path: Path) -> bytes:
    """Read the course secret; raise RubricError when it is missing or too short."""
    try:
        secret = path.read_bytes().strip()
    except OSError as error:
        raise RubricError(f"cannot read the course secret {path}: {error.strerror}; create one "
                          "with `grader assign --new-secret`") from error
    if len(secret) < 16:
        raise RubricError(f"the course secret in {path} is shorter than 16 bytes")
    return secret


def new_secret(path: Path) -> None:
    """Write a random course secret that only the owner may read; never overwrite one."""
    with open(path, "x", encoding="ascii") as stream:
        stream.write(secrets.token_hex(32) + "\n")
    path.chmod(0o600)


def variant_problem(secret: bytes, student: str, rubric: Rubric) -> BackpropProblem:
    """Return the 5.1 problem of ``student``, with the rubric's activation."""
    digest = hmac.new(secret, student.encode("utf-8"), hashlib.sha256).digest()
    seed = int.from_bytes(digest[:6], "big")
    activation = rubric.problem.activation if rubric.problem is not None else None
    return generate_problem(seed, activation)


def rubric_for(rubric: Rubric, secret: bytes | None, student: str) -> Rubric:
    """Return the rubric with the student's own 5.1 problem when variants are on."""
    if secret is None:
        return rubric
    return replace(rubric, problem=variant_problem(secret, student, rubric))


def variant_notebook(problem: BackpropProblem, assignment: Path = ASSIGNMENT) -> nbformat.NotebookNode:
    """Return the assignment notebook with its 5.1 text and answer cell for ``problem``."""
    notebook = nbformat.read(assignment, as_version=4)
    practice = problem_notebook(problem)
    task = next(cell for cell in practice.cells
                if cell.cell_type == "markdown" and cell.source.startswith("## 5.1"))
    for cell in notebook.cells:
        if cell.get("id") == TASK_CELL:
            cell.source = task.source.replace("practice problem", "your own numbers", 1)
    # The answer cell stays the assignment's: the grader reads the final state, so
    # computed answers are fine here, unlike in the practice checker.
    return notebook
