"""Command line: ``grader grade SUBMISSIONS --out OUT``.

The CLI is a thin layer over ``grader.batch``; everything it shows a person goes
through ``Printer``, and diagnostics go to ``logging`` (``--verbose`` shows them).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence, TextIO

from .export import ExportError
from .practice import PracticeError
from .practice_cli import add_parser as add_practice_parser, run_practice
from .batch import LOG_FORMAT, BatchError, BatchSettings, default_workers, grade_batch
from .mnist import BUILTIN_DIR, DataError, load_arrays
from .results import SubmissionResult
from .rubric import DEFAULT_RUBRIC, RubricError, load_rubric
from .variants import read_secret

# Max characters of a reason in the batch summary table. The result
# documents and feedback pages have the whole reason.
SUMMARY_REASON_WIDTH = 70


class Printer:
    """Write the user-facing lines of the CLI: a progress bar with ETA on a terminal,
    plain lines otherwise."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self._bar: Any = None

    def line(self, text: str = "") -> None:
        try:
            if self._bar is not None:
                self._bar.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)
        except BrokenPipeError:
            self._discard_output()

    def _discard_output(self) -> None:
        """Send further output to /dev/null once the reader (`| head`, say) has gone:
        the batch goes on and writes all its files."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            self.stream = open(os.devnull, "w", encoding="utf-8")
        finally:
            os.close(devnull)
        self._bar = None

    def progress(self, done: int, total: int, result: SubmissionResult, reused: bool = False) -> None:
        took = "unchanged, earlier result reused" if reused else f"{sum(result.timings.values()):.1f} s"
        self.line(
            f"[{done}/{total}] {result.student}: {result.status}, "
            f"{result.total:g}/{result.max_total:g} points ({took})"
        )
        if self.stream.isatty():
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, unit="notebook", file=self.stream, leave=False)
            self._bar.update(1)
            if done == total:
                self._bar.close()
                self._bar = None

    def summary(self, results: list[SubmissionResult], out_dir: Path) -> None:
        self.line()
        width = max([len(r.student) for r in results] + [7])
        self.line(f"{'student':<{width}}  {'status':<16} {'points':>8}  reason")
        for result in results:
            self.line(
                f"{result.student:<{width}}  {result.status:<16} "
                f"{result.total:>4g}/{result.max_total:<3g}  "
                f"{textwrap.shorten(result.reason, SUMMARY_REASON_WIDTH, placeholder=' ...')}"
            )
        graded = sum(r.status == "graded" for r in results)
        missing = sum(r.status == "missing" for r in results)
        rows = _count(len(results), "student")
        extra = f", {missing} with no submission" if missing else ""
        self.line()
        self.line(f"{rows}, {graded} graded{extra}. Gradebook: {out_dir / 'gradebook.csv'}, "
                  f"overview: {out_dir / 'index.html'}")

    def check_summary(self, result: SubmissionResult, out_dir: Path) -> None:
        """Print each rubric item of a self-check with its points, message and hint."""
        self.line()
        if result.status != "graded":
            self.line(f"{result.status}: {result.reason}")
            self.line(f"Feedback page: {out_dir / 'feedback' / (result.student + '.html')}")
            return
        for item in result.items:
            mark = {"correct": "ok ", "follow-through": "~  ", "partial": "~  "}.get(item.outcome, "X  ")
            self.line(f"{mark}{item.id:<18} {item.points:g}/{item.max_points:g}  {item.message}")
            if item.hint:
                self.line(f"{'':<22}Hint: {item.hint}")
        for cell in result.cells:
            self.line(f"Cell {cell.index}: {cell.outcome} {cell.error_name} {cell.error_value}")
        for note in result.notes:
            self.line(f"Note: {note}")
        self.line()
        self.line(f"{result.status}: {result.total:g}/{result.max_total:g} points. "
                  f"Feedback page: {out_dir / 'feedback' / (result.student + '.html')}")

    def error(self, text: str) -> None:
        print(f"error: {text}", file=sys.stderr, flush=True)


def _count(number: int, noun: str) -> str:
    """Return ``number`` with ``noun``, plural unless the number is 1."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader", description="Grade Exercise 5 notebooks.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show diagnostic log lines")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_grade(commands)
    _add_check(commands)
    _add_kit(commands)
    add_practice_parser(commands)
    _add_assign(commands)
    _add_export(commands)
    return parser


def _add_grade(commands: argparse._SubParsersAction) -> None:
    """Add `grader grade`: a whole batch."""
    grade = commands.add_parser("grade", help="grade a folder of notebooks")
    grade.add_argument("submissions", type=Path,
                       help="a folder of notebooks or of per-student folders, a zip archive of "
                            "either (as Moodle, Canvas and StudOn/ILIAS export them), or one notebook")
    grade.add_argument("--roster", type=Path,
                       help="CSV of enrolled students (id and name columns); students without a "
                            "submission get a 'missing' row")
    grade.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    grade.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC,
                       help="rubric TOML file (default: solutions/rubric.toml)")
    grade.add_argument("--data", type=Path, default=BUILTIN_DIR,
                       help="MNIST folder with the four IDX files, in torchvision's layout or flat "
                            "(default: the built-in 8,000/2,000 sample)")
    grade.add_argument("--workers", type=_positive, default=default_workers(),
                       help="notebooks graded at the same time (default: the number of CPU cores, "
                            f"here {default_workers()})")
    grade.add_argument("--sandbox", choices=("auto", "bubblewrap", "none"), default="auto",
                       help="how student code is isolated: bubblewrap (no network, no view of "
                            "solutions, submissions or outputs), none (resource limits only), or "
                            "auto: bubblewrap when it works here (default)")
    grade.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="local worker processes (default), or a Dask distributed cluster for "
                            "courses too large for one machine (needs ex5-grader[dask])")
    grade.add_argument("--scheduler",
                       help="Dask scheduler address, such as tcp://HOST:8786; without it, "
                            "--executor dask starts a local Dask cluster with --workers workers")
    grade.add_argument("--variants", type=Path, metavar="SECRET_FILE",
                       help="grade each student's 5.1 against their own numbers, derived from "
                            "the student id and this course secret (see `grader assign`)")
    grade.add_argument("--regrade", action="store_true",
                       help="grade every notebook again, even when an earlier result in OUT has "
                            "the same notebook file and rubric")


def _add_check(commands: argparse._SubParsersAction) -> None:
    """Add `grader check`: one notebook, with a terminal summary."""
    check = commands.add_parser(
        "check", help="self-check one notebook: the same grading, a summary in the terminal")
    check.add_argument("notebook", type=Path, help="the .ipynb file to check")
    check.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC,
                       help="rubric TOML file, or the rubric.toml of a self-check kit "
                            "(default: solutions/rubric.toml)")
    check.add_argument("--out", type=Path, default=None,
                       help="folder for the feedback page and result (default: "
                            "selfcheck-<notebook name> next to the notebook)")
    check.add_argument("--data", type=Path, default=BUILTIN_DIR, help=argparse.SUPPRESS)


def _add_kit(commands: argparse._SubParsersAction) -> None:
    """Add `grader kit`: the student self-check kit."""
    kit = commands.add_parser(
        "kit", help="write the student self-check kit: the rubric, hashed 5.1 answers and table "
                    "values, and the reference layers' settings and shapes; no solution code")
    kit.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC, help="the instructor's rubric")
    kit.add_argument("--out", type=Path, required=True, help="folder to write the kit to")


def _add_assign(commands: argparse._SubParsersAction) -> None:
    """Add `grader assign`: notebooks with per-student 5.1 numbers."""
    assign = commands.add_parser(
        "assign", help="write one assignment notebook per student with their own 5.1 numbers")
    assign.add_argument("--roster", type=Path, required=True, help="CSV of students (id column)")
    assign.add_argument("--out", type=Path, required=True, help="folder for the notebooks")
    assign.add_argument("--secret", type=Path, required=True,
                        help="course secret file; keep it private, `grade --variants` needs it")
    assign.add_argument("--new-secret", action="store_true",
                        help="create the secret file first (fails if it exists)")
    assign.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC,
                        help="rubric whose [task51] activation the variants use")


def _add_export(commands: argparse._SubParsersAction) -> None:
    """Add `grader export`: LMS import files from a finished run."""
    export = commands.add_parser("export", help="write LMS import files from a finished run")
    export.add_argument("out", type=Path, help="the --out folder of a finished `grader grade` run")
    export.add_argument("--format", choices=("full", "moodle", "canvas", "ilias"), default="full",
                        help="column layout: full per-item CSV (default) or an LMS import file")
    export.add_argument("--assignment", default="Exercise 5",
                        help="assignment column name for the Canvas import (default: %(default)s)")
    export.add_argument("--roster", type=Path,
                        help="CSV whose first column is the student id; its columns are added")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run_check(arguments: argparse.Namespace, printer: Printer) -> int:
    rubric = load_rubric(arguments.rubric)
    # A self-check never shows reference values, whatever the rubric allows.
    rubric = dataclasses.replace(rubric, reveal_reference=False)
    notebook = arguments.notebook
    if notebook.is_dir():
        raise BatchError(f"{notebook} is a folder; `grader check` takes one .ipynb file "
                         "(use `grader grade` for a folder)")
    if not notebook.is_file():
        raise BatchError(f"notebook {notebook} not found")
    out = arguments.out or notebook.parent / f"selfcheck-{notebook.stem}"
    printer.line(f"Checking {notebook} (this runs the whole notebook; about a minute at most)")
    settings = BatchSettings(data_dir=arguments.data, workers=1, regrade=True)
    (result,) = grade_batch(notebook, out, rubric, settings)
    printer.check_summary(result, out)
    return 0


def _run_assign(arguments: argparse.Namespace, printer: Printer) -> int:
    import nbformat

    from .ingest import IngestError, read_roster
    from .variants import new_secret, variant_notebook, variant_problem

    rubric = load_rubric(arguments.rubric)
    if arguments.new_secret:
        try:
            new_secret(arguments.secret)
        except FileExistsError:
            raise BatchError(f"{arguments.secret} exists; drop --new-secret to use it") from None
    secret = read_secret(arguments.secret)
    try:
        students = read_roster(arguments.roster)
    except IngestError as error:
        raise BatchError(str(error)) from error
    arguments.out.mkdir(parents=True, exist_ok=True)
    for student in students:
        problem = variant_problem(secret, student.student, rubric)
        nbformat.write(variant_notebook(problem), arguments.out / f"{student.student}.ipynb")
    printer.line(f"Wrote {len(students)} notebooks to {arguments.out}. Grade them with "
                 f"`grader grade SUBMISSIONS --out OUT --variants {arguments.secret}`.")
    return 0


def _run_kit(arguments: argparse.Namespace, printer: Printer) -> int:
    from .kit import build_kit
    from .pipeline import expected_layers

    rubric = load_rubric(arguments.rubric)
    if rubric.problem is None:
        raise RubricError(f"{arguments.rubric} is already a self-check kit")
    try:
        path = build_kit(rubric, expected_layers(rubric), arguments.out)
    except OSError as error:
        raise BatchError(f"cannot write the kit to {arguments.out}: {error.strerror}") from error
    printer.line(f"Wrote the self-check kit to {arguments.out}. Students run:")
    printer.line(f"  grader check NOTEBOOK --rubric {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if arguments.verbose else logging.WARNING,
        format=LOG_FORMAT,
    )
    printer = Printer()
    try:
        if arguments.command == "check":
            return _run_check(arguments, printer)
        if arguments.command == "kit":
            return _run_kit(arguments, printer)
        if arguments.command == "assign":
            return _run_assign(arguments, printer)
        if arguments.command == "practice":
            return run_practice(arguments, printer.line)
        if arguments.command == "export":
            from .export import write_export

            path = write_export(arguments.out, arguments.format, arguments.assignment,
                                arguments.roster)
            printer.line(f"Wrote {path}")
            return 0
        rubric = load_rubric(arguments.rubric)
        load_arrays(arguments.data)  # fail before the batch when the data is unusable
        secret = read_secret(arguments.variants) if arguments.variants else None
        settings = BatchSettings(data_dir=arguments.data, workers=arguments.workers,
                                 variant_secret=secret,
                                 regrade=arguments.regrade, roster=arguments.roster,
                                 sandbox=arguments.sandbox, executor=arguments.executor,
                                 scheduler=arguments.scheduler)

        def announce(submissions: int, workers: int) -> None:
            printer.line(f"Grading {_count(submissions, 'submission')} from {arguments.submissions} "
                         f"with {_count(workers, 'worker')}")

        results = grade_batch(arguments.submissions, arguments.out, rubric, settings,
                              on_result=printer.progress, on_start=announce)
    except (RubricError, DataError, BatchError, ExportError, PracticeError) as error:
        printer.error(str(error))
        return 2
    except BrokenPipeError:
        return 0  # the output was piped into a program that stopped reading, such as head
    except KeyboardInterrupt:
        printer.error("interrupted; the results written so far are kept")
        return 130
    printer.summary(results, arguments.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
