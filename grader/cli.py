"""Command line: ``grader grade SUBMISSIONS --out OUT``.

The CLI is a thin layer over ``grader.batch``; everything it shows a person goes
through ``Printer``, and diagnostics go to ``logging`` (``--verbose`` shows them).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence, TextIO

from .batch import BatchError, grade_batch
from .mnist import BUILTIN_DIR, DataError, load_arrays
from .results import SubmissionResult
from .rubric import DEFAULT_RUBRIC, RubricError, load_rubric


class Printer:
    """Write the user-facing lines of the CLI."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def progress(self, done: int, total: int, result: SubmissionResult) -> None:
        seconds = sum(result.timings.get(k, 0.0) for k in ("prepare", "execute", "check", "grade"))
        self.line(
            f"[{done}/{total}] {result.student}: {result.status}, "
            f"{result.total:g}/{result.max_total:g} points ({seconds:.1f} s)"
        )

    def summary(self, results: list[SubmissionResult], out_dir: Path) -> None:
        self.line()
        width = max([len(r.student) for r in results] + [7])
        self.line(f"{'student':<{width}}  {'status':<16} {'points':>8}  reason")
        for result in results:
            self.line(
                f"{result.student:<{width}}  {result.status:<16} "
                f"{result.total:>4g}/{result.max_total:<3g}  {result.reason[:70]}"
            )
        graded = sum(r.status == "graded" for r in results)
        self.line()
        self.line(f"{len(results)} submissions, {graded} graded. Gradebook: {out_dir / 'gradebook.csv'}")

    def error(self, text: str) -> None:
        print(f"error: {text}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader", description="Grade Exercise 5 notebooks.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show diagnostic log lines")
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade a folder of notebooks")
    grade.add_argument("submissions", type=Path, help="folder of .ipynb files, or one notebook")
    grade.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    grade.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC,
                       help="rubric TOML file (default: solutions/rubric.toml)")
    grade.add_argument("--data", type=Path, default=BUILTIN_DIR,
                       help="MNIST folder with the four IDX files, in torchvision's layout or flat "
                            "(default: the built-in 8,000/2,000 sample)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if arguments.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    printer = Printer()
    try:
        rubric = load_rubric(arguments.rubric)
        load_arrays(arguments.data)  # fail before the batch when the data is unusable
        results = grade_batch(arguments.submissions, arguments.out, rubric, arguments.data,
                              on_result=printer.progress)
    except (RubricError, DataError, BatchError) as error:
        printer.error(str(error))
        return 2
    except KeyboardInterrupt:
        printer.error("interrupted; the results written so far are kept")
        return 130
    printer.summary(results, arguments.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
