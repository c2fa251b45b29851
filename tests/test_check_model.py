"""Layer checks for 5.3 i with their hints, and the layer table comparison for 5.3 iii."""

import pytest

from conftest import export_layers
from grader.check_model import grade_conv, grade_fc, grade_output, grade_pool, grade_table
from reference_models import Reference, variant

TABLE = [["conv", 520, [20, 24, 24]], ["relu", 0, [20, 24, 24]], ["pool", 0, [20, 12, 12]],
         ["flatten", 0, [2880]], ["fc1", 288100, [100]], ["relu", 0, [100]], ["fc2", 1010, [10]]]


@pytest.fixture(scope="module")
def expected():
    return export_layers(Reference())


def test_reference_passes_every_layer_check(rubric, expected):
    for grade in (grade_conv, grade_pool, grade_fc):
        item = grade(rubric, expected, expected)
        assert item.outcome == "correct", item.message
        assert item.points == item.max_points


def test_padding_two_hint(rubric, expected):
    item = grade_conv(rubric, export_layers(variant(padding=2)), expected)
    assert item.points == 1.5
    assert "Output maps 28x28, expected 24x24" in item.message
    assert "padding=2" in item.hint


def test_six_channels(rubric, expected):
    item = grade_conv(rubric, export_layers(variant(channels=6)), expected)
    assert item.points == 1.5
    assert "Channels 1 to 6, expected 1 to 20" in item.message
    assert "20 output feature maps" in item.hint


def test_no_pooling(rubric, expected):
    layers = export_layers(variant(pool=False))
    pool = grade_pool(rubric, layers, expected)
    assert pool.points == 0
    assert pool.message == "No pooling layer found in the forward pass."
    assert "maps stay 24x24" in pool.hint
    fc = grade_fc(rubric, layers, expected)
    assert fc.points == 2  # the wrong fc1 input size follows from the missing pool
    assert "11520 inputs" in fc.hint


def test_pool_stride_one(rubric, expected):
    item = grade_pool(rubric, export_layers(variant(pool_stride=1)), expected)
    assert item.points == 0.5
    assert "Stride 1x1, expected 2x2" in item.message


def test_output_shape(rubric):
    assert grade_output(rubric, [-1, 10], 0).points == 1
    wrong = grade_output(rubric, [-1, 100], 0)
    assert wrong.points == 0
    assert "(N, 100)" in wrong.message
    fixed = grade_output(rubric, [64, 10], 64)
    assert fixed.points == 1
    assert "exactly 64" in fixed.message


def table_state(rows, total=289630):
    return {"values": {"layer_table": {"name": "layer_table", "value": rows},
                       "total_params": {"name": "total_params", "value": total}}}


def by_id(items):
    return {item.id: item for item in items}


def test_table_correct(rubric, expected):
    items = by_id(grade_table(rubric, table_state(TABLE), expected, expected))
    assert [i.points for i in items.values()] == [1, 1, 1]


def test_table_with_batch_dimension_and_softmax_row(rubric, expected):
    rows = [[name, params, [-1, *shape]] for name, params, shape in TABLE]
    rows.append(["softmax", 0, [None, 10]])
    items = by_id(grade_table(rubric, table_state(rows), expected, expected))
    assert items["5.3.iii.shapes"].points == 1
    assert items["5.3.iii.params"].points == 1


def test_table_missing_bias(rubric, expected):
    rows = [list(row) for row in TABLE]
    rows[4][1] = 288000
    items = by_id(grade_table(rubric, table_state(rows, 289530), expected, expected))
    assert items["5.3.iii.params"].points == 0
    assert "row 5 (fc1) has 288000" in items["5.3.iii.params"].message
    assert "plus one bias per output" in items["5.3.iii.params"].hint
    assert items["5.3.iii.shapes"].points == 1
    assert items["5.3.iii.total"].points == 0


def test_table_of_own_model_gets_follow_through(rubric, expected):
    own = export_layers(variant(padding=2))
    rows = [["conv", 520, [20, 28, 28]], ["relu", 0, [20, 28, 28]], ["pool", 0, [20, 14, 14]],
            ["flatten", 0, [3920]], ["fc1", 392100, [100]], ["relu", 0, [100]],
            ["fc2", 1010, [10]]]
    items = by_id(grade_table(rubric, table_state(rows, 393630), own, expected))
    for item_id in ("5.3.iii.params", "5.3.iii.shapes", "5.3.iii.total"):
        assert items[item_id].outcome == "follow-through", items[item_id].message
        assert items[item_id].points == 0.5


def test_table_rows_matched_by_kind(rubric, expected):
    rows = [row for row in TABLE if row[0] != "flatten"]  # one row fewer
    items = by_id(grade_table(rubric, table_state(rows), expected, expected))
    assert items["5.3.iii.params"].points == 0
    assert "no row for the flatten layer" in items["5.3.iii.params"].message


@pytest.mark.parametrize("raw, message", [
    ({"placeholder": True}, "still the placeholder"),
    ([["conv", "520", [20, 24, 24]]], "not a whole number"),
    ([["conv", 520]], "not a (layer, parameters, shape) tuple"),
    ("conv 520", "non-empty list"),
])
def test_unreadable_table(rubric, expected, raw, message):
    items = by_id(grade_table(rubric, table_state(raw), expected, expected))
    assert message in items["5.3.iii.params"].message
    assert items["5.3.iii.params"].points == 0
    assert items["5.3.iii.total"].points == 1
