"""Pairs of submissions whose code is unusually alike: a lead for a person to check,
never a verdict and never a change of score.

Each notebook's code cells are tokenised with Python's tokenizer; names, numbers and
strings become placeholders, so renaming variables does not hide a copy. Lines that
also appear in the assignment template are dropped, because every student starts from
them. Similarity is the Jaccard index of the two sets of 5-token shingles.
"""

from __future__ import annotations

import io
import itertools
import json
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

SHINGLE = 5
THRESHOLD = 0.8  # Jaccard index from which a pair is listed
MIN_SHINGLES = 40  # notebooks with less own code than this are not compared
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}


@dataclass
class SimilarPair:
    """Two submissions, their similarity in [0, 1] and lines they share."""

    first: str
    second: str
    similarity: float
    shared_lines: list[str] = field(default_factory=list)


def _normalise_line(line: str) -> str:
    """Replace names, numbers and strings in one line with placeholders."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(line + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return line.strip()
    parts = []
    for token in tokens:
        if token.type in _SKIP:
            continue
        if token.type == tokenize.NAME and not _is_keyword(token.string):
            parts.append("N")
        elif token.type == tokenize.NUMBER:
            parts.append("0")
        elif token.type == tokenize.STRING:
            parts.append("S")
        else:
            parts.append(token.string)
    return " ".join(parts)


def _is_keyword(word: str) -> bool:
    import keyword

    return keyword.iskeyword(word)


def code_lines(notebook: Path) -> list[str]:
    """Return the non-empty source lines of a notebook's code cells, or [] if unreadable."""
    try:
        document = json.loads(notebook.read_text(encoding="utf-8-sig"))
        cells = document.get("cells", [])
    except (OSError, ValueError, AttributeError):
        return []
    lines = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines.extend(line for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))
    return lines


def _own_lines(notebook: Path, template: set[str]) -> list[str]:
    return [line for line in code_lines(notebook) if line.strip() not in template]


def _shingles(lines: list[str]) -> set[tuple[str, ...]]:
    tokens = " ".join(_normalise_line(line) for line in lines).split()
    return {tuple(tokens[i : i + SHINGLE]) for i in range(max(0, len(tokens) - SHINGLE + 1))}


def find_similar(notebooks: dict[str, Path], template: Path | None,
                 threshold: float = THRESHOLD) -> list[SimilarPair]:
    """Compare every pair of notebooks; return pairs at or above ``threshold``, most alike first."""
    template_lines = {line.strip() for line in code_lines(template)} if template else set()
    own = {student: _own_lines(path, template_lines) for student, path in notebooks.items()}
    shingles = {student: _shingles(lines) for student, lines in own.items()}
    pairs = []
    for first, second in itertools.combinations(sorted(notebooks), 2):
        a, b = shingles[first], shingles[second]
        if len(a) < MIN_SHINGLES or len(b) < MIN_SHINGLES:
            continue
        similarity = len(a & b) / len(a | b)
        if similarity >= threshold:
            second_lines = {line.strip() for line in own[second]}
            shared = [line for line in own[first] if line.strip() in second_lines]
            pairs.append(SimilarPair(first, second, round(similarity, 3), shared[:40]))
    return sorted(pairs, key=lambda pair: -pair.similarity)
