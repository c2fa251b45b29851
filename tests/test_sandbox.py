"""Tests for grader.sandbox and grader.limits with real processes, without Jupyter.

Every behaviour test runs in each sandbox kind that works here: limits-only
always, bubblewrap when a trial run succeeds (otherwise those tests are
skipped with the reason). Network tests touch 127.0.0.1 only.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from grader.limits import EXIT_LAUNCHER_ERROR, EXIT_NOT_FOUND
from grader.sandbox import (
    ADDRESS_SPACE_HEADROOM_BYTES,
    DEFAULT_LIMITS,
    GIB,
    MIB,
    ProcessWatchdog,
    Sandbox,
    SandboxLimits,
    SandboxUnavailableError,
    detect_sandbox,
    kill_process_group,
    wrap_command,
)

KINDS = ["limits-only", "bubblewrap"]
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def bubblewrap_sandbox() -> Sandbox | str:
    """The bubblewrap sandbox, or the reason it cannot run here."""
    try:
        return detect_sandbox("bubblewrap")
    except SandboxUnavailableError as error:
        return str(error)


@pytest.fixture(params=KINDS)
def sandbox(request: pytest.FixtureRequest, bubblewrap_sandbox: Sandbox | str) -> Sandbox:
    if request.param == "limits-only":
        return detect_sandbox("none")
    if isinstance(bubblewrap_sandbox, str):
        pytest.skip(f"bubblewrap cannot run here: {bubblewrap_sandbox}")
    return bubblewrap_sandbox


@pytest.fixture
def bubblewrap(bubblewrap_sandbox: Sandbox | str) -> Sandbox:
    if isinstance(bubblewrap_sandbox, str):
        pytest.skip(f"bubblewrap cannot run here: {bubblewrap_sandbox}")
    return bubblewrap_sandbox


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique argument for child processes; any still running afterwards are killed."""
    value = f"grader-sandbox-test-{uuid.uuid4().hex}"
    yield value
    for pid in pids_with_marker(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def python_argv(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def run_sandboxed(
    sandbox: Sandbox,
    code: str,
    workdir: Path,
    limits: SandboxLimits = DEFAULT_LIMITS,
    hidden: list[Path] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    argv = wrap_command(sandbox, python_argv(code), workdir, limits, hidden or [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          cwd=workdir, stdin=subprocess.DEVNULL)


def terminating_signal(returncode: int) -> int | None:
    """Return the signal that ended a command: negative from subprocess, 128 + n from bwrap."""
    if returncode < 0:
        return -returncode
    if returncode > 128:
        return returncode - 128
    return None


def pids_with_marker(marker: str) -> list[int]:
    """Return the running (not zombie) processes that have ``marker`` as one argument."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in arguments and stat[stat.rfind(")") + 2] != "Z":
            pids.append(int(entry.name))
    return pids


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def unused_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CONNECT = """
import socket, sys, time
started = time.monotonic()
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20).close()
    print("connected")
except OSError as error:
    print(type(error).__name__)
print(f"seconds={time.monotonic() - started:.2f}")
"""

# Starts three sleeping children with the marker argument, the first in a
# session of its own, writes "ready" and exits once the file "release" exists.
# The parent gets the marker with a prefix, so only the children match it.
PARENT_OF_THREE = """
import subprocess, sys, time
from pathlib import Path
marker, workdir = sys.argv[1].removeprefix("children="), Path(sys.argv[2])
for index in range(3):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=index == 0)
(workdir / "ready").write_text("ready")
while not (workdir / "release").exists():
    time.sleep(0.05)
"""


def start_parent_of_three(sandbox: Sandbox, workdir: Path, marker: str) -> subprocess.Popen[str]:
    argv = wrap_command(sandbox, python_argv(PARENT_OF_THREE, f"children={marker}", str(workdir)),
                        workdir, DEFAULT_LIMITS, [])
    parent = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
    assert wait_until(lambda: (workdir / "ready").exists(), 30), "the parent did not start its children"
    assert wait_until(lambda: len(pids_with_marker(marker)) == 3), "three children should be running"
    return parent


# --- detect_sandbox and argument checks -------------------------------------------------


def test_detect_none_is_limits_only() -> None:
    sandbox = detect_sandbox("none")
    assert sandbox.kind == "limits-only"
    assert "prefer='none'" in sandbox.fallback_reason
    assert not sandbox.isolates_files
    assert not sandbox.isolates_network


def test_detect_rejects_unknown_preference() -> None:
    with pytest.raises(ValueError, match="prefer must be"):
        detect_sandbox("docker")


def test_detect_auto_falls_back_without_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    sandbox = detect_sandbox("auto")
    assert sandbox.kind == "limits-only"
    assert "bwrap was not found" in sandbox.fallback_reason


def test_detect_bubblewrap_raises_without_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailableError, match="bwrap was not found"):
        detect_sandbox("bubblewrap")


def test_detect_auto_picks_bubblewrap_when_it_works(bubblewrap: Sandbox) -> None:
    sandbox = detect_sandbox("auto")
    assert sandbox.kind == "bubblewrap"
    assert sandbox.fallback_reason == ""
    assert sandbox.isolates_files
    assert sandbox.isolates_network


@pytest.mark.parametrize("field", ["memory_bytes", "cpu_seconds", "max_processes", "max_file_bytes"])
def test_limits_reject_non_positive(field: str) -> None:
    values = {"memory_bytes": GIB, "cpu_seconds": 10, "max_processes": 10, "max_file_bytes": MIB}
    values[field] = 0
    with pytest.raises(ValueError, match=field):
        SandboxLimits(**values)


def test_wrap_rejects_missing_workdir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        wrap_command(detect_sandbox("none"), ["true"], tmp_path / "missing", DEFAULT_LIMITS, [])


def test_wrap_rejects_empty_argv(workdir: Path) -> None:
    with pytest.raises(ValueError, match="argv"):
        wrap_command(detect_sandbox("none"), [], workdir, DEFAULT_LIMITS, [])


def test_wrap_rejects_hiding_the_interpreter(workdir: Path) -> None:
    sandbox = Sandbox(kind="bubblewrap", bwrap_path="/usr/bin/bwrap")
    with pytest.raises(ValueError, match="Python interpreter"):
        wrap_command(sandbox, ["true"], workdir, DEFAULT_LIMITS, [Path(sys.prefix) / "lib"])


def test_wrap_rejects_hiding_the_workdir(workdir: Path) -> None:
    sandbox = Sandbox(kind="bubblewrap", bwrap_path="/usr/bin/bwrap")
    with pytest.raises(ValueError, match="working folder"):
        wrap_command(sandbox, ["true"], workdir, DEFAULT_LIMITS, [workdir])


def test_wrap_bubblewrap_argv(tmp_path: Path, workdir: Path) -> None:
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    sandbox = Sandbox(kind="bubblewrap", bwrap_path="/usr/bin/bwrap")
    argv = wrap_command(sandbox, ["my-kernel", "-f", "{connection_file}"], workdir, DEFAULT_LIMITS, [solutions])
    joined = " ".join(argv)
    assert argv[-3:] == ["my-kernel", "-f", "{connection_file}"]
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--cap-drop ALL", "--ro-bind / /",
                 "--proc /proc", "--dev /dev", "--tmpfs /tmp", f"--bind {workdir} {workdir}",
                 f"--tmpfs {solutions}", f"--remount-ro {solutions}", f"--setenv HOME {workdir}"):
        assert flag in joined, f"missing {flag!r} in {joined}"
    # The working folder is bound after the /tmp tmpfs, which would cover it otherwise.
    assert joined.index("--tmpfs /tmp") < joined.index(f"--bind {workdir}")


# --- file system ----------------------------------------------------------------------


READ_HIDDEN = """
import os, sys
try:
    print(open(sys.argv[1]).read())
except OSError as error:
    print(type(error).__name__)
print(sorted(os.listdir(sys.argv[2])))
"""


def test_hidden_file_cannot_be_read(bubblewrap: Sandbox, tmp_path: Path, workdir: Path) -> None:
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "rubric.toml").write_text("secret = 'reference answers'\n")
    argv = wrap_command(bubblewrap, python_argv(READ_HIDDEN, str(solutions / "rubric.toml"), str(solutions)),
                        workdir, DEFAULT_LIMITS, [solutions])
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0] == "FileNotFoundError"
    assert lines[1] == "[]", "the hidden folder should be an empty tmpfs"
    assert "reference answers" not in completed.stdout


def test_hidden_file_cannot_be_opened(bubblewrap: Sandbox, tmp_path: Path, workdir: Path) -> None:
    rubric = tmp_path / "rubric.toml"
    rubric.write_text("secret = 'reference answers'\n")
    argv = wrap_command(bubblewrap, python_argv(READ_HIDDEN, str(rubric), str(tmp_path)),
                        workdir, DEFAULT_LIMITS, [rubric])
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[0] == "PermissionError"
    assert "reference answers" not in completed.stdout


def test_hidden_folder_is_read_only(bubblewrap: Sandbox, tmp_path: Path, workdir: Path) -> None:
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    code = (
        "import sys\n"
        "try:\n"
        "    open(sys.argv[1] + '/planted.txt', 'w').write('x')\n"
        "    print('written')\n"
        "except OSError as error:\n"
        "    print(error.errno)\n"
    )
    argv = wrap_command(bubblewrap, python_argv(code, str(solutions)), workdir, DEFAULT_LIMITS, [solutions])
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.stdout.strip() == str(errno.EROFS), completed.stderr
    assert not (solutions / "planted.txt").exists()


def test_workdir_inside_hidden_folder_stays_writable(bubblewrap: Sandbox, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    workdir = outputs / "student-1"
    workdir.mkdir(parents=True)
    (outputs / "student-2.json").write_text('{"total": 20}')
    code = (
        "import os, sys\n"
        "open(sys.argv[1] + '/result.txt', 'w').write('mine')\n"
        "print(os.path.exists(sys.argv[2]))\n"
    )
    argv = wrap_command(bubblewrap, python_argv(code, str(workdir), str(outputs / "student-2.json")),
                        workdir, DEFAULT_LIMITS, [outputs])
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False", "another student's result should be hidden"
    assert (workdir / "result.txt").read_text() == "mine"


def test_write_inside_workdir_works(sandbox: Sandbox, workdir: Path) -> None:
    code = "import sys; open(sys.argv[1], 'w').write('model weights')"
    argv = wrap_command(sandbox, python_argv(code, str(workdir / "model.pt")), workdir, DEFAULT_LIMITS, [])
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    assert (workdir / "model.pt").read_text() == "model weights"


def test_write_outside_workdir_fails(bubblewrap: Sandbox, tmp_path: Path, workdir: Path) -> None:
    outside = Path("/var/tmp") / f"grader-sandbox-probe-{uuid.uuid4().hex}"
    beside = tmp_path / "beside-workdir.txt"
    code = (
        "import sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('written')\n"
        "    except OSError as error:\n"
        "        print(error.errno)\n"
    )
    argv = wrap_command(bubblewrap, python_argv(code, str(outside), str(beside)), workdir, DEFAULT_LIMITS, [])
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert completed.returncode == 0, completed.stderr
        lines = completed.stdout.splitlines()
        assert lines[0] == str(errno.EROFS), "the host file system should be read-only"
        assert not outside.exists()
        # The host's /tmp is replaced by a private tmpfs, so this write lands there.
        assert not beside.exists(), "a write beside the working folder should not reach the host"
    finally:
        outside.unlink(missing_ok=True)


def test_bubblewrap_environment(bubblewrap: Sandbox, workdir: Path) -> None:
    code = "import os; print(os.environ.get('HOME')); print(os.environ.get('JPY_PARENT_PID'))"
    argv = wrap_command(bubblewrap, python_argv(code), workdir, DEFAULT_LIMITS, [])
    env = {**os.environ, "JPY_PARENT_PID": str(os.getpid())}
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env)
    assert completed.returncode == 0, completed.stderr
    home, parent = completed.stdout.splitlines()
    assert home == str(workdir)
    assert parent == "None", "ipykernel would exit at once with JPY_PARENT_PID set in a PID namespace"


def test_limits_only_leaves_files_and_network_open(tmp_path: Path, workdir: Path) -> None:
    """Check two limits-only gaps that grader.sandbox documents: hidden files and loopback."""
    sandbox = detect_sandbox("none")
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "rubric.toml").write_text("secret")
    completed = run_sandboxed(sandbox, f"print(open({str(solutions / 'rubric.toml')!r}).read())",
                              workdir, hidden=[solutions])
    assert completed.stdout.strip() == "secret"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        argv = wrap_command(sandbox, python_argv(CONNECT, str(listener.getsockname()[1])),
                            workdir, DEFAULT_LIMITS, [])
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.stdout.splitlines()[0] == "connected"


# --- network --------------------------------------------------------------------------


def test_connect_to_unused_port_fails_fast(sandbox: Sandbox, workdir: Path) -> None:
    port = unused_loopback_port()
    argv = wrap_command(sandbox, python_argv(CONNECT, str(port)), workdir, DEFAULT_LIMITS, [])
    started = time.monotonic()
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[0] == "ConnectionRefusedError"
    assert elapsed < 5, f"the refused connection took {elapsed:.1f} s"


def test_loopback_listener_is_unreachable(bubblewrap: Sandbox, workdir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        argv = wrap_command(bubblewrap, python_argv(CONNECT, str(port)), workdir, DEFAULT_LIMITS, [])
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[0] == "ConnectionRefusedError", \
        "the sandbox has its own loopback, so the host's listener must not answer"


# --- processes ------------------------------------------------------------------------


def test_children_die_with_bubblewrap_parent(bubblewrap: Sandbox, workdir: Path, marker: str) -> None:
    parent = start_parent_of_three(bubblewrap, workdir, marker)
    children = pids_with_marker(marker)
    (workdir / "release").write_text("go")
    parent.communicate(timeout=RUN_TIMEOUT)
    for pid in children:
        assert wait_until(lambda: not is_running(pid)), f"child {pid} outlived the sandbox"


def test_killing_bubblewrap_kills_children(bubblewrap: Sandbox, workdir: Path, marker: str) -> None:
    parent = start_parent_of_three(bubblewrap, workdir, marker)
    children = pids_with_marker(marker)
    kill_process_group(parent.pid)
    parent.communicate(timeout=RUN_TIMEOUT)
    for pid in children:
        assert wait_until(lambda: not is_running(pid)), f"child {pid} outlived the killed sandbox"


def test_limits_only_kill_misses_setsid_child(workdir: Path, marker: str) -> None:
    parent = start_parent_of_three(detect_sandbox("none"), workdir, marker)
    children = pids_with_marker(marker)
    (workdir / "release").write_text("go")
    parent.communicate(timeout=RUN_TIMEOUT)
    assert sorted(pids_with_marker(marker)) == sorted(children), "children outlive their parent here"
    kill_process_group(parent.pid)
    assert wait_until(lambda: len(pids_with_marker(marker)) == 1)
    survivor = pids_with_marker(marker)[0]
    assert os.getsid(survivor) == survivor, "only the child that called setsid() should survive"


def test_command_leads_its_own_session(sandbox: Sandbox, workdir: Path) -> None:
    argv = wrap_command(sandbox, python_argv("import time; time.sleep(30)"), workdir, DEFAULT_LIMITS, [])
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: os.getsid(process.pid) == process.pid, 10)
        assert os.getpgid(process.pid) == process.pid
        assert os.getsid(process.pid) != os.getsid(0)
    finally:
        kill_process_group(process.pid)
        process.wait(timeout=RUN_TIMEOUT)


INTERRUPTIBLE = """
import sys, time
try:
    print("ready", flush=True)
    time.sleep(30)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
sys.exit(3)
"""


def test_group_sigint_reaches_command(sandbox: Sandbox, workdir: Path) -> None:
    """jupyter_client interrupts a kernel with SIGINT to its process group."""
    argv = wrap_command(sandbox, python_argv(INTERRUPTIBLE), workdir, DEFAULT_LIMITS, [])
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        kill_process_group(process.pid)
    assert process.returncode == 0, stderr
    assert stdout.strip() == "interrupted"


def test_kill_process_group_ignores_ended_process(workdir: Path) -> None:
    process = subprocess.Popen(wrap_command(detect_sandbox("none"), ["true"], workdir, DEFAULT_LIMITS, []))
    process.wait(timeout=RUN_TIMEOUT)
    kill_process_group(process.pid)


def test_kill_process_group_rejects_own_group() -> None:
    with pytest.raises(ValueError, match="rejects pid"):
        kill_process_group(os.getpgrp())


def test_watchdog_kills_too_many_processes(sandbox: Sandbox, workdir: Path, marker: str) -> None:
    code = (
        "import subprocess, sys, time\n"
        "for _ in range(6):\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)',\n"
        "                      sys.argv[1].removeprefix('children=')])\n"
        "time.sleep(60)\n"
    )
    argv = wrap_command(sandbox, python_argv(code, f"children={marker}"), workdir, DEFAULT_LIMITS, [])
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    watchdog = ProcessWatchdog(process.pid, max_tasks=5, interval=0.05).start()
    try:
        process.wait(timeout=30)
    finally:
        watchdog.stop()
        kill_process_group(process.pid)
    assert watchdog.exceeded
    assert watchdog.peak_tasks > 5
    assert wait_until(lambda: pids_with_marker(marker) == []), "children survived the watchdog"


def test_watchdog_leaves_small_sandbox_alone(sandbox: Sandbox, workdir: Path) -> None:
    argv = wrap_command(sandbox, python_argv("import time; time.sleep(1)"), workdir, DEFAULT_LIMITS, [])
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    with ProcessWatchdog(process.pid, max_tasks=20, interval=0.05) as watchdog:
        assert process.wait(timeout=RUN_TIMEOUT) == 0
    assert not watchdog.exceeded
    assert watchdog.peak_tasks >= 1


@pytest.mark.skipif(os.getuid() == 0, reason="the kernel never enforces RLIMIT_NPROC for root; "
                    "test_watchdog_kills_too_many_processes covers root")
def test_process_limit_stops_threads(sandbox: Sandbox, workdir: Path) -> None:
    code = (
        "import threading\n"
        "done = threading.Event()\n"
        "started = 0\n"
        "try:\n"
        "    for _ in range(40):\n"
        "        threading.Thread(target=done.wait, daemon=True).start()\n"
        "        started += 1\n"
        "except RuntimeError:\n"
        "    print('limited')\n"
        "done.set()\n"
    )
    limits = SandboxLimits(memory_bytes=GIB, cpu_seconds=60, max_processes=10, max_file_bytes=MIB)
    completed = run_sandboxed(sandbox, code, workdir, limits)
    assert completed.stdout.strip() == "limited", completed.stderr


# --- resource limits ------------------------------------------------------------------


def test_launcher_sets_every_limit(sandbox: Sandbox, workdir: Path) -> None:
    code = (
        "import resource\n"
        "for name in ('DATA', 'AS', 'CPU', 'NPROC', 'FSIZE', 'CORE'):\n"
        "    print(name, *resource.getrlimit(getattr(resource, 'RLIMIT_' + name)))\n"
    )
    limits = SandboxLimits(memory_bytes=GIB, cpu_seconds=30, max_processes=64, max_file_bytes=8 * MIB)
    completed = run_sandboxed(sandbox, code, workdir, limits)
    assert completed.returncode == 0, completed.stderr
    values = {line.split()[0]: tuple(map(int, line.split()[1:])) for line in completed.stdout.splitlines()}
    assert values["DATA"] == (GIB, GIB)
    assert values["AS"] == (GIB + ADDRESS_SPACE_HEADROOM_BYTES,) * 2
    assert values["CPU"] == (30, 32)
    assert values["NPROC"][0] >= 64, "limits-only mode adds the user's running tasks for non-root users"
    assert values["FSIZE"] == (8 * MIB, 8 * MIB)
    assert values["CORE"] == (0, 0)


ALLOCATE = """
import sys
try:
    block = bytearray(int(sys.argv[1]))
    print("allocated")
except MemoryError:
    print("MemoryError")
"""


def test_memory_limit_raises_memory_error(sandbox: Sandbox, workdir: Path) -> None:
    limits = SandboxLimits(memory_bytes=256 * MIB, cpu_seconds=60, max_processes=64, max_file_bytes=MIB)
    small = wrap_command(sandbox, python_argv(ALLOCATE, str(64 * MIB)), workdir, limits, [])
    large = wrap_command(sandbox, python_argv(ALLOCATE, str(2 * GIB)), workdir, limits, [])
    within = subprocess.run(small, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    beyond = subprocess.run(large, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert within.stdout.strip() == "allocated", within.stderr
    assert beyond.stdout.strip() == "MemoryError", beyond.stderr


def test_shared_mapping_hits_address_space_limit(sandbox: Sandbox, workdir: Path) -> None:
    """RLIMIT_DATA does not count MAP_SHARED mappings; RLIMIT_AS bounds them."""
    limits = SandboxLimits(memory_bytes=256 * MIB, cpu_seconds=60, max_processes=64, max_file_bytes=MIB)
    size = limits.memory_bytes + ADDRESS_SPACE_HEADROOM_BYTES + GIB
    code = (
        "import mmap, sys\n"
        "try:\n"
        "    mmap.mmap(-1, int(sys.argv[1]))\n"
        "    print('mapped')\n"
        "except OSError as error:\n"
        "    print(error.errno)\n"
    )
    argv = wrap_command(sandbox, python_argv(code, str(size)), workdir, limits, [])
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.stdout.strip() == str(errno.ENOMEM), completed.stderr


def test_torch_works_under_default_limits(sandbox: Sandbox, workdir: Path) -> None:
    code = (
        "import torch\n"
        "x = torch.zeros(1000, 1000)\n"
        "print(float((x + 1).sum()))\n"
        "try:\n"
        "    torch.empty(2 * 2**30)\n"  # 8 GiB of float32, twice the default memory limit
        "    print('allocated')\n"
        "except RuntimeError:\n"
        "    print('RuntimeError')\n"
    )
    completed = run_sandboxed(sandbox, code, workdir, timeout=180)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["1000000.0", "RuntimeError"]


def test_file_size_limit_stops_write(sandbox: Sandbox, workdir: Path) -> None:
    limits = SandboxLimits(memory_bytes=GIB, cpu_seconds=60, max_processes=64, max_file_bytes=MIB)
    code = (
        "import sys\n"
        "try:\n"
        "    with open(sys.argv[1], 'wb') as file:\n"
        "        file.write(b'x' * (2 * 2**20))\n"
        "    print('written')\n"
        "except OSError as error:\n"
        "    print(error.errno)\n"
    )
    target = workdir / "big.bin"
    argv = wrap_command(sandbox, python_argv(code, str(target)), workdir, limits, [])
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.stdout.strip() == str(errno.EFBIG), completed.stderr
    assert target.stat().st_size == MIB


def test_cpu_limit_kills_busy_loop(sandbox: Sandbox, workdir: Path) -> None:
    limits = SandboxLimits(memory_bytes=GIB, cpu_seconds=1, max_processes=64, max_file_bytes=MIB)
    started = time.monotonic()
    completed = run_sandboxed(sandbox, "while True:\n    pass\n", workdir, limits)
    elapsed = time.monotonic() - started
    assert terminating_signal(completed.returncode) == signal.SIGXCPU, completed.returncode
    assert elapsed < 30, f"the busy loop ran {elapsed:.1f} s"


# --- grader.limits on its own ---------------------------------------------------------


def test_launcher_runs_as_module() -> None:
    code = "import resource; print(*resource.getrlimit(resource.RLIMIT_CPU))"
    completed = subprocess.run(
        [sys.executable, "-m", "grader.limits", "--cpu", "5", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["5", "7"]


def test_launcher_reports_missing_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "grader.limits", "--", "no-such-command-for-the-grader"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    assert completed.returncode == EXIT_NOT_FOUND
    assert "command not found: 'no-such-command-for-the-grader'" in completed.stderr


@pytest.mark.parametrize("arguments", [["--cpu", "5", "true"], ["--cpu", "0", "--", "true"], ["--"]])
def test_launcher_rejects_invalid_arguments(arguments: list[str]) -> None:
    completed = subprocess.run([sys.executable, "-m", "grader.limits", *arguments],
                               capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert completed.returncode == EXIT_LAUNCHER_ERROR
    assert "grader.limits: error:" in completed.stderr
