"""Per-student 5.1 variants: derived from id and secret, written into notebooks, and
graded against the submitter's own numbers."""

import nbformat
import numpy as np
import pytest

from conftest import SOLUTION
from grader.backprop import compute_answers
from grader.batch import BatchSettings, grade_batch
from grader.mnist import BUILTIN_DIR
from grader.rubric import RubricError
from grader.variants import new_secret, read_secret, variant_notebook, variant_problem

SECRET = b"0123456789abcdef0123456789abcdef"


def test_variant_depends_on_id_and_secret(rubric):
    first = variant_problem(SECRET, "ab12", rubric)
    assert np.array_equal(first.W1, variant_problem(SECRET, "ab12", rubric).W1)
    assert not np.array_equal(first.W1, variant_problem(SECRET, "cd34", rubric).W1)
    assert not np.array_equal(first.W1, variant_problem(SECRET[::-1], "ab12", rubric).W1)
    assert first.activation == rubric.problem.activation


def test_secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    new_secret(path)
    assert len(read_secret(path)) == 64
    assert path.stat().st_mode & 0o077 == 0
    with pytest.raises(FileExistsError):
        new_secret(path)
    (tmp_path / "short.txt").write_text("abc")
    with pytest.raises(RubricError, match="shorter than 16 bytes"):
        read_secret(tmp_path / "short.txt")


def test_variant_notebook_shows_own_numbers(rubric):
    problem = variant_problem(SECRET, "ab12", rubric)
    notebook = variant_notebook(problem)
    task = next(cell for cell in notebook.cells if cell.get("id") == "task-5-1")
    assert "your own numbers" in task.source
    assert str(int(problem.W2[0, 0])) in task.source


def answered(problem, path):
    answers = compute_answers(problem)
    notebook = nbformat.read(SOLUTION, as_version=4)
    for cell in notebook.cells:
        if cell.get("id") == "answers-5-1":
            cell.source = "\n".join(f"{name} = {answers[name].tolist()}" for name in
                                    ("v", "y_predicted", "C", "dC_dw11", "dC_dW2", "W2_updated"))
    nbformat.write(notebook, path)


@pytest.mark.slow
def test_copied_notebook_gets_submitter_numbers(tmp_path, rubric):
    folder = tmp_path / "in"
    folder.mkdir()
    own = variant_problem(SECRET, "ab12", rubric)
    answered(own, folder / "ab12.ipynb")
    answered(own, folder / "cd34.ipynb")  # cd34 hands in ab12's notebook
    results = {r.student: r for r in grade_batch(
        folder, tmp_path / "out", rubric, BatchSettings(BUILTIN_DIR, workers=2, variant_secret=SECRET))}
    first = {item.id: item.points for item in results["ab12"].items}
    copied = {item.id: item.points for item in results["cd34"].items}
    assert results["ab12"].total == 20
    assert first["5.1.C"] == 1
    assert copied["5.1.v"] == 0
    assert copied["5.1.C"] < 1
    assert any("your own numbers" in note for note in results["cd34"].notes)
