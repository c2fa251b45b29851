"""Batch behaviour with real kernels: parallel equals sequential, reruns reuse
unchanged results, and a killed batch resumes without losing or duplicating rows."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from conftest import SUBMISSIONS
from grader.batch import BatchSettings, grade_batch
from grader.mnist import BUILTIN_DIR
from notebooks import write_notebook

pytestmark = pytest.mark.slow

SAMPLES = ["eb34tuwo", "is29febo", "ox47ukev"]  # padding=2, forgot the ReLU, correct


@pytest.fixture()
def folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in SAMPLES:
        shutil.copy(SUBMISSIONS / f"{name}.ipynb", folder)
    return folder


def comparable(result):
    document = result.to_document()
    document.pop("timings")
    document["training"].pop("seconds", None)
    document["training"].pop("reused", None)
    return document


def test_parallel_equals_sequential(folder, tmp_path, rubric):
    sequential = grade_batch(folder, tmp_path / "one", rubric, BatchSettings(BUILTIN_DIR, workers=1))
    parallel = grade_batch(folder, tmp_path / "two", rubric, BatchSettings(BUILTIN_DIR, workers=2))
    assert [r.student for r in sequential] == SAMPLES
    assert [comparable(r) for r in parallel] == [comparable(r) for r in sequential]
    phases = {"prepare", "start", "execute", "extract", "check", "train", "grade", "render"}
    for result in [*sequential, *parallel]:
        assert set(result.timings) == phases, result.student
        assert result.timings["start"] > 0
        assert result.timings["execute"] > 0


def test_rerun_reuses_unchanged_results(folder, tmp_path, rubric):
    out = tmp_path / "out"
    first = grade_batch(folder, out, rubric, BatchSettings(BUILTIN_DIR, workers=2))
    # Change one submission: only that one is graded again.
    changed = folder / "is29febo.ipynb"
    changed.write_text(changed.read_text().replace('"v = ', '"v  = ', 1))
    seen = []
    second = grade_batch(folder, out, rubric, BatchSettings(BUILTIN_DIR, workers=2),
                         on_result=lambda done, total, result, reused:
                             seen.append((result.student, reused)))
    assert sorted(seen) == [(student, student != "is29febo") for student in SAMPLES]
    by_student = {r.student: r for r in second}
    for result in first:
        if result.student != "is29febo":
            assert by_student[result.student].timings == result.timings  # reused, not re-run
    before = {r.student: r for r in first}["is29febo"]
    assert by_student["is29febo"].timings != before.timings
    assert by_student["is29febo"].total == before.total


def test_killed_batch_resumes(folder, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out),
               "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = sorted(path.stem for path in (out / "results").glob("*.json"))
    assert 1 <= len(first) < len(SAMPLES)
    stored = {name: (out / "results" / f"{name}.json").read_text() for name in first}

    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    book = pd.read_csv(out / "gradebook.csv")
    assert sorted(book["student"]) == SAMPLES
    for name in first:
        assert (out / "results" / f"{name}.json").read_text() == stored[name]
    assert not list(out.rglob("*.tmp"))
    for name in SAMPLES:
        assert json.loads((out / "results" / f"{name}.json").read_text())["status"] == "graded"


def test_interrupted_batch_stops_cleanly(folder, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--workers", "2"]
    # As from a terminal: the grader leads its process group, which gets SIGINT.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    helpers = [child for child in psutil.Process(process.pid).children(recursive=True)
               if "grader.forkserver" in " ".join(child.cmdline()) or "grader.modelcheck" in " ".join(child.cmdline())]
    assert helpers  # the fork servers and the model check are running
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted; the results written so far are kept" in output
    assert "Traceback" not in output, output
    _, alive = psutil.wait_procs(helpers, timeout=10)
    assert alive == []
    assert list((out / "results").glob("*.json"))


def run_cli(*arguments, **options):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, arguments)],
                          capture_output=True, text=True, timeout=600, **options)


def test_output_folder_that_is_a_file_is_refused(folder, tmp_path):
    out = tmp_path / "out"
    out.write_text("notes")
    completed = run_cli("grade", folder, "--out", out)
    assert completed.returncode == 2
    assert f"output folder {out} is a file, not a folder" in completed.stderr
    assert out.read_text() == "notes"


def test_unwritable_output_folder_is_refused_before_grading(folder, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    out = blocker / "out"
    completed = run_cli("grade", folder, "--out", out)
    assert completed.returncode == 2
    assert f"cannot write to output folder {out}: Not a directory" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "[1/" not in completed.stdout  # refused before any notebook ran
    assert "Grading" not in completed.stdout


def test_empty_folder_is_refused_before_announcing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    completed = run_cli("grade", empty, "--out", tmp_path / "out")
    assert completed.returncode == 2
    assert f"no submissions found in {empty}" in completed.stderr
    assert completed.stdout == ""


def test_closed_standard_output_does_not_stop_the_batch(folder, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()
    process.stdout.close()  # as `grader grade ... | head -1` does
    _, errors = process.communicate(timeout=600)
    assert process.returncode == 0, errors[-2000:]
    assert sorted(pd.read_csv(out / "gradebook.csv")["student"]) == SAMPLES


def test_limits_only_warning_printed_once(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for student in ("ab12cdef", "gh34ijkl"):
        write_notebook(folder / f"{student}.ipynb", ["x = 1"])
    completed = run_cli("grade", folder, "--out", tmp_path / "out", "--workers", "2", "--sandbox", "none")
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = [line for line in completed.stderr.splitlines() if "resource limits only" in line]
    assert lines == ["WARNING grader.pipeline: student code runs with resource limits only: "
                     "bubblewrap was turned off (prefer='none')"]


def test_announcement_counts_only_submitted(tmp_path, rubric):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ab12cdef.ipynb").write_text("{")  # invalid, so no kernel is needed
    roster = tmp_path / "roster.csv"
    roster.write_text("Login,First name,Last name\nab12cdef,Ann,Bee\nrr34efgh,Rick,Roe\n")
    announced = []
    results = grade_batch(folder, tmp_path / "out", rubric,
                          BatchSettings(BUILTIN_DIR, workers=2, roster=roster),
                          on_start=lambda submissions, workers: announced.append(submissions))
    assert announced == [1]
    assert sorted(result.student for result in results) == ["ab12cdef", "rr34efgh"]
