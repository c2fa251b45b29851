"""Write a batch's outputs: the gradebook CSV, one JSON result and one HTML feedback
page per submission.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable

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


def render_feedback(result: SubmissionResult, rubric: Rubric, executed_link: str | None) -> str:
    """Render the student's feedback page as one self-contained HTML document."""
    template = _environment.get_template("feedback.html")
    return template.render(result=result, rubric=rubric, executed_link=executed_link)


def write_feedback(result: SubmissionResult, rubric: Rubric, out_dir: Path) -> Path:
    path = out_dir / "feedback" / f"{result.student}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    executed = out_dir / "executed" / f"{result.student}.ipynb"
    link = f"../executed/{html.escape(result.student)}.ipynb" if executed.is_file() else None
    temporary = path.with_suffix(".html.tmp")
    temporary.write_text(render_feedback(result, rubric, link), encoding="utf-8")
    temporary.replace(path)
    return path


def gradebook_frame(results: Iterable[SubmissionResult], rubric: Rubric) -> pd.DataFrame:
    """Build the gradebook: one row per submission, one column per rubric item."""
    rows = []
    for result in results:
        row = {
            "student": result.student,
            "name": result.name,
            "status": result.status,
            "total": result.total,
            "max_total": result.max_total,
        }
        points = {item.id: item.points for item in result.items}
        for item in rubric.items:
            row[item.id] = points.get(item.id, 0.0)
        row["reason"] = result.reason
        rows.append(row)
    columns = ["student", "name", "status", "total", "max_total", *[i.id for i in rubric.items], "reason"]
    return pd.DataFrame(rows, columns=columns).sort_values("student", kind="stable")


def write_gradebook(results: Iterable[SubmissionResult], rubric: Rubric, out_dir: Path) -> Path:
    path = out_dir / "gradebook.csv"
    temporary = path.with_suffix(".csv.tmp")
    gradebook_frame(results, rubric).to_csv(temporary, index=False)
    temporary.replace(path)
    return path
