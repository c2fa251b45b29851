"""Run a command while sampling the resident memory (RSS) of its process tree.

``run_measured`` starts a command and logs its output with timestamps. While the
command runs, psutil samples the RSS of the command and all its descendants every
0.2 s. The result is the wall time and the peak RSS per process and per role
(kernel, worker, ...).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SAMPLE_INTERVAL_SECONDS = 0.2
MIB = 1024 * 1024


class WayFailed(Exception):
    """Failure to set up or run a way, which leaves the way without a valid measurement."""


def classify_process(cmdline: list[str], is_root: bool, name: str = "") -> str:
    """Name the role of a process in a grading run from its command line and name.

    Roles: ``main`` (the launched command), ``kernel``, ``fork-server`` (the
    grader's kernel fork server; the kernels it forks keep its command line but
    are named ``grader-kernel``), ``worker`` (a multiprocessing worker),
    ``model-check`` (the grader's model check),
    ``sandbox`` (bubblewrap), ``launcher`` (the grader's resource-limit launcher
    before it executes its command), ``helper`` (the multiprocessing resource
    tracker) and ``other``.
    """
    if is_root:
        return "main"
    if not cmdline:
        return "other"
    if Path(cmdline[0]).name == "bwrap":
        return "sandbox"
    # Only the program's own module or script counts, because a launcher's command
    # line also contains the command that it will execute.
    arguments = iter(cmdline[1:])
    for argument in arguments:
        if argument == "-m":
            module = next(arguments, "")
            if module == "ipykernel_launcher":
                return "kernel"
            if module == "grader.modelcheck":
                return "model-check"
            if module == "grader.forkserver":
                return "kernel" if name == "grader-kernel" else "fork-server"
            return "other"
        if argument == "-c":
            code = next(arguments, "")
            if "spawn_main" in code:
                return "worker"
            if "resource_tracker" in code:
                return "helper"
            return "other"
        if argument.startswith("-"):
            continue  # interpreter options such as -I or -u
        if Path(argument).name == "limits.py":
            return "launcher"
        return "other"
    return "other"


@dataclass
class ProcessPeak:
    pid: int
    role: str
    command: str
    peak_rss: int = 0


@dataclass
class TreeSampler:
    """Sampler of the RSS of a process and all its descendants, every ``interval`` seconds.

    A process is keyed by PID and start time, so a reused PID is a new process.
    Its role comes from its latest readable command line, because a launcher
    replaces itself with the command it starts. An exiting process has an empty
    command line, which leaves the role as it was.
    """

    root_pid: int
    interval: float = SAMPLE_INTERVAL_SECONDS
    processes: dict[tuple[int, float], ProcessPeak] = field(default_factory=dict)
    peak_tree_rss: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            self._sample(root)
            self._stop.wait(self.interval)

    def _sample(self, root: psutil.Process) -> None:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        tree_rss = 0
        for process in family:
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    cmdline = process.cmdline()
                    name = process.name()
                    key = (process.pid, process.create_time())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            tree_rss += rss
            peak = self.processes.get(key)
            if peak is None:
                peak = self.processes[key] = ProcessPeak(process.pid, "other", "")
            if cmdline or process.pid == self.root_pid:
                peak.role = classify_process(cmdline, process.pid == self.root_pid, name)
                peak.command = " ".join(cmdline)[:200]
            peak.peak_rss = max(peak.peak_rss, rss)
        self.peak_tree_rss = max(self.peak_tree_rss, tree_rss)
        self.samples += 1

    def summary(self) -> dict:
        """Return the peaks per role and per process, in MiB."""
        roles: dict[str, list[int]] = {}
        for peak in self.processes.values():
            roles.setdefault(peak.role, []).append(peak.peak_rss)
        return {
            "sample_interval_s": self.interval,
            "samples": self.samples,
            "max_process_peak_rss_mib": mib(
                max((p.peak_rss for p in self.processes.values()), default=0)
            ),
            "peak_tree_rss_mib": mib(self.peak_tree_rss),
            "roles": {
                role: {
                    "processes": len(values),
                    "max_peak_rss_mib": mib(max(values)),
                    "mean_peak_rss_mib": mib(sum(values) / len(values)),
                }
                for role, values in sorted(roles.items())
            },
            "processes": [
                {
                    "pid": p.pid,
                    "role": p.role,
                    "peak_rss_mib": mib(p.peak_rss),
                    "command": p.command,
                }
                for p in sorted(self.processes.values(), key=lambda p: -p.peak_rss)
            ],
        }


def mib(byte_count: float) -> float:
    return round(byte_count / MIB, 1)


@dataclass
class Measurement:
    wall_seconds: float
    returncode: int
    memory: dict
    load_average_before: tuple[float, float, float]
    load_average_after: tuple[float, float, float]
    # Each output line with the seconds since the start at which it arrived.
    lines: list[tuple[float, str]]


def run_measured(
    argv: list[str], cwd: Path, log_path: Path, show_line, env: dict | None = None
) -> Measurement:
    """Run ``argv``, sample its process tree, and return the wall time and memory peaks.

    All output goes to ``log_path``, each line prefixed with the seconds since
    the start. Lines for which ``show_line(line)`` is true are also printed. On
    Ctrl-C the command's process group gets SIGINT, and whatever of its tree is
    left after 30 s is killed.
    """
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONUNBUFFERED"] = "1"  # progress lines arrive as they are printed
    load_before = os.getloadavg()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        sampler = TreeSampler(process.pid).start()
        lines = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                elapsed = time.monotonic() - started
                lines.append((round(elapsed, 2), line.rstrip("\n")))
                log.write(f"[{elapsed:7.1f}] {line}")
                if show_line(line):
                    print(f"    {line.rstrip()}", flush=True)
            returncode = process.wait()
        except KeyboardInterrupt:
            stop_process_tree(process)
            raise
        finally:
            wall_seconds = time.monotonic() - started
            sampler.stop()
    return Measurement(
        round(wall_seconds, 2), returncode, sampler.summary(), load_before, os.getloadavg(), lines
    )


def stop_process_tree(process: subprocess.Popen) -> None:
    """Interrupt the command started by ``run_measured``, then kill what remains of its tree."""
    try:
        family = [psutil.Process(process.pid)]
        family += family[0].children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    # psutil.Process.kill checks the start time that it recorded, so a process
    # that reused one of these PIDs is not killed.
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass


def run_checked(
    argv: list[str], what: str, cwd: Path | None = None, env: dict | None = None
) -> float:
    """Run ``argv`` to completion and return its wall seconds.

    Raises ``WayFailed`` with the end of the output when the command exits non-zero.
    """
    started = time.monotonic()
    completed = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, errors="replace"
    )
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-4000:]
        raise WayFailed(
            f"{what} failed: {' '.join(argv)} exited with {completed.returncode}:\n{output}"
        )
    return round(time.monotonic() - started, 2)


def tail(path: Path, lines: int = 30) -> str:
    return "".join(
        path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-lines:]
    )
