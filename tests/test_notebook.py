"""Reading submitted files: what is repaired and what is rejected with which reason."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.notebook import NotebookProblem, cap_outputs, read_notebook


def write(tmp_path, content, name="s.ipynb"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def good_notebook() -> str:
    return nbformat.writes(new_notebook(cells=[new_code_cell("x = 1")]))


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty"),
    ('{"cells": [', "the notebook JSON is invalid at line 1"),
    ("<!DOCTYPE html><html><body>notebook</body></html>", "the file is an HTML page"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    (b"\xff\xfe{}", "not UTF-8"),
    ('{"nbformat": 2, "cells": []}', "nbformat 2 is not supported"),
    ('{"cells": []}', "nbformat None is not supported"),
    ("[1, 2]", "not notebook JSON"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}),
     "no code cells"),
])
def test_rejected_files(tmp_path, content, reason):
    with pytest.raises(NotebookProblem, match=reason):
        read_notebook(write(tmp_path, content))


def test_byte_order_mark_is_ignored(tmp_path):
    notebook, notes = read_notebook(write(tmp_path, b"\xef\xbb\xbf" + good_notebook().encode()))
    assert notebook.cells[0].source == "x = 1"
    assert any("byte order mark" in note for note in notes)


def test_missing_cell_ids_are_repaired(tmp_path):
    data = json.loads(good_notebook())
    del data["cells"][0]["id"]
    del data["cells"][0]["outputs"]
    notebook, notes = read_notebook(write(tmp_path, json.dumps(data)))
    assert notebook.cells[0].source == "x = 1"
    nbformat.validate(notebook)


def test_format_three_is_upgraded(tmp_path):
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {},
          "worksheets": [{"cells": [{"cell_type": "code", "input": "x = 1", "language": "python",
                                     "outputs": [], "metadata": {}}]}]}
    notebook, notes = read_notebook(write(tmp_path, json.dumps(v3)))
    assert notebook.nbformat == 4
    assert notebook.cells[0].source == "x = 1"
    assert any("format 3" in note for note in notes)


def test_cap_outputs_shortens_long_streams():
    notebook = new_notebook(cells=[new_code_cell("print")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 50_000)]
    assert cap_outputs(notebook) == 1
    assert len(notebook.cells[0].outputs[0].text) < 21_000
    assert notebook.cells[0].outputs[0].text.endswith("[output cut by the grader]\n")


def test_cell_without_type_is_repaired(tmp_path):
    data = json.loads(good_notebook())
    del data["cells"][0]["cell_type"]
    notebook, notes = read_notebook(write(tmp_path, json.dumps(data)))
    assert notebook.cells[0].cell_type == "code"
    assert notes == ["1 invalid or missing notebook fields were repaired."]


@pytest.mark.parametrize("cells, reason", [
    ({"a": 1}, "no list of cells"),
    ([1, 2], "not a JSON object"),
])
def test_broken_cell_lists_rejected(tmp_path, cells, reason):
    data = json.loads(good_notebook())
    data["cells"] = cells
    with pytest.raises(NotebookProblem, match=reason):
        read_notebook(write(tmp_path, json.dumps(data)))


def test_duplicate_and_null_ids_replaced(tmp_path):
    data = json.loads(nbformat.writes(new_notebook(cells=[new_code_cell("a = 1"), new_code_cell("b = 2"),
                                                          new_code_cell("c = 3")])))
    data["cells"][1]["id"] = data["cells"][0]["id"]
    data["cells"][2]["id"] = None
    notebook, _ = read_notebook(write(tmp_path, json.dumps(data)))
    ids = [cell.id for cell in notebook.cells]
    assert len(set(ids)) == 3
    assert all(isinstance(cell_id, str) and cell_id for cell_id in ids)


def test_foreign_metadata_and_unknown_keys_accepted(tmp_path):
    data = json.loads(good_notebook())
    data["metadata"] = {
        "kernelspec": {"name": "ir", "display_name": "R", "language": "R"},
        "colab": {"provenance": []},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
        "vscode": {"interpreter": {"hash": "abc"}},
    }
    data["cells"][0]["metadata"] = {"collapsed": False, "id": "colab-cell", "outputId": "x"}
    data["unknown_top_level"] = 1
    notebook, _ = read_notebook(write(tmp_path, json.dumps(data)))
    assert notebook.cells[0].source == "x = 1"


def test_oversized_file_rejected(tmp_path, monkeypatch):
    import grader.notebook

    monkeypatch.setattr(grader.notebook, "MAX_NOTEBOOK_BYTES", 1000)
    with pytest.raises(NotebookProblem, match="over the limit"):
        read_notebook(write(tmp_path, good_notebook() + " " * 2000))


def test_invalid_stored_outputs_dropped(tmp_path):
    data = json.loads(good_notebook())
    data["cells"][0]["outputs"] = [0, {"output_type": "nonsense"}]
    notebook, _ = read_notebook(write(tmp_path, json.dumps(data)))
    assert notebook.cells[0].outputs == []
