"""Run a student notebook in a fresh IPython kernel and collect its final state.

Each notebook runs in its own kernel process, started from the grader's own Python
(the notebook's kernelspec is ignored), in a working folder that holds only a copy
of the notebook and the MNIST data. Cells run in order; an error does not stop
later cells, an over-long cell is interrupted, and the whole notebook has a time
budget. After the last cell the grader's probe copies the graded names to JSON and
exports the model class, and the kernel is shut down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .results import CellReport

log = logging.getLogger(__name__)

PROBE_SOURCE = (Path(__file__).parent / "probe.py").read_text(encoding="utf-8")
# Seconds a kernel may take to start, and to answer after an interrupted cell.
STARTUP_TIMEOUT = 60
INTERRUPT_GRACE = 10
PROBE_TIMEOUT = 120


class _GraderKernelSpecs(KernelSpecManager):
    """Hand out one kernelspec: ipykernel on the grader's own interpreter.

    Notebooks name all sorts of kernels (conda envs, VS Code, Colab); grading always
    runs the interpreter that has the grader's torch installed.
    """

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (grader)",
            language="python",
            resource_dir="",
        )


@dataclass(frozen=True)
class ExecutionConfig:
    """What the kernel needs: limits, threads, the MNIST copy and the names to read."""

    cell_timeout: float
    notebook_timeout: float
    threads: int
    raw_dir: Path
    train_images: int
    names: dict[str, tuple[str, ...]]
    class_names: tuple[str, ...]
    batch_size: int


@dataclass
class Execution:
    """The outcome of running one notebook."""

    notebook: nbformat.NotebookNode
    cells: list[CellReport] = field(default_factory=list)
    state: dict[str, Any] | None = None  # the probe's JSON report
    archive: Path | None = None  # the exported model, when there is one
    failure: str = ""  # why the kernel could not run the notebook to its end
    seconds: float = 0.0


def _kernel_env(workdir: Path, threads: int) -> dict[str, str]:
    # A short, explicit environment: the grader's own variables stay out of the kernel.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "CUDA_VISIBLE_DEVICES": "",
        "TORCH_HOME": str(workdir / ".torch"),
        "XDG_CACHE_HOME": str(workdir / ".cache"),
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


class _CellRecorder:
    """Record each cell's execute_reply status; outputs are never used to decide."""

    def __init__(self) -> None:
        self.replies: dict[int, dict[str, Any]] = {}

    def __call__(self, cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        self.replies[cell_index] = (execute_reply or {}).get("content", {})


async def _run_hidden(client: NotebookClient, code: str, timeout: float) -> dict[str, Any]:
    """Run grader code in the kernel without touching the execution count or history."""
    reply = await client.kc.execute_interactive(
        code,
        silent=True,
        store_history=False,
        allow_stdin=False,
        timeout=timeout,
        output_hook=lambda message: None,
    )
    return reply["content"]


def _probe_call(function: str, config: dict[str, Any]) -> str:
    """Build the code that loads the probe module in the kernel and calls ``function``."""
    return (
        "def _grader_probe():\n"
        "    import json\n"
        "    namespace = {'__name__': '_grader_probe'}\n"
        f"    exec(compile({PROBE_SOURCE!r}, '<grader-probe>', 'exec'), namespace)\n"
        f"    namespace[{function!r}](json.loads({json.dumps(config)!r}))\n"
        "_grader_probe()\n"
        "del _grader_probe\n"
    )


async def _wait_until_idle(client: NotebookClient, timeout: float) -> bool:
    """Return whether the kernel answers a kernel_info request within ``timeout``."""
    try:
        await asyncio.wait_for(client.kc.kernel_info(reply=True, timeout=timeout), timeout + 1)
        return True
    except (asyncio.TimeoutError, TimeoutError, RuntimeError):
        return False


async def _run_cells(
    client: NotebookClient, recorder: _CellRecorder, config: ExecutionConfig, run: Execution
) -> bool:
    """Run every code cell; return False when the kernel died or stopped answering."""
    started = time.monotonic()
    cells = run.notebook.cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        remaining = config.notebook_timeout - (time.monotonic() - started)
        if remaining <= 0:
            run.cells.append(CellReport(index + 1, "skipped", "", "notebook time budget used up"))
            continue
        limit = max(1.0, min(config.cell_timeout, remaining))
        client.timeout = int(limit) if limit >= 1 else 1
        client.error_on_timeout = {
            "ename": "CellTimeoutError",
            "evalue": f"cell ran longer than {client.timeout} s and was interrupted",
        }
        cell_started = time.monotonic()
        try:
            await client.async_execute_cell(cell, index)
        except DeadKernelError:
            run.cells.append(
                CellReport(index + 1, "dead-kernel", "DeadKernelError", "the kernel died",
                           round(time.monotonic() - cell_started, 3))
            )
            run.failure = f"the kernel died while running cell {index + 1}"
            return False
        seconds = round(time.monotonic() - cell_started, 3)
        reply = recorder.replies.get(index, {})
        if reply.get("status") == "ok":
            continue
        name = str(reply.get("ename", "Error"))
        outcome = "timeout" if name == "CellTimeoutError" else "error"
        run.cells.append(
            CellReport(index + 1, outcome, name, str(reply.get("evalue", ""))[:500], seconds)
        )
        if outcome == "timeout" and not await _wait_until_idle(client, INTERRUPT_GRACE):
            # TODO: restart the kernel and replay the cells that succeeded, so the
            # answers defined before a cell that ignores interrupts are still graded.
            run.failure = f"cell {index + 1} ignored the interrupt after its timeout"
            return False
    return True


async def _execute(notebook: nbformat.NotebookNode, workdir: Path, config: ExecutionConfig) -> Execution:
    run = Execution(notebook=notebook)
    recorder = _CellRecorder()
    # IPC sockets in the working folder: the kernel opens no network port.
    manager = AsyncKernelManager(
        kernel_name="python3",
        kernel_spec_manager=_GraderKernelSpecs(),
        transport="ipc",
        ip=str(workdir / ".kernel"),
    )
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=int(config.cell_timeout),
        startup_timeout=STARTUP_TIMEOUT,
        interrupt_on_timeout=True,
        allow_errors=True,
        record_timing=True,
        on_cell_executed=recorder,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(workdir)}},
    )
    archive = workdir / ".grader-model.pt2"
    state_file = workdir / ".grader-state.json"
    try:
        async with client.async_setup_kernel(env=_kernel_env(workdir, config.threads), cleanup_kc=True):
            setup = {
                "raw_dir": str(config.raw_dir),
                "train_images": config.train_images,
                "threads": config.threads,
            }
            await _run_hidden(client, _probe_call("setup", setup), STARTUP_TIMEOUT)
            if await _run_cells(client, recorder, config, run):
                probe = {
                    "names": {name: list(names) for name, names in config.names.items()},
                    "class_names": list(config.class_names),
                    "archive": str(archive),
                    "output": str(state_file),
                    "batch_size": config.batch_size,
                }
                reply = await _run_hidden(client, _probe_call("extract", probe), PROBE_TIMEOUT)
                if reply.get("status") != "ok":
                    run.failure = f"reading the notebook's state failed: {reply.get('evalue', '')}"
    except (RuntimeError, TimeoutError, asyncio.TimeoutError) as error:
        log.error("kernel for %s failed: %s", workdir, error)
        run.failure = run.failure or f"the kernel failed: {error}"
    finally:
        if await manager.is_alive():
            await manager.shutdown_kernel(now=True)
    if state_file.is_file():
        run.state = json.loads(state_file.read_text(encoding="utf-8"))
        if archive.is_file():
            run.archive = archive
    return run


def execute_notebook(
    notebook: nbformat.NotebookNode, workdir: Path, config: ExecutionConfig
) -> Execution:
    """Run ``notebook`` in a new kernel with ``workdir`` as its working folder."""
    started = time.monotonic()
    run = asyncio.run(_execute(notebook, workdir, config))
    run.seconds = round(time.monotonic() - started, 3)
    return run
