"""The reference model's layers are traced once per user and then read from a cache file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from grader import pipeline
from grader.rubric import load_rubric


@pytest.fixture
def reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    copy = tmp_path / "reference.py"
    shutil.copy(load_rubric().reference_module, copy)
    return copy


def test_first_trace_writes_cache_file(reference: Path, tmp_path: Path) -> None:
    layers = pipeline.reference_layers(reference)
    (cache_file,) = (tmp_path / "cache" / "grader").glob("reference-layers-*.json")
    assert json.loads(cache_file.read_text())["layers"] == layers
    assert [layer["kind"] for layer in layers][:2] == ["conv", "relu"]


def test_later_call_reads_cache_file(reference: Path, tmp_path: Path) -> None:
    pipeline.reference_layers(reference)
    (cache_file,) = (tmp_path / "cache" / "grader").glob("reference-layers-*.json")
    cache_file.write_text(json.dumps({"layers": [{"kind": "from-cache"}]}))
    assert pipeline.reference_layers(reference) == [{"kind": "from-cache"}]


def test_changed_reference_is_traced_again(reference: Path, tmp_path: Path) -> None:
    pipeline.reference_layers(reference)
    reference.write_text(reference.read_text() + "\n# changed\n")
    pipeline.reference_layers(reference)
    assert len(list((tmp_path / "cache" / "grader").glob("reference-layers-*.json"))) == 2
