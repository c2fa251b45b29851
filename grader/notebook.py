"""Read a submitted notebook file, upgrade old formats, repair what can be repaired,
and reject what cannot be graded with a specific reason.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import nbformat
from nbformat.validator import normalize

log = logging.getLogger(__name__)

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
MAX_OUTPUT_CHARS = 20_000  # per output, in the executed notebook the grader writes


class NotebookProblem(Exception):
    """The file cannot be graded as a notebook; the message is the reason shown to people."""


def read_notebook(path: Path) -> tuple[nbformat.NotebookNode, list[str]]:
    """Read ``path`` as a notebook in format 4; return it with notes on what was repaired."""
    notes: list[str] = []
    size = path.stat().st_size
    if size == 0:
        raise NotebookProblem("the file is empty")
    if size > MAX_NOTEBOOK_BYTES:
        raise NotebookProblem(
            f"the file is {size / 2**20:.1f} MiB, over the limit of {MAX_NOTEBOOK_BYTES // 2**20} MiB"
        )
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        notes.append("The file starts with a UTF-8 byte order mark; it was ignored.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotebookProblem(f"the file is not UTF-8 text (invalid byte at offset {error.start})") from error
    stripped = text.lstrip()
    if stripped[:1] != "{":
        start = stripped[:40].lower()
        if start.startswith(("<!doctype html", "<html")):
            raise NotebookProblem("the file is an HTML page, not a notebook; download the .ipynb file instead")
        raise NotebookProblem("the file is not notebook JSON (it does not start with '{')")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise NotebookProblem(
            f"the notebook JSON is invalid at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    if not isinstance(data, dict):
        raise NotebookProblem("the notebook JSON is not an object")
    major = data.get("nbformat")
    if major not in (3, 4):
        raise NotebookProblem(f"nbformat {major!r} is not supported; save the notebook as format 4")
    if major == 3:
        notes.append("The notebook was in format 3 and was upgraded to format 4.")
    else:
        _check_cell_list(data.get("cells"))
    try:
        notebook = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as error:  # nbformat raises many types for malformed documents
        raise NotebookProblem(f"the notebook structure is invalid: {error}") from error
    fixed = _repair_cells(notebook)
    try:
        changes, repaired = normalize(notebook, version=4, strip_invalid_metadata=True)
    except Exception as error:  # nbformat's validator raises many types on broken documents
        raise NotebookProblem(f"the notebook structure is invalid: {type(error).__name__}: {error}") from error
    if fixed or changes:
        notes.append(f"{fixed + changes} invalid or missing notebook fields were repaired.")
    notebook = nbformat.from_dict(repaired)
    if not any(cell.get("cell_type") == "code" for cell in notebook.cells):
        raise NotebookProblem("the notebook has no code cells")
    return notebook, notes


def _check_cell_list(cells: object) -> None:
    """Reject a cell list that is not a list of objects, and drop stored outputs.

    The grader runs every cell again, so stored outputs only risk invalid data
    that would stop nbformat from reading the notebook.
    """
    if not isinstance(cells, list):
        raise NotebookProblem("the notebook has no list of cells")
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise NotebookProblem(f"cell {number} of the notebook is not a JSON object")
        if "outputs" in cell:
            cell["outputs"] = []


def _repair_cells(notebook: nbformat.NotebookNode) -> int:
    """Add missing cell fields and replace missing, null or duplicate cell ids; return
    how many fields changed. Only the grader's copy changes, never the submission."""
    fixed = 0
    seen: set[str] = set()
    for cell in notebook.cells:
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            # A cell with outputs was a code cell; anything else is kept as raw text.
            cell["cell_type"] = "code" if "outputs" in cell else "raw"
            fixed += 1
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = {}
            fixed += 1
        if cell.get("cell_type") == "code":
            if not isinstance(cell.get("outputs"), list):
                cell["outputs"] = []
                fixed += 1
            cell["execution_count"] = None
        if not isinstance(cell.get("source"), str):
            source = cell.get("source")
            cell["source"] = "".join(source) if isinstance(source, list) else ""
            fixed += 1
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not cell_id or cell_id in seen:
            cell["id"] = uuid.uuid4().hex[:8]
            fixed += 1
        seen.add(cell["id"])
    notebook.setdefault("nbformat_minor", 5)
    if notebook["nbformat_minor"] < 5:
        notebook["nbformat_minor"] = 5
    return fixed


def cap_outputs(notebook: nbformat.NotebookNode) -> int:
    """Shorten long text outputs and drop large images in place; return how many changed."""
    changed = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and len(output.get("text", "")) > MAX_OUTPUT_CHARS:
                output["text"] = output["text"][:MAX_OUTPUT_CHARS] + "\n[output cut by the grader]\n"
                changed += 1
            data = output.get("data", {})
            for mime, value in list(data.items()):
                text = value if isinstance(value, str) else json.dumps(value)
                if len(text) > MAX_OUTPUT_CHARS:
                    data[mime] = "[output cut by the grader]" if mime.startswith("text") else ""
                    if not mime.startswith("text"):
                        del data[mime]
                        data.setdefault("text/plain", "[large output removed by the grader]")
                    changed += 1
    return changed
