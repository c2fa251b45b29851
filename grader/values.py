"""Turn the values a notebook defined into arrays and compare them with references.

The kernel sends values as JSON: numbers, lists, strings, None, or a placeholder
marker for ``...``. Nothing here ever calls a student object; by the time a value
arrives it is plain data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


class ValueProblem(Exception):
    """A value cannot be read as numbers of the expected shape; the message explains why."""


@dataclass(frozen=True)
class Tolerance:
    """Allowed difference: ``|student - reference| <= absolute + relative * |reference|``."""

    relative: float = 1e-3
    absolute: float = 1e-6


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_array(value: Any) -> np.ndarray:
    """Convert a JSON value (a number or nested lists of numbers) to a float array."""
    if isinstance(value, dict) and value.get("placeholder"):
        raise ValueProblem("is still the placeholder `...`")
    if isinstance(value, str):
        raise ValueProblem(f"is a string ({_describe(value)}), not a number")
    if value is None:
        raise ValueProblem("is None")
    try:
        array = np.asarray(value, dtype=float)
    except OverflowError as error:
        raise ValueProblem("contains a number too large for a float") from error
    except (TypeError, ValueError) as error:
        raise ValueProblem(f"is not a number or a regular array of numbers ({_describe(value)})") from error
    if array.size == 0:
        raise ValueProblem("is empty")
    if not np.all(np.isfinite(array)):
        raise ValueProblem("contains NaN or infinity")
    return array


def fit_shape(array: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Return ``array`` in the reference's shape when the two differ only by size-1 axes.

    A vector may be flat, a row or a column, and a scalar a 1-element array.
    """
    if array.size != reference.size:
        raise ValueProblem(
            f"has {array.size} value{'s' if array.size != 1 else ''} (shape {tuple(array.shape)}), "
            f"expected {reference.size} (shape {tuple(reference.shape)})"
        )
    if np.squeeze(array).shape != np.squeeze(reference).shape:
        raise ValueProblem(
            f"has shape {tuple(array.shape)}, which cannot be read as shape {tuple(reference.shape)}"
        )
    return array.reshape(reference.shape)


def matches(array: np.ndarray, reference: np.ndarray, tolerance: Tolerance) -> bool:
    """Return whether every entry is within tolerance of the reference entry."""
    if array.shape != reference.shape:
        return False
    return bool(
        np.all(np.abs(array - reference) <= tolerance.absolute + tolerance.relative * np.abs(reference))
    )


def format_array(array: np.ndarray) -> str:
    """Format numbers the way a student would write them: 18, -14.5, [4, 0, 11]."""
    flat = [_format_number(float(x)) for x in np.ravel(array)]
    if array.ndim == 0 or array.size == 1 and array.ndim <= 1:
        return flat[0]
    if np.squeeze(array).ndim <= 1:
        return "[" + ", ".join(flat) + "]"
    rows = [format_array(row) for row in array]
    return "[" + ", ".join(rows) + "]"


def _format_number(x: float) -> str:
    if math.isfinite(x) and x == round(x) and abs(x) < 1e15:
        return str(int(round(x)))
    return f"{x:.6g}"
