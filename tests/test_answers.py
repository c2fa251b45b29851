"""Grading of the six 5.1 answers: forms, tolerance, follow-through and hints."""

import pytest

from grader.check_answers import grade_answers

CORRECT = dict(v=[4, 0, 11], y_predicted=18, C=225, dC_dw11=-30, dC_dW2=[[120, 0, 330]],
               W2_updated=[-7, 3, -14.5])


def state(values, globals_=()):
    return {"values": {name: {"name": name, "value": value} for name, value in values.items()},
            "globals": list(globals_)}


def points(items):
    return {item.id: item.points for item in items}


def test_correct_answers_earn_full_points(rubric):
    items = grade_answers(rubric, state(CORRECT))
    assert [item.outcome for item in items] == ["correct"] * 6
    assert sum(item.points for item in items) == 8


@pytest.mark.parametrize("name, value", [
    ("v", [[4], [0], [11]]),
    ("v", [[4, 0, 11]]),
    ("y_predicted", [[18.0]]),
    ("C", 225.0004),
    ("dC_dW2", [120, 0, 330]),
    ("dC_dW2", [[120], [0], [330]]),
    ("W2_updated", [[-7.0, 3.0, -14.5]]),
])
def test_accepted_forms(rubric, name, value):
    items = grade_answers(rubric, state({**CORRECT, name: value}))
    assert points(items)[f"5.1.{name}"] == rubric.item(f"5.1.{name}").points


def test_outside_tolerance_is_wrong(rubric):
    items = grade_answers(rubric, state({**CORRECT, "C": 225.5}))
    assert points(items)["5.1.C"] == 0


def test_forgotten_relu_gets_follow_through(rubric):
    values = dict(v=[4, -3, 11], y_predicted=9, C=36, dC_dw11=-12, dC_dW2=[48, -36, 132],
                  W2_updated=[-3.4, 4.8, -4.6])
    items = {item.id: item for item in grade_answers(rubric, state(values))}
    assert items["5.1.v"].points == 0
    assert "before the activation" in items["5.1.v"].hint
    for name, full in [("y_predicted", 1), ("C", 1), ("dC_dw11", 2), ("dC_dW2", 2),
                       ("W2_updated", 1)]:
        assert items[f"5.1.{name}"].outcome == "follow-through"
        assert items[f"5.1.{name}"].points == full * rubric.follow_through_share
        assert "follows correctly from your own earlier answers" in items[f"5.1.{name}"].message


def test_missing_factor_two_hint(rubric):
    values = {**CORRECT, "dC_dw11": -15, "dC_dW2": [60, 0, 165], "W2_updated": [-4, 3, -6.25]}
    items = {item.id: item for item in grade_answers(rubric, state(values))}
    assert items["5.1.dC_dw11"].points == 0
    assert "factor 2 is missing" in items["5.1.dC_dw11"].hint
    assert "factor 2 is missing" in items["5.1.dC_dW2"].hint
    assert items["5.1.W2_updated"].outcome == "follow-through"


def test_update_sign_hint(rubric):
    items = {i.id: i for i in grade_answers(rubric, state({**CORRECT, "W2_updated": [5, 3, 18.5]}))}
    assert items["5.1.W2_updated"].points == 0
    assert "subtracts the gradient" in items["5.1.W2_updated"].hint


def test_missing_name_suggests_close_names(rubric):
    values = {k: v for k, v in CORRECT.items() if k != "y_predicted"}
    items = {i.id: i for i in grade_answers(rubric, state(values, ["y_predict_value", "model"]))}
    assert items["5.1.y_predicted"].outcome == "missing"
    assert "`y_predict_value`" in items["5.1.y_predicted"].hint
    assert items["5.1.C"].outcome == "correct"


def test_placeholder_and_unreadable_values(rubric):
    raw = state(CORRECT)
    raw["values"]["v"] = {"name": "v", "value": {"placeholder": True}}
    raw["values"]["C"] = {"name": "loss", "error": "Symbol: sympy.Symbol"}
    raw["values"]["dC_dW2"] = {"name": "dC_dW2", "value": [1, 2]}
    raw["values"]["W2_updated"] = {"name": "W2_updated", "value": [float("nan"), 3, 1]}
    items = {i.id: i for i in grade_answers(rubric, raw)}
    assert "placeholder" in items["5.1.v"].message
    assert items["5.1.C"].outcome == "error"
    assert "`loss` could not be read" in items["5.1.C"].message
    assert "has 2 values" in items["5.1.dC_dW2"].message
    assert "NaN" in items["5.1.W2_updated"].message
    assert items["5.1.y_predicted"].points == 1


def test_reference_hidden_unless_rubric_reveals(rubric):
    from dataclasses import replace

    items = grade_answers(rubric, state({**CORRECT, "C": 100}))
    assert "225" not in items[2].message
    revealing = replace(rubric, reveal_reference=True)
    items = grade_answers(revealing, state({**CORRECT, "C": 100}))
    assert "Expected 225" in items[2].message


def test_huge_integer_is_one_wrong_item(rubric):
    items = {i.id: i for i in grade_answers(rubric, state({**CORRECT, "y_predicted": 10**400}))}
    assert items["5.1.y_predicted"].points == 0
    assert "too large for a float" in items["5.1.y_predicted"].message
    assert items["5.1.C"].points == 1
