"""Fork server for notebook kernels: one per grading worker, inside the sandbox.

A fresh kernel spends about 3 s of CPU importing torch and torchvision before the
first cell runs. This process imports them once, warms up ``torch.export`` and a
training step (both load lazily), and then forks one ``ipykernel`` kernel per
notebook. The grader starts it with ``python -I -m grader.forkserver`` inside
the same sandbox and limits a single kernel would get (see ``grader/kernels.py``).

Requests come as JSON lines on standard input; each gets one JSON line back:

- ``{"op": "start", "argv": [...], "env": {...}, "cwd": DIR, "log": FILE}``
  forks a kernel with ``argv`` as its ipykernel arguments and replies
  ``{"pid": PID}``. The kernel's standard error goes to ``log``.
- ``{"op": "poll", "pid": PID}`` replies ``{"status": STATUS}``: ``null`` while
  the kernel runs, then its exit status (negative for a signal).
- ``{"op": "signal", "pid": PID, "signal": NUMBER}`` signals the kernel's
  process group (the kernel is a session leader).
- ``{"op": "reset"}`` kills every process the notebook left behind and, with
  ``--pid-namespace``, empties the sandbox's own ``/tmp`` and ``/dev/shm`` and
  removes System V IPC objects, so the next notebook starts from a clean sandbox.

A failed request replies ``{"failure": MESSAGE}``.

Three things keep one notebook from reaching the next. The server is made
non-dumpable, so a kernel can neither ptrace it nor read its memory or file
descriptors through ``/proc``. A kernel closes the server's pipes before any
student code runs. And ``reset`` runs between notebooks. With ``--pid-namespace`` (the
bubblewrap sandbox), this server and its kernels are alone in a PID, IPC and
network namespace. The server is the namespace's pid 1, which no process in it
can kill or stop, and ``reset`` kills every process but itself. Without it
(limits-only), the server is a child subreaper, so it adopts the orphans of its
kernels, even those that left their session, and ``reset`` kills each kernel's
session and every child the server has. A process that keeps running after its
main thread exits shows as a zombie and survives that, and so does whatever a
notebook starts after it killed the server.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import resource
import shutil
import signal
import stat
import sys
import time
import traceback
from pathlib import Path
from typing import Any

PR_SET_NAME = 15
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
# The name a forked kernel shows in ps and top (its command line is the server's).
KERNEL_PROCESS_NAME = b"grader-kernel"
IPC_RMID = 0
# Folders of the bubblewrap sandbox that a kernel can write to besides its
# working folder. All are the sandbox's own, so emptying them touches no host file.
SCRATCH_FOLDERS = (Path("/tmp"), Path("/dev/shm"), Path("/dev/mqueue"))
RESET_ATTEMPTS = 100
RESET_PAUSE = 0.02


def _preload() -> None:
    """Import what every kernel needs and run each lazily loaded part of torch once.

    The warm-up runs with one torch thread, so no OpenMP thread pool exists when
    the server forks: a pool does not survive ``fork``.
    """
    import numpy  # noqa: F401
    import torch
    import torch.export
    import torchvision  # noqa: F401
    import ipykernel.debugger  # noqa: F401
    import ipykernel.ipkernel  # noqa: F401
    from ipykernel import kernelapp

    # traitlets builds and caches its view of every configurable class the first
    # time a command line is parsed, about 0.25 s that each kernel would pay again.
    kernelapp.IPKernelApp().parse_command_line([])
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(2 * 13 * 13, 10),
    )
    images = torch.zeros(4, 1, 28, 28)
    for optimiser in (torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.Adam(model.parameters())):
        loss = torch.nn.functional.cross_entropy(model(images), torch.zeros(4, dtype=torch.long))
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.eval(), (images,), dynamic_shapes=({0: batch},))
    torch.export.save(program, io.BytesIO())


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


def _set_dumpable(value: int) -> None:
    _prctl(PR_SET_DUMPABLE, value)


def _become_kernel(request: dict[str, Any]) -> int:
    """Turn this forked child into an ipykernel process; return its exit status."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(log, 2)
    # The server's request and reply pipes are among these: no notebook may talk to it.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    _set_dumpable(1)  # a normal process again, for the notebook's own tools
    ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(KERNEL_PROCESS_NAME), 0, 0, 0)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    import numpy

    numpy.random.seed()  # a fresh interpreter would have its own seed; `random` reseeds itself
    sys.argv = ["ipykernel_launcher", *request["argv"]]
    from ipykernel import kernelapp

    try:
        kernelapp.launch_new_instance()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 0
    return 0


def _start(request: dict[str, Any], children: dict[int, int | None]) -> dict[str, Any]:
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = _become_kernel(request)
        except BaseException:  # the child must never return into the server loop
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(status)
    children[pid] = None
    return {"pid": pid}


def _reap(children: dict[int, int | None]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in children:
            children[pid] = os.waitstatus_to_exitcode(status)


def _poll(request: dict[str, Any], children: dict[int, int | None]) -> dict[str, Any]:
    _reap(children)
    pid = int(request["pid"])
    if pid not in children:
        raise ValueError(f"no kernel with pid {pid} was started here")
    return {"status": children[pid]}


def _signal(request: dict[str, Any], children: dict[int, int | None]) -> dict[str, Any]:
    pid = int(request["pid"])
    if pid not in children:
        raise ValueError(f"no kernel with pid {pid} was started here")
    if children[pid] is None:
        try:
            os.killpg(pid, int(request["signal"]))
        except ProcessLookupError:
            pass
    return {}


def _live_processes() -> dict[int, int]:
    """Map each process visible here that is not a zombie to its parent's pid."""
    from grader.sandbox import _process_table

    return {pid: info.parent for pid, info in _process_table().items()}


def _other_processes() -> list[int]:
    """List the live processes of this PID namespace besides this one and its init."""
    return [pid for pid in _live_processes() if pid not in (1, os.getpid())]


def _kill_namespace(children: dict[int, int | None]) -> None:
    for _ in range(RESET_ATTEMPTS):
        try:
            os.kill(-1, signal.SIGKILL)  # every process here but this one and init
        except ProcessLookupError:
            pass
        _reap(children)
        # A killed kernel shows as a zombie before its exit status can be collected.
        if not _other_processes() and all(status is not None for status in children.values()):
            return
        time.sleep(RESET_PAUSE)
    raise RuntimeError(f"processes {_other_processes()} survived SIGKILL")


def _kill_descendants(children: dict[int, int | None]) -> None:
    """Kill the kernels with their sessions, and every other live child of this server.

    Without a PID namespace the server is a child subreaper, so a process whose
    parent ended becomes the server's child, even one that left its kernel's session.
    Killing such a process can orphan its own children, hence the loop.
    """
    from grader.sandbox import kill_process_group

    deadline = time.monotonic() + RESET_ATTEMPTS * RESET_PAUSE
    while time.monotonic() < deadline:
        kernels = [pid for pid, status in children.items() if status is None]
        adopted = [pid for pid, parent in _live_processes().items() if parent == os.getpid()]
        if not kernels and not adopted:
            return
        for pid in kernels:
            kill_process_group(pid)
        for pid in adopted:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(children)
        time.sleep(RESET_PAUSE)


def remove_tree(path: str) -> None:
    """Delete a file or folder tree, first making folders that a notebook locked writable."""

    def unlock(function: Any, failed: str, _: Any) -> None:
        parent = os.path.dirname(failed)
        os.chmod(parent, stat.S_IRWXU)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, stat.S_IRWXU)
        function(failed)

    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(path, onerror=unlock)
    else:
        os.unlink(path)


def _mount_points() -> list[Path]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        for line in mounts:
            # The mount point is the fifth field, with spaces and such escaped as octal.
            field = line.split()[4]
            points.append(Path(field.encode().decode("unicode_escape")))
    return points


def _empty_scratch() -> None:
    """Delete what the notebook left in the scratch folders.

    An entry that is, or contains, a mount point is kept: the sandbox mounts the
    working folder, and maybe the Python installation, inside ``/tmp``.
    """
    mounts = _mount_points()
    for folder in SCRATCH_FOLDERS:
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            path = Path(entry.path)
            if not any(point == path or path in point.parents for point in mounts):
                remove_tree(entry.path)


def _remove_ipc_objects() -> None:
    """Remove the System V shared memory, semaphores and queues of this IPC namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    removers = {
        "shm": lambda ident: libc.shmctl(ident, IPC_RMID, None),
        "sem": lambda ident: libc.semctl(ident, 0, IPC_RMID),
        "msg": lambda ident: libc.msgctl(ident, IPC_RMID, None),
    }
    for kind, remove in removers.items():
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1:
                remove(int(fields[1]))


# Settings that change by themselves, not through a notebook.
_VOLATILE_SETTINGS = {"/proc/sys/kernel/ns_last_pid"}


def _sysctl_values() -> dict[str, str]:
    """Read the /proc/sys settings this sandbox may write: its namespaces' own."""
    values = {}
    for folder, _, files in os.walk("/proc/sys"):
        for name in files:
            path = os.path.join(folder, name)
            if path in _VOLATILE_SETTINGS or not os.access(path, os.W_OK):
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as setting:
                    values[path] = setting.read()
            except OSError:
                continue
    return values


def _dev_listing() -> list[tuple[str, int, int, int, str]]:
    """List /dev, where a notebook could replace a device such as /dev/null with a file."""
    listing = []
    for folder, folders, files in os.walk("/dev"):
        folders[:] = [name for name in folders if os.path.join(folder, name) not in ("/dev/shm", "/dev/mqueue")]
        for name in sorted(folders + files):
            path = os.path.join(folder, name)
            status = os.lstat(path)
            target = os.readlink(path) if stat.S_ISLNK(status.st_mode) else ""
            listing.append((path, status.st_mode, status.st_rdev, status.st_ino, target))
    return listing


def _keys() -> list[tuple[str, ...]]:
    """List the kernel keys this process can see, without their changing use counts."""
    try:
        lines = Path("/proc/keys").read_text().splitlines()
    except OSError:
        return []
    return [(fields[0], fields[7], " ".join(fields[8:]).split(":")[0])
            for fields in (line.split() for line in lines) if len(fields) > 8]


def sandbox_state() -> dict[str, Any]:
    """Describe what a notebook could change in the sandbox, other than files in the
    scratch folders and processes, to reach the next notebook: this server's limits,
    priority, scheduling and CPU set, the namespaces' settings, /dev and kernel keys.
    Each kernel inherits the server's limits and scheduling."""
    return {
        "limits": {name: resource.getrlimit(getattr(resource, name))
                   for name in sorted(dir(resource)) if name.startswith("RLIMIT_")},
        "priority": os.getpriority(os.PRIO_PROCESS, 0),
        "scheduler": os.sched_getscheduler(0),
        "cpus": sorted(os.sched_getaffinity(0)),
        "oom_score_adj": Path("/proc/self/oom_score_adj").read_text().strip(),
        "settings": _sysctl_values(),
        "dev": _dev_listing(),
        "keys": _keys(),
    }


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changed = [key for key in before if key != "settings" and before[key] != after[key]]
    settings = before["settings"], after["settings"]
    changed += sorted(path for path in settings[0].keys() | settings[1].keys()
                      if settings[0].get(path) != settings[1].get(path))
    return changed


def _reset(children: dict[int, int | None], own_namespace: bool, clean: dict[str, Any]) -> dict[str, Any]:
    if not own_namespace:
        _kill_descendants(children)
        return {}
    _kill_namespace(children)
    _empty_scratch()
    _remove_ipc_objects()
    changed = _changes(clean, sandbox_state())
    if changed:
        # The grader then starts a new sandbox, so the change never reaches the next notebook.
        raise RuntimeError("the notebook changed the sandbox: " + ", ".join(changed[:10]))
    return {}


def serve(own_namespace: bool) -> None:
    """Preload, then serve requests from standard input until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are for the kernels
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not reach the grader
    _preload()
    if own_namespace:
        _empty_scratch()  # what the imports left in /tmp, so every kernel finds the same
    else:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # in a PID namespace, init adopts orphans anyway
    clean = sandbox_state() if own_namespace else {}
    _set_dumpable(0)
    children: dict[int, int | None] = {}
    handlers = {
        "start": lambda request: _start(request, children),
        "poll": lambda request: _poll(request, children),
        "signal": lambda request: _signal(request, children),
        "reset": lambda request: _reset(children, own_namespace, clean),
    }
    replies.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    replies.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            reply = handlers[request["op"]](request)
        except Exception as error:  # a bad request must not end the server
            reply = {"failure": f"{type(error).__name__}: {str(error)[:500]}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grader.forkserver", description=__doc__.split("\n")[0])
    parser.add_argument("--pid-namespace", action="store_true",
                        help="this server and its kernels are alone in their PID, IPC and mount namespaces")
    options = parser.parse_args(args)
    serve(options.pid_namespace)


if __name__ == "__main__":
    main()
