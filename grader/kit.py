"""The student self-check kit: what students need to check a notebook before upload,
without the reference solution or any reference value.

``build_kit`` writes a folder with a ``rubric.toml`` and a ``selfcheck.json``. The
JSON contains salted SHA-256 hashes of the 5.1 answers (rounded to 3 decimals), of the
layer table's parameter counts, output shapes and total, and the reference layers
with their parameter counts removed. The 5.1 inputs (weights, x, target) are left
out, so the kit cannot recompute the answers; in the self-check a 5.1 answer is
right or wrong, without follow-through credit or hints.

The layer checks need the reference layers' settings and output shapes, so those are
in the kit in plain form.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from .backprop import compute_answers
from .rubric import ANSWER_NAMES, Rubric

KIT_VERSION = 1
ROUND_DECIMALS = 3


def canonical_numbers(value: Any) -> str:
    """Write numbers flattened and rounded, so every accepted form of an answer
    (flat, row or column; int, float or tensor) gives the same text."""
    flat = np.round(np.asarray(value, dtype=float).reshape(-1), ROUND_DECIMALS) + 0.0
    return ",".join(f"{x:.{ROUND_DECIMALS}f}" for x in flat)


def salted_hash(salt: str, text: str) -> str:
    return hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()


def table_texts(rows: list[tuple[str, int, list[int]]]) -> dict[str, str]:
    """Return the texts hashed for the table items: parameters, shapes and total."""
    return {
        "params": ",".join(str(params) for _, params, _ in rows),
        "shapes": ";".join("x".join(str(s) for s in shape) for _, _, shape in rows),
        "total": str(sum(params for _, params, _ in rows)),
    }


def _strip_task51(text: str) -> str:
    """Remove the [task51] table and set reveal_reference to false in rubric TOML text."""
    text = re.sub(r"(?ms)^\[task51\].*?(?=^\[)", "", text)
    text = re.sub(r"(?m)^reveal_reference\s*=.*$", "reveal_reference = false", text)
    text = re.sub(r"(?m)^# Python file, relative to this rubric, that defines the reference ConvNet\.$",
                  "# Hashed references for the student self-check, relative to this rubric.", text)
    return re.sub(r"(?m)^reference_module\s*=.*$", 'selfcheck = "selfcheck.json"', text)


def build_kit(rubric: Rubric, expected_layers: list[dict[str, Any]], out_dir: Path) -> Path:
    """Write the self-check kit for ``rubric`` to ``out_dir``; return the kit's rubric path."""
    from .check_model import model_rows

    salt = secrets.token_hex(16)
    answers = compute_answers(rubric.problem)
    hashed = {
        name: {"size": int(np.asarray(answers[name]).size),
               "sha256": salted_hash(salt, canonical_numbers(answers[name]))}
        for name in ANSWER_NAMES
    }
    table = {key: salted_hash(salt, text) for key, text in table_texts(model_rows(expected_layers)).items()}
    layers = [{key: value for key, value in layer.items() if key != "params"} for layer in expected_layers]
    document = {"kit_version": KIT_VERSION, "salt": salt, "answers": hashed, "table": table,
                "expected_layers": layers}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "selfcheck.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    rubric_path = out_dir / "rubric.toml"
    rubric_path.write_text(_strip_task51(rubric.path.read_text(encoding="utf-8")), encoding="utf-8")
    return rubric_path
