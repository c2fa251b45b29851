"""Collecting submissions: LMS layouts, safe zip extraction, notebook choice and rosters.

Every test builds real files and real zip archives in ``tmp_path``.
"""

from __future__ import annotations

import os
import stat
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from grader import ingest
from grader.ingest import (
    PY_ONLY_PROBLEM,
    ArchiveError,
    IngestError,
    Submission,
    collect_submissions,
    read_roster,
    student_id,
)

NOTEBOOK = '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}'


def write(path: Path, content: str | bytes = NOTEBOOK, mtime: float | None = None) -> Path:
    """Write ``content`` to ``path``, creating folders, and set its modification time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def make_zip(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def all_files(folder: Path, exclude: Path | None = None) -> set[Path]:
    """Return every path below ``folder``, leaving out ``exclude`` and what it contains."""
    found = set()
    for path in folder.rglob("*"):
        if exclude is not None and (path == exclude or exclude in path.parents):
            continue
        found.add(path)
    return found


@contextmanager
def nothing_written_outside(tmp_path: Path, scratch: Path) -> Iterator[None]:
    """Check that the block leaves every path under ``tmp_path`` outside ``scratch`` as it was."""
    before = all_files(tmp_path, exclude=scratch)
    yield
    assert all_files(tmp_path, exclude=scratch) == before


def extracted_files(scratch: Path) -> set[Path]:
    return all_files(scratch) if scratch.exists() else set()


def by_id(submissions: list[Submission]) -> dict[str, Submission]:
    return {submission.student: submission for submission in submissions}


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path / "scratch"


# --- Compatibility -------------------------------------------------------------------


def test_submission_keeps_two_argument_form(tmp_path):
    submission = Submission("ab12", tmp_path / "ab12.ipynb")
    assert submission.name == ""
    assert submission.warnings == ()
    assert submission.problem == ""
    assert submission.missing is False


def test_student_id_drops_accents_and_unsafe_characters():
    assert student_id("Müller") == "Muller"
    assert student_id("Jörg Groß") == "Jorg_Gross"
    assert student_id("../etc/passwd") == "etc_passwd"
    assert student_id("...") == "unnamed"


# --- Flat folders and single notebooks ------------------------------------------------


def test_flat_folder_one_per_notebook(tmp_path, scratch, caplog):
    source = tmp_path / "subs"
    write(source / "zz99abcd.ipynb")
    write(source / "ab12cdef.ipynb")
    write(source / "README.txt", "not a submission")
    write(source / "grades.csv", "student,points")
    write(source / ".hidden.ipynb")
    write(source / ".ipynb_checkpoints" / "ab12cdef-checkpoint.ipynb")
    found = collect_submissions(source, scratch)
    assert [submission.student for submission in found] == ["ab12cdef", "zz99abcd"]
    assert found[0].path == source / "ab12cdef.ipynb"
    assert found[0].name == ""
    assert found[0].warnings == ()
    assert not scratch.exists()
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert warnings == [f"skipped 2 files in {source} that are not notebooks, scripts or archives "
                        "and not named like LMS submission files: README.txt, grades.csv"]


def test_single_notebook_source(tmp_path, scratch):
    notebook = write(tmp_path / "ab12cdef.ipynb")
    found = collect_submissions(notebook, scratch)
    assert found == [Submission("ab12cdef", notebook)]


def test_missing_source_is_reported(tmp_path, scratch):
    message = "submissions path .*nowhere not found"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(IngestError, match=message):
        collect_submissions(tmp_path / "nowhere", scratch)


def test_unsupported_source_file_is_reported(tmp_path, scratch):
    source = write(tmp_path / "grades.csv", "id\n")
    message = "is not a folder, a .zip archive or an .ipynb notebook"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(IngestError, match=message):
        collect_submissions(source, scratch)


def test_scratch_inside_source_is_rejected(tmp_path):
    source = tmp_path / "subs"
    write(source / "ab12.ipynb")
    message = "scratch folder .* is inside the submissions folder"
    with (
        nothing_written_outside(tmp_path, source / "scratch"),
        pytest.raises(IngestError, match=message),
    ):
        collect_submissions(source, source / "scratch")
    assert not (source / "scratch").exists()


# --- LMS layouts -----------------------------------------------------------------------


def test_ilias_folders_give_login_or_user_id(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "Doe_Jane_jd12abcd_48213" / "exercise5.ipynb")
    write(source / "Doe_Jane_jd12abcd_48213" / "report.pdf", b"%PDF-1.4")
    write(source / "Doe_Jane_jd12abcd_48213" / "helpers.py", "x = 1\n")
    write(source / "van der Berg_Anna_48214" / "work" / "nested" / "ex.ipynb")
    write(source / "van der Berg_Anna_48214" / "__MACOSX" / "._ex.ipynb", b"\0")
    write(source / "van der Berg_Anna_48214" / ".ipynb_checkpoints" / "ex-checkpoint.ipynb")
    found = by_id(collect_submissions(source, scratch))
    assert sorted(found) == ["48214", "jd12abcd"]
    jane = found["jd12abcd"]
    assert jane.name == "Jane Doe"
    assert jane.path == source / "Doe_Jane_jd12abcd_48213" / "exercise5.ipynb"
    assert jane.warnings == ()
    anna = found["48214"]
    assert anna.name == "Anna van der Berg"
    assert anna.path == source / "van der Berg_Anna_48214" / "work" / "nested" / "ex.ipynb"
    assert anna.warnings == ()


def test_moodle_folders_of_one_participant_merge(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "Jane Doe_123456_assignsubmission_file_" / "exercise5.ipynb")
    write(source / "Jane Doe_123456_assignsubmission_onlinetext_" / "onlinetext.html", "<p>hi</p>")
    write(source / "Participant_654321_assignsubmission_file_" / "ex.ipynb")
    found = by_id(collect_submissions(source, scratch))
    assert sorted(found) == ["123456", "654321"]
    assert found["123456"].name == "Jane Doe"
    assert found["123456"].path == (
        source / "Jane Doe_123456_assignsubmission_file_" / "exercise5.ipynb"
    )
    assert found["654321"].name == ""


def test_old_moodle_flat_files(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "Jane Doe_123456_assignsubmission_file_exercise5.ipynb")
    found = collect_submissions(source, scratch)
    assert len(found) == 1
    assert found[0].student == "123456"
    assert found[0].name == "Jane Doe"


def test_canvas_files_give_user_id(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "doejane_4711_90210_exercise5.ipynb")
    write(source / "doejane_4711_90211_notes.pdf", b"%PDF-1.4")
    write(source / "smithbob_late_4712_90212_Exercise_5.ipynb")
    write(source / "late_4713_90213_exercise5.ipynb")
    write(source / "4714_90214_exercise5.ipynb")
    found = by_id(collect_submissions(source, scratch))
    assert sorted(found) == ["4711", "4712", "4713", "4714"]
    assert found["4711"].name == "doejane"
    assert found["4711"].path == source / "doejane_4711_90210_exercise5.ipynb"
    assert found["4712"].name == "smithbob"
    assert found["4713"].name == ""
    assert found["4714"].name == ""


def test_canvas_student_with_only_a_pdf_is_invalid(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "doejane_4711_90211_notes.pdf", b"%PDF-1.4")
    [submission] = collect_submissions(source, scratch)
    assert submission.student == "4711"
    assert submission.path is None
    assert "no .ipynb notebook was submitted" in submission.problem
    assert "doejane_4711_90211_notes.pdf" in submission.problem


def test_plain_student_folders(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "ab12cdef" / "exercise5.ipynb")
    write(source / "zz99abcd" / "exercise5.ipynb")
    found = collect_submissions(source, scratch)
    assert [submission.student for submission in found] == ["ab12cdef", "zz99abcd"]


# --- Zip archives of exports -----------------------------------------------------------


def test_ilias_zip_with_wrapper_folders(tmp_path, scratch):
    archive = make_zip(tmp_path / "export.zip", {
        "Exercise 5/Exercise 5.xlsx": b"PK status sheet",
        "Exercise 5/Submissions/Doe_Jane_jd12abcd_48213/exercise5.ipynb": NOTEBOOK,
        "Exercise 5/Submissions/Roe_Rick_rr34efgh_48215/solution.ipynb": NOTEBOOK,
        "__MACOSX/Exercise 5/._Exercise 5.xlsx": b"\0",
    })
    before = all_files(tmp_path, exclude=scratch)
    found = by_id(collect_submissions(archive, scratch))
    assert sorted(found) == ["jd12abcd", "rr34efgh"]
    assert found["jd12abcd"].name == "Jane Doe"
    assert found["jd12abcd"].path.name == "exercise5.ipynb"
    assert scratch.resolve() in found["jd12abcd"].path.resolve().parents
    assert all_files(tmp_path, exclude=scratch) == before
    assert not any(path.name == "__MACOSX" for path in all_files(scratch))


def test_zip_of_flat_notebooks_with_one_wrapper(tmp_path, scratch):
    archive = make_zip(tmp_path / "subs.zip", {
        "submissions/ab12cdef.ipynb": NOTEBOOK,
        "submissions/zz99abcd.ipynb": NOTEBOOK,
    })
    found = collect_submissions(archive, scratch)
    assert [submission.student for submission in found] == ["ab12cdef", "zz99abcd"]


def test_canvas_zip_without_wrapper(tmp_path, scratch):
    archive = make_zip(tmp_path / "submissions.zip", {
        "doejane_4711_90210_exercise5.ipynb": NOTEBOOK,
        "smithbob_late_4712_90212_exercise5.ipynb": NOTEBOOK,
    })
    found = collect_submissions(archive, scratch)
    assert [submission.student for submission in found] == ["4711", "4712"]


def test_zip_keeps_member_modification_times(tmp_path, scratch):
    archive = tmp_path / "subs.zip"
    with zipfile.ZipFile(archive, "w") as output:
        output.writestr(zipfile.ZipInfo("ab12/older.ipynb", (2024, 1, 1, 12, 0, 0)), NOTEBOOK)
        output.writestr(zipfile.ZipInfo("ab12/newer.ipynb", (2024, 1, 2, 12, 0, 0)), NOTEBOOK)
        output.writestr(zipfile.ZipInfo("cd34/ex.ipynb", (2024, 1, 2, 12, 0, 0)), NOTEBOOK)
    found = by_id(collect_submissions(archive, scratch))
    assert found["ab12"].path.name == "newer.ipynb"
    assert found["ab12"].warnings == (
        "2 notebooks found; graded newer.ipynb (newest), ignored: older.ipynb",
    )


def test_corrupt_zip_is_reported(tmp_path, scratch):
    archive = write(tmp_path / "export.zip", b"this is not a zip archive")
    message = "export.zip: it is not a valid zip archive"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(ArchiveError, match=message):
        collect_submissions(archive, scratch)


# --- Unsafe archives -------------------------------------------------------------------


def symlink_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so that external_attr contains a file mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def write_unsafe_zip(path: Path, member: str | zipfile.ZipInfo, content: bytes) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ab12cdef/exercise5.ipynb", NOTEBOOK)
        archive.writestr(member, content)


UNSAFE_MEMBERS = [
    pytest.param("../evil.ipynb", b"{}", r"member '\.\./evil\.ipynb' has a '\.\.' path part",
                 id="parent"),
    pytest.param("ab12/../../evil.ipynb", b"{}", r"'ab12/\.\./\.\./evil\.ipynb' has a '\.\.' path",
                 id="parent-inside"),
    pytest.param("ab12\\..\\..\\evil.ipynb", b"{}", r"has a '\.\.' path part", id="backslashes"),
    pytest.param("C:/evil.ipynb", b"{}", r"member 'C:/evil\.ipynb' starts with a drive letter",
                 id="drive"),
    pytest.param(symlink_member("ab12cdef/link.ipynb"), b"/etc/passwd",
                 r"member 'ab12cdef/link\.ipynb' is a symbolic link", id="symlink"),
    pytest.param("ab12cdef/bomb.ipynb", b"\0" * (8 * 1024 * 1024),
                 r"member 'ab12cdef/bomb\.ipynb' expands from \d+ to 8388608 bytes, more than "
                 r"the limit of 200:1", id="ratio"),
]


@pytest.mark.parametrize("member, content, message", UNSAFE_MEMBERS)
def test_unsafe_member_rejects_whole_archive(tmp_path, scratch, member, content, message):
    archive = tmp_path / "export.zip"
    write_unsafe_zip(archive, member, content)
    with (
        nothing_written_outside(tmp_path, scratch),
        pytest.raises(ArchiveError, match=message) as raised,
    ):
        collect_submissions(archive, scratch)
    assert "Nothing was extracted" in str(raised.value)
    assert str(archive) in str(raised.value)
    assert extracted_files(scratch) == set()
    assert not (tmp_path / "evil.ipynb").exists()


def test_absolute_member_is_rejected(tmp_path, scratch):
    target = tmp_path / "outside" / "evil.ipynb"
    archive = tmp_path / "export.zip"
    write_unsafe_zip(archive, str(target), b"{}")
    message = "has an absolute path"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(ArchiveError, match=message):
        collect_submissions(archive, scratch)
    assert not target.exists()


def test_duplicate_member_is_rejected(tmp_path, scratch):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as output:
        output.writestr("ab12/ex.ipynb", NOTEBOOK)
        with pytest.warns(UserWarning, match="Duplicate name"):
            output.writestr("ab12/ex.ipynb", "{}")
    message = "member 'ab12/ex.ipynb' appears twice"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(ArchiveError, match=message):
        collect_submissions(archive, scratch)


def test_member_count_limit(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_ARCHIVE_MEMBERS", 3)
    archive = make_zip(tmp_path / "export.zip",
                       {f"s{number}.ipynb": NOTEBOOK for number in range(4)})
    message = "it has 4 members, more than the limit of 3"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(ArchiveError, match=message):
        collect_submissions(archive, scratch)
    assert extracted_files(scratch) == set()


def test_total_size_limit(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_UNCOMPRESSED_BYTES", 100)
    archive = make_zip(tmp_path / "export.zip", {"a.ipynb": NOTEBOOK, "b.ipynb": NOTEBOOK})
    message = r"more than the limit of 100 bytes \(reached at member 'b\.ipynb'\)"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(ArchiveError, match=message):
        collect_submissions(archive, scratch)
    assert extracted_files(scratch) == set()


def test_encrypted_member_is_rejected(tmp_path, scratch):
    archive = make_zip(tmp_path / "export.zip", {"ab12.ipynb": NOTEBOOK})
    data = bytearray(archive.read_bytes())
    # Set the "encrypted" flag bit in the local header and in the central directory.
    data[data.find(b"PK\x03\x04") + 6] |= 0x1
    data[data.find(b"PK\x01\x02") + 8] |= 0x1
    archive.write_bytes(bytes(data))
    message = "member 'ab12.ipynb' is encrypted"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(ArchiveError, match=message):
        collect_submissions(archive, scratch)
    assert extracted_files(scratch) == set()


def test_special_file_member_is_rejected(tmp_path, scratch):
    info = zipfile.ZipInfo("ab12/fifo.ipynb")
    info.create_system = 3
    info.external_attr = (stat.S_IFIFO | 0o644) << 16
    archive = tmp_path / "export.zip"
    write_unsafe_zip(archive, info, b"")
    message = "member 'ab12/fifo.ipynb' is a special file"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(ArchiveError, match=message):
        collect_submissions(archive, scratch)


def test_corrupt_member_leaves_nothing(tmp_path, scratch):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as output:
        output.writestr("ab12/exercise5.ipynb", NOTEBOOK)
        output.writestr("cd34/exercise5.ipynb", NOTEBOOK)
    data = archive.read_bytes()
    position = data.rfind(b'"cells"')  # inside the second member's stored bytes
    archive.write_bytes(data[:position] + b"X" + data[position + 1:])
    message = "member 'cd34/exercise5.ipynb' cannot be read"
    with (
        nothing_written_outside(tmp_path, scratch),
        pytest.raises(ArchiveError, match=message) as raised,
    ):
        collect_submissions(archive, scratch)
    assert "The partial extraction was removed" in str(raised.value)
    assert extracted_files(scratch) == set()


def test_windows_separators_are_read_as_folders(tmp_path, scratch):
    archive = make_zip(tmp_path / "export.zip", {
        "ab12cdef\\exercise5.ipynb": NOTEBOOK,
        "cd34efgh\\exercise5.ipynb": NOTEBOOK,
    })
    found = by_id(collect_submissions(archive, scratch))
    assert sorted(found) == ["ab12cdef", "cd34efgh"]
    assert found["ab12cdef"].path.parent.name == "ab12cdef"


# --- Several notebooks and other files --------------------------------------------------


def test_preferred_name_wins_over_newer_notebook(tmp_path, scratch):
    folder = tmp_path / "subs" / "ab12cdef"
    write(folder / "Exercise_5.ipynb", mtime=1_000_000)
    write(folder / "scratchpad.ipynb", mtime=2_000_000)
    write(folder / "tests" / "try.ipynb", mtime=3_000_000)
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == folder / "Exercise_5.ipynb"
    assert submission.warnings == (
        "3 notebooks found; graded Exercise_5.ipynb (name contains 'exercise5'), "
        "ignored: scratchpad.ipynb, tests/try.ipynb",
    )


def test_newest_notebook_wins_without_preferred_name(tmp_path, scratch):
    folder = tmp_path / "subs" / "ab12cdef"
    write(folder / "a.ipynb", mtime=1_000_000)
    write(folder / "c.ipynb", mtime=3_000_000)
    write(folder / "b.ipynb", mtime=2_000_000)
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == folder / "c.ipynb"
    assert submission.warnings == ("3 notebooks found; graded c.ipynb (newest), "
                                   "ignored: a.ipynb, b.ipynb",)


def test_alphabetical_order_breaks_ties(tmp_path, scratch):
    folder = tmp_path / "subs" / "ab12cdef"
    write(folder / "b.ipynb", mtime=1_000_000)
    write(folder / "a.ipynb", mtime=1_000_000)
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == folder / "a.ipynb"
    assert submission.warnings == ("2 notebooks found; graded a.ipynb "
                                   "(first in alphabetical order), ignored: b.ipynb",)


def test_preferred_words_ignore_umlauts(tmp_path, scratch):
    folder = tmp_path / "subs" / "ab12cdef"
    write(folder / "Lösung.ipynb", mtime=1_000_000)
    write(folder / "notes.ipynb", mtime=2_000_000)
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == folder / "Lösung.ipynb"


def test_long_ignored_list_is_shortened(tmp_path, scratch):
    folder = tmp_path / "subs" / "ab12cdef"
    write(folder / "exercise5.ipynb")
    for number in range(12):
        write(folder / f"try{number:02d}.ipynb")
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == folder / "exercise5.ipynb"
    assert submission.warnings[0].endswith("try08.ipynb, try09.ipynb and 2 more")


def test_student_folder_symlinks_are_skipped(tmp_path, scratch):
    other = write(tmp_path / "other" / "exercise5.ipynb")
    folder = tmp_path / "subs" / "ab12cdef"
    write(folder / "mine.ipynb")
    (folder / "exercise5.ipynb").symlink_to(other)
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == folder / "mine.ipynb"
    assert submission.warnings == ()


def test_py_file_alone_is_a_problem(tmp_path, scratch):
    write(tmp_path / "subs" / "ab12cdef" / "exercise5.py", "x = 1\n")
    write(tmp_path / "subs" / "cd34efgh.py", "x = 1\n")
    found = collect_submissions(tmp_path / "subs", scratch)
    assert [submission.student for submission in found] == ["ab12cdef", "cd34efgh"]
    for submission in found:
        assert submission.path is None
        assert submission.problem == PY_ONLY_PROBLEM


def test_py_file_beside_notebook_is_ignored(tmp_path, scratch):
    write(tmp_path / "subs" / "ab12cdef.py", "x = 1\n")
    notebook = write(tmp_path / "subs" / "ab12cdef.ipynb")
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == notebook
    assert submission.problem == ""
    assert submission.warnings == ()


def test_folder_without_notebook_lists_what_was_found(tmp_path, scratch):
    write(tmp_path / "subs" / "ab12cdef" / "report.pdf", b"%PDF-1.4")
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path is None
    assert submission.problem == ("no .ipynb notebook was submitted (found: report.pdf); "
                                  "upload the notebook")


# --- Archives that students uploaded ------------------------------------------------------


def test_student_zip_is_extracted_when_no_notebook(tmp_path, scratch):
    folder = tmp_path / "subs" / "Doe_Jane_jd12abcd_48213"
    folder.mkdir(parents=True)
    make_zip(folder / "exercise5.zip", {"exercise5/exercise5.ipynb": NOTEBOOK})
    before = all_files(tmp_path, exclude=scratch)
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path is not None
    assert submission.path.name == "exercise5.ipynb"
    assert scratch.resolve() in submission.path.resolve().parents
    assert submission.warnings == (
        "the notebook was taken from the uploaded archive exercise5.zip",
    )
    assert all_files(tmp_path, exclude=scratch) == before


def test_student_zip_is_ignored_beside_a_notebook(tmp_path, scratch):
    folder = tmp_path / "subs" / "ab12cdef"
    notebook = write(folder / "exercise5.ipynb")
    make_zip(folder / "data.zip", {"data.csv": "1,2\n"})
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == notebook
    assert not scratch.exists()


def test_unsafe_student_zip_invalidates_one_submission(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "ab12cdef.ipynb")
    write_unsafe_zip(source / "cd34efgh.zip", "../../evil.ipynb", b"{}")
    before = all_files(tmp_path, exclude=scratch)
    found = by_id(collect_submissions(source, scratch))
    assert found["ab12cdef"].problem == ""
    bad = found["cd34efgh"]
    assert bad.path is None
    assert bad.problem == ("the uploaded archive cd34efgh.zip was rejected: member "
                           "'../../evil.ipynb' has a '..' path part, which could write outside "
                           "the extraction folder; upload the .ipynb notebook itself")
    assert all_files(tmp_path, exclude=scratch) == before
    assert not (tmp_path / "evil.ipynb").exists()


def test_student_zips_share_the_size_limit(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_UNCOMPRESSED_BYTES", 3 * len(NOTEBOOK) // 2)
    source = tmp_path / "subs"
    source.mkdir()
    make_zip(source / "ab12cdef.zip", {"ex.ipynb": NOTEBOOK})
    make_zip(source / "cd34efgh.zip", {"ex.ipynb": NOTEBOOK})
    found = by_id(collect_submissions(source, scratch))
    assert found["ab12cdef"].problem == ""
    assert "that one run may extract" in found["cd34efgh"].problem


# --- Collisions -----------------------------------------------------------------------------


@pytest.mark.parametrize("first, second, student", [
    ("Müller.ipynb", "Muller.ipynb", "Muller"),
    ("AB12.ipynb", "ab12.ipynb", "ab12"),
])
def test_entries_with_same_id_are_rejected(tmp_path, scratch, first, second, student):
    write(tmp_path / "subs" / first)
    write(tmp_path / "subs" / second)
    message = f"both give the student id {student}"
    with (
        nothing_written_outside(tmp_path, scratch),
        pytest.raises(IngestError, match=message) as raised,
    ):
        collect_submissions(tmp_path / "subs", scratch)
    assert first in str(raised.value)
    assert second in str(raised.value)


def test_notebook_and_folder_of_same_name_merge(tmp_path, scratch):
    write(tmp_path / "subs" / "ab12cdef.ipynb", mtime=1_000_000)
    write(tmp_path / "subs" / "ab12cdef" / "exercise5.ipynb", mtime=2_000_000)
    [submission] = collect_submissions(tmp_path / "subs", scratch)
    assert submission.path == tmp_path / "subs" / "ab12cdef" / "exercise5.ipynb"
    assert submission.warnings[0].startswith("2 notebooks found; graded exercise5.ipynb")


# --- Rosters ------------------------------------------------------------------------------


def test_roster_adds_names_and_missing_students(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "Doe_Jane_JD12ABCD_48213" / "exercise5.ipynb")
    write(source / "zz99zzzz.ipynb")
    roster = write(tmp_path / "roster.csv",
                   "Login,First name,Last name\njd12abcd,Jane,Doe\nrr34efgh,Rick,Roe\n")
    found = by_id(collect_submissions(source, scratch, roster))
    assert sorted(found) == ["jd12abcd", "rr34efgh", "zz99zzzz"]
    assert found["jd12abcd"].name == "Jane Doe"
    assert found["jd12abcd"].path is not None
    assert found["rr34efgh"] == Submission("rr34efgh", None, name="Rick Roe", missing=True)
    assert found["zz99zzzz"].warnings == ("zz99zzzz is not on the roster roster.csv, "
                                          "but was included anyway",)
    assert found["zz99zzzz"].missing is False


def test_roster_matches_participant_and_zeros(tmp_path, scratch):
    source = tmp_path / "subs"
    write(source / "Jane Doe_123456_assignsubmission_file_" / "ex.ipynb")
    write(source / "doejohn_4711_90210_exercise5.ipynb")
    roster = write(tmp_path / "roster.csv",
                   "\ufeffIdentifier;Full name\nParticipant 123456;Jane Doe\n"
                   "0004711;John Doe\n")
    found = by_id(collect_submissions(source, scratch, roster))
    assert sorted(found) == ["0004711", "Participant_123456"]
    assert found["Participant_123456"].name == "Jane Doe"
    assert found["0004711"].name == "John Doe"
    assert found["0004711"].warnings == ()


def test_roster_id_comes_from_first_id_column(tmp_path, scratch):
    write(tmp_path / "subs" / "Doe_Jane_jd12abcd_48213" / "ex.ipynb")
    roster = write(tmp_path / "roster.csv",
                   "Name,Username,Matriculation\nJane Doe,jd12abcd,22334455\n")
    [submission] = collect_submissions(tmp_path / "subs", scratch, roster)
    assert submission.student == "22334455"
    assert submission.name == "Jane Doe"


def test_roster_with_tabs_and_student_id_header(tmp_path, scratch):
    write(tmp_path / "subs" / "ab12cdef.ipynb")
    roster = write(tmp_path / "roster.tsv", "Student_ID\tName\nAB12CDEF\tJane Doe\n")
    [submission] = collect_submissions(tmp_path / "subs", scratch, roster)
    assert submission.student == "AB12CDEF"
    assert submission.name == "Jane Doe"
    assert submission.warnings == ()


def test_two_entries_for_one_roster_row(tmp_path, scratch):
    write(tmp_path / "subs" / "Doe_Jane_jd12abcd_48213" / "ex.ipynb")
    write(tmp_path / "subs" / "48213.ipynb")
    roster = write(tmp_path / "roster.csv", "login,id\njd12abcd,48213\n")
    message = "both match the roster id"
    with (
        nothing_written_outside(tmp_path, scratch),
        pytest.raises(IngestError, match=message) as raised,
    ):
        collect_submissions(tmp_path / "subs", scratch, roster)
    assert "Doe_Jane_jd12abcd_48213/" in str(raised.value)
    assert "48213.ipynb" in str(raised.value)


@pytest.mark.parametrize("content, message", [
    ("Name,Email\nJane Doe,jane@example.org\n",
     r"has no id column \(its columns are: Name, Email\); name the id column one of: id, "),
    (b"id,name\nab12,J\xf6rg\n", r"is not UTF-8 text \(invalid byte at offset \d+\)"),
    ("", "is empty; it needs a header row with an id column"),
    ("id,name\nab12,Jane\nAB12,John\n", r"lists the id AB12 twice \(lines 2 and 3\)"),
])
def test_bad_roster_is_rejected(tmp_path, scratch, content, message):
    write(tmp_path / "subs" / "ab12.ipynb")
    roster = write(tmp_path / "roster.csv", content)
    with nothing_written_outside(tmp_path, scratch), pytest.raises(IngestError, match=message):
        collect_submissions(tmp_path / "subs", scratch, roster)
    assert not scratch.exists()


def test_missing_roster_is_reported(tmp_path, scratch):
    write(tmp_path / "subs" / "ab12.ipynb")
    message = r"roster .*roster\.csv not found"
    with nothing_written_outside(tmp_path, scratch), pytest.raises(IngestError, match=message):
        collect_submissions(tmp_path / "subs", scratch, tmp_path / "roster.csv")


def test_read_roster_skips_rows_without_id(tmp_path):
    roster = write(tmp_path / "roster.csv",
                   "Student,ID,SIS Login ID\nPoints Possible,,\n\"Doe, Jane\",4711,jdoe\n")
    [student] = read_roster(roster)
    assert student.student == "4711"
    assert student.keys == ("4711",)
    assert student.name == "Doe, Jane"
    assert student.line == 3
