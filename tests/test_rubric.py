"""Rubric loading: the default file, and a clear error for each invalid setting."""

import shutil

import pytest

from grader.rubric import DEFAULT_RUBRIC, ITEM_IDS, RubricError, load_rubric


def test_default_rubric_totals_twenty(rubric):
    assert rubric.max_total == 20
    assert [item.id for item in rubric.items] == list(ITEM_IDS)
    assert rubric.reveal_reference is False
    assert rubric.names_for("ConvNet")[:2] == ("ConvNet", "CNN")


@pytest.mark.parametrize("change, message", [
    (("[items.\"5.1.v\"]\ntitle", "[items.\"5.9.x\"]\ntitle"), "unknown item ids"),
    (("threshold = 0.90", "threshold = 90"), "threshold is a fraction"),
    (('optimizer = "sgd"', 'optimizer = "lbfgs"'), "training.optimizer must be"),
    (('activation = "relu"', 'activation = "swish"'), "task51.activation 'swish'"),
    (("x = [1, 2]", "x = [1, 2, 3]"), r"\[task51\] is invalid"),
    (("cell_timeout = 30", "cell_timeout = -1"), "limits.cell_timeout must be at least"),
    (("cell_idle_timeout = 5", "cell_idle_timeout = -1"),
     r"limits.cell_idle_timeout must be 0 \(no idle watch\) or at least 1, got -1"),
    (("cell_idle_timeout = 5", "cell_idle_timeout = 0.3"),
     r"limits.cell_idle_timeout must be 0 \(no idle watch\) or at least 1, got 0.3"),
    (("cell_idle_timeout = 5", "cell_idle_timeout = \"5\""), "limits.cell_idle_timeout must be a number"),
    (("title = \"Exercise 5", "title = \"Exercise 5\n["), "not valid TOML"),
    (("threshold = 0.90", "treshold = 0.90"), "unknown key 'treshold' in \\[training\\]; did you mean 'threshold'"),
    (("steps = 250", "steps = 2.5"), "training.steps must be a whole number"),
])
def test_invalid_rubric(tmp_path, change, message):
    text = DEFAULT_RUBRIC.read_text()
    assert change[0] in text
    (tmp_path / "rubric.toml").write_text(text.replace(change[0], change[1], 1))
    shutil.copy(DEFAULT_RUBRIC.parent / "reference.py", tmp_path)
    with pytest.raises(RubricError, match=message):
        load_rubric(tmp_path / "rubric.toml")


def test_missing_files(tmp_path):
    with pytest.raises(RubricError, match="cannot read rubric"):
        load_rubric(tmp_path / "none.toml")
    shutil.copy(DEFAULT_RUBRIC, tmp_path)
    with pytest.raises(RubricError, match="reference module .* not found"):
        load_rubric(tmp_path / "rubric.toml")
