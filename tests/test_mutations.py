"""Property: whatever a notebook file holds, the batch finishes and the gradebook has
exactly one row per input file."""

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.batch import BatchSettings, grade_batch
from grader.mnist import BUILTIN_DIR

pytestmark = pytest.mark.slow

BASE = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [{"cell_type": "code", "id": "a1", "metadata": {}, "execution_count": None,
               "outputs": [], "source": "x = 1"}],
}
JUNK = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=8), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
PATHS = [("nbformat",), ("nbformat_minor",), ("metadata",), ("cells",), ("cells", 0),
         ("cells", 0, "cell_type"), ("cells", 0, "source"), ("cells", 0, "id"),
         ("cells", 0, "outputs"), ("metadata", "kernelspec")]


@st.composite
def mutated_files(draw):
    document = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        target = document
        try:
            for key in path[:-1]:
                target = target[key]
            if draw(st.booleans()):
                target[path[-1]] = draw(JUNK)
            else:
                del target[path[-1]]
        except (KeyError, IndexError, TypeError):
            pass
    data = json.dumps(document).encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=6))
    return data


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(mutated_files(), min_size=1, max_size=3))
def test_batch_survives_mutated_notebooks(tmp_path_factory, rubric, files):
    folder = tmp_path_factory.mktemp("mutated")
    for number, data in enumerate(files):
        (folder / f"s{number}.ipynb").write_bytes(data)
    out = tmp_path_factory.mktemp("out")
    results = grade_batch(folder, out, rubric, BatchSettings(BUILTIN_DIR, workers=1))
    assert len(results) == len(files)
    book = pd.read_csv(out / "gradebook.csv")
    assert sorted(book["student"]) == [f"s{number}" for number in range(len(files))]
    assert set(book["status"]) <= {"graded", "invalid-notebook", "kernel-failed"}
    for result in results:
        assert result.status != "grader-error", result.reason
