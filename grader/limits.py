"""Set resource limits on this process, then replace it with a command.

Usage::

    python -I grader/limits.py [--memory BYTES] [--address-space BYTES]
        [--cpu SECONDS] [--processes N] [--file-size BYTES]
        [--ignore-sigint] [--keep-session] -- COMMAND [ARG ...]

``grader.sandbox`` starts every process that runs student code through this
launcher; ``python -m grader.limits`` works too. The limits are inherited by
the command and everything it starts. The launcher imports only the standard
library, so it starts fast and needs nothing but the interpreter.

Unless ``--keep-session`` is given, the launcher calls ``setsid()`` when it is
not already a session leader. The command then has no controlling terminal and
is the leader of a process group that can be killed as a whole. SIGPIPE and
SIGXFSZ are reset to their default action before the exec, because Python
ignores them and ignored signals stay ignored across ``exec``. SIGINT is reset
too, or set to ignored with ``--ignore-sigint``.

Exit status, when the command does not start: 125 for invalid arguments or a
limit that cannot be set, 126 when the command cannot be executed, 127 when
it is not found.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys

EXIT_LAUNCHER_ERROR = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

# Seconds of CPU time between the soft RLIMIT_CPU (SIGXCPU, which a process can
# catch) and the hard one (SIGKILL).
CPU_KILL_GRACE_SECONDS = 2


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"grader.limits: error: {message}\n")
        sys.exit(EXIT_LAUNCHER_ERROR)


def _parse(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split ``args`` at the first ``--`` into launcher options and the command."""
    parser = _ArgumentParser(
        prog="python -m grader.limits",
        description="Set resource limits, then exec COMMAND (given after --).",
    )
    parser.add_argument("--memory", type=int, metavar="BYTES",
                        help="RLIMIT_DATA: heap and private writable mappings, in bytes")
    parser.add_argument("--address-space", type=int, metavar="BYTES",
                        help="RLIMIT_AS: all virtual memory, in bytes")
    parser.add_argument("--cpu", type=int, metavar="SECONDS",
                        help="RLIMIT_CPU: CPU time per process, in seconds")
    parser.add_argument("--processes", type=int, metavar="N",
                        help="RLIMIT_NPROC: processes and threads of the real user id")
    parser.add_argument("--file-size", type=int, metavar="BYTES",
                        help="RLIMIT_FSIZE: largest file the command may write, in bytes")
    parser.add_argument("--ignore-sigint", action="store_true",
                        help="start the command with SIGINT ignored instead of the default action")
    parser.add_argument("--keep-session", action="store_true",
                        help="do not call setsid(), even when not a session leader")
    if "--" not in args:
        parser.error("missing '--' before the command")
    split = args.index("--")
    options = parser.parse_args(args[:split])
    command = args[split + 1 :]
    if not command:
        parser.error("missing command after '--'")
    for name in ("memory", "address_space", "cpu", "processes", "file_size"):
        value = getattr(options, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    return options, command


def _set_limit(kind: int, name: str, soft: int, hard: int | None = None) -> None:
    """Lower one limit to ``soft`` (and ``hard``, default ``soft``), never above the current hard limit."""
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(kind)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, current_hard)
    try:
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError) as error:
        sys.stderr.write(f"grader.limits: setting {name} to {soft} failed: {error}\n")
        sys.exit(EXIT_LAUNCHER_ERROR)


def _apply_limits(options: argparse.Namespace) -> None:
    # No core dumps: one would be as large as the process and land in the working folder.
    _set_limit(resource.RLIMIT_CORE, "RLIMIT_CORE", 0)
    if options.memory is not None:
        _set_limit(resource.RLIMIT_DATA, "RLIMIT_DATA", options.memory)
    if options.address_space is not None:
        _set_limit(resource.RLIMIT_AS, "RLIMIT_AS", options.address_space)
    if options.cpu is not None:
        _set_limit(resource.RLIMIT_CPU, "RLIMIT_CPU", options.cpu, options.cpu + CPU_KILL_GRACE_SECONDS)
    if options.processes is not None:
        _set_limit(resource.RLIMIT_NPROC, "RLIMIT_NPROC", options.processes)
    if options.file_size is not None:
        _set_limit(resource.RLIMIT_FSIZE, "RLIMIT_FSIZE", options.file_size)


def main(args: list[str] | None = None) -> None:
    """Set the limits, signal actions and session given in ``args``, then exec the command."""
    options, command = _parse(sys.argv[1:] if args is None else args)
    _apply_limits(options)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN if options.ignore_sigint else signal.SIG_DFL)
    if not options.keep_session and os.getsid(0) != os.getpid():
        os.setsid()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        sys.stderr.write(f"grader.limits: command not found: {command[0]!r}\n")
        sys.exit(EXIT_NOT_FOUND)
    except OSError as error:
        sys.stderr.write(f"grader.limits: cannot execute {command[0]!r}: {error}\n")
        sys.exit(EXIT_NOT_EXECUTABLE)


if __name__ == "__main__":
    main()
