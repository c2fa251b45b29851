"""Find the student submissions to grade and give each a file-name-safe student id.

``collect_submissions`` reads a folder of notebooks, what learning-management systems
(LMS) export, as a folder or a zip archive, and an optional roster CSV.

Export layouts that ``collect_submissions`` recognises, checked in this order. The
formats come from the LMS source code: Moodle ``assign::download_submissions`` in
``mod/assign/locallib.php``, Canvas ``ContentZipper#get_filename`` in
``app/models/content_zipper.rb`` and ILIAS
``ilExSubmission::getDirectoryNameFromUserData``.

- Moodle 3.1 and later: a folder per participant and submission plugin,
  ``<Full name>_<participant id>_assignsubmission_<plugin>_``, such as
  ``Jane Doe_123456_assignsubmission_file_/``. Id: the participant id ``123456``.
  Name: ``Jane Doe``. Moodle replaces ``_`` in the name with a space, and under
  blind marking writes "Participant" (English language pack), read as no name.
- Moodle before 3.1: the same name followed by the uploaded file name, as one flat
  file, such as ``Jane Doe_123456_assignsubmission_file_exercise5.ipynb``.
- Canvas: flat files ``<name>[_late]_<user id>_<attachment id>_<file>``, such as
  ``doejane_late_4711_90210_exercise5.ipynb``. Id: the user id ``4711``. Name:
  ``doejane``, which is the sortable name ("Doe, Jane") in lower case without
  non-word characters. Under anonymous grading the name is left out.
- StudOn/ILIAS: a folder ``<Last>_<First>_<login>_<user id>``, such as
  ``Doe_Jane_jd12abcd_48213/``, with the login as id (``jd12abcd``), or
  ``<Last>_<First>_<user id>`` with the user id as id. Name: ``Jane Doe``. ILIAS
  turns umlauts into ``ae``, ``oe``, ``ue``, drops accents, replaces other non-ASCII
  bytes and ``:\\/*?"<>|`` with ``_`` and keeps spaces.
- Anything else: a folder, or a ``.ipynb``, ``.py`` or ``.zip`` file, whose name or
  file stem is the id, such as ``ab12cdef/`` or ``ab12cdef.ipynb``. No name.

Ids pass through ``student_id``, so they are file-name-safe, and they depend only on
the entry's own name, so they stay the same when other students are added. Other files
directly in the export (status spreadsheets, PDFs) are skipped unless their name
follows the Canvas or old Moodle pattern, in which case they belong to that student.
Several folders or files of one LMS record (a Moodle ``file`` and ``onlinetext``
folder, several Canvas files of one user) are merged into one student, and so are a
plain ``ab12.ipynb`` and ``ab12/``.

Wrapper folders: in an archive, a single top folder is skipped, and so are up to
MAX_WRAPPER_DEPTH nested single folders (ILIAS exports
``<assignment>/<Submissions>/<student>/``). In a folder, such wrappers are skipped only
if they lead to LMS-named entries, so that a folder holding one plain-named student
folder stays one student.

Rules for each student:

- Notebooks are searched in the whole student folder, nested folders included.
  Hidden files and folders (``.ipynb_checkpoints``, ``.DS_Store``), ``__MACOSX`` and
  symbolic links inside a student folder are skipped, and files other than ``.ipynb``
  are ignored.
- Several notebooks: prefer those whose name contains one of
  ``PREFERRED_NOTEBOOK_WORDS`` ("exercise5", "solution", ...; the first word that
  matches wins), then the most recently modified, then the first in alphabetical
  order. A warning names the graded and the ignored notebooks. Modification times
  inside a zip archive are kept when it is extracted.
- Nested zip archives (a student uploaded ``exercise5.zip``) are opened only when the
  student has no notebook outside them. They are extracted one level deep into
  ``scratch`` with the same safety rules as the export. A rejected archive makes
  the submission invalid (``problem``) and never stops the batch.
- No notebook but a ``.py`` file: ``problem`` requests the notebook. No notebook at
  all: ``problem`` lists what was found.

Student ids are compared case-insensitively. Two different entries that give the same
id (``Müller.ipynb`` and ``Muller.ipynb``, or ``AB12.ipynb`` and ``ab12.ipynb``) raise
IngestError naming both, because renaming one silently would attach a grade to the
wrong student.

Roster matching: every id column of the roster is matched against the identifiers that
the export gives (login, user id, participant id, file stem), ignoring case and
leading zeros of numbers; "Participant 123456" as written in Moodle's grading
worksheet matches participant id ``123456``. A matched student takes the id from the
roster's first id column and the roster's name. A student not on the roster keeps the
LMS id and gets a warning; a roster student without a submission gets an entry with
``missing=True``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import shutil
import stat
import tempfile
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Limits for every zip archive that collect_submissions extracts. One call writes at
# most MAX_UNCOMPRESSED_BYTES into scratch, summed over the export and the archives
# that students uploaded inside it.
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 10_000
MAX_COMPRESSION_RATIO = 200
# Smaller members may exceed MAX_COMPRESSION_RATIO, because a few repeated lines can
# compress better than 200:1, and MAX_UNCOMPRESSED_BYTES still bounds their sum.
RATIO_CHECK_MIN_BYTES = 1024 * 1024
# Maximum number of single wrapper folders ("Exercise 5/Submissions/") that are
# skipped above the student entries.
MAX_WRAPPER_DEPTH = 3
# Name parts that mark the notebook to grade when a student submitted several, in order
# of priority. They are compared with the file name in lower case, with umlauts spelled
# out and everything but letters and digits removed.
PREFERRED_NOTEBOOK_WORDS = ("exercise5", "solution", "submission", "abgabe", "loesung")

PY_ONLY_PROBLEM = "only a .py file was submitted; upload the .ipynb notebook"

# Roster header names, compared after _normalize_header. The first id column found in
# ID_COLUMNS order gives the student id, and all id columns are used for matching.
ID_COLUMNS = (
    "id", "student id", "matriculation", "matriculation number", "matrikelnummer",
    "username", "user name", "login", "identifier", "student",
)
NAME_COLUMNS = ("name", "full name")
FIRST_NAME_COLUMNS = ("first name", "firstname", "given name", "vorname")
LAST_NAME_COLUMNS = ("last name", "lastname", "surname", "family name", "nachname")

_NOTEBOOK = ".ipynb"
_SCRIPT = ".py"
_ARCHIVE = ".zip"
_READ_CHUNK_BYTES = 1024 * 1024


class IngestError(Exception):
    """The submissions, an export archive or the roster cannot be used.

    The message names the path or value and what to do about it.
    """


class ArchiveError(IngestError):
    """A zip archive is unreadable or breaks a safety rule.

    ``detail`` names the member and the rule without the advice that the full
    message adds, so that it can be shown to the student who uploaded the archive.
    """

    def __init__(self, archive: str, detail: str, advice: str) -> None:
        super().__init__(f"cannot extract the zip archive {archive}: {detail}. {advice}")
        self.archive = archive
        self.detail = detail


@dataclass(frozen=True)
class Submission:
    """One student's notebook to grade, or the reason why there is none."""

    student: str  # file-name-safe id
    path: Path | None  # the notebook to grade, or None when ``problem`` or ``missing`` is set
    name: str = ""  # the student's name from the roster or the LMS entry name, if known
    warnings: tuple[str, ...] = ()  # notes on choices made, such as which notebook was graded
    problem: str = ""  # the reason the submission cannot be graded (status "invalid-submission")
    missing: bool = False  # True for a roster student with no submission


@dataclass(frozen=True)
class RosterStudent:
    """One row of a roster CSV."""

    student: str  # file-name-safe id from the first non-empty id column
    name: str
    keys: tuple[str, ...]  # values of all id columns, normalised by _match_key
    line: int  # line number in the CSV file, for messages


def student_id(name: str) -> str:
    """Make a file-name-safe student id from a file stem or an LMS id.

    Accents are dropped ("Müller" gives "Muller") and every other run of characters
    outside ``A-Z a-z 0-9 . _ -`` becomes one ``_``.
    """
    folded = unicodedata.normalize("NFKD", name.replace("ß", "ss"))
    folded = "".join(char for char in folded if not unicodedata.combining(char))
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", folded).strip("._")
    return cleaned or "unnamed"


def collect_submissions(source: Path, scratch: Path, roster: Path | None = None) -> list[Submission]:
    """Find one submission per student in an LMS export, a folder or a notebook.

    ``source`` is a folder, a ``.zip`` archive of a folder or one ``.ipynb`` file. The
    module docstring lists the layouts and rules. Archives are extracted into new
    folders under ``scratch``, which is created if missing, and nothing is written
    anywhere else. Notebooks in a folder ``source`` are returned in place, not copied.
    The result is sorted by student id and has one entry per student, including the
    roster students who submitted nothing.

    Raises IngestError when ``source`` or ``roster`` cannot be read, when the export
    archive is unsafe (the message names the member and the rule) and when two
    entries give the same student id.
    """
    source = Path(source)
    scratch = Path(scratch)
    roster_students = read_roster(roster) if roster is not None else None
    budget = _ExtractionBudget(MAX_UNCOMPRESSED_BYTES)
    entries = _merge_entries(_read_entries(source, scratch, budget))
    missing: list[Submission] = []
    if roster is not None:
        missing = _match_roster(entries, roster_students or [], Path(roster))
    _check_unique_ids([(entry.student, entry.inputs[0]) for entry in entries]
                      + [(student.student, f"roster id {student.student}") for student in missing])

    submissions = [_build_submission(entry, scratch, budget) for entry in entries] + missing
    return sorted(submissions, key=lambda submission: submission.student)


def _read_entries(source: Path, scratch: Path, budget: _ExtractionBudget) -> list[_Entry]:
    if not source.exists():
        raise IngestError(f"submissions path {source} not found")
    try:
        if source.is_dir():
            _check_scratch_outside(source, scratch)
            return _scan_folder(_skip_wrappers(source, from_archive=False))
        if source.suffix.lower() == _ARCHIVE:
            extracted = _extract_zip(source, scratch, budget, display=str(source))
            return _scan_folder(_skip_wrappers(extracted, from_archive=True))
    except OSError as error:
        raise IngestError(f"cannot read the submissions in {source}: "
                          f"{error.strerror or error} ({error.filename})") from error
    entry = _file_entry(source) if source.suffix.lower() == _NOTEBOOK else None
    if entry is None:
        raise IngestError(f"{source} is not a folder, a .zip archive or an .ipynb notebook")
    return [entry]


# --- Zip archives --------------------------------------------------------------------


@dataclass
class _ExtractionBudget:
    """Bytes that one collect_submissions call may still write into scratch."""

    remaining: int


def _mib(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size} bytes"
    return f"{size / (1024 * 1024):.1f} MiB"


def _extract_zip(archive: Path, scratch: Path, budget: _ExtractionBudget, display: str) -> Path:
    """Extract ``archive`` into a new folder under ``scratch`` and return that folder.

    Every member is checked before anything is written, so an unsafe archive leaves
    nothing behind. Members under ``__MACOSX`` or with a hidden path part are checked
    but not written. Raises ArchiveError, with ``display`` as the archive's name.
    """
    try:
        zip_file = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ArchiveError(display, f"it is not a valid zip archive ({error})",
                           "Download the export again.") from error
    with zip_file:
        members = _check_members(zip_file.infolist(), budget, display)
        try:
            scratch.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix=f"{student_id(archive.stem)[:40]}-", dir=scratch))
        except OSError as error:
            raise IngestError(f"cannot create a folder in the scratch folder {scratch}: "
                              f"{error.strerror or error}") from error
        try:
            for info, parts in members:
                _extract_member(zip_file, info, root, parts, display)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    return root


def _check_members(
    infos: list[zipfile.ZipInfo], budget: _ExtractionBudget, display: str
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Check every member against the safety rules and return the members to write.

    Raises ArchiveError for the first member that breaks a rule. Reserves the declared
    size of the returned members in ``budget``.
    """
    advice = "Nothing was extracted; check where the archive came from."
    limit_advice = ("Nothing was extracted; if the archive is genuine, extract it by hand "
                    "and pass the folder instead.")
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise ArchiveError(display, f"it has {len(infos)} members, more than the limit of "
                           f"{MAX_ARCHIVE_MEMBERS}", limit_advice)
    seen: set[tuple[str, ...]] = set()
    to_write: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    total = 0
    reserved = 0
    for info in infos:
        parts = _member_parts(info, display, advice)
        if not parts:
            continue  # a folder entry such as "./"
        if parts in seen:
            raise ArchiveError(display, f"member {info.filename!r} appears twice", advice)
        seen.add(parts)
        if info.flag_bits & 0x1:
            raise ArchiveError(display, f"member {info.filename!r} is encrypted",
                               "Ask for an export without a password.")
        if _is_folder_member(info):
            if not _is_skipped_path(parts):
                to_write.append((info, parts))
            continue
        ratio_exceeded = info.file_size > info.compress_size * MAX_COMPRESSION_RATIO
        if info.file_size >= RATIO_CHECK_MIN_BYTES and ratio_exceeded:
            raise ArchiveError(
                display,
                f"member {info.filename!r} expands from {info.compress_size} to {info.file_size} "
                f"bytes, more than the limit of {MAX_COMPRESSION_RATIO}:1 for members of "
                f"{_mib(RATIO_CHECK_MIN_BYTES)} or more, which suggests a zip bomb",
                advice,
            )
        total += info.file_size
        if total > MAX_UNCOMPRESSED_BYTES:
            raise ArchiveError(
                display,
                f"its members expand to more than the limit of {_mib(MAX_UNCOMPRESSED_BYTES)} "
                f"(reached at member {info.filename!r})",
                limit_advice,
            )
        if not _is_skipped_path(parts):
            reserved += info.file_size
            to_write.append((info, parts))
    if reserved > budget.remaining:
        raise ArchiveError(
            display,
            f"its members expand to {_mib(reserved)}, more than the {_mib(budget.remaining)} "
            f"left of the {_mib(MAX_UNCOMPRESSED_BYTES)} that one run may extract",
            limit_advice,
        )
    budget.remaining -= reserved
    return to_write


def _is_folder_member(info: zipfile.ZipInfo) -> bool:
    return info.filename.endswith(("/", "\\"))


def _member_parts(info: zipfile.ZipInfo, display: str, advice: str) -> tuple[str, ...]:
    """Return the path parts of a member, or raise ArchiveError if it could escape."""
    name = info.filename
    if name.startswith(("/", "\\")):
        raise ArchiveError(display, f"member {name!r} has an absolute path", advice)
    if re.match(r"[A-Za-z]:", name):
        raise ArchiveError(display, f"member {name!r} starts with a drive letter", advice)
    # Backslashes count as separators because archives made on Windows may use them.
    parts = tuple(part for part in re.split(r"[/\\]", name) if part not in ("", "."))
    if ".." in parts:
        raise ArchiveError(display, f"member {name!r} has a '..' path part, which could "
                           "write outside the extraction folder", advice)
    if not parts and not _is_folder_member(info):
        raise ArchiveError(display, f"member {name!r} has an empty path", advice)
    # The upper 16 bits of external_attr contain the Unix file mode when the archive
    # records one. Archives made on Windows leave them 0.
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise ArchiveError(display, f"member {name!r} is a symbolic link", advice)
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(display, f"member {name!r} is a special file, not a regular "
                           "file or folder", advice)
    return parts


def _extract_member(
    zip_file: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, parts: tuple[str, ...],
    display: str,
) -> None:
    advice = "The partial extraction was removed; download the export again."
    target = root.joinpath(*parts)
    # _member_parts already rules out escapes; this guards against a missed case.
    if root.resolve() not in target.resolve().parents:
        raise ArchiveError(display, f"member {info.filename!r} resolves outside the "
                           "extraction folder", advice)
    try:
        if _is_folder_member(info):
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with zip_file.open(info) as member, open(target, "xb") as output:
            while chunk := member.read(_READ_CHUNK_BYTES):
                written += len(chunk)
                if written > info.file_size:
                    raise ArchiveError(display, f"member {info.filename!r} expands beyond its "
                                       f"declared size of {info.file_size} bytes", advice)
                output.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise ArchiveError(display, f"member {info.filename!r} cannot be read ({error})",
                           advice) from error
    except OSError as error:
        raise ArchiveError(display, f"member {info.filename!r} cannot be written "
                           f"({error.strerror or error})", advice) from error
    try:
        modified = time.mktime(info.date_time + (0, 0, -1))
        os.utime(target, (modified, modified))
    except (OverflowError, ValueError, OSError):
        log.debug("kept the extraction time as the modification time of %s", target)


# --- Export layouts ------------------------------------------------------------------


@dataclass
class _File:
    """A file that a student submitted."""

    path: Path
    label: str  # the path inside the student's folder, or the file name, for warnings
    match_name: str  # the name compared with PREFERRED_NOTEBOOK_WORDS (Canvas: the uploaded name)


@dataclass
class _Entry:
    """One student's files as found in the export, before the roster is applied."""

    student: str
    record: str  # the LMS record, such as "Moodle participant 123456", which merges entries
    name: str
    keys: tuple[str, ...]  # identifiers to match against the roster's id columns
    inputs: list[str]  # folder or file names in the export, for messages
    files: list[_File]
    warnings: list[str] = field(default_factory=list)


_MOODLE_FOLDER = re.compile(
    r"(?P<name>[^_]*)_(?P<id>[0-9]+)_assignsubmission_(?P<plugin>[a-z0-9]+)_"
)
_MOODLE_FILE = re.compile(
    r"(?P<name>[^_]*)_(?P<id>[0-9]+)_assignsubmission_(?P<plugin>[a-z0-9]+)_(?P<file>.+)"
)
# The name part is lazy and optional so that "late_4711_..." (anonymous and late) is
# read as no name rather than the name "late".
_CANVAS_FILE = re.compile(
    r"(?:(?P<name>[^_]+)_)??(?:late_)?(?P<id>[0-9]+)_(?P<attachment>[0-9]+)_(?P<file>.+)",
    re.IGNORECASE,
)


def _is_skipped(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _is_skipped_path(parts: tuple[str, ...]) -> bool:
    return any(_is_skipped(part) for part in parts)


def _check_scratch_outside(source: Path, scratch: Path) -> None:
    resolved_source = source.resolve()
    resolved_scratch = scratch.resolve()
    if resolved_scratch == resolved_source or resolved_source in resolved_scratch.parents:
        raise IngestError(
            f"the scratch folder {scratch} is inside the submissions folder {source}, so "
            "extracted files would be read as submissions; choose a scratch folder outside it"
        )


def _skip_wrappers(root: Path, from_archive: bool) -> Path:
    """Return the folder that contains the student entries below ``root``.

    Descends while a folder contains no notebook, script or archive and exactly one
    subfolder that is not named like an LMS student folder (ILIAS exports
    "<assignment>/<Submissions>/<student>/"). Other files there, such as a status
    spreadsheet, are skipped. In a folder that is not an extracted archive, the
    wrappers are skipped only if they lead to LMS-named entries, so that a folder with
    one plain-named student folder stays one student.
    """
    # NOTE: in an archive, one plain-named student folder ("ab12cdef/exercise5.ipynb")
    # cannot be distinguished from a wrapper folder, so the notebook's stem becomes the id.
    current = root
    for _ in range(MAX_WRAPPER_DEPTH):
        children = [child for child in current.iterdir() if not _is_skipped(child.name)]
        folders = [child for child in children if child.is_dir()]
        has_submission_files = any(
            child.is_file() and child.suffix.lower() in (_NOTEBOOK, _SCRIPT, _ARCHIVE)
            for child in children
        )
        if has_submission_files or len(folders) != 1 or _is_lms_folder(folders[0].name):
            break
        current = folders[0]
    if from_archive or current == root or _has_lms_entries(current):
        return current
    return root


def _has_lms_entries(folder: Path) -> bool:
    for child in folder.iterdir():
        if _is_skipped(child.name):
            continue
        if child.is_dir() and _is_lms_folder(child.name):
            return True
        is_lms_file = _MOODLE_FILE.fullmatch(child.name) or _CANVAS_FILE.fullmatch(child.name)
        if child.is_file() and is_lms_file:
            return True
    return False


def _is_lms_folder(name: str) -> bool:
    return _MOODLE_FOLDER.fullmatch(name) is not None or _parse_ilias_folder(name) is not None


def _parse_ilias_folder(name: str) -> tuple[str, str, str, str] | None:
    """Split an ILIAS folder name into last name, first name, login and user id.

    The login is empty for "<Last>_<First>_<user id>". Names are assumed to contain no
    ``_``, so a login may contain ``_``.
    """
    # NOTE: ILIAS replaces each non-ASCII byte without an HTML entity (in CJK names, for
    # example) with "_". That shifts the fields, so the login is wrong and the student
    # may not match the roster.
    fields = name.split("_")
    if len(fields) < 3 or not re.fullmatch(r"[0-9]+", fields[-1]):
        return None
    last, first = fields[0].strip(), fields[1].strip()
    if not last or not first:
        return None
    return last, first, "_".join(fields[2:-1]), fields[-1]


def _scan_folder(root: Path) -> list[_Entry]:
    """Read each folder and each submission file directly in ``root`` as an entry."""
    entries: list[_Entry] = []
    skipped: list[str] = []
    for path in sorted(root.iterdir()):
        if _is_skipped(path.name):
            continue
        if path.is_dir():
            entries.append(_folder_entry(path))
            continue
        entry = _file_entry(path) if path.is_file() else None
        if entry is None:
            skipped.append(path.name)
        else:
            entries.append(entry)
    if skipped:
        files = "1 file" if len(skipped) == 1 else f"{len(skipped)} files"
        log.warning("skipped %s in %s that are not notebooks, scripts or archives and not "
                    "named like LMS submission files: %s", files, root, ", ".join(skipped))
    return entries


def _folder_entry(folder: Path) -> _Entry:
    files = _files_below(folder, prefix="")
    inputs = [f"{folder.name}/"]
    moodle = _MOODLE_FOLDER.fullmatch(folder.name)
    if moodle:
        return _moodle_entry(moodle["name"], moodle["id"], inputs, files)
    ilias = _parse_ilias_folder(folder.name)
    if ilias:
        last, first, login, user_id = ilias
        return _Entry(
            student=student_id(login or user_id),
            record=f"ILIAS user {user_id}",
            name=f"{first} {last}",
            keys=(login, user_id) if login else (user_id,),
            inputs=inputs,
            files=files,
        )
    return _plain_entry(folder.name, inputs, files)


def _file_entry(path: Path) -> _Entry | None:
    """Read one file in the export root as an entry, or None if it is not a submission."""
    inputs = [path.name]
    moodle = _MOODLE_FILE.fullmatch(path.name)
    if moodle:
        return _moodle_entry(moodle["name"], moodle["id"], inputs,
                             [_File(path, path.name, moodle["file"])])
    canvas = _CANVAS_FILE.fullmatch(path.name)
    if canvas:
        user_id = canvas["id"]
        return _Entry(
            student=student_id(user_id),
            record=f"Canvas user {user_id}",
            name=canvas["name"] or "",
            keys=(user_id,),
            inputs=inputs,
            files=[_File(path, path.name, canvas["file"])],
        )
    if path.suffix.lower() in (_NOTEBOOK, _SCRIPT, _ARCHIVE):
        return _plain_entry(path.stem, inputs, [_File(path, path.name, path.name)])
    return None


def _moodle_entry(name: str, participant: str, inputs: list[str], files: list[_File]) -> _Entry:
    name = name.strip()
    if name.casefold() == "participant":
        name = ""  # blind marking hides the name
    return _Entry(
        student=student_id(participant),
        record=f"Moodle participant {participant}",
        name=name,
        keys=(participant,),
        inputs=inputs,
        files=files,
    )


def _plain_entry(stem: str, inputs: list[str], files: list[_File]) -> _Entry:
    student = student_id(stem)
    return _Entry(student=student, record=f"entry named {stem!r}", name="",
                  keys=(stem, student), inputs=inputs, files=files)


def _files_below(folder: Path, prefix: str) -> list[_File]:
    """List the files below ``folder``, skipping hidden ones and symbolic links."""
    found: list[_File] = []
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(
            name for name in subfolders
            if not _is_skipped(name) and not os.path.islink(os.path.join(directory, name))
        )
        for name in sorted(names):
            path = Path(directory, name)
            if _is_skipped(name):
                continue
            if path.is_symlink() or not path.is_file():
                log.info("skipped %s: a symbolic link or not a regular file", path)
                continue
            label = prefix + path.relative_to(folder).as_posix()
            found.append(_File(path, label, name))
    return found


def _merge_entries(entries: list[_Entry]) -> list[_Entry]:
    """Merge entries of the same LMS record and raise IngestError if two others share an id."""
    by_record: dict[str, _Entry] = {}
    for entry in entries:
        existing = by_record.get(entry.record)
        if existing is None:
            by_record[entry.record] = entry
            continue
        existing.inputs.extend(entry.inputs)
        existing.files.extend(entry.files)
        existing.name = existing.name or entry.name
    merged = list(by_record.values())
    _check_unique_ids([(entry.student, entry.inputs[0]) for entry in merged])
    return merged


def _check_unique_ids(ids: list[tuple[str, str]]) -> None:
    """Raise IngestError if two (student id, source) pairs share an id, ignoring case."""
    seen: dict[str, str] = {}
    for student, source in ids:
        key = student.casefold()
        if key in seen:
            raise IngestError(
                f"{seen[key]} and {source} both give the student id {student} (ids are "
                "compared ignoring case); rename one of them so that each student has one id"
            )
        seen[key] = source


# --- Choosing the notebook -----------------------------------------------------------


def _build_submission(entry: _Entry, scratch: Path, budget: _ExtractionBudget) -> Submission:
    files = list(entry.files)
    warnings = list(entry.warnings)
    notebooks = [file for file in files if file.path.suffix.lower() == _NOTEBOOK]
    if not notebooks:
        archives = [file for file in files if file.path.suffix.lower() == _ARCHIVE]
        for archive in archives:
            try:
                extracted = _extract_zip(archive.path, scratch, budget, display=archive.label)
            except ArchiveError as error:
                problem = (f"the uploaded archive {archive.label} was rejected: {error.detail}; "
                           "upload the .ipynb notebook itself")
                return _invalid(entry, warnings, problem)
            files.extend(_files_below(extracted, prefix=f"{archive.label}/"))
        notebooks = [file for file in files if file.path.suffix.lower() == _NOTEBOOK]
        if notebooks and archives:
            warnings.append("the notebook was taken from the uploaded archive "
                            + ", ".join(archive.label for archive in archives))
    if not notebooks:
        if any(file.path.suffix.lower() == _SCRIPT for file in files):
            return _invalid(entry, warnings, PY_ONLY_PROBLEM)
        found = _join_labels([file.label for file in files]) or "nothing"
        return _invalid(entry, warnings,
                        f"no .ipynb notebook was submitted (found: {found}); upload the notebook")
    chosen, note = _choose_notebook(notebooks)
    if note:
        warnings.append(note)
    return Submission(entry.student, chosen.path, name=entry.name, warnings=tuple(warnings))


def _invalid(entry: _Entry, warnings: list[str], problem: str) -> Submission:
    return Submission(entry.student, None, name=entry.name, warnings=tuple(warnings),
                      problem=problem)


def _choose_notebook(notebooks: list[_File]) -> tuple[_File, str]:
    """Pick the notebook to grade and return it with a warning, empty for one notebook.

    Rule: keep the notebooks whose name contains the first PREFERRED_NOTEBOOK_WORDS
    entry that any of them contains, then take the newest by modification time, then
    the first in alphabetical order.
    """
    if len(notebooks) == 1:
        return notebooks[0], ""
    reasons: list[str] = []
    candidates = notebooks
    for word in PREFERRED_NOTEBOOK_WORDS:
        preferred = [file for file in notebooks if word in _squash(file.match_name)]
        if preferred:
            candidates = preferred
            reasons.append(f"name contains {word!r}")
            break
    if len(candidates) > 1:
        by_age = sorted(candidates, key=lambda file: (-file.path.stat().st_mtime,
                                                      file.label.casefold(), file.label))
        newest, runner_up = by_age[0], by_age[1]
        if newest.path.stat().st_mtime > runner_up.path.stat().st_mtime:
            reasons.append("newest")
        else:
            reasons.append("first in alphabetical order")
        candidates = by_age
    chosen = candidates[0]
    ignored = sorted((file.label for file in notebooks if file is not chosen), key=str.casefold)
    note = (f"{len(notebooks)} notebooks found; graded {chosen.label} ({', '.join(reasons)}), "
            f"ignored: {_join_labels(ignored)}")
    return chosen, note


def _squash(name: str) -> str:
    """Return ``name`` in lower case with umlauts spelled out and only letters and digits."""
    name = name.casefold()
    for umlaut, spelled_out in (("ä", "ae"), ("ö", "oe"), ("ü", "ue")):
        name = name.replace(umlaut, spelled_out)
    return re.sub(r"[^a-z0-9]", "", student_id(name).casefold())


def _join_labels(labels: list[str], limit: int = 10) -> str:
    """Join file labels with commas, naming at most ``limit`` of them."""
    if len(labels) <= limit:
        return ", ".join(labels)
    return ", ".join(labels[:limit]) + f" and {len(labels) - limit} more"


# --- Roster --------------------------------------------------------------------------


def read_roster(path: Path) -> list[RosterStudent]:
    """Read a roster CSV and return its students in file order.

    Columns are found by header name, ignoring case, spaces, ``_``, ``-`` and ``.``.
    ID_COLUMNS name the id columns, and NAME_COLUMNS, or FIRST_NAME_COLUMNS and
    LAST_NAME_COLUMNS, the name. A "Student" column beside another id column is read as
    the name. The delimiter may be a comma, a semicolon or a tab, and a UTF-8 byte
    order mark is allowed. Rows without any id are skipped. Raises IngestError when the
    file cannot be read, is not UTF-8, has no id column or lists an id twice.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise IngestError(f"roster {path} not found; pass the path of a CSV file with an "
                          "id column") from error
    except IsADirectoryError as error:
        raise IngestError(f"roster {path} is a folder; pass the path of a CSV file") from error
    except OSError as error:
        raise IngestError(f"cannot read roster {path}: {error.strerror or error}") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise IngestError(f"roster {path} is not UTF-8 text (invalid byte at offset "
                          f"{error.start}); save it as CSV in UTF-8 encoding") from error
    try:
        rows = _read_csv_rows(text)
    except csv.Error as error:
        raise IngestError(f"roster {path} is not a valid CSV file: {error}") from error
    if not rows:
        raise IngestError(f"roster {path} is empty; it needs a header row with an id column")

    (_, header), body = rows[0], rows[1:]
    columns = [_normalize_header(title) for title in header]
    id_titles = [title for title in ID_COLUMNS if title in columns]
    if not id_titles:
        raise IngestError(
            f"roster {path} has no id column (its columns are: {', '.join(header)}); "
            f"name the id column one of: {', '.join(ID_COLUMNS)}"
        )
    name_titles = NAME_COLUMNS
    if len(id_titles) > 1 and "student" in id_titles:
        # Beside a real id column, "Student" contains names (Canvas: "Doe, Jane").
        id_titles.remove("student")
        name_titles = NAME_COLUMNS + ("student",)
    id_indices = [columns.index(title) for title in id_titles]
    students: list[RosterStudent] = []
    first_line: dict[str, int] = {}
    for line, row in body:
        values = [row[index].strip() if index < len(row) else "" for index in id_indices]
        if not any(values):
            continue
        student = student_id(next(value for value in values if value))
        key = student.casefold()
        if key in first_line:
            raise IngestError(f"roster {path} lists the id {student} twice (lines "
                              f"{first_line[key]} and {line}); remove one of the rows")
        first_line[key] = line
        keys = tuple(_match_key(value) for value in values if value)
        name = _roster_name(columns, row, name_titles)
        students.append(RosterStudent(student, name, keys, line))
    return students


def _read_csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """Parse CSV text into (line number, fields) pairs, skipping blank rows."""
    first_line = text.split("\n", 1)[0]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(first_line, ",;\t")
    except csv.Error:
        dialect = csv.excel  # one column, so there is no delimiter to detect
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    rows: list[tuple[int, list[str]]] = []
    for row in reader:
        if any(value.strip() for value in row):
            rows.append((reader.line_num, row))
    return rows


def _normalize_header(title: str) -> str:
    return re.sub(r"[\s_.\-]+", " ", title.casefold()).strip()


def _roster_name(columns: list[str], row: list[str], name_titles: tuple[str, ...]) -> str:
    def value(titles: tuple[str, ...]) -> str:
        for title in titles:
            if title in columns and columns.index(title) < len(row):
                found = row[columns.index(title)].strip()
                if found:
                    return found
        return ""

    full = value(name_titles)
    if full:
        return full
    return " ".join(part for part in (value(FIRST_NAME_COLUMNS), value(LAST_NAME_COLUMNS)) if part)


def _match_key(value: str) -> str:
    """Normalise an id for matching, ignoring case, a "Participant" prefix and leading zeros."""
    key = value.strip().casefold()
    participant = re.fullmatch(r"participant\s*([0-9]+)", key)
    if participant:
        key = participant[1]
    if re.fullmatch(r"[0-9]+", key):
        key = str(int(key))  # spreadsheets drop leading zeros of matriculation numbers
    return key


def _match_roster(
    entries: list[_Entry], roster: list[RosterStudent], roster_path: Path
) -> list[Submission]:
    """Give matched entries the roster's id and name, warn about the others, and return
    an entry with ``missing=True`` for each roster student without a submission."""
    by_key: dict[str, RosterStudent] = {}
    for student in roster:
        for key in student.keys:
            by_key.setdefault(key, student)
    claimed: dict[str, _Entry] = {}
    for entry in entries:
        match = next((by_key[key] for key in map(_match_key, entry.keys) if key in by_key), None)
        if match is None:
            entry.warnings.append(f"{entry.student} is not on the roster {roster_path.name}, "
                                  "but was included anyway")
            continue
        if match.student in claimed:
            raise IngestError(
                f"{claimed[match.student].inputs[0]} and {entry.inputs[0]} both match the "
                f"roster id {match.student} (line {match.line} of {roster_path}); remove one "
                "of them or correct the roster"
            )
        claimed[match.student] = entry
        entry.student = match.student
        entry.name = match.name or entry.name
    return [
        Submission(student.student, None, name=student.name, missing=True)
        for student in roster
        if student.student not in claimed
    ]
