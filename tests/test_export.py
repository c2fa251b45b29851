"""LMS exports from result documents: column layouts, feedback text and roster merge."""

import pandas as pd
import pytest

from grader.export import ExportError, write_export
from grader.report import write_result
from grader.results import ItemResult, SubmissionResult


@pytest.fixture()
def run(tmp_path):
    graded = SubmissionResult(student="48213", source="a.ipynb", status="graded", name="Jane Doe",
                              max_total=3)
    graded.add_item(ItemResult("5.1.v", "hidden layer output", 1, 1, "correct", "`v` is correct."))
    graded.add_item(ItemResult("5.1.C", "loss", 0, 2, "wrong", "`C` = 100 does not match."))
    missing = SubmissionResult(student="48214", source="", status="missing", reason="no submission",
                               max_total=3)
    for result in (graded, missing):
        write_result(result, tmp_path)
    return tmp_path


def test_moodle_worksheet(run):
    frame = pd.read_csv(write_export(run, "moodle"), dtype=str)
    assert list(frame.columns) == ["Identifier", "Full name", "Grade", "Maximum grade",
                                   "Feedback comments"]
    assert frame["Identifier"].tolist() == ["Participant 48213", "Participant 48214"]
    assert frame["Grade"].tolist() == ["1.0", "0.0"]
    assert "5.1.C: 0/2. `C` = 100 does not match." in frame["Feedback comments"][0]
    assert frame["Feedback comments"][1] == "Not graded (missing): no submission"


def test_canvas_import(run):
    frame = pd.read_csv(write_export(run, "canvas", assignment="Exercise 5 (123)"), dtype=str)
    assert list(frame.columns) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                                   "Exercise 5 (123)"]
    assert frame["ID"].tolist() == ["48213", "48214"]


def test_full_export_with_roster(run, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,email\n48213,jane@example.org\n")
    frame = pd.read_csv(write_export(run, "full", roster=roster), dtype=str)
    assert frame.loc[0, "email"] == "jane@example.org"
    assert frame.loc[0, "5.1.C"] == "0.0"
    assert frame.loc[1, "status"] == "missing"


def test_ilias_layout(run):
    frame = pd.read_csv(write_export(run, "ilias"), dtype=str)
    assert list(frame.columns) == ["Login", "Name", "Mark", "Comment"]


def test_unfinished_run_rejected(tmp_path):
    with pytest.raises(ExportError, match="run `grader grade"):
        write_export(tmp_path, "moodle")
