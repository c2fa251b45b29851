"""Result records: one per rubric item, one per submission, and the JSON document
that learning-management integrations read. Field names here are a public
interface, documented in the README; change them only with ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# Submission status codes. "graded" means the notebook was read and run, even if
# some of its cells failed.
GRADED = "graded"
INVALID_NOTEBOOK = "invalid-notebook"
KERNEL_FAILED = "kernel-failed"
GRADER_ERROR = "grader-error"
INVALID_SUBMISSION = "invalid-submission"
MISSING = "missing"


@dataclass
class ItemResult:
    """Points and feedback for one rubric item.

    ``outcome`` is one of correct, follow-through, partial, wrong, missing, error.
    """

    id: str
    title: str
    points: float
    max_points: float
    outcome: str
    message: str
    hint: str = ""


@dataclass
class CellReport:
    """A code cell that did not finish normally."""

    index: int  # position in the notebook, 1-based, counting all cells
    outcome: str  # error, timeout, skipped or dead-kernel
    error_name: str = ""
    error_value: str = ""
    seconds: float = 0.0
    traceback: str = ""  # the last lines of the kernel's traceback, paths shortened


@dataclass
class SubmissionResult:
    """Everything the grader found for one submission."""

    student: str
    source: str
    status: str
    reason: str = ""
    name: str = ""
    total: float = 0.0
    max_total: float = 0.0
    items: list[ItemResult] = field(default_factory=list)
    cells: list[CellReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    expected_layers: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    content_sha256: str = ""
    rubric_sha256: str = ""
    sandbox: str = ""  # bubblewrap or limits-only: how student code was isolated

    def zero_items(self, items: Any, reason: str) -> None:
        """Replace the item results with zero points for every rubric item."""
        self.items = []
        self.total = 0.0
        for item in items:
            self.add_item(ItemResult(item.id, item.title, 0.0, item.points, "error", reason))

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "SubmissionResult":
        """Rebuild a result from its JSON document, as written by ``to_document``."""
        if document.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"schema version {document.get('schema_version')!r} is not {SCHEMA_VERSION}")
        fields = {key: value for key, value in document.items() if key != "schema_version"}
        fields["items"] = [ItemResult(**item) for item in fields.get("items", [])]
        fields["cells"] = [CellReport(**cell) for cell in fields.get("cells", [])]
        return cls(**fields)

    def add_item(self, item: ItemResult) -> None:
        self.items.append(item)
        self.total = round(sum(i.points for i in self.items), 4)

    def to_document(self) -> dict[str, Any]:
        """Return the JSON result document, with the schema version first."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2, allow_nan=False, default=str)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
