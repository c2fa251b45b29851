"""Grade task 5.3: the ConvNet's layers (i), the grader's training run (ii) and the
student's layer table (iii).

Expected values come from the reference ConvNet's own layer records, so a changed
reference changes what is expected. A mismatch gets a hint naming the likely cause.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from .results import ItemResult
from .rubric import Rubric

Layer = dict[str, Any]

# Kinds that change nothing learnable or shape-related; reported, never penalised.
_NEUTRAL = {"dropout"}
_TABLE_SKIP = {"softmax", "log_softmax", "dropout"}


def _item(rubric: Rubric, item_id: str) -> ItemResult:
    item = rubric.item(item_id)
    return ItemResult(item.id, item.title, 0.0, item.points, "wrong", "")


def _score(result: ItemResult, checks: list[tuple[bool, str]]) -> ItemResult:
    """Award points for the share of passed checks, rounded down to half points."""
    passed = sum(ok for ok, _ in checks)
    result.points = math.floor(result.max_points * passed / len(checks) * 2) / 2
    failures = [text for ok, text in checks if not ok]
    if not failures:
        result.outcome = "correct"
        result.message = "Correct: " + "; ".join(text for _, text in checks) + "."
    else:
        result.outcome = "partial" if result.points > 0 else "wrong"
        text = "; ".join(failures)
        result.message = text[0].upper() + text[1:] + "."
    return result


def _significant(layers: list[Layer]) -> list[Layer]:
    return [layer for layer in layers if layer["kind"] not in _NEUTRAL]


def _next_kind(layers: list[Layer], position: int) -> str:
    rest = _significant(layers[position + 1 :])
    return rest[0]["kind"] if rest else ""


def _size(values: list[int]) -> str:
    return "x".join(str(v) for v in values)


def _first(layers: list[Layer], kind: str) -> tuple[int, Layer | None]:
    for position, layer in enumerate(layers):
        if layer["kind"] == kind:
            return position, layer
    return -1, None


def grade_conv(rubric: Rubric, layers: list[Layer], expected: list[Layer]) -> ItemResult:
    result = _item(rubric, "5.3.i.conv")
    _, want = _first(expected, "conv")
    position, conv = _first(layers, "conv")
    if conv is None or want is None:
        result.message = "No convolution found in the forward pass."
        result.hint = "Apply nn.Conv2d (or F.conv2d) to the input first."
        return result
    got, need = conv["settings"], want["settings"]
    checks = [
        (got["kernel"] == need["kernel"],
         f"kernel {_size(got['kernel'])}" + ("" if got["kernel"] == need["kernel"]
                                             else f", expected {_size(need['kernel'])}")),
        (got["stride"] == need["stride"],
         f"stride {_size(got['stride'])}" + ("" if got["stride"] == need["stride"]
                                             else f", expected {_size(need['stride'])}")),
        ((got["in_channels"], got["out_channels"]) == (need["in_channels"], need["out_channels"]),
         f"channels {got['in_channels']} to {got['out_channels']}"
         + ("" if (got["in_channels"], got["out_channels"]) == (need["in_channels"], need["out_channels"])
            else f", expected {need['in_channels']} to {need['out_channels']}")),
        # Spatial size only: the channel count has its own check above.
        (conv["shape"][1:] == want["shape"][1:],
         f"output maps {_size(conv['shape'][1:])}" + ("" if conv["shape"][1:] == want["shape"][1:]
                                                      else f", expected {_size(want['shape'][1:])}")),
        (_next_kind(layers, position) == "relu",
         "ReLU after it" if _next_kind(layers, position) == "relu" else "no ReLU right after it"),
    ]
    count = sum(layer["kind"] == "conv" for layer in layers)
    if count != 1:
        checks.append((False, f"{count} convolutions, expected one"))
    result = _score(result, checks)
    padding = got.get("padding")
    if conv["shape"][1:] != want["shape"][1:] and padding not in ([0, 0], None):
        result.hint = (
            f"Maps of {_size(conv['shape'][1:])} after a {_size(got['kernel'])} convolution "
            f"mean padding={padding if isinstance(padding, str) else padding[0]}; "
            "the task's convolution has no padding."
        )
    elif got["out_channels"] != need["out_channels"]:
        result.hint = f"The task asks for {need['out_channels']} output feature maps: nn.Conv2d(1, {need['out_channels']}, 5)."
    return result


def grade_pool(rubric: Rubric, layers: list[Layer], expected: list[Layer]) -> ItemResult:
    result = _item(rubric, "5.3.i.pool")
    _, want = _first(expected, "pool")
    _, pool = _first(layers, "pool")
    _, conv = _first(layers, "conv")
    if pool is None or want is None:
        result.message = "No pooling layer found in the forward pass."
        if conv is not None:
            result.hint = (
                f"Without pooling the maps stay {_size(conv['shape'][1:])}. Add a max pool with "
                f"a {_size(want['settings']['kernel']) if want else '2x2'} window and stride "
                f"{want['settings']['stride'][0] if want else 2} after the ReLU."
            )
        return result
    got, need = pool["settings"], want["settings"]
    if "kernel" not in got:
        got = {**got, "kernel": [0, 0], "stride": [0, 0]}
    checks = [
        (got["mode"] == need["mode"],
         f"{got['mode']} pooling" + ("" if got["mode"] == need["mode"] else f", expected {need['mode']}")),
        (got["kernel"] == need["kernel"],
         f"window {_size(got['kernel'])}" + ("" if got["kernel"] == need["kernel"]
                                             else f", expected {_size(need['kernel'])}")),
        (got["stride"] == need["stride"],
         f"stride {_size(got['stride'])}" + ("" if got["stride"] == need["stride"]
                                             else f", expected {_size(need['stride'])}")),
    ]
    result = _score(result, checks)
    if got["mode"] != need["mode"]:
        result.hint = "Use max pooling (nn.MaxPool2d or F.max_pool2d), not average pooling."
    elif got["stride"] != need["stride"]:
        result.hint = "nn.MaxPool2d(2) already uses stride 2; a stride of 1 keeps the maps almost as large."
    return result


def grade_fc(rubric: Rubric, layers: list[Layer], expected: list[Layer]) -> ItemResult:
    result = _item(rubric, "5.3.i.fc")
    want = [layer for layer in expected if layer["kind"] == "fc"]
    fcs = [(i, layer) for i, layer in enumerate(layers) if layer["kind"] == "fc"]
    if not fcs or len(want) < 2:
        result.message = "No fully connected layer found in the forward pass."
        result.hint = "After flattening, apply nn.Linear layers."
        return result
    first_position, first = fcs[0]
    last = fcs[-1][1]
    hidden = want[0]["settings"]["out_features"]
    classes = want[-1]["settings"]["out_features"]
    got_hidden = first["settings"].get("out_features")
    after_first = _next_kind(layers, first_position)
    checks = [
        (len(fcs) == len(want), f"{len(fcs)} fully connected layers"
         + ("" if len(fcs) == len(want) else f", expected {len(want)}")),
        (got_hidden == hidden, f"first layer has {got_hidden} neurons"
         + ("" if got_hidden == hidden else f", expected {hidden}")),
        (after_first == "relu", "ReLU after it" if after_first == "relu"
         else "no ReLU after the first fully connected layer"),
        ((last["settings"].get("in_features"), last["settings"].get("out_features")) == (hidden, classes),
         f"last layer maps {last['settings'].get('in_features')} to {last['settings'].get('out_features')}"
         + ("" if (last["settings"].get("in_features"), last["settings"].get("out_features")) == (hidden, classes)
            else f", expected {hidden} to {classes}")),
    ]
    result = _score(result, checks)
    in_features = first["settings"].get("in_features")
    expected_in = want[0]["settings"]["in_features"]
    if in_features != expected_in:
        reference = f" (the task's network: {expected_in})" if rubric.reveal_reference else ""
        result.hint = (
            f"The first fully connected layer takes {in_features} inputs{reference}; that follows "
            "from the layers before it and is not counted here."
        )
    return result


def grade_output(rubric: Rubric, shape: list[int], fixed_batch: int) -> ItemResult:
    result = _item(rubric, "5.3.i.output")
    batch_ok = len(shape) == 2 and shape[0] in (-1, fixed_batch or -1)
    if batch_ok and shape[1] == 10:
        result.points, result.outcome = result.max_points, "correct"
        result.message = "forward returns (N, 10)."
        if fixed_batch:
            result.message += f" It only works for a batch of exactly {fixed_batch}, though."
        return result
    shape_text = "(" + ", ".join("N" if s == -1 else str(s) for s in shape) + ")"
    result.message = f"forward returns shape {shape_text}, expected (N, 10)."
    return result


def extra_layer_notes(layers: list[Layer], expected: list[Layer]) -> list[str]:
    """Describe operations the reference does not have."""
    notes = []
    expected_kinds = {layer["kind"] for layer in expected} | {"softmax", "log_softmax"}
    for layer in layers:
        if layer["kind"] in _NEUTRAL:
            notes.append(f"Extra {layer['op']} layer found; it changes no shape or parameter and is not penalised.")
        elif layer["kind"] not in expected_kinds:
            notes.append(f"Extra operation `{layer['op']}` found in the forward pass.")
    return notes


def grade_accuracy(rubric: Rubric, training: dict[str, Any], reported: float | None) -> ItemResult:
    result = _item(rubric, "5.3.ii.accuracy")
    recipe = rubric.training
    if "error" in training:
        result.outcome = "error"
        result.message = f"The grader could not train your model: {training['error']}"
        return result
    accuracy = training["accuracy"]
    summary = (f"The grader trained your model ({recipe.steps} steps of {recipe.optimizer.upper()}, "
           f"batch {training['batch_size']}, {training['train_images']} training images, "
           f"loss {training['loss']}) and measured {accuracy:.1%} test accuracy on "
           f"{training['test_images']} images")
    if reported is not None:
        summary += f"; your notebook reports {reported:.1%}"
    if accuracy >= recipe.threshold:
        result.points, result.outcome = result.max_points, "correct"
        result.message = summary + f". That reaches the threshold of {recipe.threshold:.0%}."
    else:
        result.message = summary + f". That is below the threshold of {recipe.threshold:.0%}."
        result.hint = "Check the layers above: a model with the task's layers reaches the threshold."
    return result


# Words in a student's layer name that tell its kind, tried in this order.
_NAME_KINDS = (
    ("log_softmax", "log_softmax"), ("logsoftmax", "log_softmax"), ("softmax", "softmax"),
    ("conv", "conv"), ("relu", "relu"), ("activation", "relu"), ("pool", "pool"),
    ("flat", "flatten"), ("view", "flatten"), ("reshape", "flatten"), ("drop", "dropout"),
    ("fc", "fc"), ("linear", "fc"), ("dense", "fc"), ("fully", "fc"), ("output", "fc"),
    ("predict", "fc"), ("hidden", "fc"),
)


def _kind_from_name(name: str) -> str:
    lowered = name.lower()
    for word, kind in _NAME_KINDS:
        if word in lowered:
            return kind
    return "other"


class TableProblem(Exception):
    """The student's layer table cannot be read; the message explains why."""


def _int(value: Any, description: str) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    raise TableProblem(f"{description} is {value!r}, not a whole number")


def _parse_table(raw: Any) -> list[tuple[str, str, int, list[int]]]:
    if isinstance(raw, dict) and raw.get("placeholder"):
        raise TableProblem("`layer_table` is still the placeholder `...`")
    if not isinstance(raw, list) or not raw:
        raise TableProblem("`layer_table` must be a non-empty list of (layer, parameters, shape) rows")
    rows = []
    for number, row in enumerate(raw, start=1):
        if not isinstance(row, list) or len(row) < 3:
            raise TableProblem(f"row {number} of `layer_table` is not a (layer, parameters, shape) tuple")
        name = str(row[0])
        if isinstance(row[0], dict):
            raise TableProblem(f"row {number} still has the placeholder `...`")
        params = _int(row[1], f"the parameter count in row {number}")
        shape_raw = row[2] if isinstance(row[2], list) else [row[2]]
        shape = [-1 if s is None else _int(s, f"the shape in row {number}") for s in shape_raw]
        rows.append((name, _kind_from_name(name), params, shape))
    return [row for row in rows if not (row[1] in _TABLE_SKIP and row[2] == 0)]


def model_rows(layers: list[Layer]) -> list[tuple[str, int, list[int]]]:
    return [(layer["kind"], layer.get("params", 0), layer["shape"]) for layer in layers
            if layer["kind"] not in _TABLE_SKIP]


def _align(student: list, reference: list) -> list[tuple[int, int | None]]:
    """Pair each reference row with a student row: by position when the lengths agree,
    otherwise by the sequence of layer kinds."""
    if len(student) == len(reference):
        return [(i, i) for i in range(len(reference))]
    matcher = difflib.SequenceMatcher(a=[r[0] for r in reference], b=[s[1] for s in student],
                                      autojunk=False)
    pairs: dict[int, int] = {}
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            pairs[block.a + offset] = block.b + offset
    return [(i, pairs.get(i)) for i in range(len(reference))]


def _strip_batch(shape: list[int], length: int) -> list[int]:
    return shape[1:] if len(shape) == length + 1 else shape


def _table_mismatch(student, reference, field: int) -> tuple[int, str] | None:
    """Return the first reference row whose value differs, with the student's row name."""
    for ref_index, student_index in _align(student, reference):
        want = reference[ref_index][field - 1]
        if student_index is None:
            return ref_index, f"no row for the {reference[ref_index][0]} layer"
        name, _, params, shape = student[student_index]
        got = params if field == 2 else _strip_batch(shape, len(want))
        if got != want:
            return ref_index, f"row {student_index + 1} ({name}) has {got}"
    if len(student) > len(reference):
        return len(reference), f"{len(student) - len(reference)} more rows than the model has layers"
    return None


_PARAM_HINTS = {
    "conv": "A convolution has out × in × k × k weights plus one bias per output map.",
    "fc": "A fully connected layer has in × out weights plus one bias per output.",
    "relu": "Activations, pooling and flattening have no learnable parameters.",
    "pool": "Activations, pooling and flattening have no learnable parameters.",
    "flatten": "Activations, pooling and flattening have no learnable parameters.",
}
_SHAPE_HINTS = {
    "conv": "A k × k convolution without padding and stride 1 shrinks each side by k - 1.",
    "pool": "A 2 × 2 max pool with stride 2 halves each side.",
    "flatten": "Flattening gives channels × height × width values.",
    "fc": "A fully connected layer outputs one value per neuron.",
}


def grade_table(rubric: Rubric, state: dict[str, Any], layers: list[Layer] | None,
                expected: list[Layer]) -> list[ItemResult]:
    """Grade the parameter counts, output shapes and total of the student's layer table."""
    values = state.get("values", {})
    params_item = _item(rubric, "5.3.iii.params")
    shapes_item = _item(rubric, "5.3.iii.shapes")
    total_item = _item(rubric, "5.3.iii.total")
    reference = model_rows(expected)
    own = model_rows(layers) if layers else None

    entry = values.get("layer_table")
    try:
        if entry is None:
            raise TableProblem("`layer_table` is not defined in the notebook")
        if "error" in entry:
            raise TableProblem(f"`{entry['name']}` could not be read: {entry['error']}")
        student = _parse_table(entry["value"])
    except TableProblem as problem:
        for item in (params_item, shapes_item):
            item.outcome = "missing"
            item.message = str(problem) + "."
            item.hint = "Fill in `layer_table` as a list of (layer, parameters, output shape) rows."
        student = None
    if student is not None:
        for item, field, hints in ((params_item, 2, _PARAM_HINTS), (shapes_item, 3, _SHAPE_HINTS)):
            _grade_table_field(rubric, item, student, reference, own, field, hints)
    _grade_total(rubric, total_item, values.get("total_params"), reference, own)
    return [params_item, shapes_item, total_item]


def _hashed_table_matches(rubric, student, reference, field) -> bool:
    """Compare the student's rows, aligned to the reference kinds, with the kit's hash."""
    from .kit import salted_hash, table_texts

    rows = []
    for ref_index, student_index in _align(student, reference):
        if student_index is None:
            return False
        name, _, params, shape = student[student_index]
        rows.append((name, params, _strip_batch(shape, len(reference[ref_index][2]))))
    if len(student) != len(reference):
        return False
    key = "params" if field == 2 else "shapes"
    return salted_hash(rubric.selfcheck["salt"], table_texts(rows)[key]) == rubric.selfcheck["table"][key]


def _grade_table_field(rubric, item, student, reference, own, field, hints) -> None:
    subject = "parameter counts" if field == 2 else "output shapes"
    if rubric.selfcheck is not None:
        if _hashed_table_matches(rubric, student, reference, field):
            item.points, item.outcome = item.max_points, "correct"
            item.message = f"All {subject} are correct."
        else:
            item.message = f"The {subject} are not all correct (the self-check does not say which)."
        return
    mismatch = _table_mismatch(student, reference, field)
    if mismatch is None:
        item.points, item.outcome = item.max_points, "correct"
        item.message = f"All {subject} are correct."
        return
    if own is not None and own != reference and _table_mismatch(student, own, field) is None:
        item.points = round(item.max_points * rubric.follow_through_share, 4)
        item.outcome = "follow-through"
        item.message = (f"The {subject} match your own model, not the task's network, so they earn "
                        "follow-through credit.")
        return
    ref_index, text = mismatch
    kind = reference[ref_index][0] if ref_index < len(reference) else ""
    item.message = f"The {subject} are not all correct: {text}."
    if rubric.reveal_reference and ref_index < len(reference):
        item.message += f" Expected {reference[ref_index][field - 1]}."
    item.hint = hints.get(kind, "")


def _grade_total(rubric, item, entry, reference, own) -> None:
    want = sum(row[1] for row in reference)
    if entry is None:
        item.outcome = "missing"
        item.message = "`total_params` is not defined in the notebook."
        return
    try:
        if "error" in entry:
            raise TableProblem(f"it could not be read: {entry['error']}")
        raw = entry["value"]
        if isinstance(raw, dict):
            raise TableProblem("it is still the placeholder `...`")
        got = _int(raw, f"`{entry['name']}`")
    except TableProblem as problem:
        item.message = f"`total_params`: {problem}."
        return
    if rubric.selfcheck is not None:
        from .kit import salted_hash

        want_matches = salted_hash(rubric.selfcheck["salt"], str(got)) == rubric.selfcheck["table"]["total"]
        item.points, item.outcome = (item.max_points, "correct") if want_matches else (0.0, "wrong")
        item.message = ("The total number of parameters is correct." if want_matches
                        else f"`total_params` = {got} is not the network's total.")
        return
    if got == want:
        item.points, item.outcome = item.max_points, "correct"
        item.message = "The total number of parameters is correct."
    elif own is not None and own != reference and got == sum(row[1] for row in own):
        item.points = round(item.max_points * rubric.follow_through_share, 4)
        item.outcome = "follow-through"
        item.message = f"{got} is your own model's total, not the task network's; follow-through credit."
    else:
        item.message = f"`total_params` = {got} is not the network's total."
        if rubric.reveal_reference:
            item.message += f" Expected {want}."
        item.hint = "Add up the learnable parameters of every layer, weights and biases."
