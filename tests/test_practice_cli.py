"""`grader practice` from the command line: new problem, notebook, check, solution."""

import json
import subprocess
import sys

import nbformat

from grader.backprop import compute_answers
from grader.practice import generate_problem


def grader(*arguments):
    return subprocess.run([sys.executable, "-m", "grader", "practice", *arguments],
                          capture_output=True, text=True, timeout=120)


def test_new_problem_with_notebook(tmp_path):
    completed = grader("new", "--seed", "7", "--notebook", str(tmp_path / "p.ipynb"))
    assert completed.returncode == 0, completed.stderr
    assert "Practice problem 7" in completed.stdout
    assert "relu'(0) = 1" in completed.stdout
    notebook = nbformat.read(tmp_path / "p.ipynb", as_version=4)
    assert any("W2_updated = ..." in cell.source for cell in notebook.cells)


def test_check_right_and_wrong_answers(tmp_path):
    answers = compute_answers(generate_problem(7))
    document = {name: answers[name].tolist() for name in
                ("v", "y_predicted", "C", "dC_dw11", "dC_dW2", "W2_updated")}
    (tmp_path / "answers.json").write_text(json.dumps(document))
    right = grader("check", "--seed", "7", str(tmp_path / "answers.json"))
    assert right.returncode == 0, right.stdout + right.stderr
    wrong = grader("check", "--seed", "7", str(tmp_path / "answers.json"), "--answer", "C=1")
    assert wrong.returncode == 1
    assert "`C` = 1 does not match" in wrong.stdout


def test_solution_and_missing_seed():
    solution = grader("solution", "--seed", "7")
    assert solution.returncode == 0
    assert "Step 1. Pre-activation of the hidden layer" in solution.stdout
    missing = grader("solution")
    assert missing.returncode == 2
    assert "give --seed N" in missing.stderr
