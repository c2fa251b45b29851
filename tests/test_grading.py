"""End to end: the real CLI grades the sample submissions and the solution in real
kernels, and every rubric item gets the points its scenario deserves."""

import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pandas as pd
import pytest

from conftest import SOLUTION, SUBMISSIONS
from grader.rubric import ITEM_IDS

pytestmark = pytest.mark.slow

FULL = {item_id: None for item_id in ITEM_IDS}  # None: the item's full points

# Points that differ from full marks, per sample submission (see tools/build_notebooks.py).
EXPECTED = {
    "ox47ukev": {},  # module style
    "ri12poqa": {},  # functional style
    "ud85yhel": {},  # nn.Sequential ending in softmax
    "ak03ziwu": {},  # numpy answers, log_softmax output
    "ej61nomy": {},  # tensors with requires_grad, column vectors
    "is29febo": {"5.1.v": 0, "5.1.y_predicted": 0.5, "5.1.C": 0.5, "5.1.dC_dw11": 1,
                 "5.1.dC_dW2": 1, "5.1.W2_updated": 0.5},  # forgot the ReLU
    "uv70dica": {"5.1.dC_dw11": 0, "5.1.dC_dW2": 0, "5.1.W2_updated": 0.5},  # factor 2
    "yk58rusa": {"5.1.W2_updated": 0},  # update sign
    "eb34tuwo": {"5.3.i.conv": 1.5, "5.3.iii.params": 0.5, "5.3.iii.shapes": 0.5,
                 "5.3.iii.total": 0.5},  # padding=2, table of own model
    "ha92xeli": {"5.3.i.conv": 1.5, "5.3.iii.params": 0.5, "5.3.iii.shapes": 0.5,
                 "5.3.iii.total": 0.5},  # 6 channels, table of own model
    "ow16mapi": {"5.3.i.pool": 0, "5.3.iii.params": 0.5, "5.3.iii.shapes": 0.5,
                 "5.3.iii.total": 0.5},  # no pooling, table of own model
    "iq88sone": {},  # class named CNN
    "um45guvy": {},  # NameError in a 5.2 cell
    "zo07qima": {},  # a cell that never ends
    "ap53leru": {},  # fractions, percentages
    "ny21hoke": {"5.3.iii.params": 0, "5.3.iii.total": 0},  # forgot fc1's bias in the table
    "exercise5_solution": {},
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, rubric):
    folder = tmp_path_factory.mktemp("submissions")
    for path in SUBMISSIONS.glob("*.ipynb"):
        shutil.copy(path, folder)
    shutil.copy(SOLUTION, folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    out = tmp_path_factory.mktemp("out")
    completed = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--workers", "2"],
        capture_output=True, text=True, timeout=1800,
    )
    after = {path.name: path.read_bytes() for path in folder.iterdir()}
    return {"completed": completed, "out": out, "before": before, "after": after, "folder": folder}


def test_cli_exits_zero_and_prints_summary(graded):
    completed = graded["completed"]
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"{len(EXPECTED)} students, {len(EXPECTED)} graded." in completed.stdout
    first_line = completed.stdout.splitlines()[0]
    assert first_line.endswith(f"Grading {len(EXPECTED)} submissions from {graded['folder']} with 2 workers")


def test_submissions_left_unchanged(graded):
    assert graded["after"] == graded["before"]


def test_every_sample_is_expected():
    assert {path.stem for path in SUBMISSIONS.glob("*.ipynb")} | {SOLUTION.stem} == set(EXPECTED)


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_points_per_item(graded, rubric, student):
    document = json.loads((graded["out"] / "results" / f"{student}.json").read_text())
    assert document["status"] == "graded", document["reason"]
    got = {item["id"]: item["points"] for item in document["items"]}
    want = {item.id: EXPECTED[student].get(item.id, item.points) for item in rubric.items}
    assert got == want, [item for item in document["items"] if item["points"] != want[item["id"]]]
    assert document["total"] == sum(want.values())


def test_gradebook_has_one_row_per_submission(graded, rubric):
    book = pd.read_csv(graded["out"] / "gradebook.csv", dtype={"student": str})
    assert sorted(book["student"]) == sorted(EXPECTED)
    assert list(book.columns) == ["student", "name", "status", "total", "max_total",
                                  *ITEM_IDS, "reason"]
    solution = book.set_index("student").loc["exercise5_solution"]
    assert solution["total"] == 20


class _TextCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_feedback_names_each_item_with_its_message(graded, student):
    page = (graded["out"] / "feedback" / f"{student}.html").read_text()
    collector = _TextCollector()
    collector.feed(page)
    text = " ".join(collector.parts)
    document = json.loads((graded["out"] / "results" / f"{student}.json").read_text())
    for item in document["items"]:
        assert item["id"] in text
        assert item["message"] in text


def test_scenario_messages(graded):
    def items(student):
        document = json.loads((graded["out"] / "results" / f"{student}.json").read_text())
        return {item["id"]: item for item in document["items"]}, document

    padding, _ = items("eb34tuwo")
    assert "padding=2" in padding["5.3.i.conv"]["hint"]
    assert "match your own model" in padding["5.3.iii.params"]["message"]
    no_pool, _ = items("ow16mapi")
    assert "No pooling layer" in no_pool["5.3.i.pool"]["message"]
    _, renamed = items("iq88sone")
    assert any("`CNN`" in note for note in renamed["notes"])
    _, name_error = items("um45guvy")
    assert [cell["error_name"] for cell in name_error["cells"]] == ["NameError"]
    traceback = name_error["cells"][0]["traceback"]
    assert "NameError" in traceback
    assert "/tmp/grader-" not in traceback
    assert sys.prefix not in traceback
    _, endless = items("zo07qima")
    assert [cell["outcome"] for cell in endless["cells"]] == ["timeout"]
    softmax, softmax_doc = items("ud85yhel")
    assert softmax_doc["training"]["output"] == "softmax"
    _, percent = items("ap53leru")
    assert 0 < percent["reported"]["cnn_accuracy"] <= 1


def test_executed_notebooks_written(graded):
    executed = sorted(path.stem for path in (graded["out"] / "executed").glob("*.ipynb"))
    assert executed == sorted(EXPECTED)
