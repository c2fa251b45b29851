"""Kernels forked from a warm fork server, behind jupyter_client's kernel manager API.

``ForkServer`` is the grader's side of one ``grader.forkserver`` process (one per
grading worker) running in the sandbox. It hands out a fresh working folder
inside its sandbox for each notebook, and ``reset`` clears the sandbox between
notebooks. ``ForkServerKernelManager`` is an ``AsyncKernelManager`` whose
kernels that server forks, so nbclient drives them like any other kernel:
interrupts still arrive as SIGINT to the kernel's process group.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import shutil
import signal
import sys
import tempfile
import time
import uuid
from queue import Empty
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from .forkserver import remove_tree
from .sandbox import (
    Sandbox,
    SandboxLimits,
    _process_table,
    _sandbox_members,
    kill_process_group,
    sandbox_cpu_seconds,
    wrap_command,
)
from .service import LineService, ServiceError

log = logging.getLogger(__name__)

# Seconds for a start, poll or signal request, and for a reset, which may wait
# for many processes to die and delete many files.
REQUEST_TIMEOUT = 30.0
RESET_TIMEOUT = 120.0
# Seconds to wait for the processes of a killed sandbox to end.
CLOSE_TIMEOUT = 10.0
# The status reported for a kernel whose fork server died: it died with it.
LOST_STATUS = -signal.SIGKILL
# Seconds to wait for a kernel_info reply, and then for the first IOPub message,
# before a new kernel_info request is sent.
READY_REPLY_WAIT = 1.0
READY_IOPUB_WAIT = 0.2


class ForkServer(LineService):
    """One ``python -m grader.forkserver`` process in its own sandbox.

    The sandbox's working folder is a private temporary folder (``slot``); each
    notebook gets a new folder inside it from ``new_workdir``. Call ``reset``
    after each notebook and ``close`` at the end.
    """

    name = "the kernel fork server"
    greeting = True

    def __init__(self, sandbox: Sandbox, limits: SandboxLimits, hidden: list[Path],
                 env: dict[str, str]) -> None:
        self.slot = Path(tempfile.mkdtemp(prefix="grader-kernels-")).resolve()
        self.sandbox = sandbox
        argv = [sys.executable, "-I", "-m", "grader.forkserver"]
        if sandbox.kind == "bubblewrap":
            argv.append("--pid-namespace")
        # The server is the sandbox's pid 1. bwrap's own init would have the server's
        # pipes open, and any kernel could reach them through /proc/1/fd.
        super().__init__(argv, wrap=lambda command: wrap_command(sandbox, command, self.slot, limits, hidden,
                                                                 command_is_init=True),
                         cwd=self.slot, env={**env, "HOME": str(self.slot)})
        self._numbers = itertools.count(1)
        self.idle_tasks = 0  # processes and threads of the sandbox with no kernel running
        self._kernels: list[int] = []  # limits-only: kernels started since the last reset

    def new_workdir(self) -> Path:
        """Create an empty working folder for the next notebook, visible in the sandbox."""
        workdir = self.slot / f"notebook-{next(self._numbers)}"
        workdir.mkdir()
        return workdir

    def ensure_started(self) -> None:
        """Start the server if it is not running and wait until it has imported torch."""
        self._ready()
        if not self.idle_tasks and self.pid is not None:
            table = _process_table()
            self.idle_tasks = sum(table[pid].threads for pid in _sandbox_members(self.pid, table))

    def cpu_seconds(self) -> float | None:
        """Return the CPU seconds the sandbox has used since the server started, or
        None when no server runs."""
        if not self.running or self.pid is None:
            return None
        return sandbox_cpu_seconds(self.pid)

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log_file: Path) -> tuple[int, int]:
        """Fork a kernel; return its pid inside the sandbox and the server's generation.

        A server that died is started again first.
        """
        message = {"op": "start", "argv": argv, "env": env, "cwd": str(cwd), "log": str(log_file)}
        try:
            self.ensure_started()
            pid = self._ask(message, "pid")
        except ServiceError as error:
            log.warning("%s; starting a new one", error)
            self.close()
            self.ensure_started()
            pid = self._ask(message, "pid")
        if self.sandbox.kind == "limits-only":
            self._kernels.append(pid)  # a host pid, as there is no PID namespace
        return pid, self.generation

    def poll(self, pid: int, generation: int) -> int | None:
        """Return the exit status of a kernel of ``generation``, or None while it runs."""
        if generation != self.generation or not self.running:
            return LOST_STATUS  # its server, and so its sandbox, is gone
        try:
            return self._ask({"op": "poll", "pid": pid}, "status", allow_null=True)
        except ServiceError as error:
            log.warning("%s; the kernel %d is lost", error, pid)
            self.close()
            return LOST_STATUS

    def _ask(self, message: dict[str, Any], field: str, allow_null: bool = False) -> Any:
        """Send ``message`` and return the whole number in ``field`` of the reply, or
        None where ``allow_null`` lets the field be null.

        A reply without it means the server and the grader are out of step, so the
        server is killed.
        """
        reply = self.request(message, REQUEST_TIMEOUT)
        value = reply.get(field, "missing")
        if (value is None and allow_null) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        self.close()
        raise ServiceError(f"{self.name} sent a reply without a whole number in {field!r}: {reply!r:.200}")

    def signal(self, pid: int, generation: int, signum: int) -> None:
        """Send ``signum`` to the process group of a kernel of ``generation``."""
        if generation != self.generation or not self.running:
            return
        try:
            self.request({"op": "signal", "pid": pid, "signal": int(signum)}, REQUEST_TIMEOUT)
        except ServiceError as error:
            log.warning("%s; the kernel %d is lost", error, pid)
            self.close()

    def reset(self, keep: Path | None = None) -> None:
        """Kill what the last kernel left running and empty the sandbox's folders but ``keep``.

        When the server cannot do that, it is killed with its whole sandbox and the
        next kernel gets a new one.
        """
        if self.running:
            try:
                self.request({"op": "reset"}, RESET_TIMEOUT)
                self._kernels.clear()
            except ServiceError as error:
                log.warning("%s; starting a new sandbox for the next notebook", error)
                self.close()
        self._kill_kernels()
        for entry in self.slot.iterdir():
            if entry != keep:
                self.remove_workdir(entry)

    def remove_workdir(self, workdir: Path) -> None:
        """Delete a notebook's working folder, which its kernel may have locked."""
        try:
            remove_tree(str(workdir))
        except OSError as error:
            log.warning("failed to delete %s after a notebook: %s", workdir, error)

    def close(self) -> None:
        """Kill the server with its sandbox, and in limits-only mode its kernels too, and
        wait until they have ended, so that none writes to the folder any more."""
        members = []
        if self.running and self.pid is not None:
            for pid in _sandbox_members(self.pid, _process_table()):
                try:
                    members.append(psutil.Process(pid))
                except psutil.NoSuchProcess:
                    continue
        super().close()
        self._kill_kernels()
        for member in members:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                continue
        _wait_until_ended(members, CLOSE_TIMEOUT)

    def _kill_kernels(self) -> None:
        """Kill the kernels of a limits-only server that could not reset, and what they
        started in their sessions. Without a PID namespace they outlive their server."""
        table = _process_table()
        for pid in self._kernels:
            # A kernel leads its own session; any other process with that pid is not it.
            if pid in table and table[pid].session == pid:
                kill_process_group(pid)
        self._kernels.clear()

    def shut_down(self) -> None:
        """Close the server and delete its folder."""
        self.close()
        shutil.rmtree(self.slot, ignore_errors=True)


def _wait_until_ended(processes: list[psutil.Process], timeout: float) -> None:
    """Wait up to ``timeout`` seconds until none of ``processes`` runs.

    A zombie counts as ended: it runs no code. Once bwrap is gone, the server is
    a child of the host's init, which took 1.6 s to reap it on the development machine.
    """
    deadline = time.monotonic() + timeout
    pending = processes
    while pending and time.monotonic() < deadline:
        pending = [process for process in pending if _still_running(process)]
        if pending:
            time.sleep(0.01)


def _still_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class _ForkedKernel:
    """The ``process`` of a forked kernel, for code that expects a ``Popen``."""

    def __init__(self, server: ForkServer, pid: int, generation: int) -> None:
        self.server = server
        self.pid = pid
        self.generation = generation
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.poll(self.pid, self.generation)
        return self.returncode


class _ForkServerProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Launch, signal and watch a kernel through the fork server instead of ``Popen``."""

    server: ForkServer

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        cwd = Path(kwargs.get("cwd") or self.server.slot)
        pid, generation = self.server.spawn(cmd, dict(kwargs.get("env") or {}), cwd,
                                            cwd / ".grader-kernel.log")
        self.process = _ForkedKernel(self.server, pid, generation)
        self.pid = pid
        self.pgid = pid
        self.cwd = cwd
        return self.connection_info

    async def poll(self) -> int | None:
        return self.process.poll() if self.process is not None else 0

    async def wait(self) -> int | None:
        if self.process is None:
            return 0
        while (status := self.process.poll()) is None:
            await asyncio.sleep(0.05)
        self.process = None
        return status

    async def send_signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.server.signal(self.pid, self.process.generation, signum)

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        return None


class _GraderKernelSpecs(KernelSpecManager):
    """Hand out one kernelspec, whatever the notebook names: ipykernel in the fork server.

    Notebooks name all sorts of kernels (conda envs, VS Code, Colab); grading always
    runs the interpreter that has the grader's torch installed. The argv contains only
    the kernel's own arguments, because the fork server is already running Python.
    """

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=["-f", "{connection_file}"], display_name="Python 3 (grader)",
                          language="python", resource_dir="")


class ExpiringShellChannel(AsyncZMQSocketChannel):  # type: ignore[misc]
    """A shell channel whose current wait for a message can be ended early.

    ``expire()`` makes a waiting ``get_msg`` raise ``Empty`` as if its timeout had
    passed, so nbclient stops the cell the way it stops one over its time limit.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expired = asyncio.Event()

    def expire(self) -> None:
        self._expired.set()

    def renew(self) -> None:
        """Let later waits run to their own timeout again."""
        self._expired.clear()

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        if self._expired.is_set():
            raise Empty
        receive = asyncio.ensure_future(super().get_msg(timeout))
        expired = asyncio.ensure_future(self._expired.wait())
        try:
            await asyncio.wait({receive, expired}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            expired.cancel()
        if not receive.done():
            receive.cancel()
            await asyncio.gather(receive, return_exceptions=True)
            raise Empty
        return receive.result()


class GraderKernelClient(AsyncKernelClient):  # type: ignore[misc]
    """A kernel client that is ready once the kernel replies and IOPub delivers.

    jupyter_client's own ``wait_for_ready`` (8.10) then also reads IOPub until it has been
    quiet for 0.2 s, which every notebook would pay as start-up time. Leftover
    status messages do no harm, because nbclient matches replies by request id.
    Its shell channel can end a wait early (``ExpiringShellChannel``).
    """

    shell_channel_class = Type(ExpiringShellChannel)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Send kernel_info requests until the kernel replies to one and an IOPub message
        arrives; raise RuntimeError when the kernel dies or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + (math.inf if timeout is None else timeout)
        iopub_live = False
        while True:
            request = self.kernel_info()
            reply = await self._shell_reply(request)
            if reply is not None:
                # ipykernel greets each new IOPub subscriber, and it publishes a busy and
                # an idle status for every request, so one message proves the channel works.
                iopub_live = iopub_live or await self._iopub_message()
                if iopub_live:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self._async_is_alive():
                raise RuntimeError("the kernel died before it replied to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"kernel_info timed out: the kernel did not reply within {timeout} s")

    async def _shell_reply(self, request: str) -> dict[str, Any] | None:
        """Return the reply to ``request``, or None when none came within READY_REPLY_WAIT."""
        until = time.monotonic() + READY_REPLY_WAIT
        while (left := until - time.monotonic()) > 0:
            try:
                message = await self.shell_channel.get_msg(timeout=left)
            except Empty:
                return None
            if message.get("parent_header", {}).get("msg_id") == request:
                return message
        return None

    async def _iopub_message(self) -> bool:
        try:
            await self.iopub_channel.get_msg(timeout=READY_IOPUB_WAIT)
        except Empty:
            return False
        return True


class ForkServerKernelManager(AsyncKernelManager):  # type: ignore[misc]
    """An ``AsyncKernelManager`` whose kernels ``server`` forks."""

    def __init__(self, server: ForkServer, **kwargs: Any) -> None:
        super().__init__(kernel_name="python3", kernel_spec_manager=_GraderKernelSpecs(),
                         client_class="grader.kernels.GraderKernelClient",
                         client_factory=GraderKernelClient, **kwargs)
        self._server = server

    async def _async_pre_start_kernel(self, **kwargs: Any) -> Any:
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or str(uuid.uuid4())
            provisioner = _ForkServerProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec,
                                                 parent=self)
            provisioner.server = self._server
            self.provisioner = provisioner
        return await super()._async_pre_start_kernel(**kwargs)
