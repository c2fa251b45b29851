"""Set up nbgrader 0.9.6 for Exercise 5 as an instructor would, and read its results.

``ensure_nbgrader_venv`` creates the virtualenv ``benchmarks/.venv-nbgrader``,
``write_nbgrader_source`` the source notebook with nbgrader cell metadata, and
``write_nbgrader_submission`` a student notebook that ``nbgrader autograde`` can
grade. ``benchmarks/README.md`` describes each step.
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from measure import WayFailed, run_checked

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPOSITORY_ROOT = BENCHMARKS_DIR.parent
SOLUTION_NOTEBOOK = REPOSITORY_ROOT / "solutions" / "exercise5_solution.ipynb"
ASSIGNMENT_NOTEBOOK = REPOSITORY_ROOT / "assignment" / "exercise5.ipynb"

NBGRADER_VENV = BENCHMARKS_DIR / ".venv-nbgrader"
# torch and torchvision are the releases in the grader's .venv, so that all ways
# run the same torch. On this project's machines pip takes them from local wheels
# and caps torch at 2.14.1 (/etc/xdg/pip). ipykernel is listed because the
# autograde kernel runs on the virtualenv's own Python.
NBGRADER_REQUIREMENTS = (
    "nbgrader==0.9.6",
    "torch==2.14.1",
    "torchvision==0.29.1",
    "torchinfo",
    "ipykernel",
)
NBGRADER_VERSIONS_EXPECTED = {"nbgrader": "0.9.6", "torch": "2.14.1", "torchvision": "0.29.1"}
NBGRADER_ASSIGNMENT = "ex5"
NBGRADER_NOTEBOOK = "exercise5"

# nbgrader cell metadata in schema version 3, the version that nbgrader 0.9.6 writes.
ANSWER_CELL_ID = "answers-5-1"
CONVNET_CELL_ID = "convnet"
ANSWER_CELL_METADATA = {
    "grade": False,
    "grade_id": ANSWER_CELL_ID,
    "locked": False,
    "schema_version": 3,
    "solution": True,
    "task": False,
}
TESTS_5_1_ID = "tests-5-1"
TESTS_CONVNET_ID = "tests-convnet-shape"
TESTS_5_1_SOURCE = '''\
# Autograder tests for 5.1: the six hand-computed values.
import numpy as np
import torch


def as_flat_floats(value):
    """Return a number, list, NumPy array or torch tensor as a flat float array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=float).ravel()


assert np.allclose(as_flat_floats(v), [4, 0, 11]), "v is not correct"
assert np.allclose(as_flat_floats(y_predicted), [18]), "y_predicted is not correct"
assert np.allclose(as_flat_floats(C), [225]), "C is not correct"
assert np.allclose(as_flat_floats(dC_dw11), [-30]), "dC_dw11 is not correct"
assert np.allclose(as_flat_floats(dC_dW2), [120, 0, 330]), "dC_dW2 is not correct"
assert np.allclose(as_flat_floats(W2_updated), [-7, 3, -14.5]), "W2_updated is not correct"'''
TESTS_CONVNET_SOURCE = '''\
# Autograder test for 5.3 i: ConvNet maps a batch of 28x28 images to 10 scores each.
import torch

with torch.no_grad():
    scores = ConvNet()(torch.zeros(2, 1, 28, 28))
shape = tuple(scores.shape)
assert shape == (2, 10), f"ConvNet returns shape {shape} for 2 images, expected (2, 10)"'''
# (cell id, points, source, id of the cell that the test cell follows)
NBGRADER_TEST_CELLS = (
    (TESTS_5_1_ID, 6, TESTS_5_1_SOURCE, ANSWER_CELL_ID),
    (TESTS_CONVNET_ID, 2, TESTS_CONVNET_SOURCE, CONVNET_CELL_ID),
)


def ensure_nbgrader_venv() -> dict:
    """Create ``benchmarks/.venv-nbgrader`` with ``NBGRADER_REQUIREMENTS`` unless it has them.

    Returns the installed versions and the seconds the setup took (0 when the
    virtualenv was already complete).
    """
    python = NBGRADER_VENV / "bin" / "python"
    versions = read_nbgrader_venv_versions(python)
    if versions_match(versions):
        return {"versions": versions, "setup_seconds": 0.0}

    print(
        f"Setting up {NBGRADER_VENV} (pip install {' '.join(NBGRADER_REQUIREMENTS)}); "
        f"torch makes this take a few minutes ...",
        flush=True,
    )
    started = time.monotonic()
    if not python.exists():
        # The venv module creates the environment from the base interpreter even
        # when this script runs inside .venv.
        run_checked(
            [sys.executable, "-m", "venv", str(NBGRADER_VENV)], "creating the nbgrader virtualenv"
        )
    run_checked(
        [str(python), "-m", "pip", "install", *NBGRADER_REQUIREMENTS],
        "installing nbgrader and torch into the nbgrader virtualenv",
    )
    versions = read_nbgrader_venv_versions(python)
    if not versions_match(versions):
        raise WayFailed(
            f"{NBGRADER_VENV} has {versions} after pip install, "
            f"expected {NBGRADER_VERSIONS_EXPECTED}. Delete the folder and run again."
        )
    return {"versions": versions, "setup_seconds": round(time.monotonic() - started, 1)}


def read_nbgrader_venv_versions(python: Path) -> dict[str, str]:
    if not python.exists():
        return {}
    packages = [
        "nbgrader",
        "torch",
        "torchvision",
        "torchinfo",
        "ipykernel",
        "nbclient",
        "nbconvert",
    ]
    script = (
        "import importlib.metadata as m, json, platform\n"
        "versions = {'python': platform.python_version()}\n"
        f"for name in {packages!r}:\n"
        "    try:\n"
        "        versions[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(versions))\n"
    )
    completed = subprocess.run([str(python), "-c", script], capture_output=True, text=True)
    if completed.returncode != 0:
        return {}
    return json.loads(completed.stdout)


def versions_match(versions: dict[str, str]) -> bool:
    """Check for the expected releases, ignoring a local build suffix such as ``+cu130``."""
    if "torchinfo" not in versions or "ipykernel" not in versions:
        return False
    return all(
        versions.get(name, "").split("+")[0] == expected
        for name, expected in NBGRADER_VERSIONS_EXPECTED.items()
    )


def nbgrader_env(course: Path) -> dict:
    """Return the environment for nbgrader commands, with its virtualenv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{NBGRADER_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    # An instructor's ~/.jupyter/nbgrader_config.py must not change the course.
    config_dir = course / ".jupyter-config"
    config_dir.mkdir(exist_ok=True)
    env["JUPYTER_CONFIG_DIR"] = str(config_dir)
    return env


def write_nbgrader_source(course: Path) -> Path:
    """Write ``source/ex5/exercise5.ipynb``: the assignment with nbgrader cell metadata.

    The 5.1 answer cell becomes an autograded-answer cell whose solution region
    holds the reference answers, and two read-only autograder-tests cells follow
    the 5.1 answer cell and the ConvNet cell. Other cells stay as in the assignment.
    """
    assignment = nbformat.read(ASSIGNMENT_NOTEBOOK, as_version=4)
    solution = nbformat.read(SOLUTION_NOTEBOOK, as_version=4)
    solution_sources = {cell.get("id"): cell.source for cell in solution.cells}

    cells = []
    for cell in assignment.cells:
        cell = copy.deepcopy(cell)
        if cell.get("id") == ANSWER_CELL_ID:
            # Keep the assignment's leading comment block, which lists what students fill in.
            instructions = list(
                itertools.takewhile(lambda line: line.startswith("#"), cell.source.splitlines())
            )
            cell.source = "\n".join(
                [
                    *instructions,
                    "### BEGIN SOLUTION",
                    solution_sources[ANSWER_CELL_ID],
                    "### END SOLUTION",
                ]
            )
            cell.metadata["nbgrader"] = dict(ANSWER_CELL_METADATA)
        cells.append(cell)
        for test_id, points, source, anchor_id in NBGRADER_TEST_CELLS:
            if cell.get("id") == anchor_id:
                test_cell = nbformat.v4.new_code_cell(source)
                test_cell.id = test_id
                test_cell.metadata["nbgrader"] = {
                    "grade": True,
                    "grade_id": test_id,
                    "locked": True,
                    "points": points,
                    "schema_version": 3,
                    "solution": False,
                    "task": False,
                }
                cells.append(test_cell)
    assignment.cells = cells

    path = course / "source" / NBGRADER_ASSIGNMENT / f"{NBGRADER_NOTEBOOK}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(assignment, path)
    return path


def write_nbgrader_submission(
    notebook_path: Path, student: str, release: nbformat.NotebookNode, target: Path
) -> list[str]:
    """Write a submission for autograde: the student's notebook with the release's nbgrader cells.

    The student's 5.1 answer cell gets the release's metadata for that cell, and
    a copy of each release test cell is inserted after the cell that it follows
    in the release. A cell whose anchor is missing is appended at the end.
    Returns notes on such fallbacks.
    """
    release_cells = {cell.get("id"): cell for cell in release.cells}
    notebook = nbformat.read(notebook_path, as_version=4)
    notes = []

    answer_cell = next((cell for cell in notebook.cells if cell.get("id") == ANSWER_CELL_ID), None)
    if answer_cell is None:
        notes.append(
            f"{student}: no cell with id {ANSWER_CELL_ID!r}, so no cell is marked as the answer"
        )
    else:
        answer_cell.metadata["nbgrader"] = copy.deepcopy(
            release_cells[ANSWER_CELL_ID].metadata["nbgrader"]
        )

    for test_id, _points, _source, anchor_id in NBGRADER_TEST_CELLS:
        test_cell = copy.deepcopy(release_cells[test_id])
        anchor_index = next(
            (index for index, cell in enumerate(notebook.cells) if cell.get("id") == anchor_id),
            None,
        )
        if anchor_index is None:
            notes.append(
                f"{student}: no cell with id {anchor_id!r}, so {test_id!r} is appended at the end"
            )
            notebook.cells.append(test_cell)
        else:
            notebook.cells.insert(anchor_index + 1, test_cell)

    target.parent.mkdir(parents=True)
    nbformat.write(notebook, target)
    return notes


def read_nbgrader_scores(course: Path, env: dict) -> dict[str, float] | str:
    """Export the gradebook with ``nbgrader export`` and return each student's score.

    Returns the error output instead when the export fails.
    """
    try:
        run_checked(
            [str(NBGRADER_VENV / "bin" / "nbgrader"), "export"],
            "nbgrader export",
            cwd=course,
            env=env,
        )
    except WayFailed as error:
        return str(error)
    with open(course / "grades.csv", newline="") as grades:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(grades)}


def nbgrader_seconds_per_student(lines: list[tuple[float, str]]) -> dict[str, float]:
    """Return the seconds autograde spent on each student, read from its log lines.

    A student starts at nbgrader's "Creating/updating student with ID '<id>'"
    line and ends at the next "Setting destination file permissions" line.
    """
    seconds = {}
    student, started = None, 0.0
    for elapsed, line in lines:
        if "Creating/updating student with ID '" in line:
            student = line.split("ID '", 1)[1].split("'", 1)[0]
            started = elapsed
        elif "Setting destination file permissions" in line and student is not None:
            seconds[student] = round(elapsed - started, 1)
            student = None
    return seconds
