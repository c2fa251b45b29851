"""Grade submissions on a Dask distributed cluster, for courses too large for one machine.

``run_on_dask`` sends each submission as one task that calls the same
``grade_submission`` as a local batch, so the sandbox and the grading are the same
on every worker. Workers need no shared file system, because each task carries
what grading reads from the client machine:

- the notebook's bytes, written to a temporary file on the worker;
- the rubric's reference module source, written once into the worker's local
  directory, because ``grade_submission`` imports it to get the expected layers;
- a SHA-256 digest of the MNIST files. The worker uses its own copy of the built-in
  sample, or the same path as the client for a ``--data`` folder, and a task fails
  when the digest differs, so every worker grades against the same data.

The executed notebook comes back with the result and is written to the client's
``executed_dir``. Training results are cached per worker in the worker's local
directory, because the client's ``cache_dir`` does not exist on other machines.

A task that raises is retried once (``retries=1``). A task whose worker dies is run
again until the scheduler's ``distributed.scheduler.allowed-failures`` is exceeded.
The local cluster sets it to 1, so such a task runs at most twice, as in a local
batch. A remote scheduler uses its own setting (Dask's default is 3). A task that
still fails becomes a ``grader-error`` result, and the batch goes on.

Dask is optional: ``distributed`` is imported only when ``run_on_dask`` runs.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import logging
import os
import tempfile
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .batch import BatchError, _failed_result
from .ingest import Submission
from .mnist import BUILTIN_DIR
from .pipeline import GradeOptions, data_digest, grade_submission
from .results import SubmissionResult
from .rubric import DEFAULT_RUBRIC

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)

INSTALL_HINT = "Dask is not installed: pip install 'ex5-grader[dask]'"
# Seconds to wait for the scheduler to accept the connection.
CONNECT_TIMEOUT_SECONDS = 10.0
# Seconds to wait for the first worker when a remote scheduler has none.
WORKER_WAIT_SECONDS = 60.0
GRADER_DISTRIBUTION = "ex5-grader"
# The local cluster's scheduler setting, read when it starts in this process: a task
# whose worker dies runs at most twice, as in a local batch.
LOCAL_SCHEDULER_CONFIG = {"distributed.scheduler.allowed-failures": 1}


class DaskUnavailableError(BatchError):
    """The ``distributed`` package is not installed."""


class DaskClusterError(BatchError):
    """The Dask scheduler address is invalid or unreachable, or no worker joined in time."""


class WorkerSetupError(Exception):
    """A worker cannot grade like the client: more than one thread, another grader
    version or other MNIST files."""


class WorkerTaskError(Exception):
    """Grading one submission raised on a worker; carries that worker's address."""

    def __init__(self, worker: str, detail: str) -> None:
        super().__init__(worker, detail)
        self.worker = worker
        self.detail = detail

    def __str__(self) -> str:
        return f"on Dask worker {self.worker}: {self.detail}"


@dataclass(frozen=True)
class WorkerSetup:
    """The part of every task that is the same for the whole batch: the grading
    options, the reference module and the values a worker checks before grading."""

    options: GradeOptions  # with executed_dir and cache_dir set to None
    reference_name: str  # file name of the rubric's reference module, "" without one
    reference_source: bytes | None  # None for a self-check kit, which has no module
    builtin_data: bool  # the client grades with the built-in MNIST sample
    data_sha256: str  # data_digest of the client's MNIST folder
    grader_version: str  # installed ex5-grader version, "" when not installed


@dataclass(frozen=True)
class NotebookTask:
    """One submission as a worker receives it."""

    student: str
    file_name: str  # the submitted file's name, kept so results name the same source
    notebook: bytes


@dataclass(frozen=True)
class GradedNotebook:
    """A worker's output: the result and the executed notebook, when one was written."""

    result: SubmissionResult
    executed: bytes | None


def run_on_dask(
    todo: list[Submission],
    options: GradeOptions,
    scheduler: str | None,
    finish: Callable[[SubmissionResult], None],
    workers: int = 2,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
) -> None:
    """Grade ``todo`` on a Dask cluster and call ``finish`` in this process for each
    result as it completes.

    ``scheduler`` is a scheduler address such as ``tcp://127.0.0.1:8786``. With
    None, a local cluster of ``workers`` processes with one thread each runs for the
    duration of the call, and ``workers`` is ignored otherwise. A submission whose
    file cannot be read or whose task fails becomes a ``grader-error`` result.

    Raises DaskUnavailableError when ``distributed`` is missing, and DaskClusterError
    when ``scheduler`` is invalid, does not accept a connection within
    ``connect_timeout`` seconds, or has no worker after WORKER_WAIT_SECONDS.
    """
    if not todo:
        return
    setup = _worker_setup(options)
    with _connect(scheduler, workers, connect_timeout) as client:
        _grade_all(client, todo, setup, options, finish)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as error:
        raise DaskUnavailableError(INSTALL_HINT) from error
    return distributed


@contextmanager
def _connect(scheduler: str | None, workers: int, connect_timeout: float) -> Iterator[Client]:
    """Connect to ``scheduler``, or start a local cluster when it is None."""
    distributed = _import_distributed()
    import dask

    if scheduler is None:
        with dask.config.set(LOCAL_SCHEDULER_CONFIG):
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address="127.0.0.1:0",
            )
        with cluster, distributed.Client(cluster) as client:
            log.info("started a local Dask cluster with %d worker processes", workers)
            _log_cluster(client)
            yield client
        return

    log.info("connecting to the Dask scheduler at %s", scheduler)
    try:
        client = distributed.Client(scheduler, timeout=connect_timeout)
    except ValueError as error:
        raise DaskClusterError(
            f"invalid Dask scheduler address {scheduler!r}: {error}. "
            "Use the form tcp://HOST:8786."
        ) from error
    except OSError as error:
        raise DaskClusterError(
            f"connecting to the Dask scheduler at {scheduler} failed: {error}. Check the "
            "address, and that `dask scheduler` runs there and accepts connections from "
            "this machine."
        ) from error
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
        except TimeoutError as error:
            raise DaskClusterError(
                f"the Dask scheduler at {scheduler} has no workers after "
                f"{WORKER_WAIT_SECONDS:g} s. Start them with "
                f"`dask worker {scheduler} --nworkers N --nthreads 1`."
            ) from error
        _log_cluster(client)
        yield client


def _log_cluster(client: Client) -> None:
    try:
        dashboard = client.dashboard_link
    except KeyError:  # the scheduler runs no dashboard, for example without bokeh
        dashboard = "none (install bokeh on the scheduler for one)"
    log.info("Dask scheduler %s, dashboard %s, %d workers",
             client.scheduler.address, dashboard, len(client.nthreads()))


def _grader_version() -> str:
    try:
        return importlib.metadata.version(GRADER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _worker_setup(options: GradeOptions) -> WorkerSetup:
    reference = options.rubric.reference_module
    return WorkerSetup(
        options=replace(options, executed_dir=None, cache_dir=None),
        reference_name=reference.name if reference is not None else "",
        reference_source=reference.read_bytes() if reference is not None else None,
        builtin_data=options.data_dir.resolve() == BUILTIN_DIR.resolve(),
        data_sha256=data_digest(options.data_dir),
        grader_version=_grader_version(),
    )


def _grade_all(client: Client, todo: list[Submission], setup: WorkerSetup,
               options: GradeOptions, finish: Callable[[SubmissionResult], None]) -> None:
    """Send ``todo`` one task per worker thread at a time, and finish each result as
    it completes.

    The scheduler sends a task to a worker as soon as it has one, and a worker's
    death counts against every task sent to it, running or not. With at most one
    task per thread, usually only the task that was running is blamed. The client
    also reads each notebook only when it sends it, so memory stays bounded.
    """
    distributed = _import_distributed()
    queue = deque(todo)
    running: dict[Future, Submission] = {}
    completed = distributed.as_completed()

    def send_more() -> None:
        try:
            limit = max(1, sum(client.nthreads().values()))
        except OSError as error:
            _fail_unsent(queue, options, f"the connection to the Dask scheduler was lost: {error}",
                         finish)
            return
        while queue and len(running) < limit:
            submission = queue.popleft()
            try:
                task = _read_task(submission)
            except OSError as error:
                reason = f"reading the notebook {submission.path} failed: {error.strerror or error}"
                log.error("submission %s: %s", submission.student, reason)
                finish(_failed_result(submission, options.rubric, reason))
                continue
            future = client.submit(grade_on_worker, task, setup, retries=1, pure=False,
                                   key=f"grade-{submission.student}-{uuid.uuid4().hex[:12]}")
            running[future] = submission
            completed.add(future)

    send_more()
    for future in completed:
        submission = running.pop(future)
        result = _collect(future, submission, options)
        # Released results are forgotten, so a later worker death cannot make the
        # scheduler grade this submission again to restore them.
        future.release()
        finish(result)
        send_more()


def _fail_unsent(queue: deque[Submission], options: GradeOptions, reason: str,
                 finish: Callable[[SubmissionResult], None]) -> None:
    """Finish every submission not yet sent as a grader-error, so a rerun grades it."""
    log.error("%d submissions were not graded: %s", len(queue), reason)
    while queue:
        finish(_failed_result(queue.popleft(), options.rubric, f"not graded: {reason}"))


def _read_task(submission: Submission) -> NotebookTask:
    if submission.path is None:
        raise FileNotFoundError(errno.ENOENT, "no notebook file")
    return NotebookTask(student=submission.student, file_name=submission.path.name,
                        notebook=submission.path.read_bytes())


def _collect(future: Future, submission: Submission, options: GradeOptions) -> SubmissionResult:
    """Return the task's result, or a grader-error result that names the failure."""
    distributed = _import_distributed()
    try:
        graded: GradedNotebook = future.result()
    except distributed.KilledWorker as error:
        reason = (f"every Dask worker that ran this submission died ({error.allowed_failures + 1} "
                  f"tries, the last on {error.last_worker.address}); see that worker's log")
    except WorkerTaskError as error:
        reason = _one_line(f"grading failed {error}")
    except Exception as error:  # cancelled, lost scheduler, unreadable result
        reason = _one_line(f"grading failed on the Dask cluster: {type(error).__name__}: {error}")
    else:
        if graded.executed is not None and options.executed_dir is not None:
            _write_atomic(options.executed_dir / f"{submission.student}.ipynb", graded.executed)
        return graded.result
    log.error("submission %s: %s", submission.student, reason)
    return _failed_result(submission, options.rubric, reason)


def _one_line(text: str) -> str:
    """Join the lines of an error message, because a reason is one gradebook cell."""
    return " ".join(text.split())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def grade_on_worker(task: NotebookTask, setup: WorkerSetup) -> GradedNotebook:
    """Grade one notebook on a Dask worker with ``grade_submission``.

    Raises WorkerTaskError, naming this worker, when grading raises, so that Dask
    retries the task and the client can report where it failed.
    """
    from distributed import get_worker

    worker = get_worker()
    try:
        if worker.state.nthreads != 1:
            # The model check process of a worker process serves one request at a
            # time, so two tasks in threads of one process would mix their requests.
            raise WorkerSetupError(
                f"this worker runs {worker.state.nthreads} threads; start it with "
                "`dask worker ... --nthreads 1`"
            )
        local_directory = Path(worker.local_directory)
        options = _worker_options(setup, local_directory)
        tasks_dir = local_directory / "grader-tasks"
        tasks_dir.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{task.student}-", dir=tasks_dir) as temporary:
            folder = Path(temporary)
            path = folder / "submission" / task.file_name
            path.parent.mkdir()
            path.write_bytes(task.notebook)
            executed_dir = folder / "executed"
            options = replace(options, executed_dir=executed_dir)
            result = grade_submission(path, task.student, options)
            executed = executed_dir / f"{task.student}.ipynb"
            return GradedNotebook(result, executed.read_bytes() if executed.is_file() else None)
    except Exception as error:
        raise WorkerTaskError(worker.address, f"{type(error).__name__}: {error}") from error


def _worker_options(setup: WorkerSetup, local_directory: Path) -> GradeOptions:
    """Return the options for this worker: its own MNIST folder, reference copy,
    training cache and hidden folders. Raise WorkerSetupError when it would grade
    differently.

    The options are the same for every task of a batch on this worker, because
    ``grade_submission`` starts a new model check process when they change.
    """
    version = _grader_version()
    if setup.grader_version and version and version != setup.grader_version:
        raise WorkerSetupError(
            f"this worker runs {GRADER_DISTRIBUTION} {version} but the client runs "
            f"{setup.grader_version}; install the same version on every worker"
        )
    options = setup.options
    data_dir = BUILTIN_DIR if setup.builtin_data else options.data_dir
    if data_digest(data_dir) != setup.data_sha256:
        raise WorkerSetupError(
            f"the MNIST files in {data_dir} on this worker are missing or differ from the "
            "client's; copy the client's data folder to the same path on every worker"
        )
    rubric = options.rubric
    if setup.reference_source is not None:
        reference = _reference_copy(setup.reference_name, setup.reference_source, local_directory)
        rubric = replace(rubric, reference_module=reference)
    # Student code must not see the worker's local directory, which contains the task
    # folders with the notebook copies and Dask's spilled task data, nor the solutions
    # folder of the grader installed on the worker.
    hidden = (*options.hidden, local_directory, DEFAULT_RUBRIC.parent)
    return replace(options, rubric=rubric, data_dir=data_dir, hidden=hidden,
                   cache_dir=local_directory / "grader-training-cache")


def _reference_copy(name: str, source: bytes, local_directory: Path) -> Path:
    """Write ``source`` once into a folder named by its SHA-256 and return its path.
    The path stays the same, so reference_layers computes the expected layers once."""
    digest = hashlib.sha256(source).hexdigest()
    path = local_directory / "grader-reference" / digest[:16] / name
    if not path.is_file() or path.read_bytes() != source:  # missing, or cut short by a crash
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source)
    return path
