"""Grade one batch of notebooks four ways and compare wall time, throughput and memory.

The ways, each started as a child process whose process tree is sampled:

- ``nbclient``: plain nbclient, one notebook after another, each in a fresh kernel
  with a 30 s per-cell timeout (``nbclient_batch.py``). This is the floor that any
  grader which executes notebooks pays.
- ``nbgrader``: ``nbgrader autograde`` 0.9.6 in its own virtualenv
  (``benchmarks/.venv-nbgrader``, created on first use), on a course folder set up
  as an instructor would for this exercise.
- ``grader``: this repository's ``grader grade BATCH --out OUT --workers 2
  --regrade`` into a fresh output folder.
- ``grader-no-idle-watch``: the same with ``limits.cell_idle_timeout = 0`` in a copy
  of the rubric, so that the grader, like the other ways, stops the endless cell only
  at its 30 s timeout.

Run it from the repository root:

    .venv/bin/python benchmarks/compare.py [--ways nbclient,nbgrader,grader] [--count 24]

It writes ``benchmarks/results/compare-<date>.json`` and ``.md`` and prints the
Markdown table. ``benchmarks/README.md`` describes the measurements and the
nbgrader setup.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from measure import SAMPLE_INTERVAL_SECONDS, Measurement, WayFailed, run_checked, run_measured, tail
from nbclient_batch import write_mnist_raw
from nbgrader_course import (
    NBGRADER_ASSIGNMENT,
    NBGRADER_NOTEBOOK,
    NBGRADER_TEST_CELLS,
    NBGRADER_VENV,
    SOLUTION_NOTEBOOK,
    ensure_nbgrader_venv,
    nbgrader_env,
    nbgrader_seconds_per_student,
    read_nbgrader_scores,
    write_nbgrader_source,
    write_nbgrader_submission,
)

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPOSITORY_ROOT = BENCHMARKS_DIR.parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
SUBMISSIONS_DIR = REPOSITORY_ROOT / "submissions"
GRADER_COMMAND = REPOSITORY_ROOT / ".venv" / "bin" / "grader"

WAYS = ("nbclient", "nbgrader", "grader", "grader-no-idle-watch")
RUBRIC = REPOSITORY_ROOT / "solutions" / "rubric.toml"
CELL_TIMEOUT_SECONDS = 30
GRADER_WORKERS = 2

# The sample whose extra-experiment cell never ends. The batch always contains it,
# so that every way, even on a small batch, has to stop a cell at its timeout.
ENDLESS_CELL_SAMPLE = "zo07qima"


# ---------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------


@dataclass
class BatchEntry:
    student: str
    source: Path
    path: Path  # the copy in the batch folder, named <student>.ipynb


def build_batch(count: int, batch_dir: Path) -> list[BatchEntry]:
    """Copy ``count`` notebooks into ``batch_dir``, one ``<student>.ipynb`` each.

    Order: the solution as student ``solution``, the endless-cell sample, the other
    samples sorted by id, then copies of the samples in sorted order under the ids
    ``<id>-copy1``, ``<id>-copy2``, ... until ``count`` notebooks are there.
    """
    samples = sorted(SUBMISSIONS_DIR.glob("*.ipynb"))
    if not samples:
        raise SystemExit(f"error: no sample notebooks found in {SUBMISSIONS_DIR}")
    ordered = sorted(samples, key=lambda path: (path.stem != ENDLESS_CELL_SAMPLE, path.stem))
    originals = [("solution", SOLUTION_NOTEBOOK)] + [(path.stem, path) for path in ordered]

    chosen = originals[:count]
    copy_round = 1
    while len(chosen) < count:
        for path in samples:
            if len(chosen) == count:
                break
            chosen.append((f"{path.stem}-copy{copy_round}", path))
        copy_round += 1

    batch_dir.mkdir(parents=True)
    entries = []
    for student, source in chosen:
        target = batch_dir / f"{student}.ipynb"
        shutil.copyfile(source, target)
        entries.append(BatchEntry(student, source, target))
    return entries


# ---------------------------------------------------------------------------
# Way 1: plain nbclient
# ---------------------------------------------------------------------------


def run_nbclient(batch: list[BatchEntry], work: Path, verbose: bool) -> dict:
    report_path = work / "nbclient-report.json"
    argv = [
        sys.executable,
        str(BENCHMARKS_DIR / "nbclient_batch.py"),
        "--work",
        str(work / "nbclient"),
        "--report",
        str(report_path),
        "--cell-timeout",
        str(CELL_TIMEOUT_SECONDS),
        *(str(entry.path) for entry in batch),
    ]
    log_path = work / "nbclient.log"
    measurement = run_measured(
        argv,
        REPOSITORY_ROOT,
        log_path,
        show_line=lambda line: verbose or line.startswith("nbclient:"),
    )
    if measurement.returncode != 0 or not report_path.exists():
        raise WayFailed(
            f"nbclient_batch.py exited with {measurement.returncode}. "
            f"Last lines of {log_path}:\n{tail(log_path)}"
        )
    per_notebook = json.loads(report_path.read_text())
    return way_result(
        measurement,
        len(batch),
        argv,
        extra={
            "per_notebook": per_notebook,
            "kernel_failures": [item["student"] for item in per_notebook if item["failure"]],
        },
    )


# ---------------------------------------------------------------------------
# Way 2: nbgrader autograde
# ---------------------------------------------------------------------------


def run_nbgrader(batch: list[BatchEntry], work: Path, verbose: bool) -> dict:
    setup = ensure_nbgrader_venv()
    course = work / "nbgrader-course"
    course.mkdir()
    env = nbgrader_env(course)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'exercise5-benchmark'\n"
    )
    write_nbgrader_source(course)
    nbgrader = str(NBGRADER_VENV / "bin" / "nbgrader")
    generate_seconds = run_checked(
        [nbgrader, "generate_assignment", NBGRADER_ASSIGNMENT],
        "nbgrader generate_assignment",
        cwd=course,
        env=env,
    )
    release = nbformat.read(
        course / "release" / NBGRADER_ASSIGNMENT / f"{NBGRADER_NOTEBOOK}.ipynb", as_version=4
    )

    notes = []
    started = time.monotonic()
    mnist_raw = write_mnist_raw(work / "nbgrader-mnist")
    for entry in batch:
        folder = course / "submitted" / entry.student / NBGRADER_ASSIGNMENT
        notes += write_nbgrader_submission(
            entry.path, entry.student, release, folder / f"{NBGRADER_NOTEBOOK}.ipynb"
        )
        shutil.copytree(mnist_raw, folder / "data" / "MNIST" / "raw")
    submissions_seconds = round(time.monotonic() - started, 2)

    argv = [
        nbgrader,
        "autograde",
        NBGRADER_ASSIGNMENT,
        f"--ExecutePreprocessor.timeout={CELL_TIMEOUT_SECONDS}",
    ]
    log_path = work / "nbgrader.log"
    measurement = run_measured(
        argv,
        course,
        log_path,
        env=env,
        show_line=lambda line: verbose or "Autograding " in line or "ERROR" in line,
    )
    if measurement.returncode != 0:
        raise WayFailed(
            f"nbgrader autograde exited with {measurement.returncode} after "
            f"{measurement.wall_seconds} s. Last lines of {log_path}:\n{tail(log_path)}"
        )
    autograded = sorted(
        path.parent.parent.name
        for path in (course / "autograded").glob(
            f"*/{NBGRADER_ASSIGNMENT}/{NBGRADER_NOTEBOOK}.ipynb"
        )
    )
    missing = sorted({entry.student for entry in batch} - set(autograded))
    if missing:
        raise WayFailed(
            f"nbgrader autograde wrote no autograded notebook for {missing}. See {log_path}"
        )

    return way_result(
        measurement,
        len(batch),
        argv,
        extra={
            "versions": setup["versions"],
            "venv_setup_seconds": setup["setup_seconds"],
            "untimed_seconds": {
                "generate_assignment": generate_seconds,
                "write_submissions": submissions_seconds,
            },
            "max_points": sum(points for _id, points, _source, _anchor in NBGRADER_TEST_CELLS),
            "scores": read_nbgrader_scores(course, env),
            "seconds_per_student": nbgrader_seconds_per_student(measurement.lines),
            "notes": notes,
        },
    )


# ---------------------------------------------------------------------------
# Way 3: this repository's grader
# ---------------------------------------------------------------------------


def run_grader(batch: list[BatchEntry], work: Path, verbose: bool, way: str = "grader") -> dict:
    if not GRADER_COMMAND.exists():
        raise WayFailed(f"{GRADER_COMMAND} not found. Run bin/setup first.")
    out = work / f"{way}-out"
    argv = [
        str(GRADER_COMMAND),
        "grade",
        str(batch[0].path.parent),
        "--out",
        str(out),
        "--workers",
        str(GRADER_WORKERS),
        "--regrade",
    ]
    if way == "grader-no-idle-watch":
        argv += ["--rubric", str(write_rubric_without_idle_watch(work / "rubric-no-idle-watch"))]
    log_path = work / f"{way}.log"
    measurement = run_measured(argv, REPOSITORY_ROOT, log_path, show_line=lambda line: True)
    if measurement.returncode != 0:
        raise WayFailed(
            f"grader exited with {measurement.returncode} after {measurement.wall_seconds} s. "
            f"Last lines of {log_path}:\n{tail(log_path)}"
        )
    with open(out / "gradebook.csv", newline="") as gradebook:
        rows = list(csv.DictReader(gradebook))
    missing = sorted({entry.student for entry in batch} - {row["student"] for row in rows})
    if missing:
        raise WayFailed(f"the gradebook in {out} has no row for {missing}")

    sandbox = ""
    for result_path in sorted((out / "results").glob("*.json")):
        sandbox = json.loads(result_path.read_text()).get("sandbox", "")
        break
    return way_result(
        measurement,
        len(batch),
        argv,
        extra={
            "sandbox": sandbox,
            "scores": {
                row["student"]: {
                    "status": row["status"],
                    "total": row["total"],
                    "max_total": row["max_total"],
                }
                for row in rows
            },
        },
    )


def write_rubric_without_idle_watch(folder: Path) -> Path:
    """Write a copy of the default rubric with ``cell_idle_timeout = 0`` into ``folder``."""
    text = RUBRIC.read_text()
    setting = "\ncell_idle_timeout = 5\n"
    if setting not in text:
        raise WayFailed(f"{RUBRIC} has no line 'cell_idle_timeout = 5' to turn off")
    folder.mkdir()
    for module in RUBRIC.parent.glob("*.py"):
        shutil.copyfile(module, folder / module.name)  # reference.py, which the rubric names
    rubric = folder / RUBRIC.name
    rubric.write_text(text.replace(setting, "\ncell_idle_timeout = 0\n"))
    return rubric


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


def throughput(notebooks: int, wall_seconds: float) -> float:
    return round(notebooks * 60 / wall_seconds, 2)


def way_result(measurement: Measurement, notebooks: int, argv: list[str], extra: dict) -> dict:
    return {
        "ok": True,
        "command": " ".join(argv),
        "notebooks": notebooks,
        "wall_seconds": measurement.wall_seconds,
        "notebooks_per_minute": throughput(notebooks, measurement.wall_seconds),
        # The 1, 5 and 15 minute load averages, because other work on the machine
        # disturbs the timings.
        "load_average_before": [round(value, 2) for value in measurement.load_average_before],
        "load_average_after": [round(value, 2) for value in measurement.load_average_after],
        "memory": measurement.memory,
        **extra,
    }


def describe_machine() -> dict:
    cpu_model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    git_commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPOSITORY_ROOT, capture_output=True, text=True
    ).stdout.strip()
    git_dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPOSITORY_ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "torch": importlib.metadata.version("torch"),
        "nbclient": importlib.metadata.version("nbclient"),
        "git_commit": git_commit,
        "git_work_tree_modified": git_dirty,
    }


def add_ratios(results: dict) -> dict:
    """Return throughput ratios of the grader to each other way that ran without failure."""
    ratios = {}
    for way in ("grader", "grader-no-idle-watch"):
        ours = results["ways"].get(way)
        for other in ("nbclient", "nbgrader"):
            theirs = results["ways"].get(other)
            if ours and theirs and ours.get("ok") and theirs.get("ok"):
                ratios[f"{way}/{other}"] = round(
                    ours["notebooks_per_minute"] / theirs["notebooks_per_minute"], 2
                )
    return ratios


def markdown_table(results: dict) -> str:
    machine = results["machine"]
    lines = [
        f"Batch of {results['batch']['count']} notebooks, {results['date']}, "
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, torch {machine['torch']}.",
        "",
        "| way | wall s | notebooks/min | grader ÷ way | kernel peak RSS MiB (max / mean) "
        "| worker peak RSS MiB | max process peak RSS MiB | tree peak RSS MiB | load before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ours = results["ways"].get("grader", {})
    for way in results["settings"]["ways"]:
        result = results["ways"][way]
        if not result.get("ok"):
            first_line = (
                (result.get("error") or "no error message").splitlines()[0].replace("|", "\\|")
            )
            lines.append(f"| {way} | failed: {first_line} | | | | | | | |")
            continue
        roles = result["memory"]["roles"]
        kernel = roles.get("kernel")
        worker = roles.get("worker")
        kernel_text = (
            f"{kernel['max_peak_rss_mib']:.0f} / {kernel['mean_peak_rss_mib']:.0f}"
            if kernel
            else "-"
        )
        worker_text = f"{worker['max_peak_rss_mib']:.0f}" if worker else "-"
        ratio = "-"
        if ours.get("ok"):
            ratio = f"{ours['notebooks_per_minute'] / result['notebooks_per_minute']:.2f}"
        memory = result["memory"]
        cells = [
            way,
            f"{result['wall_seconds']:.1f}",
            f"{result['notebooks_per_minute']:.2f}",
            ratio,
            kernel_text,
            worker_text,
            f"{memory['max_process_peak_rss_mib']:.0f}",
            f"{memory['peak_tree_rss_mib']:.0f}",
            f"{result['load_average_before'][0]:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "grader ÷ way: the grader's notebooks per minute divided by the way's. Peak RSS is "
        f"sampled every {results['settings']['rss_sample_interval_s']} s and counts shared "
        "pages in every process. Load before: the 1-minute load average when the way started.",
    ]
    return "\n".join(lines) + "\n"


def result_paths(results_dir: Path, date: datetime.date) -> tuple[Path, Path]:
    """Return free ``compare-<date>[-N].json`` and ``.md`` paths in ``results_dir``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"compare-{date.isoformat()}"
    number = 1
    while (results_dir / f"{stem}.json").exists():
        number += 1
        stem = f"compare-{date.isoformat()}-{number}"
    return results_dir / f"{stem}.json", results_dir / f"{stem}.md"


def parse_ways(text: str) -> list[str]:
    ways = [way.strip() for way in text.split(",") if way.strip()]
    unknown = [way for way in ways if way not in WAYS]
    if unknown or not ways:
        raise argparse.ArgumentTypeError(
            f"invalid ways {text!r}: give a comma-separated subset of {','.join(WAYS)}"
        )
    return ways


def parse_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"invalid count {count}: the batch needs at least 1 notebook"
        )
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Grade one batch of notebooks with plain nbclient, nbgrader autograde and this "
        "grader, and compare wall time, throughput and peak memory."
    )
    parser.add_argument(
        "--ways",
        type=parse_ways,
        default=list(WAYS),
        help="comma-separated ways to run, in the order given (default: all of "
        + ",".join(WAYS) + ")",
    )
    parser.add_argument(
        "--count",
        type=parse_count,
        default=24,
        help="notebooks in the batch (default 24): the solution, the 16 samples with the "
        "endless-cell sample first, then copies of the samples under new ids",
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="folder for the batch, working folders, course and logs (default: a new "
        "temporary folder, deleted at the end unless --keep-work or a way failed)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help="folder for the JSON and Markdown results (default: benchmarks/results)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary work folder")
    parser.add_argument(
        "--verbose", action="store_true", help="print every output line of the ways"
    )
    args = parser.parse_args(argv)

    if args.work is not None:
        if args.work.exists() and any(args.work.iterdir()):
            parser.error(f"--work {args.work} is not empty; give a new or empty folder")
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="compare-"))
    print(f"Work folder: {work}", flush=True)

    started_at = datetime.datetime.now().astimezone()
    batch = build_batch(args.count, work / "batch")
    if args.count < 17:
        print(
            f"Note: {args.count} notebooks is less than the solution and all 16 samples.",
            flush=True,
        )
    results = {
        "date": started_at.isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "settings": {
            "ways": args.ways,
            "cell_timeout_s": CELL_TIMEOUT_SECONDS,
            "grader_workers": GRADER_WORKERS,
            "rss_sample_interval_s": SAMPLE_INTERVAL_SECONDS,
        },
        "batch": {
            "count": len(batch),
            "notebooks": {
                entry.student: str(entry.source.relative_to(REPOSITORY_ROOT)) for entry in batch
            },
        },
        "ways": {},
    }

    runners = {
        "nbclient": run_nbclient,
        "nbgrader": run_nbgrader,
        "grader": run_grader,
        "grader-no-idle-watch": lambda *args: run_grader(*args, way="grader-no-idle-watch"),
    }
    try:
        for way in args.ways:
            print(f"== {way}: {len(batch)} notebooks (log: {work / (way + '.log')})", flush=True)
            try:
                results["ways"][way] = runners[way](batch, work, args.verbose)
            except WayFailed as error:
                print(f"error: {way}: {error}", file=sys.stderr, flush=True)
                results["ways"][way] = {"ok": False, "error": str(error)}
                continue
            result = results["ways"][way]
            print(
                f"== {way}: {result['wall_seconds']:.1f} s, "
                f"{result['notebooks_per_minute']:.2f} notebooks/min, max process peak RSS "
                f"{result['memory']['max_process_peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    except KeyboardInterrupt:
        print(f"Interrupted, so no results were written. Work folder: {work}", file=sys.stderr)
        return 130

    all_ok = all(result.get("ok") for result in results["ways"].values())
    if args.work is None and not args.keep_work and all_ok:
        shutil.rmtree(work, ignore_errors=True)
    elif args.work is None:
        print(f"Kept the work folder with the logs: {work}", flush=True)

    results["ratios"] = add_ratios(results)
    table = markdown_table(results)
    json_path, markdown_path = result_paths(args.results, started_at.date())
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    markdown_path.write_text(table)
    print()
    print(table)
    print(f"Wrote {json_path} and {markdown_path}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
