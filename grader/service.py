"""A long-lived helper process that serves JSON-line requests, with a time limit per request.

The model check process and the kernel fork server are both such services: the
grader starts one per worker in the sandbox, so each pays its torch import once.
A request that fails or runs past its limit kills the process, and the next
request starts a new one.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


class ServiceError(Exception):
    """The service process failed, exited or ran past its time limit."""


class LineService:
    """Host side of one service process started from ``argv``, wrapped by ``wrap``.

    ``name`` starts each error message. A service that writes a first line when
    it is ready sets ``greeting``: the first request waits up to
    ``startup_timeout`` seconds for that line.
    """

    name = "the service"
    greeting = False
    startup_timeout = 120.0

    def __init__(self, argv: list[str], wrap: Callable[[list[str]], list[str]] = list,
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self._argv = argv
        self._wrap = wrap
        self._cwd = cwd
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._buffer = b""
        self.hello: dict[str, Any] = {}  # the greeting line of the running process
        self.generation = 0  # how many processes were started, so callers can tell them apart

    @property
    def pid(self) -> int | None:
        """The host pid of the started process (the sandbox launcher), or None."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the process unless it runs; return at once, without waiting for it."""
        if self.running:
            return
        self.close()
        self.generation += 1
        self._stderr = tempfile.TemporaryFile()
        self._buffer = b""
        self.hello = {}
        self._process = subprocess.Popen(
            self._wrap(self._argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, cwd=self._cwd, env=self._env, start_new_session=True,
        )

    def stderr_tail(self) -> str:
        """Return the last line the process wrote to its standard error."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1][:500] if lines else ""

    def _read_line(self, process: subprocess.Popen[bytes], deadline: float) -> bytes:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError
                chunk = os.read(process.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise EOFError
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _ready(self) -> subprocess.Popen[bytes]:
        self.start()
        process = self._process
        assert process is not None
        if self.greeting and not self.hello:
            self.hello = self._receive(process, self.startup_timeout, "took to start")
        return process

    def _receive(self, process: subprocess.Popen[bytes], timeout: float, activity: str) -> dict[str, Any]:
        try:
            reply = json.loads(self._read_line(process, time.monotonic() + timeout))
        except TimeoutError:
            self.close()
            raise ServiceError(f"{self.name} {activity} longer than {timeout:.0f} s") from None
        except (EOFError, json.JSONDecodeError):
            detail = self.stderr_tail()
            self.close()
            raise ServiceError(f"{self.name} failed: {detail or 'the process exited'}") from None
        if not isinstance(reply, dict):
            self.close()
            raise ServiceError(f"{self.name} sent a reply that is not an object")
        return reply

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and return the reply; raise ServiceError on failure or timeout."""
        process = self._ready()
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(message).encode() + b"\n")
            process.stdin.flush()
        except BrokenPipeError:
            detail = self.stderr_tail()
            self.close()
            raise ServiceError(f"{self.name} failed: {detail or 'the process exited'}") from None
        reply = self._receive(process, timeout, "ran")
        if "failure" in reply:
            raise ServiceError(f"{self.name} failed: {reply['failure']}")
        return reply

    def close(self) -> None:
        """Kill the process, and with it its sandbox, and forget it."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
