"""The 5.1 reference computation, against the task sheet, hand-worked cases and autograd."""

import numpy as np
import pytest
import torch

from grader.backprop import BackpropProblem, compute_answers

SHEET = dict(W1=[[2, 1], [1, -2], [1, 5]], W2=[[-1, 3, 2]], x=[1, 2], target=[3])


def test_sheet_values():
    answers = compute_answers(BackpropProblem.from_lists(**SHEET))
    np.testing.assert_array_equal(answers["v"], [4, 0, 11])
    np.testing.assert_array_equal(answers["y_predicted"], [18])
    assert float(answers["C"]) == 225
    assert float(answers["dC_dw11"]) == -30
    np.testing.assert_array_equal(answers["dC_dW2"], [[120, 0, 330]])
    np.testing.assert_array_equal(answers["W2_updated"], [[-7, 3, -14.5]])
    np.testing.assert_array_equal(answers["dC_dh"], [-30, 0, 60])


def test_other_weights_by_hand():
    # h = [1, 1, -1], v = [1, 1, 0], y = 1 + 2 = 3, C = (3 - 1)^2 = 4, dC/dy = 4.
    problem = BackpropProblem.from_lists(
        W1=[[1, 0], [0, 1], [-1, 0]], W2=[[1, 2, 5]], x=[1, 1], target=[1], learning_rate=0.1
    )
    answers = compute_answers(problem)
    np.testing.assert_array_equal(answers["v"], [1, 1, 0])
    assert float(answers["C"]) == 4
    np.testing.assert_array_equal(answers["dC_dW2"], [[4, 4, 0]])
    assert float(answers["dC_dw11"]) == 4
    np.testing.assert_allclose(answers["W2_updated"], [[0.6, 1.6, 5.0]])


def test_relu_derivative_at_zero_is_one():
    # h2 = 1*1 + (-1)*1 = 0 exactly: the task sheet's relu'(0) = 1 lets gradient through.
    problem = BackpropProblem.from_lists(W1=[[1, 0], [1, -1], [0, 1]], W2=[[1, 1, 1]], x=[1, 1],
                                         target=[0])
    answers = compute_answers(problem)
    assert answers["h"][1] == 0
    assert answers["dC_dh"][1] != 0
    assert answers["dC_dW1"][1, 0] == answers["dC_dy"][0] * 1 * 1 * 1


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("seed", range(8))
def test_matches_autograd(activation, seed):
    rng = np.random.default_rng(seed)
    W1, W2 = rng.normal(size=(3, 2)), rng.normal(size=(1, 3))
    x, target = rng.normal(size=2), rng.normal(size=1)
    problem = BackpropProblem(W1, W2, x, target, activation, 0.05)
    answers = compute_answers(problem)
    assert np.all(np.abs(W1 @ x) > 1e-9)  # no exact zero, where the conventions differ

    w1 = torch.tensor(W1, requires_grad=True)
    w2 = torch.tensor(W2, requires_grad=True)
    functions = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                 "leaky_relu": lambda h: torch.nn.functional.leaky_relu(h, 0.01)}
    y = w2 @ functions[activation](w1 @ torch.tensor(x))
    cost = ((y - torch.tensor(target)) ** 2).sum()
    cost.backward()
    np.testing.assert_allclose(answers["C"], cost.item(), rtol=1e-12)
    np.testing.assert_allclose(answers["dC_dW1"], w1.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(answers["dC_dW2"], w2.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_mismatched_shapes_rejected():
    with pytest.raises(ValueError, match="does not match x"):
        BackpropProblem.from_lists(W1=[[1, 2, 3]], W2=[[1]], x=[1, 2], target=[0])
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        BackpropProblem.from_lists(**SHEET, activation="swish")
