"""The class overview page, ``OUT/index.html``: score distribution, pass rate per
rubric item, the most common mistakes, every student, and the run's timings.

The page is one self-contained file: styles and the small sorting and filtering
script are inline, so it works offline and from a learning-management system.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from jinja2 import Environment, PackageLoader, select_autoescape

from .results import GRADED, SubmissionResult
from .rubric import Rubric
from .similarity import THRESHOLD as SIMILARITY_THRESHOLD, SimilarPair

_environment = Environment(
    loader=PackageLoader("grader", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
BINS = 10  # bars in the score distribution


def score_histogram(totals: list[float], max_total: float) -> list[dict[str, Any]]:
    """Count totals in BINS equal ranges from 0 to max_total; the last range includes the maximum."""
    width = max_total / BINS if max_total else 1.0
    counts = [0] * BINS
    for total in totals:
        counts[min(BINS - 1, int(total // width))] += 1
    return [{"low": round(i * width, 2), "high": round((i + 1) * width, 2), "count": count}
            for i, count in enumerate(counts)]


def item_pass_rates(results: list[SubmissionResult], rubric: Rubric) -> list[dict[str, Any]]:
    """Return, per rubric item, the share of graded submissions with full points."""
    graded = [r for r in results if r.status == GRADED]
    rates = []
    for item in rubric.items:
        full = sum(1 for r in graded for i in r.items if i.id == item.id and i.points >= i.max_points)
        rates.append({"id": item.id, "title": item.title, "passed": full, "graded": len(graded),
                      "rate": full / len(graded) if graded else 0.0})
    return rates


def common_mistakes(results: list[SubmissionResult], limit: int = 15) -> list[dict[str, Any]]:
    """Group lost points by item and hint (or message when there is no hint), most frequent first."""
    counter: Counter[tuple[str, str]] = Counter()
    for result in results:
        if result.status != GRADED:
            continue
        for item in result.items:
            if item.points < item.max_points:
                counter[(item.id, item.hint or item.message)] += 1
    return [{"id": item_id, "text": text, "count": count}
            for (item_id, text), count in counter.most_common(limit)]


def phase_medians(results: list[SubmissionResult]) -> dict[str, float]:
    """Return the median seconds of each phase over the submissions that ran it."""
    phases: dict[str, list[float]] = {}
    for result in results:
        for phase, seconds in result.timings.items():
            phases.setdefault(phase, []).append(seconds)
    return {phase: round(statistics.median(values), 2) for phase, values in phases.items()}


def render_overview(results: Iterable[SubmissionResult], rubric: Rubric, wall_seconds: float,
                    similar: list[SimilarPair] | None = None) -> str:
    """Render the class overview page."""
    results = sorted(results, key=lambda r: r.student)
    graded = [r.total for r in results if r.status == GRADED]
    histogram = score_histogram(graded, rubric.max_total)
    context = {
        "rubric": rubric,
        "results": results,
        "histogram": histogram,
        "max_count": max([bar["count"] for bar in histogram] + [1]),
        "pass_rates": item_pass_rates(results, rubric),
        "mistakes": common_mistakes(results),
        "medians": phase_medians(results),
        "statuses": Counter(r.status for r in results),
        "mean": round(statistics.mean(graded), 2) if graded else None,
        "median": round(statistics.median(graded), 2) if graded else None,
        "wall_seconds": round(wall_seconds, 1),
        "similar": similar or [],
        "similarity_threshold": SIMILARITY_THRESHOLD,
    }
    return _environment.get_template("index.html").render(**context)


def write_overview(results: Iterable[SubmissionResult], rubric: Rubric, out_dir: Path,
                   wall_seconds: float, similar: list[SimilarPair] | None = None) -> Path:
    path = out_dir / "index.html"
    temporary = path.with_suffix(".html.tmp")
    temporary.write_text(render_overview(results, rubric, wall_seconds, similar), encoding="utf-8")
    temporary.replace(path)
    return path
