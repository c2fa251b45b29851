"""Write a batch's outputs: the gradebook CSV, one JSON result and one HTML feedback
page per submission.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from .results import SubmissionResult, write_json_atomic
from .rubric import Rubric

_environment = Environment(
    loader=PackageLoader("grader", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _points(value: float) -> str:
    return f"{value:g}"


_environment.filters["points"] = _points


def write_result(result: SubmissionResult, out_dir: Path) -> Path:
    """Write the submission's JSON result document; return its path."""
    path = out_dir / "results" / f"{result.student}.json"
    write_json_atomic(path, result.to_document())
    return path


CHART_WIDTH = 520
CHART_HEIGHT = 180
_MARGIN = 40


def training_chart(curve: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return SVG polyline coordinates for the loss and accuracy curve, or None without data.

    Loss is scaled to its maximum, accuracy to [0, 1]; both share the step axis.
    """
    points = [p for p in curve if p.get("loss") is not None and p.get("accuracy") is not None]
    if len(points) < 2:
        return None
    first, last = points[0]["step"], points[-1]["step"]
    top_loss = max(p["loss"] for p in points) or 1.0
    inner_width = CHART_WIDTH - 2 * _MARGIN
    inner_height = CHART_HEIGHT - 2 * _MARGIN

    def x(step: float) -> float:
        return round(_MARGIN + (step - first) / max(1, last - first) * inner_width, 1)

    def y(fraction: float) -> float:
        return round(_MARGIN + (1 - fraction) * inner_height, 1)

    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "loss": " ".join(f"{x(p['step'])},{y(p['loss'] / top_loss)}" for p in points),
        "accuracy": " ".join(f"{x(p['step'])},{y(p['accuracy'])}" for p in points),
        "top_loss": round(top_loss, 3),
        "first_step": first,
        "every": points[1]["step"] - points[0]["step"],
        "last_step": last,
        "final_loss": points[-1]["loss"],
        "final_accuracy": points[-1]["accuracy"],
        "left": _MARGIN,
        "right": CHART_WIDTH - _MARGIN,
        "top": _MARGIN,
        "bottom": CHART_HEIGHT - _MARGIN,
    }


def first_layer_mismatch(result: SubmissionResult) -> int | None:
    """Return the index of the first layer row that differs from the expected one."""
    rows = max(len(result.layers), len(result.expected_layers))
    for index in range(rows):
        if index >= len(result.layers) or index >= len(result.expected_layers):
            return index
        mine, want = result.layers[index], result.expected_layers[index]
        if (mine["kind"], mine["shape"]) != (want["kind"], want["shape"]) or \
                mine["params"] != want.get("params", mine["params"]):
            return index
    return None


def render_feedback(result: SubmissionResult, rubric: Rubric, executed_link: str | None) -> str:
    """Render the student's feedback page as one self-contained HTML document."""
    template = _environment.get_template("feedback.html")
    return template.render(result=result, rubric=rubric, executed_link=executed_link,
                           chart=training_chart(result.training.get("curve", [])),
                           first_mismatch=first_layer_mismatch(result) if result.layers else None)


def write_feedback(result: SubmissionResult, rubric: Rubric, out_dir: Path) -> Path:
    path = out_dir / "feedback" / f"{result.student}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    executed = out_dir / "executed" / f"{result.student}.ipynb"
    link = f"../executed/{html.escape(result.student)}.ipynb" if executed.is_file() else None
    temporary = path.with_suffix(".html.tmp")
    temporary.write_text(render_feedback(result, rubric, link), encoding="utf-8")
    temporary.replace(path)
    return path


def spreadsheet_safe(text: str) -> str:
    """Prefix text that a spreadsheet would run as a formula (=, +, -, @) with a quote."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def gradebook_frame(results: Iterable[SubmissionResult], rubric: Rubric) -> pd.DataFrame:
    """Build the gradebook: one row per submission, one column per rubric item."""
    rows = []
    for result in results:
        row = {
            "student": spreadsheet_safe(result.student),
            "name": spreadsheet_safe(result.name),
            "status": result.status,
            "total": result.total,
            "max_total": result.max_total,
        }
        points = {item.id: item.points for item in result.items}
        for item in rubric.items:
            row[item.id] = points.get(item.id, 0.0)
        row["reason"] = spreadsheet_safe(result.reason)
        rows.append(row)
    columns = ["student", "name", "status", "total", "max_total", *[i.id for i in rubric.items], "reason"]
    return pd.DataFrame(rows, columns=columns).sort_values("student", kind="stable")


def write_gradebook(results: Iterable[SubmissionResult], rubric: Rubric, out_dir: Path) -> Path:
    path = out_dir / "gradebook.csv"
    temporary = path.with_suffix(".csv.tmp")
    gradebook_frame(results, rubric).to_csv(temporary, index=False)
    temporary.replace(path)
    return path
