"""The idle watch: a cell that waits without using the CPU is interrupted early, and
one that computes, itself or through a child process, is left alone.

Real kernels from a real fork server, in each sandbox kind that works here, because
the two kinds count the sandbox's CPU time over different process trees.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from grader.execute import Execution, ExecutionConfig, execute_notebook, kernel_env
from grader.kernels import ForkServer
from grader.sandbox import DEFAULT_LIMITS, detect_sandbox

pytestmark = pytest.mark.slow

CELL_TIMEOUT = 60
IDLE_SECONDS = 2

# Code that keeps the CPU busy for longer than the idle limit.
BUSY = "import time\nend = time.monotonic() + 3\nwhile time.monotonic() < end:\n    pass"


@pytest.fixture(scope="module", params=["limits-only", "bubblewrap"])
def server(request: pytest.FixtureRequest) -> Iterator[ForkServer]:
    sandbox = detect_sandbox("none" if request.param == "limits-only" else "auto")
    if sandbox.kind != request.param:
        pytest.skip(f"bubblewrap does not work here: {sandbox.fallback_reason}")
    started = ForkServer(sandbox, DEFAULT_LIMITS, [], kernel_env(Path("/"), 1))
    yield started
    started.shut_down()


def run_cells(server: ForkServer, cells: list[str], idle_seconds: float = IDLE_SECONDS,
              cell_timeout: float = CELL_TIMEOUT) -> Execution:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    workdir = server.new_workdir()
    config = ExecutionConfig(
        cell_timeout=cell_timeout, notebook_timeout=2 * CELL_TIMEOUT, cell_idle_timeout=idle_seconds,
        threads=1, raw_dir=workdir, train_images=0, names={}, class_names=(), batch_size=64,
        sandbox=server.sandbox, limits=DEFAULT_LIMITS, hidden=(),
    )
    try:
        return execute_notebook(notebook, workdir, config, server)
    finally:
        server.remove_workdir(workdir)


def printed(run: Execution, index: int) -> str:
    return "".join(output.get("text", "") for output in run.notebook.cells[index].outputs)


def test_sleeping_cell_is_interrupted_early(server: ForkServer, caplog: pytest.LogCaptureFixture) -> None:
    run = run_cells(server, ["import time\ntime.sleep(600)", "print('next cell ran')"])
    # nbclient would log it as a 60 s timeout. Only the cell's report describes it.
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    (report,) = run.cells
    assert (report.index, report.outcome, report.error_name) == (1, "timeout", "CellIdleError")
    assert f"almost no CPU for {IDLE_SECONDS} s" in report.error_value
    assert IDLE_SECONDS <= report.seconds < CELL_TIMEOUT / 2
    assert printed(run, 1) == "next cell ran\n"
    assert run.failure == ""


def test_waiting_loop_with_wakeups_is_idle(server: ForkServer) -> None:
    # The endless loop of a sample submission: it wakes up and prints every 0.1 s.
    run = run_cells(server, ["import time\nwhile True:\n    print('waiting')\n    time.sleep(0.1)"])
    assert [report.error_name for report in run.cells] == ["CellIdleError"]
    assert run.cells[0].seconds < CELL_TIMEOUT / 2


def test_busy_cell_runs_on(server: ForkServer) -> None:
    run = run_cells(server, [BUSY + "\nprint('done')"])
    assert run.cells == []
    assert printed(run, 0) == "done\n"


def test_cell_waiting_for_busy_child_runs_on(server: ForkServer) -> None:
    child = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BUSY!r}], check=True)\nprint('done')"
    run = run_cells(server, [child])
    assert run.cells == []
    assert printed(run, 0) == "done\n"


@pytest.mark.parametrize("handler", ["print('caught')", "raise RuntimeError('stopped')"])
def test_caught_interrupt_still_reported(server: ForkServer, handler: str) -> None:
    # The kernel dies in cell 2, so a new one replays the cells that succeeded before.
    run = run_cells(server, [f"import time\ntry:\n    time.sleep(600)\nexcept KeyboardInterrupt:\n    {handler}",
                             "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                             "print('after the restart')"])
    assert [(report.index, report.error_name) for report in run.cells] == [
        (1, "CellIdleError"), (2, "DeadKernelError")]
    assert run.restarts == 1
    assert printed(run, 2) == "after the restart\n"


def test_replay_timeout_named_in_failure(server: ForkServer) -> None:
    # Cell 1 ends at once in the first kernel and hangs when a new kernel replays it.
    run = run_cells(server, ["import os, time\nif os.path.exists('ran'):\n    time.sleep(600)\n"
                             "open('ran', 'w').close()",
                             "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                             "print('not reached')"], cell_timeout=3)
    assert run.failure.startswith("cell 2: the kernel was killed (SIGKILL)")
    assert run.failure.endswith("; then the new kernel failed: cell 1 timed out after 3 s when a new "
                                "kernel replayed it, although it had finished in the first kernel")
    assert printed(run, 2) == ""


def test_cell_waiting_for_orphaned_worker_runs_on(server: ForkServer) -> None:
    # A job in a session of its own, whose parent shell has ended, computes the result.
    job = BUSY + "\nopen('result.txt', 'w').write('42')"
    cell = ("import os, subprocess, sys, time\n"
            f"open('job.py', 'w').write({job!r})\n"
            "subprocess.run(f'setsid {sys.executable} job.py > /dev/null 2>&1 &', shell=True)\n"
            "while not os.path.exists('result.txt'):\n"
            "    time.sleep(0.1)\n"
            "print(open('result.txt').read())")
    run = run_cells(server, [cell])
    assert run.cells == []
    assert printed(run, 0) == "42\n"


def test_race_with_cell_end_is_bounded(server: ForkServer) -> None:
    # The watch fires about when each sleep ends. A kernel interrupted after the cell's
    # code ended but before it replied sends no reply at all.
    sleeps = [f"import time\ntime.sleep({IDLE_SECONDS + step / 1000})" for step in range(0, 45, 5)]
    run = run_cells(server, sleeps)
    assert {report.error_name for report in run.cells} <= {"CellIdleError"}
    assert all(report.seconds < IDLE_SECONDS + 5 for report in run.cells)
    assert run.failure == ""


def test_zero_turns_the_watch_off(server: ForkServer) -> None:
    run = run_cells(server, [f"import time\ntime.sleep({IDLE_SECONDS + 2})\nprint('slept')"],
                    idle_seconds=0)
    assert run.cells == []
    assert printed(run, 0) == "slept\n"
