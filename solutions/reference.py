"""Reference solution code for Exercise 5.

``ConvNet`` is the network task 5.3 asks for; the grader traces it to get the
expected layer sequence. ``exercise_answers`` computes the 5.1 reference values from
the task sheet's numbers with the grader's one backpropagation routine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from grader.backprop import BackpropProblem, compute_answers


class ConvNet(nn.Module):
    """Conv 5x5 (1 to 20 maps), ReLU, max pool 2x2, then 2880-100-10 fully connected."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 20, kernel_size=5, stride=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(20 * 12 * 12, 100)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.conv(x)))
        x = self.relu2(self.fc1(self.flatten(x)))
        return self.fc2(x)


def exercise_answers() -> dict[str, np.ndarray]:
    """Compute the 5.1 answers for the task sheet's weights, input and target."""
    problem = BackpropProblem.from_lists(
        W1=[[2, 1], [1, -2], [1, 5]],
        W2=[[-1, 3, 2]],
        x=[1, 2],
        target=[3],
        activation="relu",
        learning_rate=0.05,
    )
    return compute_answers(problem)
