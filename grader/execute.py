"""Run a student notebook in a fresh IPython kernel and collect its final state.

Each notebook runs in its own kernel process, forked from the worker's warm fork
server (``grader/kernels.py``; the notebook's kernelspec is ignored), in a working
folder that holds only a copy of the notebook and the MNIST data. Cells run in order; an error does not stop
later cells, an over-long cell is interrupted, and the whole notebook has a time
budget. After the last cell the grader's probe copies the graded names to JSON and
exports the model class, and the kernel is shut down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .results import CellReport
from .kernels import ForkServer, ForkServerKernelManager
from .sandbox import ProcessWatchdog, Sandbox, SandboxLimits

log = logging.getLogger(__name__)


def _not_cell_stop(record: logging.LogRecord) -> bool:
    # nbclient logs each stopped cell as an error with the cell timeout, even where the
    # idle watch stopped it. The cell's report describes the stop instead.
    return not record.getMessage().startswith(("Timeout waiting for execute reply", "Interrupting kernel"))


_NBCLIENT_LOG = logging.getLogger(f"{__name__}.nbclient")
_NBCLIENT_LOG.addFilter(_not_cell_stop)

PROBE_SOURCE = (Path(__file__).parent / "probe.py").read_text(encoding="utf-8")
# Seconds a kernel may take to start, and to reply after an interrupted cell.
STARTUP_TIMEOUT = 60
INTERRUPT_GRACE = 10
PROBE_TIMEOUT = 120
# Kernels started for one notebook after the first died or hung.
MAX_RESTARTS = 2
# Files the probe writes in the working folder.
ARCHIVE_NAME = ".grader-model.pt2"
STATE_NAME = ".grader-state.json"
# How often the idle watch samples the sandbox's CPU time, and the CPU seconds that
# a waiting cell may use per idle period. A sleeping loop's wake-ups and the
# kernel's own threads use a few milliseconds a second.
IDLE_POLL_SECONDS = 0.5
IDLE_CPU_ALLOWANCE = 0.05
# Maximum bytes the grader reads of the probe's state and of a kernel's log.
MAX_STATE_BYTES = 64 * 2**20
MAX_LOG_BYTES = 16 * 2**20


@dataclass(frozen=True)
class ExecutionConfig:
    """Kernel settings: limits, threads, sandbox, the MNIST copy and the names to read."""

    cell_timeout: float
    notebook_timeout: float
    cell_idle_timeout: float  # zero turns the idle watch off
    threads: int
    raw_dir: Path
    train_images: int
    names: dict[str, tuple[str, ...]]
    class_names: tuple[str, ...]
    batch_size: int
    sandbox: Sandbox
    limits: SandboxLimits
    hidden: tuple[Path, ...]  # folders the sandbox shows empty: solutions, submissions, outputs


@dataclass
class Execution:
    """The outcome of running one notebook."""

    notebook: nbformat.NotebookNode
    cells: list[CellReport] = field(default_factory=list)
    state: dict[str, Any] | None = None  # the probe's JSON report
    archive: bytes | None = None  # the exported model, when there is one
    failure: str = ""  # why the kernel could not run the notebook to its end
    restarts: int = 0  # kernels started after the first one died or hung
    seconds: float = 0.0
    # Wall seconds of "start" (kernels up and set up) and "extract" (reading the state
    # and exporting the model). The rest of ``seconds`` is "execute", the cells.
    timings: dict[str, float] = field(default_factory=dict)

    def add_time(self, phase: str, started: float) -> None:
        self.timings[phase] = round(self.timings.get(phase, 0.0) + time.monotonic() - started, 3)


def kernel_env(workdir: Path, threads: int) -> dict[str, str]:
    """Return a kernel's environment: short and explicit, so the grader's own variables
    stay out of the kernel."""
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
    """Return whether the kernel replies to a kernel_info request within ``timeout``."""
    try:
        await asyncio.wait_for(client.kc.kernel_info(reply=True, timeout=timeout), timeout + 1)
        return True
    except (asyncio.TimeoutError, TimeoutError, RuntimeError):
        return False


def _death_cause(manager: AsyncKernelManager) -> str:
    """Describe why the kernel process ended, from its exit status."""
    process = getattr(manager.provisioner, "process", None)
    code = process.poll() if process is not None else None
    if code is None:
        return "the kernel died"
    if code == -signal.SIGKILL:
        return "the kernel was killed (SIGKILL), most likely for using too much memory"
    if code == -signal.SIGSEGV:
        return "the kernel crashed with a segmentation fault"
    if code < 0:
        return f"the kernel was stopped by signal {signal.Signals(-code).name}"
    return (f"the kernel exited with status {code}; os._exit(), exit() and quit() "
            "end the kernel, so remove them from the notebook")


class _Stop(Exception):
    """The kernel died or ignored an interrupt at ``index``; it has to be replaced."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


@dataclass
class _Progress:
    """Progress of a notebook run across kernel restarts."""

    started: float
    next_index: int = 0
    succeeded: list[int] = field(default_factory=list)
    restarts: int = 0

    def remaining(self, budget: float) -> float:
        return budget - (time.monotonic() - self.started)


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The file and line that a SyntaxError's message names, "(3797901694.py, line 1)".
# The file is ipykernel's name for the cell, which means nothing to a student.
_CELL_FILE = re.compile(r"\(\d+\.py, line (\d+)\)")
TRACEBACK_LINES = 8


def short_traceback(cell: Any, workdir: Path) -> str:
    """Return the last lines of a failed cell's traceback, for feedback pages.

    Colour codes are removed, and the grader's working folder and Python
    installation are replaced by short names, so no grader path is shown.
    """
    for output in cell.get("outputs", []):
        if output.get("output_type") != "error":
            continue
        text = _ANSI_ESCAPE.sub("", "\n".join(output.get("traceback", [])))
        for path, name in ((str(workdir), "."), (sys.prefix, "<python>"),
                           (str(Path(__file__).resolve().parent.parent), "<grader>")):
            text = text.replace(path, name)
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-TRACEBACK_LINES:])[-2000:]
    return ""


class _IdleWatch:
    """Interrupt the running cell once its sandbox has used almost no CPU for ``seconds``.

    Such a cell waits for something that never comes in a grading run: the end of
    a long sleep, a lock, input or a process that does not end. Without the watch
    it would hold its worker until the cell timeout. CPU time counts every process
    of the sandbox, so a cell waiting for a busy child process is not idle.
    """

    def __init__(self, server: ForkServer, client: NotebookClient, seconds: float) -> None:
        self.server = server
        self.client = client
        self.seconds = seconds

    async def run(self) -> None:
        since = time.monotonic()
        baseline = self.server.cpu_seconds()
        while baseline is not None:
            await asyncio.sleep(IDLE_POLL_SECONDS)
            used = self.server.cpu_seconds()
            now = time.monotonic()
            if used is None:
                return
            # A drop means a process ended before its parent reaped it; count it as work.
            if used > baseline + IDLE_CPU_ALLOWANCE or used < baseline:
                since, baseline = now, used
            elif now - since >= self.seconds:
                self._stop_cell()
                return

    def _stop_cell(self) -> None:
        """Stop the cell through nbclient's own timeout path, which interrupts the kernel
        and records ``error_on_timeout`` without waiting for the cell's reply. A kernel
        interrupted just after the cell's code ended may send no reply at all."""
        self.client.error_on_timeout = {"ename": "CellIdleError", "evalue": _idle_message(self.seconds)}
        self.client.kc.shell_channel.expire()


async def _execute_watched(client: NotebookClient, server: ForkServer, cell: Any, index: int,
                           idle_seconds: float) -> None:
    """Execute one cell, under an idle watch unless ``idle_seconds`` is zero."""
    if idle_seconds <= 0:
        await client.async_execute_cell(cell, index)
        return
    task = asyncio.create_task(_IdleWatch(server, client, idle_seconds).run())
    try:
        await client.async_execute_cell(cell, index)
    finally:
        # The watch ends before the next cell starts, so it can never stop that one.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        client.kc.shell_channel.renew()


def _idle_message(seconds: float) -> str:
    return (f"the cell used almost no CPU for {seconds:g} s, so it was interrupted: it was waiting "
            "for something that does not come during grading (the end of a sleep, a lock, input "
            "or a process that does not end). Remove the wait, or give the loop an end")


def _set_cell_limit(client: NotebookClient, seconds: float) -> None:
    client.timeout = max(1, int(seconds))
    client.error_on_timeout = {
        "ename": "CellTimeoutError",
        "evalue": f"the cell ran longer than {client.timeout} s and was interrupted",
    }


async def _run_cells(
    client: NotebookClient, manager: AsyncKernelManager, recorder: _CellRecorder,
    config: ExecutionConfig, run: Execution, progress: _Progress, server: ForkServer,
) -> None:
    """Run the code cells from ``progress.next_index`` on; raise _Stop when the kernel
    died or ignored the interrupt after a timeout."""
    cells = run.notebook.cells
    for index in range(progress.next_index, len(cells)):
        cell = cells[index]
        progress.next_index = index + 1
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        remaining = progress.remaining(config.notebook_timeout)
        if remaining < 1:
            run.cells.append(CellReport(index + 1, "skipped", "BudgetExceeded",
                                        f"the notebook's {config.notebook_timeout:g} s budget was used up"))
            continue
        _set_cell_limit(client, min(config.cell_timeout, remaining))
        cell_started = time.monotonic()
        try:
            await _execute_watched(client, server, cell, index, config.cell_idle_timeout)
        except DeadKernelError:
            run.cells.append(CellReport(index + 1, "dead-kernel", "DeadKernelError",
                                        _death_cause(manager), round(time.monotonic() - cell_started, 3)))
            raise _Stop(index) from None
        seconds = round(time.monotonic() - cell_started, 3)
        reply = recorder.replies.get(index, {})
        if reply.get("status") == "ok":
            progress.succeeded.append(index)
            continue
        name = str(reply.get("ename", "Error"))
        value = _CELL_FILE.sub(r"(line \1)", str(reply.get("evalue", "")))[:500]
        outcome = "timeout" if name in ("CellTimeoutError", "CellIdleError") else "error"
        traceback = short_traceback(cell, Path(client.resources["metadata"]["path"]))
        if outcome == "timeout" and not await _wait_until_idle(client, INTERRUPT_GRACE):
            value += "; it ignored the interrupt, so the kernel was stopped"
            run.cells.append(CellReport(index + 1, outcome, name, value, seconds, traceback))
            raise _Stop(index)
        run.cells.append(CellReport(index + 1, outcome, name, value, seconds, traceback))


async def _replay(client: NotebookClient, run: Execution, progress: _Progress,
                  config: ExecutionConfig) -> None:
    """Re-run, without recording outputs, the cells that succeeded before a restart."""
    for index in progress.succeeded:
        remaining = progress.remaining(config.notebook_timeout)
        if remaining < 1:
            raise TimeoutError("the notebook's time budget ran out while replaying cells")
        limit = min(config.cell_timeout, remaining)
        try:
            await _run_hidden(client, run.notebook.cells[index].source, limit)
        except (TimeoutError, asyncio.TimeoutError):
            raise TimeoutError(f"cell {index + 1} timed out after {limit:g} s when a new kernel "
                               "replayed it, although it had finished in the first kernel") from None


def _new_client(notebook: nbformat.NotebookNode, workdir: Path, config: ExecutionConfig,
                recorder: _CellRecorder, server: ForkServer) -> tuple[AsyncKernelManager, NotebookClient]:
    # IPC sockets and the connection file in the working folder, the one folder the
    # sandboxed kernel can see; the kernel opens no network port.
    manager = ForkServerKernelManager(
        server,
        transport="ipc",
        ip=str(workdir / ".kernel"),
        connection_file=str(workdir / ".kernel.json"),
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
        log=_NBCLIENT_LOG,
    )
    return manager, client


async def _extract(client: NotebookClient, config: ExecutionConfig, run: Execution,
                   archive: Path, state_file: Path) -> None:
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


async def _session(run: Execution, workdir: Path, config: ExecutionConfig, progress: _Progress,
                   server: ForkServer) -> bool:
    """Run one kernel: set it up, replay earlier cells, run the rest and extract.

    Returns True when the notebook ran to its end, False when the kernel must be replaced.
    """
    recorder = _CellRecorder()
    manager, client = _new_client(run.notebook, workdir, config, recorder, server)
    watchdog: ProcessWatchdog | None = None
    started = time.monotonic()
    try:
        async with client.async_setup_kernel(env=kernel_env(workdir, config.threads), cleanup_kc=True):
            if not config.sandbox.process_limit_enforced and server.pid is not None:
                # RLIMIT_NPROC does not apply to root, so a watchdog counts processes instead.
                watchdog = ProcessWatchdog(server.pid, config.limits.max_processes + server.idle_tasks).start()
            try:
                return await _run_session(client, manager, recorder, run, config, progress, started, server)
            finally:
                # Before nbclient shuts the kernel down: whatever it started dies with it.
                server.reset(keep=workdir)
    finally:
        if watchdog is not None:
            watchdog.stop()
            if watchdog.exceeded:
                message = (f"the notebook started more than {config.limits.max_processes} "
                           "processes and threads, so its kernel was stopped")
                run.failure = message
                if run.cells and run.cells[-1].outcome == "dead-kernel":
                    run.cells[-1].error_value = message
        if manager.has_kernel and await manager.is_alive():
            await manager.shutdown_kernel(now=True)
        if run.cells and run.cells[-1].outcome == "dead-kernel":
            _log_kernel_output(workdir)


def _log_kernel_output(workdir: Path) -> None:
    try:
        text = read_sandbox_file(workdir / ".grader-kernel.log", MAX_LOG_BYTES)[-4096:].decode("utf-8", "replace")
    except OSError:
        return
    tail = text.strip().splitlines()[-5:]
    log.info("kernel output before it died in %s: %s", workdir, " | ".join(tail))


async def _run_session(client: NotebookClient, manager: AsyncKernelManager, recorder: _CellRecorder,
                       run: Execution, config: ExecutionConfig, progress: _Progress,
                       started: float, server: ForkServer) -> bool:
    setup = {"raw_dir": str(config.raw_dir), "train_images": config.train_images,
             "threads": config.threads}
    await _run_hidden(client, _probe_call("setup", setup), STARTUP_TIMEOUT)
    run.add_time("start", started)
    await _replay(client, run, progress, config)
    try:
        await _run_cells(client, manager, recorder, config, run, progress, server)
    except _Stop as stop:
        run.failure = f"cell {stop.index + 1}: {run.cells[-1].error_value}"
        return False
    workdir = Path(client.resources["metadata"]["path"])
    started = time.monotonic()
    await _extract(client, config, run, workdir / ARCHIVE_NAME, workdir / STATE_NAME)
    run.add_time("extract", started)
    return True


async def _execute(notebook: nbformat.NotebookNode, workdir: Path, config: ExecutionConfig,
                   server: ForkServer) -> Execution:
    run = Execution(notebook=notebook)
    archive = workdir / ARCHIVE_NAME
    state_file = workdir / STATE_NAME
    progress = _Progress(started=time.monotonic())
    while True:
        try:
            if await _session(run, workdir, config, progress, server):
                break
        except (RuntimeError, TimeoutError, asyncio.TimeoutError) as error:
            log.error("kernel for %s failed: %s", workdir, error)
            # A failure set before is what made the grader start this kernel.
            run.failure = (f"{run.failure}; then the new kernel failed: {error}" if run.failure
                           else f"the kernel failed: {error}")
            break
        # A new kernel replays the cells that succeeded, so the answers and the class
        # defined before the failing cell are still graded.
        progress.restarts += 1
        if progress.restarts > MAX_RESTARTS:
            run.failure += f"; gave up after {MAX_RESTARTS} kernel restarts"
            break
        log.info("restarting the kernel for %s after cell %d", workdir, progress.next_index)
    run.restarts = min(progress.restarts, MAX_RESTARTS)
    _read_outputs(run, state_file, archive, config.limits.max_file_bytes)
    return run


def _read_outputs(run: Execution, state_file: Path, archive: Path, max_bytes: int) -> None:
    """Read the probe's state and model archive, which the notebook could have replaced."""
    try:
        state = json.loads(read_sandbox_file(state_file, MAX_STATE_BYTES))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as error:
        run.failure = run.failure or f"the notebook's state could not be read: {error}"
        return
    if not isinstance(state, dict):
        run.failure = run.failure or "the notebook's state could not be read: it is not a JSON object"
        return
    run.state = state
    try:
        run.archive = read_sandbox_file(archive, max_bytes)
    except FileNotFoundError:
        pass
    except OSError as error:
        state["model_error"] = f"the exported model could not be read: {error}"


def read_sandbox_file(path: Path, max_bytes: int) -> bytes:
    """Read a file that sandboxed code wrote, refusing anything but a regular file of at
    most ``max_bytes``: a symbolic link there would make the grader read a host file."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise OSError(f"{path.name} is not a regular file")
        if status.st_size > max_bytes:
            raise OSError(f"{path.name} has {status.st_size} bytes, more than {max_bytes}")
        return stream.read(max_bytes + 1)[:max_bytes]


def execute_notebook(
    notebook: nbformat.NotebookNode, workdir: Path, config: ExecutionConfig, server: ForkServer
) -> Execution:
    """Run ``notebook`` in a new kernel forked by ``server``, in ``workdir``, which must
    come from ``server.new_workdir()``."""
    started = time.monotonic()
    interrupt_action = signal.getsignal(signal.SIGINT)
    try:
        run = asyncio.run(_execute(notebook, workdir, config, server))
    finally:
        # nbclient leaves Python's default SIGINT handler behind, even where SIGINT
        # was ignored, as in batch workers, which Ctrl-C must not interrupt.
        if threading.current_thread() is threading.main_thread() and interrupt_action is not None:
            signal.signal(signal.SIGINT, interrupt_action)
    run.seconds = round(time.monotonic() - started, 3)
    return run
