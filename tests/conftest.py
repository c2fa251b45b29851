"""Shared fixtures: the default rubric, the repository's folders and a layer helper."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grader.layers import layers_from_program
from grader.rubric import Rubric, load_rubric

REPO = Path(__file__).resolve().parent.parent
SUBMISSIONS = REPO / "submissions"
SOLUTION = REPO / "solutions" / "exercise5_solution.ipynb"


@pytest.fixture(scope="session")
def rubric() -> Rubric:
    return load_rubric()


def export_layers(model: torch.nn.Module) -> list[dict]:
    """Export ``model`` the way the kernel probe does and return its layer records."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.eval(), (torch.zeros(2, 1, 28, 28),),
                                  dynamic_shapes=({0: batch},))
    return [layer.to_dict() for layer in layers_from_program(program)]
