"""The student self-check: the kit holds no reference values, and `grader check`
grades one notebook through the same path, printing no reference value."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import SOLUTION, SUBMISSIONS
from grader.backprop import compute_answers
from grader.kit import build_kit, canonical_numbers
from grader.pipeline import expected_layers
from grader.rubric import load_rubric


@pytest.fixture(scope="module")
def kit(tmp_path_factory, rubric):
    out = tmp_path_factory.mktemp("kit")
    return build_kit(rubric, expected_layers(rubric), out)


def test_kit_holds_no_reference_values(kit, rubric):
    text = kit.read_text() + (kit.parent / "selfcheck.json").read_text()
    assert "[task51]" not in text
    assert "reveal_reference = false" in text
    for value in compute_answers(rubric.problem).values():
        assert canonical_numbers(value) not in text
    assert "289630" not in text
    assert "288100" not in text
    assert not (kit.parent / "reference.py").exists()


def test_kit_loads_without_task_inputs(kit):
    loaded = load_rubric(kit)
    assert loaded.problem is None
    assert loaded.reference_module is None
    assert loaded.max_total == 20


def check(notebook, kit, tmp_path):
    shutil.copy(notebook, tmp_path / notebook.name)
    return subprocess.run(
        [sys.executable, "-m", "grader", "check", str(tmp_path / notebook.name), "--rubric", str(kit)],
        capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_check_solution_with_kit(kit, tmp_path):
    completed = check(SOLUTION, kit, tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "graded: 20/20 points" in completed.stdout
    assert (tmp_path / "selfcheck-exercise5_solution" / "feedback"
            / "exercise5_solution.html").is_file()


@pytest.mark.slow
def test_check_wrong_answers_reveals_nothing(kit, tmp_path):
    completed = check(SUBMISSIONS / "uv70dica.ipynb", kit, tmp_path)  # missing factor 2
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = {line.split()[1]: line for line in completed.stdout.splitlines()
             if line[:3] in ("ok ", "X  ", "~  ")}
    assert lines["5.1.dC_dw11"].startswith("X")
    assert "does not match" in lines["5.1.dC_dw11"]
    assert lines["5.1.C"].startswith("ok")
    for secret in ("-30", "120, 0, 330", "-14.5", "289630"):
        assert secret not in completed.stdout
    result = json.loads((tmp_path / "selfcheck-uv70dica" / "results" / "uv70dica.json").read_text())
    assert result["total"] == 15
