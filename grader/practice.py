"""Practice problems for task 5.1: generate them from a seed, show them, check answers
and write out the worked solution.

A practice problem is a 2-3-1 network like the task sheet's, ``y = W2 @ act(W1 @ x)``
without biases and with the cost ``C = ||y - target||^2``. Every reference value comes
from ``grader.backprop.compute_answers``, and answers are graded by
``grader.check_answers.grade_answers`` on a copy of the rubric whose problem is
replaced, so tolerance, follow-through credit and hints are the same as in grading.

Answers in a notebook are read statically: only literal values count, and no code
of the notebook is ever run.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import numbers
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import nbformat
import numpy as np

from .backprop import ACTIVATIONS, BackpropProblem, compute_answers
from .check_answers import grade_answers
from .results import ItemResult
from .rubric import ANSWER_NAMES, Rubric, load_rubric


class PracticeError(Exception):
    """An input of a practice command is invalid: an answers file, a notebook or a value."""


# ---------------------------------------------------------------------------
# Generating problems

PRACTICE_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
LEARNING_RATES = (0.01, 0.05, 0.1)
MAX_INTEGER = 5  # weights, inputs and targets are integers in -MAX_INTEGER..MAX_INTEGER
MAX_COST = 10_000
# Sigmoid and tanh are nearly flat for large |h|, so their gradients would vanish
# to a few decimals. Their problems keep every |h| at or below this limit.
MAX_SATURATING_PREACTIVATION = 3
MAX_ATTEMPTS = 100_000
HIDDEN_SIZE, INPUT_SIZE, OUTPUT_SIZE = 3, 2, 1


class _SeededDraws:
    """Uniform integers from SHA-256 of the seed and a counter.

    The hash fixes the sequence on every platform and Python or NumPy version,
    without relying on a random-number library's policy for stream compatibility.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._count = 0

    def integer(self, low: int, high: int) -> int:
        digest = hashlib.sha256(f"practice:{self._seed}:{self._count}".encode()).digest()
        self._count += 1
        # The modulo bias is below 1e-17 for ranges this small.
        return low + int.from_bytes(digest[:8], "big") % (high - low + 1)

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.integer(0, len(options) - 1)]


def generate_problem(
    seed: int, activation: str | None = None, allow_zero: bool = False
) -> BackpropProblem:
    """Generate a well-posed 2-3-1 practice problem from ``seed``.

    The same seed and arguments always give the same problem. The seed also picks
    the activation, and an explicit ``activation`` replaces only that pick, so
    ``generate_problem(s)`` equals ``generate_problem(s, a)`` for the activation
    ``a`` it chose. See ``problem_issues`` for what well posed means. With
    ``allow_zero`` a pre-activation may be exactly 0, where the derivative
    convention of the activation matters.

    Raises ValueError for a negative seed or an unknown activation.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if activation is not None and activation not in PRACTICE_ACTIVATIONS:
        raise ValueError(
            f"unknown practice activation {activation!r}; expected one of "
            f"{', '.join(PRACTICE_ACTIVATIONS)}"
        )
    draws = _SeededDraws(seed)
    drawn_activation = draws.choice(PRACTICE_ACTIVATIONS)
    chosen = activation if activation is not None else drawn_activation
    learning_rate = draws.choice(LEARNING_RATES)

    for _ in range(MAX_ATTEMPTS):
        x = [draws.choice(_NONZERO_INTEGERS) for _ in range(INPUT_SIZE)]
        W1 = [_draw_row(draws, x, chosen, allow_zero) for _ in range(HIDDEN_SIZE)]
        if any(row is None for row in W1):
            continue  # no row fits this x, so draw another one
        problem = BackpropProblem.from_lists(
            W1=W1,
            W2=[_draw_integers(draws, HIDDEN_SIZE) for _ in range(OUTPUT_SIZE)],
            x=x,
            target=_draw_integers(draws, OUTPUT_SIZE),
            activation=chosen,
            learning_rate=learning_rate,
        )
        if not problem_issues(problem, allow_zero=allow_zero):
            return problem
    # Seeds 0..999 need at most 8 whole-problem draws for every activation, so reaching
    # this line points to a bug in the rules rather than bad luck.
    raise RuntimeError(f"no well-posed problem found for seed {seed} in {MAX_ATTEMPTS} draws")


_NONZERO_INTEGERS = [n for n in range(-MAX_INTEGER, MAX_INTEGER + 1) if n != 0]
_ROW_ATTEMPTS = 100


def _draw_integers(draws: _SeededDraws, count: int) -> list[int]:
    return [draws.integer(-MAX_INTEGER, MAX_INTEGER) for _ in range(count)]


def _draw_row(
    draws: _SeededDraws, x: list[int], activation: str, allow_zero: bool
) -> list[int] | None:
    """Draw a W1 row whose pre-activation fits the rules of ``problem_issues``, or return None.

    Checking each row on its own rejects far fewer whole problems, which matters for
    sigmoid and tanh, where most rows give a pre-activation beyond ±3.
    """
    for _ in range(_ROW_ATTEMPTS):
        row = _draw_integers(draws, INPUT_SIZE)
        h = sum(w * xi for w, xi in zip(row, x))
        if not any(row) or (h == 0 and not allow_zero):
            continue
        if activation in ("sigmoid", "tanh") and abs(h) > MAX_SATURATING_PREACTIVATION:
            continue
        return row
    return None


def problem_issues(problem: BackpropProblem, allow_zero: bool = False) -> list[str]:
    """List the reasons why ``problem`` is not a well-posed practice problem.

    An empty list means well posed: a 2-3-1 network whose weights, input and target
    are integers in -5..5, no all-zero weight row, no zero in x, no pre-activation exactly 0
    (unless ``allow_zero``), at least one negative and one positive pre-activation
    for relu and leaky_relu so that the activation matters, every |h| <= 3 for
    sigmoid and tanh, and a loss C with 0 < C <= 10^4.
    """
    issues = []
    if problem.activation not in PRACTICE_ACTIVATIONS:
        issues.append(f"the activation {problem.activation!r} is not a practice activation")
    expected_shapes = {
        "W1": (HIDDEN_SIZE, INPUT_SIZE),
        "W2": (OUTPUT_SIZE, HIDDEN_SIZE),
        "x": (INPUT_SIZE,),
        "target": (OUTPUT_SIZE,),
    }
    arrays = {"W1": problem.W1, "W2": problem.W2, "x": problem.x, "target": problem.target}
    for name, array in arrays.items():
        if array.shape != expected_shapes[name]:
            issues.append(f"{name} has shape {array.shape}, expected {expected_shapes[name]}")
        elif not np.all((array == np.round(array)) & (np.abs(array) <= MAX_INTEGER)):
            issues.append(
                f"{name} has entries that are not integers in -{MAX_INTEGER}..{MAX_INTEGER}"
            )
    if issues:
        return issues
    if np.any(np.all(problem.W1 == 0, axis=1)):
        issues.append("W1 has an all-zero row")
    if np.all(problem.W2 == 0):
        issues.append("W2 is all zeros")
    if np.any(problem.x == 0):
        issues.append("x has a zero entry, so a column of dC/dW1 is trivially 0")

    answers = compute_answers(problem)
    h = answers["h"]
    h_text = f"h = {h.tolist()}"
    if not allow_zero and np.any(h == 0):
        issues.append(f"a pre-activation is exactly 0: {h_text}")
    if problem.activation in ("relu", "leaky_relu"):
        if not np.any(h < 0):
            issues.append(
                f"no pre-activation is negative, so the activation does not matter: {h_text}"
            )
        if not np.any(h > 0):
            issues.append(f"no pre-activation is positive: {h_text}")
    saturating = problem.activation in ("sigmoid", "tanh")
    if saturating and np.any(np.abs(h) > MAX_SATURATING_PREACTIVATION):
        issues.append(
            f"a pre-activation is beyond ±{MAX_SATURATING_PREACTIVATION}, where "
            f"{problem.activation} saturates: {h_text}"
        )
    cost = float(answers["C"])
    if cost == 0:
        issues.append("the loss is 0, so every gradient is 0")
    if cost > MAX_COST:
        issues.append(f"the loss {cost:g} is larger than {MAX_COST}")
    return issues


# ---------------------------------------------------------------------------
# Showing problems: terminal text and notebook


@dataclass(frozen=True)
class _ActivationText:
    """Descriptions of one activation for the problem text, the notebook and the worked solution."""

    title: str
    function: str
    derivative: str
    at_zero: str  # the derivative convention at 0, or "" where the derivative is smooth
    autograd_at_zero: str  # what PyTorch autograd uses at 0 instead, or ""
    latex_function: str
    latex_derivative: str


# LaTeX cases for a piecewise function: the value for x >= 0, the value for x < 0,
# and the punctuation that ends the formula.
_CASES = r"\begin{{cases}} {}, & \text{{if }} x \geq 0 \\ {}, & \text{{if }} x < 0{} \end{{cases}}"

_ACTIVATION_TEXT = {
    "relu": _ActivationText(
        title="ReLU",
        function="σ(h) = h if h ≥ 0, and 0 if h < 0",
        derivative="σ'(h) = 1 if h ≥ 0, and 0 if h < 0",
        at_zero="relu'(0) = 1, as on the task sheet",
        autograd_at_zero="0",
        latex_function=_CASES.format("x", "0", ""),
        latex_derivative=_CASES.format("1", "0", "."),
    ),
    "leaky_relu": _ActivationText(
        title="leaky ReLU (negative slope 0.01)",
        function="σ(h) = h if h ≥ 0, and 0.01 h if h < 0",
        derivative="σ'(h) = 1 if h ≥ 0, and 0.01 if h < 0",
        at_zero="leaky_relu'(0) = 1, like relu'(0) = 1 on the task sheet",
        autograd_at_zero="0.01",
        latex_function=_CASES.format("x", "0.01\\,x", ""),
        latex_derivative=_CASES.format("1", "0.01", "."),
    ),
    "sigmoid": _ActivationText(
        title="sigmoid",
        function="σ(h) = 1 / (1 + e^(-h))",
        derivative="σ'(h) = σ(h) (1 - σ(h))",
        at_zero="",
        autograd_at_zero="",
        latex_function=r"\frac{1}{1 + e^{-x}}",
        latex_derivative=r"\sigma(x)\,\bigl(1 - \sigma(x)\bigr).",
    ),
    "tanh": _ActivationText(
        title="tanh",
        function="σ(h) = tanh(h)",
        derivative="σ'(h) = 1 - tanh²(h)",
        at_zero="",
        autograd_at_zero="",
        latex_function=r"\tanh(x)",
        latex_derivative=r"1 - \tanh^2(x).",
    ),
    "identity": _ActivationText(
        title="identity (no activation)",
        function="σ(h) = h",
        derivative="σ'(h) = 1",
        at_zero="",
        autograd_at_zero="",
        latex_function="x",
        latex_derivative="1.",
    ),
}


def _at_zero_sentences(text: _ActivationText) -> str:
    return f"{text.at_zero}. PyTorch autograd uses {text.autograd_at_zero} there instead."


def _activation_text(problem: BackpropProblem) -> _ActivationText:
    try:
        return _ACTIVATION_TEXT[problem.activation]
    except KeyError:
        raise ValueError(
            f"unknown activation {problem.activation!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None


def _exact_text(x: float) -> str:
    """Write an input number exactly: integers without a decimal point, others in full."""
    if x == round(x) and abs(x) < 1e15:
        return str(int(round(x)))
    return repr(float(x))


def _matrix_lines(array: np.ndarray, format_number: Callable[[Any], str]) -> list[str]:
    """Write a matrix as aligned rows, ``[[ 2,  1],`` then ``[ 1, -2]]``."""
    cells = [[format_number(value) for value in row] for row in np.atleast_2d(array)]
    width = max(len(cell) for row in cells for cell in row)
    rows = ["[" + ", ".join(cell.rjust(width) for cell in row) + "]" for row in cells]
    lines = []
    for index, row in enumerate(rows):
        opening = "[" if index == 0 else " "
        closing = "]" if index == len(rows) - 1 else ","
        lines.append(opening + row + closing)
    return lines


def _vector_text(array: np.ndarray, format_number: Callable[[Any], str]) -> str:
    return "[" + ", ".join(format_number(value) for value in np.ravel(array)) + "]"


def format_problem(problem: BackpropProblem, rubric: Rubric | None = None) -> str:
    """Write ``problem`` as text for a terminal, in the words of the task sheet.

    With a ``rubric``, the text also states the tolerance that answers are checked with.
    """
    text = _activation_text(problem)
    hidden = problem.W1.shape[0]
    alpha = _exact_text(problem.learning_rate)
    lines = [
        f"Task 5.1 practice problem: {text.title} activation, learning rate α = {alpha}",
        "",
        "The input x is connected to a hidden layer: a fully connected layer with weights W1,",
        f"followed by the {text.title} activation σ. The output of the hidden layer, v, is",
        "connected to the output y_predicted by a linear fully connected layer with weights W2.",
        "The fully connected layers have no biases. The cost function is",
        "",
        "    C(y_predicted, y_target) = ||y_predicted - y_target||²",
        "",
    ]
    for name, array in (("W1", problem.W1), ("W2", problem.W2)):
        matrix = _matrix_lines(array, _exact_text)
        lines.append(f"{name} = {matrix[0]}")
        lines.extend(" " * (len(name) + 3) + row for row in matrix[1:])
    lines += [
        f"x = {_vector_text(problem.x, _exact_text)}",
        f"y_target = {_vector_text(problem.target, _exact_text)}",
        "",
        f"The activation is {text.function}, with the derivative {text.derivative}.",
    ]
    if text.at_zero:
        lines.append(f"At 0: {_at_zero_sentences(text)}")
    lines += [
        "",
        f"i.   Calculate the output of the hidden layer v ({hidden} values), the predicted output",
        "     of the network y_predicted and the loss C.",
        "ii.  Calculate the partial derivative of the loss with respect to the weight w11 of",
        "     the first layer W1.",
        "iii. Calculate the partial derivative of the loss with respect to the weight matrix W2",
        "     of the second layer.",
        f"iv.  With the learning rate α = {alpha}, calculate the new weight matrix W2_updated",
        "     after one step of gradient descent.",
        "",
        "Answer names: " + ", ".join(ANSWER_NAMES) + ".",
    ]
    if rubric is not None:
        lines.append(
            f"An answer counts as correct within {_exact_text(rubric.absolute_tolerance)} plus "
            f"{_exact_text(rubric.relative_tolerance)} times the size of the expected value."
        )
    return "\n".join(lines) + "\n"


# Notebook metadata key that stores the problem, so that a practice notebook can be
# checked without knowing the seed it came from.
PROBLEM_METADATA_KEY = "practice_problem"


def _latex_matrix(array: np.ndarray) -> str:
    rows = [" & ".join(_exact_text(value) for value in row) for row in np.atleast_2d(array)]
    return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


def _latex_symbols(layer: int, shape: tuple[int, int]) -> str:
    rows = [
        " & ".join(f"w_{{{row + 1}{column + 1}}}^{{({layer})}}" for column in range(shape[1]))
        for row in range(shape[0])
    ]
    return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


def _problem_markdown(problem: BackpropProblem) -> str:
    text = _activation_text(problem)
    alpha = _exact_text(problem.learning_rate)
    column = lambda array: _latex_matrix(np.reshape(array, (-1, 1)))  # noqa: E731
    at_zero = f"\n\nAt 0: {_at_zero_sentences(text)}" if text.at_zero else ""
    return f"""## 5.1 Backpropagation: practice problem

Consider the network below. The input $\\mathbf{{x}}$ is connected to a hidden layer,
which is a fully connected layer with weights $\\mathbf{{W}}^{{(1)}}$ followed by a
{text.title} activation. The output of the hidden layer, $\\mathbf{{v}}$, is connected
to the output $\\mathbf{{y}}$ by a linear fully connected layer with weights
$\\mathbf{{W}}^{{(2)}}$. For simplicity, the fully connected layers have no biases.

$$\\mathbf{{x}} \\xrightarrow{{\\;\\mathbf{{W}}^{{(1)}}\\;}} \\mathbf{{h}} \\xrightarrow{{\\;\\sigma\\;}} \\mathbf{{v}} \\xrightarrow{{\\;\\mathbf{{W}}^{{(2)}}\\;}} \\mathbf{{y}}_{{predicted}}$$

With the network output $\\mathbf{{y}}_{{predicted}}$ and the target output
$\\mathbf{{y}}_{{target}}$, the cost function is

$$C(\\mathbf{{y}}_{{predicted}}, \\mathbf{{y}}_{{target}}) = \\|\\mathbf{{y}}_{{predicted}} - \\mathbf{{y}}_{{target}}\\|_2^2 .$$

The initial weights are

$$\\mathbf{{W}}^{{(1)}} = {_latex_symbols(1, problem.W1.shape)} = {_latex_matrix(problem.W1)}, \\qquad \\mathbf{{W}}^{{(2)}} = {_latex_symbols(2, problem.W2.shape)} = {_latex_matrix(problem.W2)}. \\qquad \\text{{(A)}}$$

The activation function $\\sigma(x)$ and its derivative $\\sigma'(x)$ are

$$\\sigma(x) = {text.latex_function} \\qquad \\sigma'(x) = {text.latex_derivative}$${at_zero}

The input $\\mathbf{{x}}$ and the corresponding target output $\\mathbf{{y}}_{{target}}$ are

$$\\mathbf{{x}} = {column(problem.x)}, \\qquad \\mathbf{{y}}_{{target}} = {_latex_matrix(np.reshape(problem.target, (1, -1)))}. \\qquad \\text{{(B)}}$$

i. Calculate the output of the hidden layer $\\mathbf{{v}}$, the predicted output of the
   network $\\mathbf{{y}}_{{predicted}}$ and the loss $C$, with the initial weights (A) and
   the input and target output (B).

ii. Calculate the partial derivative of the loss with respect to the weight
    $w_{{11}}^{{(1)}}$ of the first layer.

iii. Calculate the partial derivative of the loss with respect to the weight matrix
     $\\mathbf{{W}}^{{(2)}}$ of the second layer.

iv. With the learning rate $\\alpha = {alpha}$, calculate the new weight matrix
    $\\mathbf{{W}}^{{(2)}}_{{updated}}$ after one step of gradient descent.

Write your answers into the variables of the answer cell below."""


def _answer_cell_source(problem: BackpropProblem) -> str:
    hidden = problem.W1.shape[0]
    outputs = problem.W2.shape[0]
    alpha = _exact_text(problem.learning_rate)
    output_text = "output of the network" + (f", {outputs} values" if outputs > 1 else "")
    return f"""# TODO: replace each ... with your hand-computed value.
# The practice checker reads these values without running the notebook, so write
# each value itself: a number (18, -14.5, -29/2 or Fraction(-29, 2)), a list such as
# [4, 0, 11], or np.array([...]) / torch.tensor([...]) around such a list. It cannot
# read computed expressions such as W2 @ v. A vector may be flat, a row or a column.

# i.
v = ...            # output of the hidden layer, {hidden} values
y_predicted = ...  # {output_text}
C = ...            # loss

# ii.
dC_dw11 = ...      # dC / dw11 of the first layer W(1)

# iii.
dC_dW2 = ...       # dC / dW(2), {outputs * hidden} values

# iv.
W2_updated = ...   # W(2) after one gradient-descent step with learning rate {alpha}
"""


def _plain_number(x: float) -> int | float:
    return int(x) if x == round(x) and abs(x) < 1e15 else float(x)


def _problem_metadata(problem: BackpropProblem) -> dict[str, Any]:
    def plain(array: np.ndarray) -> Any:
        return np.vectorize(_plain_number, otypes=[object])(array).tolist()

    return {
        "W1": plain(problem.W1),
        "W2": plain(problem.W2),
        "x": plain(problem.x),
        "target": plain(problem.target),
        "activation": problem.activation,
        "learning_rate": problem.learning_rate,
    }


_IMPORTS_CELL = "from fractions import Fraction\n\nimport numpy as np\nimport torch"


def problem_notebook(problem: BackpropProblem) -> nbformat.NotebookNode:
    """Build a notebook with the 5.1 text for ``problem`` and the answer cell.

    A code cell imports Fraction, NumPy and PyTorch for the accepted forms of an
    answer, and the answer cell sets the six answer names to ``...``, like the
    assignment. The notebook metadata stores the problem under ``practice_problem``, which
    ``problem_from_notebook`` reads back.
    """
    intro = (
        "# Exercise 5: practice problem for task 5.1\n\n"
        "Work out the values by hand, write them into the answer cell and save the "
        "notebook. The practice checker grades them like the real task: with the same "
        "tolerance, follow-through credit for answers built on your own earlier mistake, "
        "and hints for common mistakes."
    )
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(intro),
        nbformat.v4.new_markdown_cell(_problem_markdown(problem)),
        nbformat.v4.new_code_cell(_IMPORTS_CELL),
        nbformat.v4.new_code_cell(_answer_cell_source(problem)),
    ]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata[PROBLEM_METADATA_KEY] = _problem_metadata(problem)
    return notebook


def _read_notebook(path: Path | str) -> nbformat.NotebookNode:
    try:
        return nbformat.read(str(path), as_version=4)
    except OSError as error:
        raise PracticeError(f"cannot read notebook {path}: {error.strerror}") from error
    except (ValueError, nbformat.reader.NotJSONError) as error:
        raise PracticeError(f"{path} is not a valid notebook: {error}") from error


def problem_from_notebook(notebook: nbformat.NotebookNode | Path | str) -> BackpropProblem:
    """Read the problem that ``problem_notebook`` stored in a notebook's metadata.

    ``notebook`` is a notebook object or the path of a notebook file. Raises
    PracticeError when the file cannot be read or has no valid stored problem.
    """
    if not isinstance(notebook, nbformat.NotebookNode):
        notebook = _read_notebook(notebook)
    stored = notebook.get("metadata", {}).get(PROBLEM_METADATA_KEY)
    if not isinstance(stored, dict):
        raise PracticeError(
            f"the notebook has no {PROBLEM_METADATA_KEY!r} metadata, so it was not made as a "
            "practice notebook. Give the seed of the problem instead."
        )
    try:
        return BackpropProblem.from_lists(
            stored["W1"],
            stored["W2"],
            stored["x"],
            stored["target"],
            stored.get("activation", "relu"),
            stored.get("learning_rate", 0.05),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PracticeError(f"the stored practice problem is invalid: {error!r}") from error


# ---------------------------------------------------------------------------
# Reading answers: JSON files, command-line values and notebooks


@dataclass(frozen=True)
class UnreadAnswer:
    """A name that a notebook binds to a value that static reading cannot determine.

    ``reason`` completes the grader's sentence "`name` could not be read: it is a ...".
    """

    reason: str
    hint: str = (
        "Write the value itself, such as `v = [4, 0, 11]` or `C = 225`, because the "
        "practice checker reads literal values only and never runs notebook code."
    )


def read_answers_json(path: Path | str) -> dict[str, Any]:
    """Read answers from a JSON object that maps answer names to numbers or lists.

    Raises PracticeError when the file cannot be read, is not valid JSON or does not
    contain an object.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PracticeError(f"cannot read answers file {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise PracticeError(f"answers file {path} is not UTF-8 text: {error}") from error
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise PracticeError(f"answers file {path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise PracticeError(
            f"answers file {path} contains a JSON {type(data).__name__}, expected an object "
            'that maps names to values, such as {"v": [4, 0, 11], "C": 225}'
        )
    return data


def parse_answer_assignment(text: str) -> tuple[str, Any]:
    """Parse a command-line answer ``NAME=VALUE``, such as ``v=[4,0,11]`` or ``C=-29/2``.

    VALUE is read like a notebook value: a literal, a ratio of two integers, or a
    literal wrapped in np.array, torch.tensor or Fraction. Raises PracticeError for
    anything else.
    """
    name, separator, value_text = text.partition("=")
    name = name.strip()
    if not separator or not name.isidentifier():
        raise PracticeError(
            f"invalid answer {text!r}: expected NAME=VALUE, such as v=[4,0,11] or C=225"
        )
    try:
        expression = ast.parse(value_text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        raise PracticeError(f"invalid value in answer {text!r}: {error}") from error
    try:
        return name, _literal_value(expression, dict(_DEFAULT_NAMES))
    except _NotLiteral as error:
        raise PracticeError(
            f"invalid value in answer {text!r}: {error}. Write a number or a list of "
            "numbers, such as 18, -29/2 or [4, 0, 11]."
        ) from error


def read_answers(path: Path | str) -> dict[str, Any]:
    """Read answers from a notebook (``.ipynb``) or else from a JSON file."""
    if Path(path).suffix.lower() == ".ipynb":
        return read_answers_notebook(path)
    return read_answers_json(path)


def read_answers_notebook(path: Path | str) -> dict[str, Any]:
    """Read the top-level names a notebook assigns, without running any of its code.

    Code cells are parsed in order, and a later assignment replaces an earlier one,
    as when the notebook runs from top to bottom. A name whose value is a literal
    (``ast.literal_eval``), a ratio of two integers, or a literal wrapped in
    np.array, torch.tensor or Fraction maps to that value. Every other top-level
    name maps to an ``UnreadAnswer`` that states the reason: a computed expression, a name
    set inside a loop, a value changed later by ``v.append(...)``, a cell that is not
    valid Python. ``check_answers`` picks the answer names and the rubric's aliases
    from the result and uses the other names to suggest renames.

    Raises PracticeError when the file is not a readable notebook.
    """
    notebook = _read_notebook(path)
    reader = _StaticReader()
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") == "code":
            reader.read_cell(index, cell.get("source", ""))
    return reader.values


class _NotLiteral(Exception):
    """An expression that is not a literal value, named in the message."""


# Callables whose single argument is unwrapped: they turn a literal into an array.
_ARRAY_CONSTRUCTORS = {
    "numpy.array",
    "numpy.asarray",
    "torch.tensor",
    "torch.as_tensor",
    "torch.Tensor",
    "torch.FloatTensor",
    "torch.DoubleTensor",
}
# These constructors read a bare number as a size, so torch.Tensor(3) is an
# uninitialized tensor of 3 values. Only a list argument counts as a literal for them.
_SIZE_CONSTRUCTORS = {"torch.Tensor", "torch.FloatTensor", "torch.DoubleTensor"}
_FRACTION = "fractions.Fraction"
# Import names a notebook usually relies on, used before any import is seen.
_DEFAULT_NAMES = {
    "np": "numpy",
    "numpy": "numpy",
    "torch": "torch",
    "fractions": "fractions",
    "Fraction": _FRACTION,
}
_TORCH_FLOAT_TYPES = {"float", "float16", "float32", "float64", "double", "half", "bfloat16"}
_TORCH_INT_TYPES = {"int", "int8", "int16", "int32", "int64", "long", "short", "uint8"}
# A Fraction string without an exponent, so that parsing it stays cheap.
_FRACTION_TEXT = re.compile(r"\s*[+-]?(\d{1,50}(/\d{1,50})?|\d{0,50}\.\d{1,50}|\d{1,50}\.)\s*")
_MUTATING_METHODS = {
    "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
    "fill", "resize", "put", "itemset", "partition", "setflags",
}  # fmt: skip


def _short_source(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _qualified_name(node: ast.expr, names: dict[str, str]) -> str | None:
    """Resolve ``np.array`` to ``numpy.array`` through the notebook's imports."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _qualified_name(node.value, names)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _literal_value(node: ast.expr, names: dict[str, str]) -> Any:
    """Return the value of a literal expression without evaluating any code.

    Lists and tuples become lists. Raises _NotLiteral for anything else.
    """
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal_value(element, names) for element in node.elts]
    if isinstance(node, ast.Call):
        return _call_value(node, names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _ratio_value(node)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal_value(node.operand, names)
        if not _is_number(operand):
            raise _NotLiteral(f"`{_short_source(node)}` is not a literal")
        return -operand if isinstance(node.op, ast.USub) else operand
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _NotLiteral(f"`{_short_source(node)}` is a computed expression") from None


def _ratio_value(node: ast.BinOp) -> Fraction:
    """Read a hand-written fraction such as ``-29/2`` or ``1.5/2`` as an exact Fraction.

    The Fraction rounds to the same float as Python's division, which is correctly rounded.
    """
    parts = []
    for operand in (node.left, node.right):
        sign = 1
        if isinstance(operand, ast.UnaryOp) and isinstance(operand.op, (ast.USub, ast.UAdd)):
            sign = -1 if isinstance(operand.op, ast.USub) else 1
            operand = operand.operand
        if not (isinstance(operand, ast.Constant) and type(operand.value) in (int, float)):
            raise _NotLiteral(f"`{_short_source(node)}` is a computed expression")
        try:
            parts.append(sign * Fraction(operand.value))
        except (ValueError, OverflowError):
            raise _NotLiteral(f"`{_short_source(node)}` contains NaN or infinity") from None
    if parts[1] == 0:
        raise _NotLiteral(f"`{_short_source(node)}` divides by zero")
    return parts[0] / parts[1]


def _call_value(node: ast.Call, names: dict[str, str]) -> Any:
    callee = _qualified_name(node.func, names)
    if callee == _FRACTION:
        return _fraction_value(node)
    if callee not in _ARRAY_CONSTRUCTORS:
        raise _NotLiteral(f"`{_short_source(node)}` is a computed expression")
    arguments = list(node.args)
    dtype = None
    if callee.startswith("numpy.") and len(arguments) == 2:
        dtype = arguments.pop()  # np.array(data, dtype)
    if len(arguments) != 1 or isinstance(arguments[0], ast.Starred):
        raise _NotLiteral(f"`{_short_source(node)}` is not a single literal argument")
    data = _literal_value(arguments[0], names)
    if callee in _SIZE_CONSTRUCTORS and not isinstance(data, list):
        raise _NotLiteral(f"`{_short_source(node)}` makes a tensor of that size, not that value")
    for keyword in node.keywords:
        if keyword.arg == "dtype":
            dtype = keyword.value
        elif keyword.arg not in ("requires_grad", "device", "copy"):
            raise _NotLiteral(f"`{_short_source(node)}` has the argument {keyword.arg}=")
    if dtype is not None:
        kind = _dtype_kind(dtype, names)
        if kind is None:
            raise _NotLiteral(f"`{_short_source(node)}` has a dtype that is not a number type")
        if kind == "integer":
            data = _truncated(data, node)
    return data


def _fraction_value(node: ast.Call) -> Fraction:
    if node.keywords or not 1 <= len(node.args) <= 2:
        raise _NotLiteral(f"`{_short_source(node)}` is not Fraction(numerator, denominator)")
    arguments = []
    for argument in node.args:
        try:
            value = ast.literal_eval(argument)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise _NotLiteral(f"`{_short_source(node)}` has a computed argument") from None
        if isinstance(value, str) and not _FRACTION_TEXT.fullmatch(value):
            raise _NotLiteral(f"`{_short_source(node)}` has an invalid fraction text")
        if not (_is_number(value) or isinstance(value, str)):
            raise _NotLiteral(f"`{_short_source(node)}` has an argument that is not a number")
        arguments.append(value)
    try:
        return Fraction(*arguments)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        raise _NotLiteral(f"`{_short_source(node)}` is not a valid Fraction") from None


def _dtype_kind(node: ast.expr, names: dict[str, str]) -> str | None:
    """Return "float" or "integer" for a dtype argument, or None when it is neither."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        type_name = node.value
    elif isinstance(node, ast.Name) and node.id in ("int", "float") and node.id not in names:
        type_name = node.id
    else:
        qualified = _qualified_name(node, names) or ""
        module, _, type_name = qualified.rpartition(".")
        if module == "torch":
            if type_name in _TORCH_FLOAT_TYPES:
                return "float"
            return "integer" if type_name in _TORCH_INT_TYPES else None
        if module != "numpy":
            return None
    try:
        kind = np.dtype(type_name).kind
    except TypeError:
        return None
    return {"f": "float", "i": "integer", "u": "integer"}.get(kind)


def _truncated(data: Any, node: ast.Call) -> Any:
    """Convert to integers toward zero, as np.array(..., dtype=int) does."""
    if isinstance(data, list):
        return [_truncated(item, node) for item in data]
    if not _is_number(data):
        raise _NotLiteral(f"`{_short_source(node)}` contains a value that is not a number")
    try:
        return int(data)
    except (ValueError, OverflowError):
        raise _NotLiteral(f"`{_short_source(node)}` contains NaN or infinity") from None


def _without_magics(source: str) -> str:
    """Turn IPython syntax (``%matplotlib``, ``!pip``) into Python calls, which are never run."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        if source.lstrip().startswith("%%"):
            return ""
        return "\n".join(
            "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
        )
    return TransformerManager().transform_cell(source)


_COMPOUND_KEYWORDS = {
    ast.If: "if", ast.For: "for", ast.AsyncFor: "async for", ast.While: "while",
    ast.With: "with", ast.AsyncWith: "async with", ast.Try: "try", ast.Match: "match",
}  # fmt: skip
if hasattr(ast, "TryStar"):  # Python 3.11 and later
    _COMPOUND_KEYWORDS[ast.TryStar] = "try"
_ASSIGNED_AT_LINE_START = re.compile(r"^([A-Za-z_]\w*)\s*(?::[^=\n]*)?=(?!=)", re.MULTILINE)


def _scope_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Yield the nodes of ``node`` that run in the notebook's global scope.

    Function, lambda and class bodies are skipped, and so are comprehension
    variables, which are local to their comprehension.
    """
    yield node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.comprehension):
            for part in (child.iter, *child.ifs):
                yield from _scope_nodes(part)
        else:
            yield from _scope_nodes(child)


def _bound_names(node: ast.AST) -> list[str]:
    """Return the global names that a statement binds anywhere inside it."""
    bound = []
    for inner in _scope_nodes(node):
        if isinstance(inner, ast.Name) and isinstance(inner.ctx, (ast.Store, ast.Del)):
            bound.append(inner.id)
        elif isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.append(inner.name)
        elif isinstance(inner, (ast.Import, ast.ImportFrom)):
            bound.extend((alias.asname or alias.name).split(".")[0] for alias in inner.names)
        elif isinstance(inner, ast.ExceptHandler) and inner.name:
            bound.append(inner.name)
        elif isinstance(inner, (ast.MatchAs, ast.MatchStar)) and inner.name:
            bound.append(inner.name)
        elif isinstance(inner, ast.MatchMapping) and inner.rest:
            bound.append(inner.rest)
    return bound


def _container_name(target: ast.expr) -> str | None:
    """Return ``v`` for the targets ``v[0]``, ``v.data`` and ``v[0][1]``."""
    while isinstance(target, (ast.Subscript, ast.Attribute)):
        target = target.value
    return target.id if isinstance(target, ast.Name) else None


class _StaticReader:
    """Collect the top-level names of a notebook's code cells without running them.

    NOTE: changes made by calling a function (``np.copyto(v, ...)``, a function
    that declares ``global v``) or through ``exec`` and ``globals()`` are not seen.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.names = dict(_DEFAULT_NAMES)

    def read_cell(self, index: int, source: str) -> None:
        try:
            tree = ast.parse(_without_magics(source))
        except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
            self._mark_unparsable(index, source, error)
            return
        for statement in tree.body:
            self._read_statement(statement)

    def _mark_unparsable(self, index: int, source: str, error: Exception) -> None:
        where = ""
        if isinstance(error, SyntaxError):
            where = f": {error.msg}, line {error.lineno}"
        reason = f"name assigned in code cell {index}, which is not valid Python{where}"
        hint = (
            f"Fix the syntax error in code cell {index}, because a cell that does not parse "
            "defines no names when the notebook runs."
        )
        for name in _ASSIGNED_AT_LINE_START.findall(source):
            self.values[name] = UnreadAnswer(reason, hint)

    def _unread(self, name: str, reason: str) -> None:
        self.names.pop(name, None)
        self.values[name] = UnreadAnswer(reason)

    def _read_statement(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                self._assign(target, statement.value)
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            self._assign(statement.target, statement.value)
        elif isinstance(statement, ast.AugAssign):
            name = _container_name(statement.target)
            if name is not None:
                self._unread(name, f"value changed by `{_short_source(statement)}`")
        elif isinstance(statement, ast.Delete):
            self._delete(statement)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            self._import(statement)
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._unread(statement.name, "function defined with `def`, not a value")
        elif isinstance(statement, ast.ClassDef):
            self._unread(statement.name, "class, not a value")
        elif type(statement) in _COMPOUND_KEYWORDS:
            keyword = _COMPOUND_KEYWORDS[type(statement)]
            for name in _bound_names(statement):
                self._unread(
                    name,
                    f"name assigned inside the `{keyword}` statement, so its value depends "
                    "on running the code",
                )
        self._mark_side_effects(statement)

    def _assign(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.names.pop(target.id, None)
            try:
                self.values[target.id] = _literal_value(value, self.names)
            except _NotLiteral as error:
                self.values[target.id] = UnreadAnswer(
                    f"value that only running the code could produce, because {error}"
                )
        elif isinstance(target, (ast.Tuple, ast.List)):
            pairs_up = (
                isinstance(value, (ast.Tuple, ast.List))
                and len(value.elts) == len(target.elts)
                and not any(isinstance(node, ast.Starred) for node in (*target.elts, *value.elts))
            )
            if pairs_up:
                for inner_target, inner_value in zip(target.elts, value.elts):
                    self._assign(inner_target, inner_value)
            else:
                for name in _bound_names(target):
                    self._unread(name, f"name unpacked from `{_short_source(value)}`")
        elif isinstance(target, ast.Starred):
            for name in _bound_names(target):
                self._unread(name, f"name unpacked from `{_short_source(value)}`")
        else:
            name = _container_name(target)
            if name is not None:
                self._unread(name, f"value changed by `{_short_source(target)} = ...`")

    def _delete(self, statement: ast.Delete) -> None:
        targets = list(statement.targets)
        while targets:
            target = targets.pop()
            if isinstance(target, ast.Name):
                self.values.pop(target.id, None)
                self.names.pop(target.id, None)
            elif isinstance(target, (ast.Tuple, ast.List)):
                targets.extend(target.elts)
            else:
                name = _container_name(target)
                if name is not None:
                    self._unread(name, f"value changed by `{_short_source(statement)}`")

    def _import(self, statement: ast.Import | ast.ImportFrom) -> None:
        for alias in statement.names:
            if alias.name == "*":
                continue
            if isinstance(statement, ast.Import):
                bound = alias.asname or alias.name.split(".")[0]
                qualified = alias.name if alias.asname else bound
            else:
                bound = alias.asname or alias.name
                qualified = f"{statement.module}.{alias.name}" if statement.module else None
            self._unread(bound, f"name bound by `{_short_source(statement)}`, not a value")
            if qualified is not None and not getattr(statement, "level", 0):
                self.names[bound] = qualified

    def _mark_side_effects(self, statement: ast.stmt) -> None:
        """Mark names rebound by ``:=`` and values changed in place by a method call."""
        for node in _scope_nodes(statement):
            if isinstance(node, ast.NamedExpr):
                self._unread(
                    node.target.id, f"name assigned by `{_short_source(node)}` inside an expression"
                )
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and _changes_in_place(node.func.attr)
            ):
                self._unread(node.func.value.id, f"value changed by `{_short_source(node)}`")


def _changes_in_place(method: str) -> bool:
    """Tell whether a method changes its object: list and array methods, torch's ``add_``."""
    in_place_tensor_method = method.endswith("_") and not method.startswith("_")
    return method in _MUTATING_METHODS or in_place_tensor_method


# ---------------------------------------------------------------------------
# Checking answers


class _NotNumeric(Exception):
    """A value whose type is not a number or a list of numbers."""


def _json_value(value: Any, depth: int = 0) -> Any:
    """Convert a value to the JSON form that the notebook kernel sends to the grader."""
    if depth > 32:
        raise _NotNumeric("list nested more than 32 levels deep")
    if value is None or isinstance(value, str):
        return value  # the grader rejects these with its own message
    if value is Ellipsis:
        return {"placeholder": True}
    if isinstance(value, bool):
        raise _NotNumeric("bool, not a number")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray):
        return _json_value(value.tolist(), depth + 1)
    type_name = type(value).__module__ + "." + type(value).__qualname__
    if type_name.startswith("torch.") and hasattr(value, "detach"):
        if value.is_complex():
            raise _NotNumeric("complex tensor, not real numbers")
        return _json_value(value.detach().to("cpu").double().tolist(), depth + 1)
    if isinstance(value, (list, tuple)):
        return [_json_value(item, depth + 1) for item in value]
    raise _NotNumeric(f"{type(value).__name__}, not a number or a list of numbers")


def _answer_entry(name: str, value: Any) -> dict[str, Any]:
    """Build the grader's record for one answer: its value, or the reason it is unreadable."""
    if isinstance(value, UnreadAnswer):
        return {"name": name, "error": value.reason}
    try:
        return {"name": name, "value": _json_value(value)}
    except _NotNumeric as error:
        return {"name": name, "error": str(error)}


def check_answers(
    problem: BackpropProblem,
    values: dict[str, Any],
    rubric: Rubric | None = None,
    reveal_reference: bool = False,
) -> list[ItemResult]:
    """Grade answers to ``problem`` with ``grade_answers``, as 5.1 grading does.

    Comparison, tolerance, follow-through credit and hints are the grader's own.
    ``values`` maps names to numbers, lists, arrays or tensors, as returned by the
    ``read_answers_*`` functions. An answer name absent from it is graded as missing. Each answer
    is looked up by its name and then by the rubric's aliases, and the other names
    are used to suggest renames. ``rubric`` gives the points, tolerance,
    follow-through share and aliases (the default rubric when None), and its own
    problem is replaced by ``problem``. With ``reveal_reference``, a wrong answer's
    message also shows the expected value.

    Raises RubricError when the default rubric cannot be loaded.
    """
    if not isinstance(problem, BackpropProblem):
        raise TypeError(f"problem must be a BackpropProblem, got {type(problem).__name__}")
    base = load_rubric() if rubric is None else rubric
    practice_rubric = dataclasses.replace(base, problem=problem, reveal_reference=reveal_reference)
    entries = {}
    unread_hints = {}
    for answer_name in ANSWER_NAMES:
        for candidate in practice_rubric.names_for(answer_name):
            if candidate in values:
                entries[answer_name] = _answer_entry(candidate, values[candidate])
                if isinstance(values[candidate], UnreadAnswer):
                    unread_hints[answer_name] = values[candidate].hint
                break
    state = {"values": entries, "globals": sorted(str(name) for name in values)}
    results = grade_answers(practice_rubric, state)
    for answer_name, result in zip(ANSWER_NAMES, results):
        if result.outcome == "error" and answer_name in unread_hints:
            result.hint = unread_hints[answer_name]
    return results


def format_results(results: list[ItemResult]) -> str:
    """Write graded items as terminal lines: id, points, outcome, message and hint."""
    width = max(len(result.id) for result in results)
    lines = []
    for result in results:
        lines.append(
            f"{result.id:<{width}}  {result.points:g}/{result.max_points:g}  "
            f"{result.outcome:<14}  {result.message}"
        )
        if result.hint:
            lines.append(f"{'':<{width}}  hint: {result.hint}")
    total = sum(result.points for result in results)
    maximum = sum(result.max_points for result in results)
    lines.append(f"{'total':<{width}}  {total:g}/{maximum:g}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Worked solution

# The negative slope 0.01 of leaky_relu in grader.backprop. A mismatch makes
# _check_exact_values raise.
LEAKY_RELU_SLOPE = Fraction(1, 100)
_PIECEWISE_LINEAR = ("relu", "leaky_relu", "identity")
_MAX_DENOMINATOR = 10**6

Matrix = list[list[Any]]


@dataclass
class _SolutionValues:
    """Every number the worked solution shows, as Fractions or as floats."""

    W1: Matrix
    W2: Matrix
    x: list[Any]
    target: list[Any]
    h: list[Any]
    activation_grad: list[Any]  # σ'(h)
    v: list[Any]
    y: list[Any]
    C: Any
    dC_dy: list[Any]
    backpropagated: list[Any]  # W2ᵀ dC/dy
    dC_dh: list[Any]
    dC_dW1: Matrix
    dC_dW2: Matrix
    W2_updated: Matrix


def _as_fraction(x: float) -> Fraction | None:
    """Return ``x`` as a fraction with a denominator up to 10^6, or None when none equals it."""
    fraction = Fraction(float(x)).limit_denominator(_MAX_DENOMINATOR)
    return fraction if float(fraction) == float(x) else None


def _exact_inputs(problem: BackpropProblem) -> dict[str, Any] | None:
    """Return the inputs as Fractions when every value of the solution is rational."""
    if problem.activation not in _PIECEWISE_LINEAR:
        return None
    inputs: dict[str, Any] = {}
    for name in ("W1", "W2", "x", "target"):
        array = np.asarray(getattr(problem, name))
        fractions = [_as_fraction(value) for value in array.ravel()]
        if any(fraction is None for fraction in fractions):
            return None
        inputs[name] = np.array(fractions, dtype=object).reshape(array.shape).tolist()
    inputs["learning_rate"] = _as_fraction(problem.learning_rate)
    return None if inputs["learning_rate"] is None else inputs


def _exact_values(problem: BackpropProblem, inputs: dict[str, Any]) -> _SolutionValues:
    """Compute the worked solution in Fraction arithmetic."""
    W1, W2, x, target = inputs["W1"], inputs["W2"], inputs["x"], inputs["target"]
    negative_grad = {"relu": Fraction(0), "leaky_relu": LEAKY_RELU_SLOPE, "identity": Fraction(1)}
    slope = negative_grad[problem.activation]
    # The derivative is 1 for every h >= 0, so relu'(0) = 1 as on the task sheet.
    h = [sum((w * xi for w, xi in zip(row, x)), Fraction(0)) for row in W1]
    activation_grad = [Fraction(1) if value >= 0 else slope for value in h]
    v = [value * grad for value, grad in zip(h, activation_grad)]
    y = [sum((w * vi for w, vi in zip(row, v)), Fraction(0)) for row in W2]
    residual = [yi - ti for yi, ti in zip(y, target)]
    dC_dy = [2 * r for r in residual]
    backpropagated = [
        sum((W2[k][j] * dC_dy[k] for k in range(len(W2))), Fraction(0)) for j in range(len(W1))
    ]
    dC_dh = [b * g for b, g in zip(backpropagated, activation_grad)]
    dC_dW2 = [[d * vi for vi in v] for d in dC_dy]
    return _SolutionValues(
        W1=W1, W2=W2, x=x, target=target, h=h, activation_grad=activation_grad, v=v, y=y,
        C=sum((r * r for r in residual), Fraction(0)),
        dC_dy=dC_dy, backpropagated=backpropagated, dC_dh=dC_dh,
        dC_dW1=[[d * xi for xi in x] for d in dC_dh],
        dC_dW2=dC_dW2,
        W2_updated=[
            [w - inputs["learning_rate"] * g for w, g in zip(w_row, g_row)]
            for w_row, g_row in zip(W2, dC_dW2)
        ],
    )  # fmt: skip


def _check_exact_values(values: _SolutionValues, reference: dict[str, np.ndarray]) -> None:
    """Raise RuntimeError unless the exact values agree with ``compute_answers``."""
    for name in ("h", "v", "y", "C", "dC_dy", "dC_dh", "dC_dW1", "dC_dW2", "W2_updated"):
        key = "y_predicted" if name == "y" else name
        exact = np.asarray(getattr(values, name), dtype=float)
        if not np.allclose(exact, reference[key], rtol=1e-9, atol=1e-12):
            raise RuntimeError(
                f"the exact worked solution has {name} = {exact.tolist()}, but "
                f"compute_answers has {np.asarray(reference[key]).tolist()}"
            )


def _float_values(problem: BackpropProblem, reference: dict[str, np.ndarray]) -> _SolutionValues:
    """Take the worked solution's numbers from ``compute_answers`` and the activation."""
    _, activation_grad = ACTIVATIONS[problem.activation]
    return _SolutionValues(
        W1=problem.W1.tolist(), W2=problem.W2.tolist(), x=problem.x.tolist(),
        target=problem.target.tolist(), h=reference["h"].tolist(),
        activation_grad=activation_grad(reference["h"]).tolist(),
        v=reference["v"].tolist(), y=reference["y_predicted"].tolist(),
        C=float(reference["C"]), dC_dy=reference["dC_dy"].tolist(),
        backpropagated=(problem.W2.T @ reference["dC_dy"]).tolist(),
        dC_dh=reference["dC_dh"].tolist(), dC_dW1=reference["dC_dW1"].tolist(),
        dC_dW2=reference["dC_dW2"].tolist(), W2_updated=reference["W2_updated"].tolist(),
    )  # fmt: skip


def _number_text(x: Any) -> str:
    """Write a Fraction as ``-29/2`` or ``4`` and a float with 6 significant digits."""
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    return _exact_text(x) if x == round(x) and abs(x) < 1e15 else f"{x:.6g}"


def _factor_text(x: Any) -> str:
    """Write a number as a factor of a product, in brackets when it is negative or a fraction."""
    text = _number_text(x)
    return f"({text})" if text.startswith("-") or "/" in text else text


def _list_text(values: Sequence[Any]) -> str:
    return "[" + ", ".join(_number_text(value) for value in values) + "]"


def _matrix_text(rows: Matrix) -> str:
    return "[" + ", ".join(_list_text(row) for row in rows) + "]"


def _decimal_text(x: Any) -> str:
    """Write a number as a decimal: exact when a Fraction has one, else 6 significant digits."""
    if isinstance(x, Fraction):
        denominator = x.denominator
        for factor in (2, 5):
            while denominator % factor == 0:
                denominator //= factor
        if denominator == 1 and len(repr(float(x))) <= 18:
            return _exact_text(float(x))
    return f"{float(x):.6g}"


def _with_decimals(text: str, values: Any) -> str:
    """Append the decimal form of a result that contains fractions: ``-29/2 (= -14.5)``."""
    if "/" not in text:
        return text
    if not isinstance(values, list):
        return f"{text} (= {_decimal_text(values)})"
    if values and isinstance(values[0], list):
        rows = ["[" + ", ".join(_decimal_text(x) for x in row) + "]" for row in values]
        return f"{text} (= [" + ", ".join(rows) + "])"
    return f"{text} (= [" + ", ".join(_decimal_text(x) for x in values) + "])"


def _dot_text(weights: Sequence[Any], inputs: Sequence[Any]) -> str:
    return " + ".join(f"{_factor_text(w)}·{_factor_text(xi)}" for w, xi in zip(weights, inputs))


def _answer_lines(values: _SolutionValues) -> list[str]:
    outputs = len(values.y)
    answers = {
        "v": (_list_text(values.v), values.v),
        "y_predicted": (
            _number_text(values.y[0]) if outputs == 1 else _list_text(values.y),
            values.y[0] if outputs == 1 else values.y,
        ),
        "C": (_number_text(values.C), values.C),
        "dC_dw11": (_number_text(values.dC_dW1[0][0]), values.dC_dW1[0][0]),
        "dC_dW2": (_matrix_text(values.dC_dW2), values.dC_dW2),
        "W2_updated": (_matrix_text(values.W2_updated), values.W2_updated),
    }
    return [f"  {name} = {_with_decimals(text, raw)}" for name, (text, raw) in answers.items()]


def _forward_lines(values: _SolutionValues, text: _ActivationText) -> list[str]:
    lines = ["Step 1. Pre-activation of the hidden layer: h = W1 x"]
    for index, (row, value) in enumerate(zip(values.W1, values.h), start=1):
        lines.append(f"  h{index} = {_dot_text(row, values.x)} = {_number_text(value)}")
    lines += [
        f"  h = {_list_text(values.h)}",
        "",
        f"Step 2. Output of the hidden layer: v = σ(h), where {text.function}",
        f"  v = {_list_text(values.v)}",
        "",
        "Step 3. Output of the network: y_predicted = W2 v",
    ]
    for index, (row, value) in enumerate(zip(values.W2, values.y), start=1):
        lines.append(f"  y{index} = {_dot_text(row, values.v)} = {_number_text(value)}")
    lines.append(f"  y_predicted = {_list_text(values.y)}")
    return lines


def _loss_lines(values: _SolutionValues) -> list[str]:
    pairs = list(zip(values.y, values.target))
    squares = " + ".join(f"({_number_text(y)} - {_factor_text(t)})²" for y, t in pairs)
    differences = ", ".join(f"2·({_number_text(y)} - {_factor_text(t)})" for y, t in pairs)
    if len(values.dC_dy) == 1:
        dC_dy_text = _number_text(values.dC_dy[0])
    else:
        dC_dy_text = f"[{differences}] = {_list_text(values.dC_dy)}"
        differences = ""
    return [
        "Step 4. Loss: C = ||y_predicted - y_target||²",
        f"  C = {squares} = {_number_text(values.C)}",
        "",
        "Step 5. Gradient of the loss with respect to the output: "
        "dC/dy = 2 (y_predicted - y_target)",
        f"  dC/dy = {differences + ' = ' if differences else ''}{dC_dy_text}",
    ]


def _gradient_lines(values: _SolutionValues, text: _ActivationText) -> list[str]:
    lines = ["Step 6. Gradient for the second layer: dC/dW2 = dC/dy · vᵀ"]
    # Row k of dC/dW2 is dC/dy_k times the row vector vᵀ.
    for index, (gradient, row) in enumerate(zip(values.dC_dy, values.dC_dW2), start=1):
        label = "dC/dW2" if len(values.dC_dy) == 1 else f"row {index} of dC/dW2"
        product = f"{_factor_text(gradient)}·{_matrix_text([values.v])}"
        lines.append(f"  {label} = {product} = {_matrix_text([row])}")
    lines += [
        "",
        "Step 7. Gradient at the pre-activation: dC/dh = W2ᵀ dC/dy ⊙ σ'(h)",
        f"  W2ᵀ dC/dy = {_list_text(values.backpropagated)}",
        f"  σ'(h) = {_list_text(values.activation_grad)}, where {text.derivative}",
    ]
    if text.at_zero:
        lines.append(f"  At 0: {_at_zero_sentences(text)}")
    products = ", ".join(
        f"{_factor_text(b)}·{_factor_text(g)}"
        for b, g in zip(values.backpropagated, values.activation_grad)
    )
    lines += [
        f"  dC/dh = [{products}] = {_list_text(values.dC_dh)}",
        "",
        "Step 8. Gradient for the first-layer weight w11: dC/dw11 = dC/dh1 · x1",
        f"  dC/dw11 = {_factor_text(values.dC_dh[0])}·{_factor_text(values.x[0])} = "
        f"{_number_text(values.dC_dW1[0][0])}",
        "  The whole first-layer gradient is dC/dW1 = dC/dh · xᵀ = "
        f"{_matrix_text(values.dC_dW1)}.",
    ]
    return lines


def _update_lines(values: _SolutionValues, alpha: str) -> list[str]:
    updated = _with_decimals(_matrix_text(values.W2_updated), values.W2_updated)
    return [
        "Step 9. Gradient-descent update: W2_updated = W2 - α dC/dW2",
        f"  W2_updated = {_matrix_text(values.W2)} - {alpha}·{_matrix_text(values.dC_dW2)}"
        f" = {updated}",
    ]


def worked_solution(problem: BackpropProblem) -> str:
    """Write the step-by-step solution of ``problem``: forward pass, loss, gradients, update.

    The numbers are exact fractions when every value is rational: a relu, leaky_relu
    or identity activation with inputs and a learning rate that are fractions with
    denominators up to 10^6. Otherwise they are decimals with 6 significant digits.
    The numbers come from ``compute_answers``, or agree with it when exact.
    """
    text = _activation_text(problem)
    reference = compute_answers(problem)
    inputs = _exact_inputs(problem)
    if inputs is not None:
        values = _exact_values(problem, inputs)
        _check_exact_values(values, reference)
        number_kind = "exact fractions"
    else:
        values = _float_values(problem, reference)
        number_kind = "decimals rounded to 6 significant digits"
    alpha = _exact_text(problem.learning_rate)
    lines = [
        f"Worked solution: {text.title} activation, learning rate α = {alpha} ({number_kind})",
        "",
        *_forward_lines(values, text),
        "",
        *_loss_lines(values),
        "",
        *_gradient_lines(values, text),
        "",
        *_update_lines(values, alpha),
        "",
        "Answers",
        *_answer_lines(values),
    ]
    return "\n".join(lines) + "\n"
