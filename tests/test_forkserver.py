"""Tests for the kernel fork server (grader.forkserver, grader.kernels) with real kernels.

Each test runs in each sandbox kind that works here, like tests/test_sandbox.py:
limits-only always, bubblewrap when its trial run succeeds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from grader.execute import kernel_env
from grader.kernels import LOST_STATUS, ForkServer, ForkServerKernelManager, _still_running
from grader.sandbox import DEFAULT_LIMITS, Sandbox, _process_table, _sandbox_members, detect_sandbox
from grader.service import ServiceError

pytestmark = pytest.mark.slow

KINDS = ["limits-only", "bubblewrap"]


@pytest.fixture(params=KINDS)
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    if request.param == "limits-only":
        return detect_sandbox("none")
    found = detect_sandbox("auto")
    if found.kind != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here: {found.fallback_reason}")
    return found


def _serve(sandbox: Sandbox) -> Iterator[ForkServer]:
    started = ForkServer(sandbox, DEFAULT_LIMITS, [], kernel_env(Path("/"), 1))
    yield started
    started.shut_down()
    assert not started.slot.exists()


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[ForkServer]:
    yield from _serve(sandbox)


@pytest.fixture
def bubblewrap_server() -> Iterator[ForkServer]:
    """A server in bubblewrap, where it is pid 1 of namespaces its notebooks share."""
    found = detect_sandbox("auto")
    if found.kind != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here: {found.fallback_reason}")
    yield from _serve(found)


def run_in_kernel(server: ForkServer, code: str, workdir: Path | None = None) -> dict:
    """Start a kernel in ``workdir`` (a new one by default), run ``code``, and return
    the JSON that the code printed last. The kernel is left running."""
    return asyncio.run(_run_in_kernel(server, code, workdir or server.new_workdir()))


async def _start_kernel(server: ForkServer, workdir: Path) -> tuple[ForkServerKernelManager, Any]:
    """Start a kernel in ``workdir`` and return its manager and a ready client."""
    manager = ForkServerKernelManager(server, transport="ipc", ip=str(workdir / ".kernel"),
                                      connection_file=str(workdir / ".kernel.json"))
    await manager.start_kernel(env=kernel_env(workdir, 1), cwd=str(workdir))
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
    except BaseException:
        client.stop_channels()
        raise
    return manager, client


async def _run_in_kernel(server: ForkServer, code: str, workdir: Path) -> dict:
    _, client = await _start_kernel(server, workdir)
    try:
        printed: list[str] = []

        def keep(message: dict) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])

        reply = await client.execute_interactive(code, timeout=60, output_hook=keep)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
    return json.loads("".join(printed).strip().splitlines()[-1])


def test_kernel_starts_with_torch_imported(server: ForkServer) -> None:
    report = run_in_kernel(server, "import sys, os, torch\n"
                                   "print(__import__('json').dumps({'preloaded': 'torchvision' in sys.modules,"
                                   " 'cwd': os.getcwd(), 'home': os.environ['HOME'],"
                                   " 'threads': torch.get_num_threads()}))")
    assert report["preloaded"] is True
    assert Path(report["cwd"]).parent == server.slot
    assert report["home"] == report["cwd"]


def test_server_reports_unknown_kernel(server: ForkServer) -> None:
    server.ensure_started()
    with pytest.raises(ServiceError, match="no kernel with pid 999"):
        server.request({"op": "poll", "pid": 999}, 30)
    with pytest.raises(ServiceError, match="KeyError"):
        server.request({"op": "fly"}, 30)
    assert server.running  # a bad request does not end the server


def _member_names(server: ForkServer) -> list[str]:
    names = []
    for pid in _sandbox_members(server.pid, _process_table()):
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return names


def test_reset_kills_kernel_and_children(server: ForkServer) -> None:
    report = run_in_kernel(server, "import subprocess, os, json\n"
                                   "child = subprocess.Popen(['sleep', '300'])\n"
                                   "print(json.dumps({'pid': os.getpid()}))")
    assert "sleep" in _member_names(server)
    server.reset()
    assert "sleep" not in _member_names(server)
    table = _process_table()
    assert sum(table[pid].threads for pid in _sandbox_members(server.pid, table)) <= server.idle_tasks
    assert server.poll(report["pid"], server.generation) == -signal.SIGKILL
    assert list(server.slot.iterdir()) == []


def test_reset_kills_orphans_in_new_sessions(server: ForkServer) -> None:
    # The shell ends at once, so its background job is orphaned in a session of its own.
    marker = f"{900 + os.getpid() % 100}.{time.time_ns() % 10**6:06d}"
    run_in_kernel(server, "import subprocess, json\n"
                          f"subprocess.run('setsid sleep {marker} > /dev/null 2>&1 &', shell=True)\n"
                          "print(json.dumps({}))")
    deadline = time.monotonic() + 10
    while not _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker)
    server.reset()
    assert _processes_with(marker) == []


def _processes_with(argument: str) -> list[int]:
    return [process.pid for process in psutil.process_iter(["cmdline"])
            if argument in (process.info["cmdline"] or [])]


def test_kernel_cannot_reach_the_server(server: ForkServer) -> None:
    report = run_in_kernel(server, "import os, json\n"
                                   "server = os.getppid()\n"
                                   "def opens(path):\n"
                                   "    try:\n"
                                   "        open(path, 'rb').close()\n"
                                   "        return True\n"
                                   "    except OSError:\n"
                                   "        return False\n"
                                   "print(json.dumps({'mem': opens(f'/proc/{server}/mem'),"
                                   " 'stdin': opens(f'/proc/{server}/fd/0'),"
                                   " 'stdout': opens(f'/proc/{server}/fd/1'),"
                                   " 'init_stdout': opens('/proc/1/fd/1'),"
                                   " 'fds': [os.readlink(f'/proc/self/fd/{fd}') for fd in os.listdir('/proc/self/fd')"
                                   " if os.path.exists(f'/proc/self/fd/{fd}')]}))")
    if server.sandbox.kind == "bubblewrap" or os.getuid() != 0:
        # Root outside a sandbox keeps CAP_SYS_PTRACE, which overrides non-dumpable.
        assert report["mem"] is False
        assert report["stdin"] is False
        assert report["stdout"] is False
        assert report["init_stdout"] is False
    server_pipes = {os.readlink(f"/proc/{_server_host_pid(server)}/fd/{fd}") for fd in (0, 1)}
    assert not server_pipes & set(report["fds"])


def test_kernel_cannot_stop_the_server(bubblewrap_server: ForkServer) -> None:
    server = bubblewrap_server
    report = run_in_kernel(server, "import os, signal, json\n"
                                   "server = os.getppid()\n"
                                   "for number in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):\n"
                                   "    os.kill(server, number)\n"
                                   "print(json.dumps({'server': server, 'pid': os.getpid()}))")
    assert report["server"] == 1
    assert server.poll(report["pid"], server.generation) is None  # the server still replies
    generation = server.generation
    server.reset()
    assert server.generation == generation


def test_reply_out_of_step_restarts_the_server(server: ForkServer) -> None:
    server.ensure_started()
    generation = server.generation
    with pytest.raises(ServiceError, match="without a whole number in 'pid'"):
        server._ask({"op": "reset"}, "pid")
    assert not server.running
    run_in_kernel(server, "print('{}')")
    assert server.generation == generation + 1


def _server_host_pid(server: ForkServer) -> int:
    """Find the host pid of the server process: the member of its sandbox that runs
    grader.forkserver and whose parent does not (forked kernels share its command line)."""
    table = _process_table()
    running = set()
    for pid in _sandbox_members(server.pid, table):
        try:
            if b"grader.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                running.add(pid)
        except OSError:
            continue
    (found,) = [pid for pid in running if table[pid].parent not in running]
    return found


def test_next_notebook_starts_clean(bubblewrap_server: ForkServer) -> None:
    server = bubblewrap_server
    first = run_in_kernel(server, "import ctypes, os, subprocess, json\n"
                                  "open('/tmp/left-behind', 'w').write('x')\n"
                                  "os.makedirs('/tmp/locked/inner')\n"
                                  "os.chmod('/tmp/locked', 0)\n"
                                  "open('/dev/shm/left-behind', 'w').write('x')\n"
                                  "libc = ctypes.CDLL(None)\n"
                                  "segment = libc.shmget(1234, 4096, 0o1600)\n"
                                  "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
                                  "print(json.dumps({'segment': segment, 'cwd': os.getcwd()}))")
    assert first["segment"] >= 0
    server.reset()
    second = run_in_kernel(server, "import os, json\n"
                                   "others = [p for p in os.listdir('/proc') if p.isdigit()"
                                   " and int(p) not in (1, os.getpid(), os.getppid())]\n"
                                   "print(json.dumps({'tmp': sorted(os.listdir('/tmp')),"
                                   " 'shm': os.listdir('/dev/shm'),"
                                   " 'ipc': open('/proc/sysvipc/shm').read().splitlines()[1:],"
                                   " 'others': others, 'first': os.path.exists(" + repr(first["cwd"]) + ")}))")
    assert "left-behind" not in second["tmp"]
    assert "locked" not in second["tmp"]
    assert second["shm"] == []
    assert second["ipc"] == []
    assert second["first"] is False
    # None of the first notebook's processes is left.
    assert not any(_command_of(server, pid) == "sleep" for pid in second["others"])


def test_changed_sandbox_is_replaced(bubblewrap_server: ForkServer) -> None:
    server = bubblewrap_server
    clean = run_in_kernel(server, "import json, resource, socket\n"
                                  "print(json.dumps({'fsize': resource.getrlimit(resource.RLIMIT_FSIZE),"
                                  " 'host': socket.gethostname()}))")
    server.reset()
    generation = server.generation
    run_in_kernel(server, "import ctypes, os, resource\n"
                          "resource.prlimit(1, resource.RLIMIT_FSIZE, (1, 1))\n"
                          "os.setpriority(os.PRIO_PROCESS, 1, 19)\n"
                          "open('/proc/sys/kernel/hostname', 'w').write('changed')\n"
                          "open('/dev/planted', 'w').write('x')\n"
                          "queue = ctypes.CDLL('librt.so.1').mq_open(b'/planted', os.O_CREAT | os.O_RDWR, 0o600, None)\n"
                          "assert queue >= 0 and os.listdir('/dev/mqueue') == ['planted']\n"
                          "print('{}')")
    server.reset()
    assert server.generation == generation  # the reset failed, so the sandbox is gone
    assert not server.running
    after = run_in_kernel(server, "import json, os, resource, socket\n"
                                  "print(json.dumps({'fsize': resource.getrlimit(resource.RLIMIT_FSIZE),"
                                  " 'host': socket.gethostname(), 'priority': os.getpriority(os.PRIO_PROCESS, 0),"
                                  " 'dev': os.path.exists('/dev/planted'), 'queues': os.listdir('/dev/mqueue')}))")
    assert server.generation == generation + 1
    assert after == {**clean, "priority": 0, "dev": False, "queues": []}


def test_message_queues_are_emptied(bubblewrap_server: ForkServer) -> None:
    server = bubblewrap_server
    run_in_kernel(server, "import ctypes, os\n"
                          "ctypes.CDLL('librt.so.1').mq_open(b'/left', os.O_CREAT | os.O_RDWR, 0o600, None)\n"
                          "print('{}')")
    generation = server.generation
    server.reset()
    after = run_in_kernel(server, "import json, os\nprint(json.dumps(os.listdir('/dev/mqueue')))")
    assert after == []
    assert server.generation == generation  # a queue alone does not cost a new sandbox


def _command_of(server: ForkServer, inner_pid: str) -> str:
    """Return the command name of the sandbox member whose innermost pid is ``inner_pid``."""
    for pid in _sandbox_members(server.pid, _process_table()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("NSpid", "").split()[-1:] == [inner_pid]:
            return fields.get("Name", "").strip()
    return ""


def test_server_killed_by_notebook_is_replaced(server: ForkServer) -> None:
    first = run_in_kernel(server, "import os, json\nprint(json.dumps({'pid': os.getpid(), 'generation': 0}))")
    generation = server.generation
    host_pid = _server_host_pid(server)
    os.kill(host_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.running and server.sandbox.kind == "bubblewrap" and time.monotonic() < deadline:
        time.sleep(0.1)  # bwrap ends when its command does
    assert server.poll(first["pid"], generation) in (LOST_STATUS, None)
    server.reset()
    if server.sandbox.kind == "limits-only":
        # No PID namespace ends the orphaned kernel; the reset must have killed it.
        deadline = time.monotonic() + 10
        while _is_session_leader(first["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)  # SIGKILL was sent; the process may take a moment to end
        assert not _is_session_leader(first["pid"])
    second = run_in_kernel(server, "import json, sys\nprint(json.dumps({'ok': 'torch' in sys.modules}))")
    assert second["ok"] is True
    assert server.generation == generation + 1


def _is_session_leader(pid: int) -> bool:
    table = _process_table()
    return pid in table and table[pid].session == pid


def test_kernel_exit_status_reported(server: ForkServer) -> None:
    async def exit_with_seven() -> int | None:
        manager, client = await _start_kernel(server, server.new_workdir())
        try:
            client.execute("import os\nos._exit(7)")
            deadline = time.monotonic() + 30
            while await manager.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return await manager.provisioner.poll()
        finally:
            client.stop_channels()

    assert asyncio.run(exit_with_seven()) == 7


@pytest.mark.parametrize("signum, message", [
    (signal.SIGKILL, "the kernel died before it replied to kernel_info"),
    (signal.SIGSTOP, "kernel_info timed out: the kernel did not reply within 2 s"),
])
def test_unready_kernel_raises(server: ForkServer, signum: int, message: str) -> None:
    async def start_and_signal() -> None:
        workdir = server.new_workdir()
        manager = ForkServerKernelManager(server, transport="ipc", ip=str(workdir / ".kernel"),
                                          connection_file=str(workdir / ".kernel.json"))
        await manager.start_kernel(env=kernel_env(workdir, 1), cwd=str(workdir))
        await manager.signal_kernel(signum)
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=2)
        finally:
            client.stop_channels()
            server.reset()

    with pytest.raises(RuntimeError, match=message):
        asyncio.run(start_and_signal())


def test_zombie_counts_as_ended() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    finished = subprocess.Popen(["true"])
    try:
        zombie = psutil.Process(finished.pid)
        deadline = time.monotonic() + 10
        while zombie.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert zombie.status() == psutil.STATUS_ZOMBIE  # not reaped, because no process waited for it
        assert not _still_running(zombie)
        assert _still_running(psutil.Process(sleeper.pid))
    finally:
        sleeper.kill()
        sleeper.wait()
        finished.wait()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
