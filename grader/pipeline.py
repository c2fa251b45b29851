"""Grade one submission through its phases (prepare, execute, check, train, grade),
and keep a failure in one phase from losing the rest of the result.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import os
import json
import logging
import multiprocessing
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import nbformat

from . import results
from .check_answers import grade_answers
from .check_model import (
    extra_layer_notes,
    grade_accuracy,
    grade_conv,
    grade_fc,
    grade_output,
    grade_pool,
    grade_table,
)
from .execute import ExecutionConfig, execute_notebook, kernel_env
from .mnist import BUILTIN_DIR, write_torchvision_layout
from .kernels import ForkServer
from .modelcheck import ModelChecker, ModelCheckError, checker_env
from .sandbox import Sandbox, SandboxLimits, detect_sandbox, wrap_command
from .notebook import NotebookProblem, cap_outputs, read_notebook
from .results import ItemResult, SubmissionResult
from .variants import rubric_for
from .rubric import ANSWER_NAMES, CLASS_NAME, EXTRA_NAMES, Rubric

log = logging.getLogger(__name__)

# Changes when the training code changes what it returns for a model, so that
# training results cached by an older grader are not reused.
TRAINING_VERSION = 3
MODEL_ITEMS = ("5.3.i.conv", "5.3.i.pool", "5.3.i.fc", "5.3.i.output", "5.3.ii.accuracy")


@dataclass(frozen=True)
class GradeOptions:
    """Settings shared by every submission of a batch."""

    rubric: Rubric
    data_dir: Path = BUILTIN_DIR
    executed_dir: Path | None = None  # where executed notebooks go; None keeps none
    cache_dir: Path | None = None  # where training results are reused from; None keeps none
    kernel_threads: int = 1  # torch threads for the student's kernel
    variant_secret: bytes | None = None  # course secret: each student has their own 5.1 numbers
    sandbox: str = "auto"  # auto, bubblewrap or none
    hidden: tuple[Path, ...] = ()  # folders sandboxed processes must not see


@lru_cache(maxsize=3)
def _detect_sandbox(mode: str) -> Sandbox:
    sandbox = detect_sandbox(mode)
    if sandbox.fallback_reason:
        # A batch detects the sandbox in its main process too (grading_sandbox), which
        # warns for all its workers.
        level = logging.WARNING if multiprocessing.parent_process() is None else logging.INFO
        log.log(level, "student code runs with resource limits only: %s", sandbox.fallback_reason)
    return sandbox


def grading_sandbox(options: GradeOptions) -> Sandbox:
    """Return the sandbox that student code runs in; warn when it has limits only."""
    return _detect_sandbox(options.sandbox)


def _sandbox_limits(rubric: Rubric) -> SandboxLimits:
    limits = rubric.limits
    return SandboxLimits(
        memory_bytes=limits.memory_mb * 2**20,
        cpu_seconds=limits.cpu_seconds,
        max_processes=limits.max_processes,
        max_file_bytes=limits.max_file_mb * 2**20,
    )


@lru_cache(maxsize=1)
def _checkout_paths() -> tuple[Path, ...]:
    """List what a source checkout of the grader contains besides the package and the
    interpreter: solutions, the notebook builder, samples and the git history, all of
    which would show reference answers to a notebook."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        return ()  # an installed package: nothing else lives beside it
    keep = {Path(__file__).resolve().parent, Path(sys.prefix).resolve()}
    return tuple(child for child in root.iterdir()
                 if child.resolve() not in keep
                 and not any(k.is_relative_to(child.resolve()) for k in keep))


def _hidden(options: GradeOptions) -> tuple[Path, ...]:
    rubric = options.rubric
    folders = [rubric.path.parent, *_checkout_paths(), *options.hidden]
    if rubric.reference_module is not None:
        folders.append(rubric.reference_module.parent)
    return tuple(dict.fromkeys(folders))


_checker: tuple[ModelChecker, Path, tuple[Any, ...]] | None = None
_server: tuple[ForkServer, tuple[Any, ...]] | None = None


def _service_settings(options: GradeOptions) -> tuple[Any, ...]:
    return (options.data_dir, options.sandbox, _hidden(options), _sandbox_limits(options.rubric),
            options.rubric.training.threads, options.kernel_threads)


def model_checker(options: GradeOptions) -> tuple[ModelChecker, Path]:
    """Return this process's model check service and its working folder, created on
    first use. The folder contains a copy of the MNIST files and each archive to check.

    A later batch in the same process with other data, sandbox or limits gets a new one.
    """
    global _checker
    settings = _service_settings(options)
    if _checker is not None and _checker[2] != settings:
        _close_checker()
    if _checker is None:
        workdir = Path(tempfile.mkdtemp(prefix="grader-check-"))
        data = workdir / "data"
        data.mkdir()
        for path in sorted(options.data_dir.rglob("*-ubyte*")):
            shutil.copyfile(path, data / path.name)
        sandbox = _detect_sandbox(options.sandbox)
        limits = _sandbox_limits(options.rubric)
        hidden = list(_hidden(options))
        checker = ModelChecker(
            wrap=lambda argv: wrap_command(sandbox, argv, workdir, limits, hidden),
            cwd=workdir,
            env=checker_env(workdir, options.rubric.training.threads),
        )
        _checker = (checker, workdir, settings)
    return _checker[0], _checker[1]


def _close_checker() -> None:
    global _checker
    if _checker is not None:
        _checker[0].close()
        shutil.rmtree(_checker[1], ignore_errors=True)
        _checker = None


def kernel_server(options: GradeOptions) -> ForkServer:
    """Return this process's kernel fork server, created on first use.

    A later batch in the same process with other data, sandbox or limits gets a new one.
    """
    global _server
    settings = _service_settings(options)
    if _server is not None and _server[1] != settings:
        _close_server()
    if _server is None:
        server = ForkServer(_detect_sandbox(options.sandbox), _sandbox_limits(options.rubric),
                            list(_hidden(options)), kernel_env(Path("/"), options.kernel_threads))
        _server = (server, settings)
    return _server[0]


def _close_server() -> None:
    global _server
    if _server is not None:
        _server[0].shut_down()
        _server = None


def close_services() -> None:
    """Stop this process's model check and fork server and delete their folders."""
    _close_checker()
    _close_server()


atexit.register(close_services)


def start_services(options: GradeOptions, check_models: bool = True) -> None:
    """Start the fork server and, with ``check_models``, the model check process, and
    begin tracing the reference model in a thread. Return without waiting for them.

    All three may import torch. Started before the first notebook, those costs overlap
    with each other and with the notebook's preparation.
    """
    kernel_server(options).start()
    if check_models:
        model_checker(options)[0].start()
    if options.rubric.selfcheck is None and options.rubric.reference_module is not None:
        _reference_job(options.rubric.reference_module)


@contextmanager
def _notebook_workdir(server: ForkServer) -> Iterator[Path]:
    """Give a notebook a fresh folder in the fork server's sandbox, and delete it after.

    The kernel session has reset the sandbox already, so only the folder is left.
    """
    workdir = server.new_workdir()
    try:
        yield workdir
    finally:
        server.remove_workdir(workdir)


def _check(options: GradeOptions, message: dict[str, Any]) -> dict[str, Any]:
    checker, _ = model_checker(options)
    return checker.request(message, options.rubric.limits.check_timeout)


@lru_cache(maxsize=4)
def data_digest(data_dir: Path) -> str:
    """Hash the MNIST files, so cached training results follow a change of data."""
    digest = hashlib.sha256()
    for path in sorted(data_dir.rglob("*-ubyte*")):
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelJob:
    """The checks of one notebook's exported model: layers, output shape, the grader's
    training run and the layer table, all of which need the model check process.

    It carries the archive's bytes, so it can run in another process than the notebook:
    a batch checks and trains models in its main process while the workers run notebooks.
    """

    archive: bytes
    state: dict[str, Any]  # what the probe read from the kernel


def _cache_file(options: GradeOptions, key: str) -> Path | None:
    if options.cache_dir is None:
        return None
    digest = hashlib.sha256(f"{key}:{options.rubric.digest}:{data_digest(options.data_dir)}:"
                            f"{TRAINING_VERSION}".encode())
    return options.cache_dir / f"{digest.hexdigest()}.json"


def _train_cached(options: GradeOptions, request: dict[str, Any], key: str) -> dict[str, Any]:
    """Train through the model check service, reusing an earlier result for the same
    model structure, rubric and data: training is seeded and deterministic."""
    path = _cache_file(options, key)
    if path is not None and path.is_file():
        try:
            return {**json.loads(path.read_text(encoding="utf-8")), "reused": True}
        except (OSError, json.JSONDecodeError):
            log.warning("ignoring unreadable training cache file %s", path)
    try:
        training = _check(options, {**request, "op": "train"})["training"]
    except ModelCheckError as error:
        return {"error": str(error)}
    if path is not None and "error" not in training:
        results.write_json_atomic(path, training)
    return training


def _sort_items(result: SubmissionResult, rubric: Rubric) -> None:
    order = {item.id: position for position, item in enumerate(rubric.items)}
    result.items.sort(key=lambda item: order[item.id])


def finish_model(result: SubmissionResult, job: ModelJob, options: GradeOptions) -> SubmissionResult:
    """Check and train the model of ``job`` and grade what depends on it, completing
    ``result``, which ``grade_notebook`` returned with ``job``."""
    options = _student_options(options, result.student)
    rubric = options.rubric
    phase = _Phases(result.timings)
    try:
        layers = _check_model(result, job, options, phase)
        with phase("grade"):
            for item in grade_table(rubric, job.state, layers, result.expected_layers):
                result.add_item(item)
    except Exception as error:  # a bug in the grader must not lose the batch
        log.exception("checking the model of %s failed inside the grader", result.student)
        result.status = results.GRADER_ERROR
        result.reason = f"internal grader error: {type(error).__name__}: {error}"
        result.notes.append("".join(traceback.format_exception_only(type(error), error)).strip())
        result.zero_items(rubric.items, result.reason)
        return result
    _sort_items(result, rubric)
    return result


def _reference_cache_file(reference_module: Path) -> Path:
    """Name the cache file of a reference's layers after everything that shapes them:
    the reference source, the grader's layer reader and the torch release."""
    digest = hashlib.sha256(reference_module.read_bytes())
    digest.update((Path(__file__).parent / "layers.py").read_bytes())
    digest.update(importlib.metadata.version("torch").encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grader"
    return cache / f"reference-layers-{digest.hexdigest()[:32]}.json"


def reference_layers(reference_module: Path) -> list[dict[str, Any]]:
    """Return the layer records of the reference ConvNet, from the user's cache folder
    when this reference was traced before with the same grader and torch."""
    cache_file = _reference_cache_file(reference_module)
    try:
        return list(json.loads(cache_file.read_text(encoding="utf-8"))["layers"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not cached yet, or unreadable: trace it
    layers = _trace_reference(reference_module)
    try:
        results.write_json_atomic(cache_file, {"reference": str(reference_module), "layers": layers})
    except OSError as error:
        log.debug("cannot cache the reference layers in %s: %s", cache_file, error)
    return layers


def _trace_reference(reference_module: Path) -> list[dict[str, Any]]:
    """Export the reference ConvNet and return its layer records."""
    import torch

    from .layers import layers_from_program

    spec = importlib.util.spec_from_file_location("grader_reference", reference_module)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load reference module {reference_module}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.ConvNet().eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    return [layer.to_dict() for layer in layers_from_program(program)]


# Tracing the reference imports torch, which takes seconds, so it runs in a thread
# while the first notebook executes.
_reference_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-reference")
_reference_jobs: dict[Path, Future[list[dict[str, Any]]]] = {}


def _reference_job(reference_module: Path) -> Future[list[dict[str, Any]]]:
    if reference_module not in _reference_jobs:
        _reference_jobs[reference_module] = _reference_pool.submit(reference_layers, reference_module)
    return _reference_jobs[reference_module]


def expected_layers(rubric: Rubric) -> list[dict[str, Any]]:
    """Return the reference layers: traced from the reference ConvNet, or from the kit."""
    if rubric.selfcheck is not None:
        return rubric.selfcheck["expected_layers"]
    assert rubric.reference_module is not None
    return _reference_job(rubric.reference_module).result()


class _Phases:
    """Record the wall seconds of each named phase of one submission."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.monotonic() - started, 3)


def _execution_config(options: GradeOptions, raw_dir: Path) -> ExecutionConfig:
    rubric = options.rubric
    names = {name: rubric.names_for(name) for name in (*ANSWER_NAMES, *EXTRA_NAMES)}
    return ExecutionConfig(
        cell_timeout=rubric.limits.cell_timeout,
        cell_idle_timeout=rubric.limits.cell_idle_timeout,
        notebook_timeout=rubric.limits.notebook_timeout,
        threads=options.kernel_threads,
        raw_dir=raw_dir,
        train_images=rubric.limits.student_train_images,
        names=names,
        class_names=rubric.names_for(CLASS_NAME),
        batch_size=rubric.training.batch_size,
        sandbox=_detect_sandbox(options.sandbox),
        limits=_sandbox_limits(rubric),
        hidden=_hidden(options),
    )


def _zero_items(rubric: Rubric, item_ids: tuple[str, ...], outcome: str, message: str) -> list[ItemResult]:
    return [
        ItemResult(item.id, item.title, 0.0, item.points, outcome, message)
        for item in rubric.items
        if item.id in item_ids
    ]


def _accuracy(value: Any) -> float | None:
    """Read a reported accuracy given as a fraction or a percentage."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100:
        return value / 100 if value > 1 else float(value)
    return None


def _missing_class_message(rubric: Rubric, state: dict[str, Any]) -> str:
    import difflib

    problem = state.get("class_problem")
    if problem:
        return f"No model class to grade: {problem}."
    close = difflib.get_close_matches(CLASS_NAME, state.get("globals", []), n=3, cutoff=0.4)
    message = f"`{CLASS_NAME}` (a torch.nn.Module class) is not defined in the notebook."
    if close:
        message += " Names that look close: " + ", ".join(f"`{c}`" for c in close) + "."
    return message


def _model_job(result: SubmissionResult, state: dict[str, Any], archive: bytes | None,
               options: GradeOptions) -> ModelJob | None:
    """Return the job that checks and trains the notebook's model, or None when there is
    no model to check: then the items of 5.3 i and ii get zero points here."""
    rubric = options.rubric
    if "class_name" not in state:
        message = _missing_class_message(rubric, state)
        for item in _zero_items(rubric, MODEL_ITEMS, "missing", message):
            result.add_item(item)
        return None
    if state["class_name"] != CLASS_NAME:
        result.notes.append(f"The model class was found under the name `{state['class_name']}`.")
    if state.get("mapped_device"):
        result.notes.append("The notebook asks for a GPU (.cuda() or .to('cuda')); grading runs "
                            "on the CPU, so those calls were mapped to the CPU.")
    if archive is None:
        message = state.get("model_error", "the model could not be exported")
        if "CUDA" in message or "NVIDIA" in message:
            message += " The model needs CUDA, but grading runs on the CPU: create it on the CPU."
        for item in _zero_items(rubric, MODEL_ITEMS, "error", message[0].upper() + message[1:]):
            result.add_item(item)
        return None
    return ModelJob(archive, state)


def _check_model(result: SubmissionResult, job: ModelJob, options: GradeOptions,
                 phase: _Phases) -> list[dict[str, Any]] | None:
    """Grade 5.3 i and ii from the exported model; return its layer records when there are any."""
    rubric = options.rubric
    expected = result.expected_layers
    _, check_dir = model_checker(options)
    request = {
        "training": rubric.training.__dict__,
        "threads": rubric.training.threads,
        "fixed_batch": job.state.get("fixed_batch", 0),
        "data_dir": str(check_dir / "data"),
    }
    # A name unique to the content: the check service keeps the last archive it loaded
    # by path, so reusing one name would check the previous student's model.
    copy = check_dir / f"model-{hashlib.sha256(job.archive).hexdigest()[:24]}.pt2"
    copy.write_bytes(job.archive)
    request["archive"] = str(copy)
    try:
        try:
            with phase("check"):
                report = _check(options, {**request, "op": "inspect"})
        except ModelCheckError as error:
            for item in _zero_items(rubric, MODEL_ITEMS, "error", str(error)):
                result.add_item(item)
            return None
        layers = report["layers"]
        with phase("train"):
            training = _train_cached(options, {**request, "layers": layers}, report["key"])
    finally:
        copy.unlink(missing_ok=True)
    result.layers = layers
    result.training = training
    result.notes.extend(extra_layer_notes(layers, expected))
    for item in (
        grade_conv(rubric, layers, expected),
        grade_pool(rubric, layers, expected),
        grade_fc(rubric, layers, expected),
        grade_output(rubric, report["output_shape"], int(job.state.get("fixed_batch") or 0)),
        grade_accuracy(rubric, training, result.reported.get("cnn_accuracy")),
    ):
        result.add_item(item)
    return layers


def _read_reported(result: SubmissionResult, state: dict[str, Any]) -> None:
    for name in ("ffn_accuracy", "cnn_accuracy"):
        entry = state.get("values", {}).get(name)
        if entry and "value" in entry:
            result.reported[name] = _accuracy(entry["value"])


def _grade_state(result: SubmissionResult, state: dict[str, Any], archive: bytes | None,
                 options: GradeOptions, phase: _Phases) -> ModelJob | None:
    rubric = options.rubric
    _read_reported(result, state)
    with phase("grade"):
        for item in grade_answers(rubric, state):
            result.add_item(item)
    result.expected_layers = expected_layers(rubric)
    job = _model_job(result, state, archive, options)
    if job is None:
        with phase("grade"):
            for item in grade_table(rubric, state, None, result.expected_layers):
                result.add_item(item)
        _sort_items(result, rubric)
    return job


def _save_executed(notebook: nbformat.NotebookNode, options: GradeOptions, student: str) -> None:
    if options.executed_dir is None:
        return
    cap_outputs(notebook)
    options.executed_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, options.executed_dir / f"{student}.ipynb")


def _student_options(options: GradeOptions, student: str) -> GradeOptions:
    """Give a student their own 5.1 numbers when the course uses variants."""
    if options.variant_secret is None:
        return options
    return dataclasses.replace(options, rubric=rubric_for(options.rubric, options.variant_secret, student))


def grade_submission(path: Path, student: str, options: GradeOptions) -> SubmissionResult:
    """Grade one notebook file; every failure ends up in the returned result."""
    result, job = grade_notebook(path, student, options)
    return finish_model(result, job, options) if job is not None else result


def grade_notebook(path: Path, student: str,
                   options: GradeOptions) -> tuple[SubmissionResult, ModelJob | None]:
    """Run one notebook file and grade all but its model.

    When the notebook has a model to check, the result lacks the items of 5.3 and the
    returned job must go to ``finish_model``. Every failure ends up in the result.
    """
    options = _student_options(options, student)
    rubric = options.rubric
    result = SubmissionResult(student=student, source=path.name, status=results.GRADED,
                              max_total=rubric.max_total, rubric_sha256=rubric.digest)
    result.sandbox = _detect_sandbox(options.sandbox).kind
    if options.variant_secret is not None:
        result.notes.append("Task 5.1 was graded against your own numbers, the ones in the "
                            "notebook handed out to you.")
    phase = _Phases(result.timings)
    job = None
    try:
        result.content_sha256 = results.file_sha256(path)
        job = _grade_file(result, path, student, options, phase)
    except Exception as error:  # a bug in the grader must not lose the batch
        log.exception("grading %s failed inside the grader", path)
        result.status = results.GRADER_ERROR
        result.reason = f"internal grader error: {type(error).__name__}: {error}"
        result.notes.append("".join(traceback.format_exception_only(type(error), error)).strip())
        job = None
    if result.status != results.GRADED:
        result.zero_items(rubric.items, result.reason)
        job = None
    return result, job


def _grade_file(result: SubmissionResult, path: Path, student: str, options: GradeOptions,
                phase: _Phases) -> ModelJob | None:
    try:
        notebook, notes = read_notebook(path)
    except NotebookProblem as problem:
        result.status = results.INVALID_NOTEBOOK
        result.reason = str(problem)
        return None
    result.notes.extend(notes)
    server = kernel_server(options)
    with _notebook_workdir(server) as workdir:
        with phase("prepare"):
            raw_dir = write_torchvision_layout(options.data_dir, workdir / ".data")
            nbformat.write(notebook, workdir / path.name)
        run = execute_notebook(notebook, workdir, _execution_config(options, raw_dir), server)
        result.timings.update(run.timings)
        result.timings["execute"] = round(max(0.0, run.seconds - sum(run.timings.values())), 3)
        result.cells = run.cells
        _save_executed(run.notebook, options, student)
        if run.state is None:
            result.status = results.KERNEL_FAILED
            result.reason = run.failure or "the notebook's state could not be read"
            return None
        if run.restarts:
            result.notes.append(
                f"The kernel had to be restarted {run.restarts} time(s) ({run.failure}); the cells "
                "that had succeeded before were run again, so their answers still count."
            )
        elif run.failure:
            result.notes.append(run.failure)
        job = _grade_state(result, run.state, run.archive, options, phase)
    if any(cell.outcome != "ok" for cell in result.cells):
        failed = ", ".join(str(cell.index) for cell in result.cells)
        result.reason = f"cells that did not finish: {failed}"
    return job
