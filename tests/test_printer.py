"""The CLI's terminal lines: progress lines mark reused results, the batch summary
shortens long reasons at a word, and a self-check prints whole cell messages."""

import io
from pathlib import Path

from grader.cli import SUMMARY_REASON_WIDTH, Printer
from grader.results import CellReport, SubmissionResult

LONG_REASON = ("cell 30: the kernel was killed (SIGKILL), most likely for using too much memory; "
               "gave up after 2 kernel restarts")


def test_summary_shortens_reason_at_word():
    stream = io.StringIO()
    result = SubmissionResult("ab12cdef", "ab12cdef.ipynb", "dead-kernel", reason=LONG_REASON)
    Printer(stream).summary([result], Path("out"))
    row = next(line for line in stream.getvalue().splitlines() if line.startswith("ab12cdef"))
    reason_text = row.split("0/0", 1)[1].strip()
    assert reason_text.endswith(" ...")
    assert len(reason_text) <= SUMMARY_REASON_WIDTH
    assert LONG_REASON.startswith(reason_text.removesuffix(" ..."))
    assert LONG_REASON[len(reason_text) - len(" ...")] == " "  # the cut falls between words


def test_check_summary_prints_whole_cell_message():
    message = ("the cell used almost no CPU for 5 s because it was waiting (for a sleep, a lock, "
               "input or a process that does not end), so it was interrupted")
    result = SubmissionResult("solution", "solution.ipynb", "graded",
                              cells=[CellReport(30, "timeout", "CellIdleError", message, 5.1)])
    stream = io.StringIO()
    Printer(stream).check_summary(result, Path("out"))
    assert f"Cell 30: timeout CellIdleError {message}" in stream.getvalue().splitlines()


def test_progress_marks_reused_result():
    stream = io.StringIO()
    result = SubmissionResult("ab12cdef", "ab12cdef.ipynb", "graded", total=18, max_total=20,
                              timings={"execute": 2.5, "train": 3.0})
    Printer(stream).progress(3, 24, result, reused=True)
    Printer(stream).progress(4, 24, result)
    assert stream.getvalue().splitlines() == [
        "[3/24] ab12cdef: graded, 18/20 points (unchanged, earlier result reused)",
        "[4/24] ab12cdef: graded, 18/20 points (5.5 s)",
    ]
