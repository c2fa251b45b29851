"""Sandbox for the processes that run student code or read student-made files.

The grader runs two kinds of untrusted work: the Jupyter kernel that executes a
student notebook, and the model check process that loads the model archive the
kernel exported. ``wrap_command`` turns the argv of either into an argv that
starts it inside a sandbox. ``detect_sandbox`` picks the strongest sandbox that
works on this machine.

Two kinds of sandbox exist:

``bubblewrap``
    The command runs under ``bwrap`` (https://github.com/containers/bubblewrap,
    tested with 0.8.0 on Debian 12 and Linux 6.18) with new network, PID, IPC,
    UTS and cgroup namespaces, plus a user namespace where that works, and
    with all capabilities dropped. Its file system is the host's, read-only,
    with a private ``/dev``, ``/proc`` and ``/tmp`` (a size-limited tmpfs).
    The working folder is the only host folder it can write to. Every hidden
    folder, and by default ``/root``, ``/home``, ``/run`` and the folder named
    by TMPDIR, is covered by an empty read-only tmpfs. A hidden file cannot be
    opened. The Python installation that runs the command stays readable even
    where it lives in a hidden folder.

    The network namespace contains only its own loopback interface, so no
    connection leaves the sandbox, not even to 127.0.0.1 on the host. When
    the sandbox's first process exits or bwrap is killed, Linux kills every
    process left in the PID namespace. ``--die-with-parent`` kills the
    sandbox when the process that started bwrap dies.

    What it does not stop: the command reads every host file outside the
    hidden paths that the grader's user can read, such as the grader's
    source, other folders of the repository and ``/etc``. It connects to Unix
    sockets in those visible folders, can fill the disk through the working
    folder, and can attack the Linux kernel itself. The processes keep the
    grader's user id on the host.
    When the grader runs as root they are root without capabilities, so
    they still read root-only files such as ``/etc/shadow``.

``limits-only``
    Used when bwrap is missing or its trial run fails. The command runs with
    the resource limits below and nothing else. It cannot stop the command
    from doing anything the grader's own user may do. In particular it:

    - reads every file the grader's user can read, including the reference
      solution, the rubric, other students' submissions and results, and the
      grader's source code;
    - writes and deletes every file the grader's user can write, including
      other students' results and the grader itself;
    - opens network connections, to the internet and to local services, and
      connects to Unix sockets, including other kernels' IPC sockets;
    - sends signals to, and reads ``/proc`` entries of, every process of the
      grader's user, the grader included;
    - starts processes that leave its session with ``setsid()``, so
      ``kill_process_group`` cannot find them and they outlive the notebook.

    Run the grader as a dedicated unprivileged user without access to the
    solutions, or in a container, when bubblewrap is not available.

Resource limits, applied in both kinds through ``grader/limits.py``:

- ``memory_bytes`` sets RLIMIT_DATA (heap and private writable mappings), not
  RLIMIT_AS. ``import torch`` maps about 3.1 GiB of address space but only
  0.8 GiB of data (torch 2.14, CPU and CUDA 13 build, measured with
  ``/proc/self/status``), so an address-space limit that lets torch start
  would leave little room for tensors. RLIMIT_DATA does not count shared
  mappings (``mmap.mmap(-1, n)``, shared memory), so RLIMIT_AS is also set, at
  ``memory_bytes + ADDRESS_SPACE_HEADROOM_BYTES``, as a looser bound.
  Both limits are per process, so a notebook may use them once per process.
- ``cpu_seconds`` sets RLIMIT_CPU per process: SIGXCPU at the limit, SIGKILL
  ``CPU_KILL_GRACE_SECONDS`` later. The grader's wall-clock timeouts bound the
  rest.
- ``max_file_bytes`` sets RLIMIT_FSIZE. It limits each file, not the number of
  files, so the working folder can still fill the disk.
- ``max_processes`` sets RLIMIT_NPROC, which counts processes and threads of
  the real user id. The kernel never enforces it for root (uid 0, also inside
  a user namespace, because the check uses the user id outside it). For any
  other user it counts every task of that user on the machine. In
  limits-only mode ``wrap_command`` therefore adds the user's current task
  count to the limit, and inside a bubblewrap user namespace the kernel
  counts the sandbox's tasks separately. Where the limit is not enforced
  (``Sandbox.process_limit_enforced`` is false), run a ``ProcessWatchdog``
  beside the command: it counts the tasks of the sandbox and kills it when
  there are too many, but only at its polling interval.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

GIB = 1024**3
MIB = 1024**2

# Defaults for one notebook kernel or one model check, per process. They let
# `import torch; torch.zeros(1000, 1000)` run (tests/test_sandbox.py checks
# this) and a notebook hold a few GiB of tensors. A sandboxed kernel with torch
# runs about 16 processes and threads, so 256 leaves room for DataLoader
# workers. 256 MiB fits a saved model of this exercise many times over.
DEFAULT_MEMORY_BYTES = 4 * GIB
DEFAULT_CPU_SECONDS = 600
DEFAULT_MAX_PROCESSES = 256
DEFAULT_MAX_FILE_BYTES = 256 * MIB

# RLIMIT_AS minus RLIMIT_DATA: room for the file-backed and reserved mappings
# that RLIMIT_DATA does not count. torch 2.14 with torchvision needs about
# 2.8 GiB of them (measured, see the module docstring), so 8 GiB leaves room
# for other libraries.
ADDRESS_SPACE_HEADROOM_BYTES = 8 * GIB

# Size of the sandbox's private /tmp. It is memory-backed and not counted in
# any process's memory limit.
SANDBOX_TMP_BYTES = 512 * MIB

# Folders hidden in the bubblewrap sandbox in addition to the caller's list.
DEFAULT_HIDDEN = (Path("/root"), Path("/home"), Path("/run"))

LIMITS_SCRIPT = Path(__file__).resolve().with_name("limits.py")
# The same value as in grader/limits.py, which imports nothing from this module.
CPU_KILL_GRACE_SECONDS = 2
# Units of the CPU times in /proc/PID/stat.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Optional bubblewrap features, tried by detect_sandbox in this order of preference.
USER_NAMESPACE = "user-namespace"
DISABLE_USERNS = "disable-userns"
TMPFS_SIZE = "tmpfs-size"
_FEATURE_SETS = (
    frozenset({USER_NAMESPACE, DISABLE_USERNS, TMPFS_SIZE}),
    frozenset({USER_NAMESPACE, TMPFS_SIZE}),
    frozenset({USER_NAMESPACE}),
    frozenset({TMPFS_SIZE}),
    frozenset(),
)
_TRIAL_TIMEOUT = 60
_TRIAL_OUTPUT = "sandbox trial ok"


class SandboxUnavailableError(RuntimeError):
    """The requested sandbox cannot run on this machine."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one sandboxed command and every process it starts."""

    memory_bytes: int  # RLIMIT_DATA per process, and RLIMIT_AS with ADDRESS_SPACE_HEADROOM_BYTES more
    cpu_seconds: int  # RLIMIT_CPU per process
    max_processes: int  # RLIMIT_NPROC, which counts processes and threads (see the module docstring)
    max_file_bytes: int  # RLIMIT_FSIZE

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "max_processes", "max_file_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = SandboxLimits(
    memory_bytes=DEFAULT_MEMORY_BYTES,
    cpu_seconds=DEFAULT_CPU_SECONDS,
    max_processes=DEFAULT_MAX_PROCESSES,
    max_file_bytes=DEFAULT_MAX_FILE_BYTES,
)


@dataclass(frozen=True)
class Sandbox:
    """The kind of sandbox ``wrap_command`` builds, as chosen by ``detect_sandbox``."""

    kind: str  # "bubblewrap" or "limits-only"
    bwrap_path: str = ""  # absolute path of the bwrap binary, for kind "bubblewrap"
    features: frozenset[str] = field(default_factory=frozenset)  # optional bwrap features that work here
    fallback_reason: str = ""  # why a "limits-only" sandbox was chosen

    def __post_init__(self) -> None:
        if self.kind not in ("bubblewrap", "limits-only"):
            raise ValueError(f"Sandbox.kind must be 'bubblewrap' or 'limits-only', got {self.kind!r}")
        if self.kind == "bubblewrap" and not self.bwrap_path:
            raise ValueError("a bubblewrap Sandbox needs bwrap_path")

    @property
    def isolates_files(self) -> bool:
        """Whether hidden paths are unreadable and the host outside the working folder is read-only."""
        return self.kind == "bubblewrap"

    @property
    def isolates_network(self) -> bool:
        """Whether the command is cut off from every network, loopback included."""
        return self.kind == "bubblewrap"

    @property
    def process_limit_enforced(self) -> bool:
        """Whether the kernel enforces ``max_processes``, which it never does for root."""
        return os.getuid() != 0


def detect_sandbox(prefer: str = "auto") -> Sandbox:
    """Choose the sandbox for this machine.

    ``prefer`` is "auto" (bubblewrap when ``bwrap`` is on PATH and a trial run
    succeeds, otherwise limits-only), "bubblewrap" (raise
    ``SandboxUnavailableError`` when it does not work) or "none" (limits-only).
    The trial runs the grader's Python in the sandbox, a few times at most while
    it finds the optional bwrap features that work here.
    """
    if prefer not in ("auto", "bubblewrap", "none"):
        raise ValueError(f"prefer must be 'auto', 'bubblewrap' or 'none', got {prefer!r}")
    if prefer == "none":
        return Sandbox(kind="limits-only", fallback_reason="bubblewrap was turned off (prefer='none')")

    bwrap = shutil.which("bwrap")
    if bwrap is None:
        reason = "bwrap was not found on PATH; install bubblewrap to isolate files and network"
    else:
        sandbox, reason = _trial_bubblewrap(bwrap)
        if sandbox is not None:
            log.info("using the bubblewrap sandbox (%s, features: %s)", bwrap,
                     ", ".join(sorted(sandbox.features)) or "none")
            return sandbox
    if prefer == "bubblewrap":
        raise SandboxUnavailableError(reason)
    log.info("bubblewrap sandbox unavailable: %s", reason)
    return Sandbox(kind="limits-only", fallback_reason=reason)


def _trial_bubblewrap(bwrap: str) -> tuple[Sandbox | None, str]:
    """Run a trial command under bwrap with each feature set; return the first that works."""
    reason = ""
    with tempfile.TemporaryDirectory(prefix="grader-sandbox-trial-") as temporary:
        workdir = Path(temporary)
        for features in _FEATURE_SETS:
            sandbox = Sandbox(kind="bubblewrap", bwrap_path=bwrap, features=features)
            argv = wrap_command(
                sandbox,
                [sys.executable, "-I", "-c", f"print({_TRIAL_OUTPUT!r})"],
                workdir,
                DEFAULT_LIMITS,
                hidden=[],
            )
            try:
                completed = subprocess.run(argv, capture_output=True, text=True,
                                           stdin=subprocess.DEVNULL, timeout=_TRIAL_TIMEOUT)
            except subprocess.TimeoutExpired:
                reason = f"the bubblewrap trial run timed out after {_TRIAL_TIMEOUT} s"
                log.debug("bwrap trial with features %s: %s", sorted(features), reason)
                continue
            if completed.returncode == 0 and completed.stdout.strip() == _TRIAL_OUTPUT:
                return sandbox, ""
            message = (completed.stderr.strip().splitlines() or ["no error output"])[-1]
            reason = f"the bubblewrap trial run failed with exit status {completed.returncode}: {message}"
            log.debug("bwrap trial with features %s: %s", sorted(features), reason)
    return None, reason


def wrap_command(
    sandbox: Sandbox, argv: list[str], workdir: Path, limits: SandboxLimits, hidden: list[Path],
    command_is_init: bool = False,
) -> list[str]:
    """Return the argv that runs ``argv`` in ``sandbox`` with ``limits``.

    With ``command_is_init``, a bubblewrap sandbox runs the command as its pid 1
    (bwrap's ``--as-pid-1``) instead of under bwrap's own init process. The
    command must then reap the orphans of its sandbox. In exchange no other
    process in the sandbox can kill or stop it. Nor can one reach the command's
    pipes through bwrap's init, which would have them open as well.

    ``workdir`` must be an existing folder. In a bubblewrap sandbox it is the
    only host folder the command can write to, and it keeps its path, so the
    kernel's connection file and IPC sockets there still work. Each folder in
    ``hidden`` appears empty and read-only, a hidden file cannot be opened,
    and paths that do not exist are skipped. A limits-only sandbox ignores
    ``hidden`` (see the module docstring). The returned argv may be started
    with or without ``start_new_session=True``, because the launcher starts a
    new session itself when it needs one.
    """
    if not argv:
        raise ValueError("argv must name a command to run")
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise ValueError(f"the working folder {workdir} does not exist or is not a folder")
    # The script path with -I, not `-m grader.limits`: -m would import from the
    # current folder first, and that can be the student-writable working folder.
    launcher = [sys.executable, "-I", str(LIMITS_SCRIPT)]
    if sandbox.kind == "limits-only":
        return [*launcher, *_limit_args(limits, _user_task_count()), "--", *argv]

    # The outer launcher starts a new session, so the sandbox has no controlling
    # terminal (what bwrap's --new-session protects against), and it makes bwrap
    # ignore SIGINT. The inner launcher keeps that session, so SIGINT sent to the
    # process group by jupyter_client reaches the kernel without killing bwrap.
    # bwrap's --new-session would put the kernel out of reach of that signal.
    # The inner launcher sets RLIMIT_NPROC after bwrap made the user namespace,
    # so for a non-root user Linux counts the sandbox's tasks on their own.
    return [
        *launcher, "--ignore-sigint", "--",
        *_bubblewrap_args(sandbox, workdir, hidden), *(["--as-pid-1"] if command_is_init else []), "--",
        *launcher, *_limit_args(limits, 0), "--keep-session", "--",
        *argv,
    ]


def _limit_args(limits: SandboxLimits, tasks_already_running: int) -> list[str]:
    return [
        "--memory", str(limits.memory_bytes),
        "--address-space", str(limits.memory_bytes + ADDRESS_SPACE_HEADROOM_BYTES),
        "--cpu", str(limits.cpu_seconds),
        "--processes", str(limits.max_processes + tasks_already_running),
        "--file-size", str(limits.max_file_bytes),
    ]


def _user_task_count() -> int:
    """Count the processes and threads of this real user id, which RLIMIT_NPROC counts too."""
    uid = os.getuid()
    if uid == 0:
        return 0  # RLIMIT_NPROC is not enforced for root, so nothing needs adding.
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += sum(1 for _ in os.scandir(f"/proc/{entry.name}/task"))
        except OSError:
            continue  # the process exited while being counted
    return count


def _python_paths() -> tuple[set[Path], set[Path]]:
    """Return the interpreter's own folders, and the other folders on ``sys.path``.

    The sandboxed command runs ``sys.executable``, so both sets must stay
    readable in the sandbox. The current folder is left out of the second set
    because it is only on ``sys.path`` for scripts and ``-m`` runs.
    """
    interpreter = {
        Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix),
        LIMITS_SCRIPT.parent,
    }
    interpreter |= {path.resolve() for path in interpreter}
    interpreter.add(Path(os.path.realpath(sys.executable)))
    try:
        cwd: Path | None = Path.cwd().resolve()
    except FileNotFoundError:
        cwd = None  # the grader's current folder was deleted
    imports: set[Path] = set()
    for entry in sys.path:
        if not entry or not os.path.isabs(entry) or not os.path.isdir(entry):
            continue
        path = Path(entry).resolve()
        if path != cwd:
            imports.add(path)
    return interpreter, imports - interpreter


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _tmpfs_args(sandbox: Sandbox, path: Path, size: int) -> list[str]:
    if TMPFS_SIZE in sandbox.features:
        return ["--size", str(size), "--tmpfs", str(path)]
    return ["--tmpfs", str(path)]


def _outermost(paths: list[Path], hidden: set[Path]) -> list[Path]:
    """Drop each path that an outer path in ``paths`` already shows, with no hidden folder between."""
    outer_paths: list[Path] = []
    for path in sorted(set(paths), key=lambda item: len(item.parts)):
        covered = any(
            _is_within(path, outer)
            and not any(folder != outer and _is_within(folder, outer) and _is_within(path, folder)
                        for folder in hidden)
            for outer in outer_paths
        )
        if not covered:
            outer_paths.append(path)
    return outer_paths


def _mount_plan(workdir: Path, hidden: list[Path]) -> list[tuple[str, Path]]:
    """List the mounts on top of the read-only root, each folder before the folders inside it.

    Each entry is ("hide", folder), ("hide-file", file), ("ro-bind", path) or
    ("bind", folder). The
    order matters because a later mount covers an earlier one: the working
    folder and the Python installation are mounted again inside a hidden folder
    that contains them, while a hidden folder inside them is mounted after them.
    """
    caller_hidden = {Path(path).resolve() for path in hidden}
    interpreter, imports = _python_paths()
    for path in caller_hidden:
        if path == Path("/"):
            raise ValueError("the root folder / cannot be a hidden path")
        if path == workdir:
            raise ValueError(f"the working folder {workdir} cannot also be a hidden path")
        for needed in interpreter:
            if _is_within(path, needed) and needed.is_dir():
                raise ValueError(
                    f"hiding {path} would hide {needed}, which the Python interpreter "
                    f"{sys.executable} needs in the sandbox; hide a folder outside it"
                )
    default_hidden = {path.resolve() for path in DEFAULT_HIDDEN}
    temporary = Path(tempfile.gettempdir()).resolve()
    if temporary != Path("/tmp"):
        default_hidden.add(temporary)
    all_hidden = {path for path in caller_hidden | default_hidden if path.exists()}

    # The sandbox's /tmp is a fresh tmpfs, so an interpreter or checkout under the
    # host's /tmp (a CI clone, say) must be mounted again like one in a hidden folder.
    covering = all_hidden | {Path("/tmp")}
    visible = [path for path in interpreter
               if path.exists() and any(_is_within(path, folder) for folder in covering)]
    visible += [path for path in imports
                if any(_is_within(path, folder) for folder in (default_hidden & all_hidden) | {Path("/tmp")})]
    mounts: list[tuple[str, Path]] = [
        ("hide" if path.is_dir() else "hide-file", path) for path in sorted(all_hidden)
    ]
    mounts += [("ro-bind", path) for path in _outermost(visible, covering)]
    mounts.append(("bind", workdir))
    # Sort by depth only; the sort is stable, so at equal depth a hidden path
    # stays before the binds that must show through it.
    mounts.sort(key=lambda mount: len(mount[1].parts))
    return mounts


def _bubblewrap_args(sandbox: Sandbox, workdir: Path, hidden: list[Path]) -> list[str]:
    args = [sandbox.bwrap_path]
    if USER_NAMESPACE in sandbox.features:
        args.append("--unshare-user")
        if DISABLE_USERNS in sandbox.features:
            args.append("--disable-userns")

    # NOTE: --die-with-parent uses PR_SET_PDEATHSIG, which fires when the thread
    # that started bwrap exits, so start sandboxes from a thread that outlives them.
    args += [
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent",
        "--cap-drop", "ALL",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        # The IPC namespace's POSIX message queues, so they can be listed and removed.
        "--mqueue", "/dev/mqueue",
        "--proc", "/proc",
    ]
    args += _tmpfs_args(sandbox, Path("/tmp"), SANDBOX_TMP_BYTES)

    read_only: list[Path] = []
    for kind, path in _mount_plan(workdir, hidden):
        if kind == "hide":
            args += _tmpfs_args(sandbox, path, MIB)
            read_only.append(path)
        elif kind == "hide-file":
            args += ["--ro-bind", "/dev/null", str(path)]
        elif kind == "ro-bind":
            args += ["--ro-bind", str(path), str(path)]
        else:
            args += ["--bind", str(path), str(path)]
    # bwrap creates the mount points of those binds in the hidden tmpfs, so it
    # can make the tmpfs read-only only after them. The remount is not
    # recursive, so the binds keep their own mode.
    for path in read_only:
        args += ["--remount-ro", str(path)]

    args += [
        "--setenv", "HOME", str(workdir),
        "--setenv", "TMPDIR", "/tmp",
        # ipykernel 7 exits at start when JPY_PARENT_PID is set and its parent is
        # pid 1, which bwrap's init is in the PID namespace. The kernel still ends
        # with the grader because of --die-with-parent.
        "--unsetenv", "JPY_PARENT_PID",
    ]
    return args


class ProcessInfo(NamedTuple):
    """One line of the process table."""

    parent: int
    session: int
    threads: int
    cpu_ticks: int  # user and system time of the process and of its reaped children


def _process_table() -> dict[int, ProcessInfo]:
    """Map each live pid to its ``ProcessInfo``, read from /proc/PID/stat."""
    table: dict[int, ProcessInfo] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                text = stat.read().decode("ascii", "replace")
        except OSError:
            continue  # the process exited while the table was read
        # The command name in parentheses may contain spaces and parentheses.
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) < 18 or fields[0] == "Z":
            continue
        cpu_ticks = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        table[int(entry.name)] = ProcessInfo(int(fields[1]), int(fields[3]), int(fields[17]), cpu_ticks)
    return table


def _sandbox_members(pid: int, table: dict[int, ProcessInfo]) -> set[int]:
    """Return the descendants of ``pid`` and the processes in session ``pid``, ``pid`` included."""
    children: dict[int, list[int]] = {}
    for child, info in table.items():
        children.setdefault(info.parent, []).append(child)
    members: set[int] = set()
    pending = [pid, *(other for other, info in table.items() if info.session == pid)]
    while pending:
        current = pending.pop()
        if current in members or current not in table:
            continue
        members.add(current)
        pending.extend(children.get(current, []))
    return members


def sandbox_cpu_seconds(pid: int) -> float:
    """Return the CPU seconds used so far by the sandbox started as ``pid``.

    The sum covers its live members and the children they have reaped, so it only
    grows, except for a moment when a process has ended and its parent has not
    reaped it yet.
    """
    table = _process_table()
    ticks = sum(table[member].cpu_ticks for member in _sandbox_members(pid, table))
    return ticks / CLOCK_TICKS


def kill_process_group(pid: int) -> None:
    """Send SIGKILL to a started child ``pid``, its process group and its session.

    The launcher makes the sandboxed command a session leader, so ``pid`` is
    also the id of its process group and session. A bubblewrap sandbox dies as a
    whole with bwrap. In a limits-only sandbox, processes that left the session
    with ``setsid()`` survive. Processes that are gone already are ignored.
    """
    if pid <= 1 or pid in (os.getpid(), os.getpgrp(), os.getsid(0)):
        raise ValueError(f"kill_process_group rejects pid {pid}: it is init or the grader's own process group or session")
    for send in (os.killpg, os.kill):
        try:
            send(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Members that moved to another process group in the same session.
    for member in _sandbox_members(pid, _process_table()) - {os.getpid()}:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


class ProcessWatchdog:
    """Kill a sandbox whose processes and threads exceed a count.

    Use it where RLIMIT_NPROC is not enforced (``Sandbox.process_limit_enforced``
    is false). It polls /proc every ``interval`` seconds and counts the tasks of
    ``pid``'s descendants and session, bwrap's own two processes included. A
    fast fork loop can start a few hundred processes between two polls before
    it is killed.
    """

    def __init__(self, pid: int, max_tasks: int, interval: float = 0.2) -> None:
        if max_tasks <= 0:
            raise ValueError(f"max_tasks must be a positive integer, got {max_tasks!r}")
        self.pid = pid
        self.max_tasks = max_tasks
        self.interval = interval
        self.exceeded = False  # whether the watchdog killed the sandbox
        self.peak_tasks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"process-watchdog-{pid}", daemon=True)

    def start(self) -> ProcessWatchdog:
        """Start polling in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and wait for the thread to end."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> ProcessWatchdog:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _watch(self) -> None:
        while not self._stop.is_set():
            table = _process_table()
            members = _sandbox_members(self.pid, table)
            if not members:
                return  # every process of the sandbox has ended
            tasks = sum(table[member].threads for member in members)
            self.peak_tasks = max(self.peak_tasks, tasks)
            if tasks > self.max_tasks:
                log.warning("sandbox %d runs %d processes and threads, more than the limit of %d; killing it",
                            self.pid, tasks, self.max_tasks)
                self.exceeded = True
                kill_process_group(self.pid)
                for member in members:
                    try:
                        os.kill(member, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            self._stop.wait(self.interval)
