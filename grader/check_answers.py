"""Grade the six hand-computed answers of task 5.1, with follow-through credit.

An answer that is wrong but correct given the student's own earlier answer (for
example ``y_predicted = W2 @ v`` for a wrong ``v``) earns the rubric's
follow-through share. Wrong answers get a hint when they match a common mistake.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

import numpy as np

from .backprop import ACTIVATIONS, compute_answers
from .kit import canonical_numbers, salted_hash
from .results import ItemResult
from .rubric import ANSWER_NAMES, Rubric
from .values import Tolerance, ValueProblem, fit_shape, format_array, matches, to_array

Arrays = dict[str, np.ndarray]


def _follow_through(rubric: Rubric, name: str, own: Arrays) -> np.ndarray | None:
    """Compute the answer ``name`` from the student's own earlier answers, if they exist."""
    p = rubric.problem
    _, act_grad = ACTIVATIONS[p.activation]
    h = p.W1 @ p.x
    if name == "y_predicted" and "v" in own:
        return p.W2 @ own["v"]
    if name == "C" and "y_predicted" in own:
        return np.asarray(float(np.sum((own["y_predicted"] - p.target) ** 2)))
    if name == "dC_dw11" and "y_predicted" in own:
        dC_dy = 2.0 * (own["y_predicted"] - p.target)
        return np.asarray(((p.W2.T @ dC_dy) * act_grad(h))[0] * p.x[0])
    if name == "dC_dW2" and "y_predicted" in own and "v" in own:
        return np.outer(2.0 * (own["y_predicted"] - p.target), own["v"])
    if name == "W2_updated" and "dC_dW2" in own:
        return p.W2 - p.learning_rate * own["dC_dW2"]
    return None


def _mistake_hint(rubric: Rubric, name: str, value: np.ndarray, refs: Arrays, own: Arrays) -> str:
    """Name the common mistake that ``value`` matches, or return an empty string."""
    p = rubric.problem
    tol = Tolerance(rubric.relative_tolerance, rubric.absolute_tolerance)
    close: Callable[[Any], bool] = lambda candidate: candidate is not None and matches(
        value, np.asarray(candidate, dtype=float).reshape(value.shape), tol
    )
    expected = [refs[name]]
    follow = _follow_through(rubric, name, own)
    if follow is not None:
        expected.append(follow)
    if name == "v" and close(refs["h"]):
        return "This is W1·x before the activation: apply the ReLU, which sets negative entries to 0."
    if name == "C" and close(np.abs(refs["y_predicted"] - p.target)):
        return "The cost is the squared error: square the difference y_predicted - y_target."
    if name == "C" and close(refs["C"] / 2):
        return "The cost here is ||y_predicted - y_target||², without a factor 1/2."
    if name in ("dC_dw11", "dC_dW2"):
        if any(close(e / 2) for e in expected):
            return "A factor 2 is missing: dC/dy = 2 (y_predicted - y_target)."
        if any(close(-e) for e in expected):
            return "The sign is flipped: dC/dy = 2 (y_predicted - y_target), not (y_target - y_predicted)."
    if name == "W2_updated":
        gradients = [refs["dC_dW2"]] + ([own["dC_dW2"]] if "dC_dW2" in own else [])
        for g in gradients:
            if close(p.W2 + p.learning_rate * g):
                return "Gradient descent subtracts the gradient: W2 - α·dC/dW2."
            if close(p.W2 - g):
                return f"Multiply the gradient by the learning rate α = {p.learning_rate:g}."
            if close(-p.learning_rate * g):
                return "The updated weights are W2 minus the step, not the step alone."
    return ""


def _missing_message(name: str, globals_: list[str]) -> tuple[str, str]:
    close = difflib.get_close_matches(name, globals_, n=3, cutoff=0.6)
    message = f"`{name}` is not defined in the notebook."
    if close:
        return message, "Names that look close: " + ", ".join(f"`{c}`" for c in close) + \
            f". Rename yours to `{name}`."
    return message, f"Assign your answer to a top-level variable named `{name}` in a code cell."


def _read_entry(rubric: Rubric, name: str, entry: dict[str, Any] | None, globals_: list[str],
                result: ItemResult) -> np.ndarray | None:
    """Return the answer as an array, or None after filling ``result`` with the reason."""
    if entry is None:
        result.outcome = "missing"
        result.message, result.hint = _missing_message(name, globals_)
        return None
    if "error" in entry:
        result.outcome = "error"
        result.message = f"`{entry['name']}` could not be read: it is a {entry['error']}."
        result.hint = "Use a number, a list, a numpy array or a torch tensor."
        return None
    try:
        return to_array(entry["value"])
    except ValueProblem as problem:
        result.message = f"`{entry['name']}` {problem}."
        return None


def _grade_one(
    rubric: Rubric, name: str, entry: dict[str, Any] | None, refs: Arrays, own: Arrays,
    globals_: list[str],
) -> ItemResult:
    item = rubric.item(f"5.1.{name}")
    result = ItemResult(item.id, item.title, 0.0, item.points, "wrong", "")
    raw = _read_entry(rubric, name, entry, globals_, result)
    if raw is None:
        return result
    label = f"`{entry['name']}`"
    reference = refs[name]
    try:
        value = fit_shape(raw, reference)
    except ValueProblem as problem:
        result.message = f"{label} {problem}."
        return result
    own[name] = value
    tolerance = Tolerance(rubric.relative_tolerance, rubric.absolute_tolerance)
    if matches(value, reference, tolerance):
        result.points, result.outcome = item.points, "correct"
        result.message = f"{label} is correct."
        return result
    follow = _follow_through(rubric, name, own)
    if follow is not None and matches(value, follow.reshape(reference.shape), tolerance):
        result.points = round(item.points * rubric.follow_through_share, 4)
        result.outcome = "follow-through"
        result.message = (
            f"{label} = {format_array(value)} is wrong, but it follows correctly from your "
            "own earlier answers, so it earns follow-through credit."
        )
        return result
    result.message = f"{label} = {format_array(value)} does not match the expected value."
    if rubric.reveal_reference:
        result.message += f" Expected {format_array(reference)}."
    result.hint = _mistake_hint(rubric, name, value, refs, own)
    return result


def _grade_hashed(rubric: Rubric, name: str, entry: dict[str, Any] | None,
                  globals_: list[str]) -> ItemResult:
    """Grade an answer against the self-check kit's salted hash: right or wrong only."""
    item = rubric.item(f"5.1.{name}")
    result = ItemResult(item.id, item.title, 0.0, item.points, "wrong", "")
    value = _read_entry(rubric, name, entry, globals_, result)
    if value is None:
        return result
    assert rubric.selfcheck is not None
    expected = rubric.selfcheck["answers"][name]
    label = f"`{entry['name']}`"
    if value.size != expected["size"]:
        result.message = f"{label} has {value.size} values, expected {expected['size']}."
        return result
    if salted_hash(rubric.selfcheck["salt"], canonical_numbers(value)) == expected["sha256"]:
        result.points, result.outcome = item.points, "correct"
        result.message = f"{label} is correct."
    else:
        result.message = f"{label} does not match the expected value (compared to 3 decimals)."
        result.hint = ("The self-check tells right from wrong only; follow-through credit for "
                       "answers built on an earlier mistake is given in the final grading.")
    return result


def grade_answers(rubric: Rubric, state: dict[str, Any]) -> list[ItemResult]:
    """Grade each 5.1 answer read from the notebook's final state."""
    values = state.get("values", {})
    globals_ = state.get("globals", [])
    if rubric.problem is None:
        return [_grade_hashed(rubric, name, values.get(name), globals_) for name in ANSWER_NAMES]
    refs = compute_answers(rubric.problem)
    own: Arrays = {}
    return [_grade_one(rubric, name, values.get(name), refs, own, globals_) for name in ANSWER_NAMES]
