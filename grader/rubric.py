"""The rubric: points per item, tolerances, aliases, the 5.1 problem, the training
recipe and time limits, loaded from a TOML file and validated.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .backprop import ACTIVATIONS, BackpropProblem

# Item ids fixed by the grading contract, in gradebook column order.
ITEM_IDS = (
    "5.1.v",
    "5.1.y_predicted",
    "5.1.C",
    "5.1.dC_dw11",
    "5.1.dC_dW2",
    "5.1.W2_updated",
    "5.3.i.conv",
    "5.3.i.pool",
    "5.3.i.fc",
    "5.3.i.output",
    "5.3.ii.accuracy",
    "5.3.iii.params",
    "5.3.iii.shapes",
    "5.3.iii.total",
)

ANSWER_NAMES = ("v", "y_predicted", "C", "dC_dw11", "dC_dW2", "W2_updated")
EXTRA_NAMES = ("ffn_accuracy", "cnn_accuracy", "layer_table", "total_params")
CLASS_NAME = "ConvNet"

DEFAULT_RUBRIC = Path(__file__).resolve().parent.parent / "solutions" / "rubric.toml"


class RubricError(Exception):
    """The rubric file is missing, not valid TOML, or has an invalid value."""


@dataclass(frozen=True)
class Item:
    """One rubric item: its contract id, a title for people, and its maximum points."""

    id: str
    title: str
    points: float


@dataclass(frozen=True)
class Training:
    """The grader's own training recipe for task 5.3 ii."""

    seed: int = 0
    batch_size: int = 64
    steps: int = 250
    optimizer: str = "sgd"
    learning_rate: float = 0.05
    momentum: float = 0.9
    threads: int = 1
    threshold: float = 0.90


@dataclass(frozen=True)
class Limits:
    """Time limits in seconds, and the training sample size the student's cells see."""

    cell_timeout: float = 30.0
    # A cell whose sandbox uses almost no CPU for this long is interrupted. Zero turns it off.
    cell_idle_timeout: float = 5.0
    notebook_timeout: float = 120.0
    check_timeout: float = 120.0
    student_train_images: int = 2000
    memory_mb: int = 4096  # per sandboxed process (RLIMIT_DATA)
    cpu_seconds: int = 600  # per sandboxed process (RLIMIT_CPU)
    max_processes: int = 256  # processes and threads per sandbox
    max_file_mb: int = 256  # size of one file a sandboxed process writes


@dataclass(frozen=True)
class Rubric:
    """A validated rubric, with the path it came from."""

    path: Path
    title: str
    items: tuple[Item, ...]
    problem: BackpropProblem | None  # None in a student self-check kit
    relative_tolerance: float
    absolute_tolerance: float
    follow_through_share: float
    reveal_reference: bool
    aliases: dict[str, tuple[str, ...]]
    training: Training
    limits: Limits
    reference_module: Path | None  # None in a student self-check kit
    digest: str = field(default="")
    selfcheck: dict[str, Any] | None = None  # hashed references of a self-check kit

    @property
    def max_total(self) -> float:
        return sum(item.points for item in self.items)

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def names_for(self, name: str) -> tuple[str, ...]:
        """Return the contract name followed by its accepted aliases."""
        return (name, *self.aliases.get(name, ()))


_KNOWN_KEYS = {
    "": {"title", "reveal_reference", "follow_through_share", "reference_module", "selfcheck",
         "tolerance", "task51", "aliases", "training", "limits", "items"},
    "tolerance": {"relative", "absolute"},
    "task51": {"W1", "W2", "x", "target", "activation", "learning_rate"},
    "training": {"seed", "batch_size", "steps", "optimizer", "learning_rate", "momentum",
                 "threads", "threshold"},
    "limits": {"cell_timeout", "cell_idle_timeout", "notebook_timeout", "check_timeout",
               "student_train_images", "memory_mb", "cpu_seconds", "max_processes", "max_file_mb"},
}


def _check_keys(data: dict) -> None:
    """Reject misspelt keys, which would otherwise fall back to defaults silently."""
    for table, known in _KNOWN_KEYS.items():
        values = data if table == "" else data.get(table, {})
        if not isinstance(values, dict):
            raise RubricError(f"[{table}] must be a table")
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                where = f"[{table}]" if table else "the top level"
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {sorted(known)}"
                raise RubricError(f"unknown key {key!r} in {where}{hint}")
    for item_id, entry in data.get("items", {}).items():
        extra = set(entry) - {"title", "points"} if isinstance(entry, dict) else set()
        if extra:
            raise RubricError(f"unknown key {sorted(extra)[0]!r} in [items.\"{item_id}\"]")


def _whole(table: dict, key: str, default: int, where: str, minimum: float = 0.0) -> int:
    value = _number(table, key, default, where, minimum)
    if not float(value).is_integer():
        raise RubricError(f"{where}.{key} must be a whole number, got {table.get(key)!r}")
    return int(value)


def _number(table: dict, key: str, default: float, where: str, minimum: float = 0.0) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RubricError(f"{where}.{key} must be a number, got {value!r}")
    if value < minimum:
        raise RubricError(f"{where}.{key} must be at least {minimum}, got {value!r}")
    return float(value)


def _load_items(data: dict) -> tuple[Item, ...]:
    table = data.get("items", {})
    unknown = sorted(set(table) - set(ITEM_IDS))
    if unknown:
        raise RubricError(f"unknown item ids {unknown}; valid ids are {list(ITEM_IDS)}")
    items = []
    for item_id in ITEM_IDS:
        entry = table.get(item_id, {})
        points = _number(entry, "points", 0.0, f"items.{item_id}")
        items.append(Item(item_id, str(entry.get("title", item_id)), points))
    return tuple(items)


def _load_problem(data: dict) -> BackpropProblem:
    task = data.get("task51")
    if not isinstance(task, dict):
        raise RubricError("missing [task51] table with W1, W2, x, target, activation, learning_rate")
    missing = [key for key in ("W1", "W2", "x", "target") if key not in task]
    if missing:
        raise RubricError(f"[task51] is missing {missing}")
    activation = task.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise RubricError(f"task51.activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
    try:
        return BackpropProblem.from_lists(
            task["W1"],
            task["W2"],
            task["x"],
            task["target"],
            activation,
            _number(task, "learning_rate", 0.05, "task51"),
        )
    except (ValueError, TypeError) as error:
        raise RubricError(f"[task51] is invalid: {error}") from error


def _load_aliases(data: dict) -> dict[str, tuple[str, ...]]:
    aliases = {}
    for name, values in data.get("aliases", {}).items():
        if not isinstance(values, list) or not all(
            isinstance(v, str) and v.isidentifier() for v in values
        ):
            raise RubricError(f"aliases.{name} must be a list of Python identifiers")
        aliases[name] = tuple(values)
    return aliases


def _load_training(data: dict) -> Training:
    table = data.get("training", {})
    optimizer = table.get("optimizer", "sgd")
    if optimizer not in ("sgd", "adam"):
        raise RubricError(f"training.optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    threshold = _number(table, "threshold", 0.90, "training")
    if threshold > 1:
        raise RubricError(f"training.threshold is a fraction in [0, 1], got {threshold}")
    return Training(
        seed=_whole(table, "seed", 0, "training"),
        batch_size=_whole(table, "batch_size", 64, "training", minimum=1),
        steps=_whole(table, "steps", 250, "training", minimum=1),
        optimizer=optimizer,
        learning_rate=_number(table, "learning_rate", 0.05, "training"),
        momentum=_number(table, "momentum", 0.9, "training"),
        threads=_whole(table, "threads", 1, "training", minimum=1),
        threshold=threshold,
    )


def _load_limits(data: dict) -> Limits:
    table = data.get("limits", {})
    return Limits(
        cell_timeout=_number(table, "cell_timeout", 30, "limits", minimum=1),
        cell_idle_timeout=_idle_timeout(table),
        notebook_timeout=_number(table, "notebook_timeout", 120, "limits", minimum=1),
        check_timeout=_number(table, "check_timeout", 120, "limits", minimum=1),
        student_train_images=_whole(table, "student_train_images", 2000, "limits"),
        memory_mb=_whole(table, "memory_mb", 4096, "limits", minimum=256),
        cpu_seconds=_whole(table, "cpu_seconds", 600, "limits", minimum=1),
        max_processes=_whole(table, "max_processes", 256, "limits", minimum=16),
        max_file_mb=_whole(table, "max_file_mb", 256, "limits", minimum=1),
    )


def _idle_timeout(table: dict) -> float:
    # The idle watch samples CPU time every 0.5 s, so a shorter limit cannot be kept.
    value = _number(table, "cell_idle_timeout", 5, "limits", minimum=-math.inf)
    if value < 0 or 0 < value < 1:
        raise RubricError(f"limits.cell_idle_timeout must be 0 (no idle watch) or at least 1, got {value!r}")
    return value


def load_rubric(path: Path = DEFAULT_RUBRIC) -> Rubric:
    """Load and validate a rubric file; raise RubricError with the reason if it is invalid."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise RubricError(f"cannot read rubric {path}: {error.strerror}") from error
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise RubricError(f"rubric {path} is not valid TOML: {error}") from error

    _check_keys(data)
    tolerance = data.get("tolerance", {})
    share = _number(data, "follow_through_share", 0.5, "rubric")
    if share > 1:
        raise RubricError(f"follow_through_share is a fraction in [0, 1], got {share}")
    if "selfcheck" in data:
        return _load_kit(path, raw, data, share)
    reference = path.parent / str(data.get("reference_module", "reference.py"))
    if not reference.is_file():
        raise RubricError(f"reference module {reference} not found (set reference_module)")
    return Rubric(
        path=path.resolve(),
        title=str(data.get("title", "Exercise 5")),
        items=_load_items(data),
        problem=_load_problem(data),
        relative_tolerance=_number(tolerance, "relative", 1e-3, "tolerance"),
        absolute_tolerance=_number(tolerance, "absolute", 1e-6, "tolerance"),
        follow_through_share=share,
        reveal_reference=bool(data.get("reveal_reference", False)),
        aliases=_load_aliases(data),
        training=_load_training(data),
        limits=_load_limits(data),
        reference_module=reference.resolve(),
        # The digest lets reruns tell whether the rubric changed.
        digest=hashlib.sha256(raw + reference.read_bytes()).hexdigest(),
    )


def _load_kit(path: Path, raw: bytes, data: dict, share: float) -> Rubric:
    """Load a student self-check kit: a rubric without [task51] and a selfcheck.json."""
    selfcheck_path = path.parent / str(data["selfcheck"])
    try:
        selfcheck_raw = selfcheck_path.read_bytes()
        selfcheck = json.loads(selfcheck_raw)
    except (OSError, ValueError) as error:
        raise RubricError(f"cannot read the self-check file {selfcheck_path}: {error}") from error
    for key in ("salt", "answers", "table", "expected_layers"):
        if key not in selfcheck:
            raise RubricError(f"self-check file {selfcheck_path} has no {key!r}; rebuild the kit")
    tolerance = data.get("tolerance", {})
    return Rubric(
        path=path.resolve(),
        title=str(data.get("title", "Exercise 5")),
        items=_load_items(data),
        problem=_load_problem(data) if "task51" in data else None,
        relative_tolerance=_number(tolerance, "relative", 1e-3, "tolerance"),
        absolute_tolerance=_number(tolerance, "absolute", 1e-6, "tolerance"),
        follow_through_share=share,
        reveal_reference=False,
        aliases=_load_aliases(data),
        training=_load_training(data),
        limits=_load_limits(data),
        reference_module=None,
        digest=hashlib.sha256(raw + selfcheck_raw).hexdigest(),
        selfcheck=selfcheck,
    )
