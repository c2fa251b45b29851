"""Reference computation for task 5.1: one forward and backward pass of a 2-3-1 network.

The network is ``y = W2 @ act(W1 @ x)`` without biases and with the squared-error
cost ``C = ||y - target||^2``. Every 5.1 reference value is computed here from the
inputs, so that practice problems and per-student variants get correct references
too. The derivative of ReLU at exactly 0 follows the task sheet (1), not PyTorch
autograd (0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

ArrayFn = Callable[[np.ndarray], np.ndarray]


def _relu(h: np.ndarray) -> np.ndarray:
    return np.where(h >= 0, h, 0.0)


def _relu_grad(h: np.ndarray) -> np.ndarray:
    # The task sheet defines relu'(0) = 1.
    return np.where(h >= 0, 1.0, 0.0)


def _leaky_relu(h: np.ndarray, slope: float = 0.01) -> np.ndarray:
    return np.where(h >= 0, h, slope * h)


def _leaky_relu_grad(h: np.ndarray, slope: float = 0.01) -> np.ndarray:
    return np.where(h >= 0, 1.0, slope)


def _sigmoid(h: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-h))


def _sigmoid_grad(h: np.ndarray) -> np.ndarray:
    s = _sigmoid(h)
    return s * (1.0 - s)


def _tanh_grad(h: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(h) ** 2


def _identity(h: np.ndarray) -> np.ndarray:
    return h


def _identity_grad(h: np.ndarray) -> np.ndarray:
    return np.ones_like(h)


ACTIVATIONS: dict[str, tuple[ArrayFn, ArrayFn]] = {
    "relu": (_relu, _relu_grad),
    "leaky_relu": (_leaky_relu, _leaky_relu_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "tanh": (np.tanh, _tanh_grad),
    "identity": (_identity, _identity_grad),
}


@dataclass(frozen=True)
class BackpropProblem:
    """Inputs of a 5.1-style problem: weights, input, target, activation, learning rate."""

    W1: np.ndarray  # (hidden, inputs)
    W2: np.ndarray  # (outputs, hidden)
    x: np.ndarray  # (inputs,)
    target: np.ndarray  # (outputs,)
    activation: str = "relu"
    learning_rate: float = 0.05

    @classmethod
    def from_lists(
        cls,
        W1: list,
        W2: list,
        x: list,
        target: list | float,
        activation: str = "relu",
        learning_rate: float = 0.05,
    ) -> "BackpropProblem":
        """Build a problem from nested lists, as stored in the rubric file."""
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}"
            )
        w1 = np.asarray(W1, dtype=float)
        w2 = np.atleast_2d(np.asarray(W2, dtype=float))
        xv = np.asarray(x, dtype=float).reshape(-1)
        tv = np.atleast_1d(np.asarray(target, dtype=float)).reshape(-1)
        if w1.ndim != 2 or w1.shape[1] != xv.size:
            raise ValueError(f"W1 has shape {w1.shape}, which does not match x of size {xv.size}")
        if w2.shape[1] != w1.shape[0]:
            raise ValueError(f"W2 has shape {w2.shape}, which does not match W1 of shape {w1.shape}")
        if tv.size != w2.shape[0]:
            raise ValueError(f"target has size {tv.size}, but W2 has {w2.shape[0]} outputs")
        return cls(w1, w2, xv, tv, activation, float(learning_rate))


def compute_answers(problem: BackpropProblem) -> dict[str, np.ndarray]:
    """Compute every 5.1 value: forward pass, loss, gradients and the updated W2.

    Returns arrays keyed by the contract's answer names, plus the intermediate
    values ``h`` (pre-activation), ``dC_dy``, ``dC_dh`` and ``dC_dW1`` that
    follow-through checks and worked solutions need.
    """
    act, act_grad = ACTIVATIONS[problem.activation]
    h = problem.W1 @ problem.x
    v = act(h)
    y = problem.W2 @ v
    residual = y - problem.target
    cost = float(np.sum(residual**2))
    dC_dy = 2.0 * residual
    dC_dW2 = np.outer(dC_dy, v)
    dC_dh = (problem.W2.T @ dC_dy) * act_grad(h)
    dC_dW1 = np.outer(dC_dh, problem.x)
    return {
        "h": h,
        "v": v,
        "y_predicted": y,
        "C": np.asarray(cost),
        "dC_dy": dC_dy,
        "dC_dh": dC_dh,
        "dC_dW1": dC_dW1,
        "dC_dw11": np.asarray(dC_dW1[0, 0]),
        "dC_dW2": dC_dW2,
        "W2_updated": problem.W2 - problem.learning_rate * dC_dW2,
    }
