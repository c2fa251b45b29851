"""``grader practice``: new 5.1-style problems, checking answers, and worked solutions."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import Callable

import nbformat

from .backprop import ACTIVATIONS, BackpropProblem
from .practice import (
    PracticeError,
    check_answers,
    format_problem,
    format_results,
    generate_problem,
    parse_answer_assignment,
    problem_from_notebook,
    problem_notebook,
    read_answers,
    worked_solution,
)
from .rubric import DEFAULT_RUBRIC, load_rubric

ACTIVATION_CHOICES = sorted(name for name in ACTIVATIONS if name != "identity")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``grader practice new|check|solution`` to the CLI's subcommands."""
    practice = commands.add_parser("practice", help="practice problems like task 5.1")
    actions = practice.add_subparsers(dest="action", required=True)

    def problem_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--seed", type=int, help="problem number; the same seed gives the same problem")
        parser.add_argument("--activation", choices=ACTIVATION_CHOICES,
                            help="hidden activation (default: chosen by the seed)")
        parser.add_argument("--allow-zero", action="store_true",
                            help="allow a pre-activation of exactly 0, where derivative conventions differ")

    new = actions.add_parser("new", help="print a new problem, and optionally write it as a notebook")
    problem_options(new)
    new.add_argument("--notebook", type=Path, help="also write the problem as a notebook to this path")
    check = actions.add_parser("check", help="check answers with the grader's comparison and hints")
    problem_options(check)
    check.add_argument("answers", type=Path, nargs="?",
                       help="a JSON file of answers, or a practice notebook (read without running it)")
    check.add_argument("--answer", action="append", default=[], metavar="NAME=VALUE",
                       help="one answer, such as --answer 'v=[4, 0, 11]'; may be repeated")
    check.add_argument("--rubric", type=Path, default=DEFAULT_RUBRIC,
                       help="rubric for tolerances and aliases (default: solutions/rubric.toml)")
    check.add_argument("--show-expected", action="store_true", help="show the expected values of wrong answers")
    solution = actions.add_parser("solution", help="print the worked solution step by step")
    problem_options(solution)
    solution.add_argument("notebook", type=Path, nargs="?", help="a practice notebook instead of --seed")


def _problem(arguments: argparse.Namespace, notebook: Path | None) -> BackpropProblem:
    if arguments.seed is None and notebook is not None and notebook.suffix == ".ipynb":
        return problem_from_notebook(notebook)
    if arguments.seed is None:
        raise PracticeError("give --seed N (the problem number), or a practice notebook")
    return generate_problem(arguments.seed, arguments.activation, arguments.allow_zero)


def run_practice(arguments: argparse.Namespace, line: Callable[[str], None]) -> int:
    """Run one practice action; return the exit status (1 when answers are not all right)."""
    if arguments.action == "new":
        seed = arguments.seed if arguments.seed is not None else secrets.randbelow(10**6)
        problem = generate_problem(seed, arguments.activation, arguments.allow_zero)
        line(f"Practice problem {seed} (check it with: grader practice check --seed {seed} ...)")
        line(format_problem(problem))
        if arguments.notebook is not None:
            nbformat.write(problem_notebook(problem), arguments.notebook)
            line(f"Wrote {arguments.notebook}")
        return 0
    if arguments.action == "solution":
        line(worked_solution(_problem(arguments, arguments.notebook)))
        return 0
    problem = _problem(arguments, arguments.answers)
    values = read_answers(arguments.answers) if arguments.answers is not None else {}
    values.update(parse_answer_assignment(text) for text in arguments.answer)
    if not values:
        raise PracticeError("no answers given: pass a JSON file, a notebook or --answer NAME=VALUE")
    results = check_answers(problem, values, load_rubric(arguments.rubric), arguments.show_expected)
    line(format_results(results))
    return 0 if all(item.points >= item.max_points for item in results) else 1
