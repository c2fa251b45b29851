"""Practice problems for 5.1: generation, autograd agreement, checking, notebooks, solutions."""

import json
import math
import re

import nbformat
import numpy as np
import pytest
import torch

from grader.backprop import BackpropProblem, compute_answers
from grader.practice import (
    LEARNING_RATES,
    MAX_COST,
    PRACTICE_ACTIVATIONS,
    PracticeError,
    UnreadAnswer,
    check_answers,
    format_problem,
    format_results,
    generate_problem,
    parse_answer_assignment,
    problem_from_notebook,
    problem_issues,
    problem_notebook,
    read_answers,
    read_answers_json,
    read_answers_notebook,
    worked_solution,
)
from grader.rubric import ANSWER_NAMES

SHEET = BackpropProblem.from_lists(
    W1=[[2, 1], [1, -2], [1, 5]], W2=[[-1, 3, 2]], x=[1, 2], target=[3], learning_rate=0.05
)
SHEET_ANSWERS = dict(v=[4, 0, 11], y_predicted=18, C=225, dC_dw11=-30, dC_dW2=[120, 0, 330],
                     W2_updated=[-7, 3, -14.5])
# The sheet's weights with x = [2, 1]: h = [5, 0, 7], so relu'(0) = 1 decides dC/dw21.
ZERO_CASE = BackpropProblem.from_lists(
    W1=[[2, 1], [1, -2], [1, 5]], W2=[[-1, 3, 2]], x=[2, 1], target=[3], learning_rate=0.05
)
TORCH_ACTIVATIONS = {
    "relu": torch.relu,
    "leaky_relu": lambda h: torch.nn.functional.leaky_relu(h, 0.01),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}
STEP_LABELS = [
    "h = W1 x",
    "v = σ(h)",
    "y_predicted = W2 v",
    "C = ||y_predicted - y_target||²",
    "dC/dy = 2 (y_predicted - y_target)",
    "dC/dW2 = dC/dy · vᵀ",
    "dC/dh = W2ᵀ dC/dy ⊙ σ'(h)",
    "dC/dw11 = dC/dh1 · x1",
    "W2_updated = W2 - α dC/dW2",
]


def reference_values(problem):
    answers = compute_answers(problem)
    return {name: answers[name].tolist() for name in ANSWER_NAMES}


def by_id(results):
    return {result.id: result for result in results}


def autograd(problem):
    """Return the loss and the gradients of W1 and W2 that PyTorch autograd computes."""
    w1 = torch.tensor(problem.W1, dtype=torch.float64, requires_grad=True)
    w2 = torch.tensor(problem.W2, dtype=torch.float64, requires_grad=True)
    x = torch.tensor(problem.x, dtype=torch.float64)
    y = w2 @ TORCH_ACTIVATIONS[problem.activation](w1 @ x)
    cost = ((y - torch.tensor(problem.target, dtype=torch.float64)) ** 2).sum()
    cost.backward()
    return cost.item(), w1.grad.numpy(), w2.grad.numpy()


def write_notebook(path, sources):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, str(path))
    return path


# Generation


def assert_same_problem(first, second):
    for name in ("W1", "W2", "x", "target"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.activation == second.activation
    assert first.learning_rate == second.learning_rate


@pytest.mark.parametrize("seed", [0, 1, 17, 123456789])
def test_same_seed_same_problem(seed):
    assert_same_problem(generate_problem(seed), generate_problem(seed))
    for activation in PRACTICE_ACTIVATIONS:
        assert_same_problem(generate_problem(seed, activation), generate_problem(seed, activation))


def test_explicit_activation_replaces_only_the_pick():
    for seed in range(20):
        drawn = generate_problem(seed)
        assert_same_problem(generate_problem(seed, drawn.activation), drawn)


def test_seed_zero_is_pinned():
    # The generator hashes the seed, so this problem must stay the same on every platform.
    problem = generate_problem(0)
    assert problem.W1.tolist() == [[-2, 2], [5, -1], [-3, 0]]
    assert problem.W2.tolist() == [[-5, 5, -4]]
    assert problem.x.tolist() == [-1, -2]
    assert problem.target.tolist() == [-2]
    assert problem.activation == "tanh"
    assert problem.learning_rate == 0.05


def test_different_seeds_differ():
    problems = [generate_problem(seed, "relu") for seed in range(50)]
    keys = {(p.W1.tobytes(), p.W2.tobytes(), p.x.tobytes(), p.target.tobytes()) for p in problems}
    assert len(keys) == 50


def test_seed_draws_every_activation_and_rate():
    problems = [generate_problem(seed) for seed in range(200)]
    assert {p.activation for p in problems} == set(PRACTICE_ACTIVATIONS)
    assert {p.learning_rate for p in problems} == set(LEARNING_RATES)


@pytest.mark.parametrize("activation", PRACTICE_ACTIVATIONS)
def test_well_posed_over_many_seeds(activation):
    for seed in range(200):
        problem = generate_problem(seed, activation)
        answers = compute_answers(problem)
        h = answers["h"]
        assert problem_issues(problem) == [], seed
        assert problem.activation == activation
        assert problem.W1.shape == (3, 2), seed
        assert problem.W2.shape == (1, 3), seed
        for array in (problem.W1, problem.W2, problem.x, problem.target):
            assert np.all(array == np.round(array)), seed
            assert np.all(np.abs(array) <= 5), seed
        assert not np.any(np.all(problem.W1 == 0, axis=1)), seed
        assert np.all(h != 0), seed
        if activation in ("relu", "leaky_relu"):
            assert np.any(h < 0), seed
            assert np.any(h > 0), seed
        else:
            assert np.all(np.abs(h) <= 3), seed
        assert 0 < float(answers["C"]) <= MAX_COST, seed
        assert problem.learning_rate in LEARNING_RATES


def test_allow_zero_admits_zero_preactivation():
    problems = [generate_problem(seed, "relu", allow_zero=True) for seed in range(200)]
    with_zero = [p for p in problems if np.any(compute_answers(p)["h"] == 0)]
    assert with_zero, "no seed in 0..199 gave an exact zero with allow_zero"
    for problem in problems:
        assert problem_issues(problem, allow_zero=True) == []
    assert any("exactly 0" in issue for issue in problem_issues(with_zero[0]))


def test_problem_issues_names_each_rule():
    assert problem_issues(SHEET) == []
    all_positive = BackpropProblem.from_lists(
        W1=[[1, 1], [1, 2], [2, 1]], W2=[[1, 1, 1]], x=[1, 1], target=[0]
    )
    assert "no pre-activation is negative" in problem_issues(all_positive)[0]
    fractional = BackpropProblem.from_lists(**{**_sheet_lists(), "W1": [[0.5, 1], [1, -2], [1, 5]]})
    assert "not integers" in problem_issues(fractional)[0]
    saturated = BackpropProblem.from_lists(**_sheet_lists(), activation="tanh")
    assert "beyond ±3" in problem_issues(saturated)[0]
    huge_loss = BackpropProblem.from_lists(
        W1=[[5, 5], [5, 5], [-1, 0]], W2=[[5, 5, 1]], x=[5, 5], target=[-5]
    )
    assert "larger than" in problem_issues(huge_loss)[-1]
    identity = BackpropProblem.from_lists(**_sheet_lists(), activation="identity")
    assert "not a practice activation" in problem_issues(identity)[0]


def _sheet_lists():
    return dict(W1=[[2, 1], [1, -2], [1, 5]], W2=[[-1, 3, 2]], x=[1, 2], target=[3])


@pytest.mark.parametrize("arguments, message", [
    ((-1,), "non-negative integer"),
    ((True,), "non-negative integer"),
    ((1.5,), "non-negative integer"),
    ((3, "identity"), "unknown practice activation 'identity'"),
    ((3, "swish"), "unknown practice activation 'swish'"),
])
def test_generate_rejects_invalid_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        generate_problem(*arguments)


# The reference computation against autograd, on generated problems


@pytest.mark.parametrize("activation", PRACTICE_ACTIVATIONS)
def test_compute_answers_matches_autograd(activation):
    for seed in range(60):
        problem = generate_problem(seed, activation)
        answers = compute_answers(problem)
        # At an exact zero the task sheet's derivative convention differs from autograd's.
        assert np.all(answers["h"] != 0), seed
        cost, grad_W1, grad_W2 = autograd(problem)
        np.testing.assert_allclose(float(answers["C"]), cost, rtol=1e-12, err_msg=f"seed {seed}")
        np.testing.assert_allclose(answers["dC_dW1"], grad_W1, rtol=1e-10, atol=1e-12,
                                   err_msg=f"seed {seed}")
        np.testing.assert_allclose(answers["dC_dW2"], grad_W2, rtol=1e-10, atol=1e-12,
                                   err_msg=f"seed {seed}")
        assert float(answers["dC_dw11"]) == answers["dC_dW1"][0, 0]


def test_sheet_case_by_hand():
    answers = compute_answers(SHEET)
    np.testing.assert_array_equal(answers["v"], [4, 0, 11])
    np.testing.assert_array_equal(answers["y_predicted"], [18])
    assert float(answers["C"]) == 225
    assert float(answers["dC_dw11"]) == -30
    np.testing.assert_array_equal(answers["dC_dW2"], [[120, 0, 330]])
    np.testing.assert_array_equal(answers["W2_updated"], [[-7, 3, -14.5]])


def test_zero_preactivation_case_by_hand():
    # h = [5, 0, 7], v = [5, 0, 7], y = -5 + 0 + 14 = 9, C = (9 - 3)² = 36, dC/dy = 12,
    # dC/dh = W2ᵀ·12 ⊙ [1, 1, 1] = [-12, 36, 24] because relu'(0) = 1.
    answers = compute_answers(ZERO_CASE)
    np.testing.assert_array_equal(answers["h"], [5, 0, 7])
    np.testing.assert_array_equal(answers["v"], [5, 0, 7])
    assert float(answers["C"]) == 36
    np.testing.assert_array_equal(answers["dC_dh"], [-12, 36, 24])
    np.testing.assert_array_equal(answers["dC_dW1"], [[-24, -12], [72, 36], [48, 24]])
    assert float(answers["dC_dw11"]) == -24
    np.testing.assert_array_equal(answers["dC_dW2"], [[60, 0, 84]])
    np.testing.assert_allclose(answers["W2_updated"], [[-4, 3, -2.2]])
    _, grad_W1, _ = autograd(ZERO_CASE)
    assert grad_W1[1, 0] == 0  # autograd uses relu'(0) = 0, where the task sheet uses 1


# Checking answers


@pytest.mark.parametrize("activation", PRACTICE_ACTIVATIONS)
def test_reference_answers_earn_full_points(rubric, activation):
    full = sum(rubric.item(f"5.1.{name}").points for name in ANSWER_NAMES)
    for seed in range(10):
        problem = generate_problem(seed, activation)
        results = check_answers(problem, reference_values(problem), rubric)
        assert [r.outcome for r in results] == ["correct"] * 6, seed
        assert sum(r.points for r in results) == full


def test_sheet_answers_by_hand_earn_full_points(rubric):
    results = check_answers(SHEET, SHEET_ANSWERS, rubric)
    assert [r.outcome for r in results] == ["correct"] * 6


def test_check_uses_rubric_tolerance(rubric):
    inside = 225 * (1 + rubric.relative_tolerance / 2)
    outside = 225 * (1 + rubric.relative_tolerance * 2)
    inside_results = by_id(check_answers(SHEET, {**SHEET_ANSWERS, "C": inside}, rubric))
    outside_results = by_id(check_answers(SHEET, {**SHEET_ANSWERS, "C": outside}, rubric))
    assert inside_results["5.1.C"].outcome == "correct"
    assert outside_results["5.1.C"].outcome == "wrong"


def _forgotten_relu_values(problem):
    """Answers of a student who skips the ReLU forward but keeps its derivative backward."""
    h = problem.W1 @ problem.x
    y = problem.W2 @ h
    dC_dy = 2 * (y - problem.target)
    relu_grad = (h >= 0).astype(float)
    dC_dW2 = np.outer(dC_dy, h)
    return dict(
        v=h.tolist(),
        y_predicted=y.tolist(),
        C=float(np.sum((y - problem.target) ** 2)),
        dC_dw11=float((problem.W2.T @ dC_dy * relu_grad)[0] * problem.x[0]),
        dC_dW2=dC_dW2.tolist(),
        W2_updated=(problem.W2 - problem.learning_rate * dC_dW2).tolist(),
    )


def _differs_everywhere(values, problem):
    reference = reference_values(problem)
    return all(
        not np.allclose(np.ravel(values[name]), np.ravel(reference[name]), rtol=1e-2)
        for name in ANSWER_NAMES
    )


def test_forgotten_relu_chain_gets_follow_through(rubric):
    problem = next(
        p for p in (generate_problem(seed, "relu") for seed in range(200))
        if _differs_everywhere(_forgotten_relu_values(p), p)
    )
    results = by_id(check_answers(problem, _forgotten_relu_values(problem), rubric))
    assert results["5.1.v"].points == 0
    assert "before the activation" in results["5.1.v"].hint
    for name in ANSWER_NAMES[1:]:
        item = results[f"5.1.{name}"]
        assert item.outcome == "follow-through", name
        assert item.points == rubric.item(f"5.1.{name}").points * rubric.follow_through_share
        assert "follows correctly from your own earlier answers" in item.message


def test_missing_factor_two_gets_hint(rubric):
    problem = next(
        p for p in (generate_problem(seed) for seed in range(200))
        if abs(float(compute_answers(p)["dC_dw11"])) > 0.1
    )
    values = reference_values(problem)
    answers = compute_answers(problem)
    half_gradient = answers["dC_dW2"] / 2
    values.update(
        dC_dw11=float(answers["dC_dw11"]) / 2,
        dC_dW2=half_gradient.tolist(),
        W2_updated=(problem.W2 - problem.learning_rate * half_gradient).tolist(),
    )
    results = by_id(check_answers(problem, values, rubric))
    assert results["5.1.dC_dw11"].points == 0
    assert "factor 2 is missing" in results["5.1.dC_dw11"].hint
    assert "factor 2 is missing" in results["5.1.dC_dW2"].hint
    assert results["5.1.W2_updated"].outcome == "follow-through"


def test_check_reads_aliases_and_suggests_names(rubric):
    values = {**SHEET_ANSWERS, "y_pred": 18, "loss": 225, "dC_dw_11": -30}
    del values["y_predicted"], values["C"], values["dC_dw11"]
    results = by_id(check_answers(SHEET, values, rubric))
    assert results["5.1.y_predicted"].outcome == "correct"
    assert "`y_pred`" in results["5.1.y_predicted"].message
    assert results["5.1.C"].outcome == "correct"
    assert results["5.1.dC_dw11"].outcome == "missing"
    assert "`dC_dw_11`" in results["5.1.dC_dw11"].hint


def test_check_reports_unreadable_values(rubric):
    values = {**SHEET_ANSWERS, "C": UnreadAnswer("computed expression (`W2 @ v`)"), "v": True,
              "y_predicted": ...}
    results = by_id(check_answers(SHEET, values, rubric))
    assert results["5.1.C"].outcome == "error"
    assert "could not be read: it is a computed expression (`W2 @ v`)" in results["5.1.C"].message
    assert "never runs notebook code" in results["5.1.C"].hint
    assert results["5.1.v"].outcome == "error"
    assert "bool" in results["5.1.v"].message
    assert "placeholder" in results["5.1.y_predicted"].message


def test_check_accepts_arrays_tensors_and_fractions(rubric):
    from fractions import Fraction

    values = {**SHEET_ANSWERS, "v": np.array([4, 0, 11]), "dC_dW2": torch.tensor([[120.0, 0, 330]]),
              "W2_updated": [-7, 3, Fraction(-29, 2)], "C": np.float32(225)}
    assert [r.outcome for r in check_answers(SHEET, values, rubric)] == ["correct"] * 6


def test_reveal_reference_shows_expected(rubric):
    values = {**SHEET_ANSWERS, "C": 200}
    hidden = by_id(check_answers(SHEET, values, rubric))["5.1.C"].message
    revealed = by_id(check_answers(SHEET, values, rubric, reveal_reference=True))["5.1.C"].message
    assert "Expected" not in hidden
    assert "Expected 225" in revealed


def test_format_results_lists_items_and_total(rubric):
    text = format_results(check_answers(SHEET, {**SHEET_ANSWERS, "C": 112.5}, rubric))
    assert "5.1.v" in text
    assert "hint: The cost here is ||y_predicted - y_target||²" in text
    assert re.search(r"total\s+7/8", text)


# Reading answers


def test_read_answers_json(tmp_path):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(SHEET_ANSWERS))
    assert read_answers_json(path) == SHEET_ANSWERS
    assert read_answers(path) == SHEET_ANSWERS


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "contains a JSON list, expected an object"),
])
def test_read_answers_json_rejects_invalid(tmp_path, content, message):
    path = tmp_path / "answers.json"
    path.write_text(content)
    with pytest.raises(PracticeError, match=message):
        read_answers_json(path)


def test_read_answers_json_missing_file(tmp_path):
    with pytest.raises(PracticeError, match="cannot read answers file"):
        read_answers_json(tmp_path / "none.json")


@pytest.mark.parametrize("text, expected", [
    ("v=[4, 0, 11]", ("v", [4, 0, 11])),
    ("C = 225", ("C", 225)),
    ("W2_updated=[-7,3,-29/2]", ("W2_updated", [-7, 3, -14.5])),
    ("dC_dW2=np.array([[120, 0, 330]])", ("dC_dW2", [[120, 0, 330]])),
    ("dC_dw11=Fraction(-60, 2)", ("dC_dw11", -30)),
])
def test_parse_answer_assignment(text, expected):
    assert parse_answer_assignment(text) == expected


@pytest.mark.parametrize("text, message", [
    ("v", "expected NAME=VALUE"),
    ("1v=3", "expected NAME=VALUE"),
    ("C=W2 @ v", "computed expression"),
    ("C=1/0", "divides by zero"),
    ("C=[1,", "invalid value"),
])
def test_parse_answer_assignment_rejects(text, message):
    with pytest.raises(PracticeError, match=message):
        parse_answer_assignment(text)


def test_read_notebook_literals_and_refusals(tmp_path, rubric):
    marker = tmp_path / "ran"
    path = write_notebook(tmp_path / "student.ipynb", [
        "%matplotlib inline\nimport numpy as np\nimport torch\nfrom fractions import Fraction as F",
        "v = [1, 2, 3]",
        "v = [4, 0, 11]  # a later assignment replaces the earlier one\n"
        "y_pred = np.array([18.0])\n"
        "C: float = 225",
        "dC_dw11, dC_dW2 = -60/2, torch.tensor([[120., 0., 330.]], requires_grad=True)",
        f"W2_updated = open(r'{marker}', 'w').write('ran')",
        "hidden = np.array([4.9, 0.2, 11.7], dtype=int)\n"
        "quarter = F(1, 4)\n"
        "grown = [1, 2]\ngrown.append(3)\n"
        "for looped in range(3):\n    pass\n"
        "computed = np.dot([1, 2], [3, 4])",
        "broken = [1, 2\n",
    ])
    values = read_answers_notebook(path)
    assert not marker.exists()
    assert values["v"] == [4, 0, 11]
    assert values["y_pred"] == [18.0]
    assert values["C"] == 225
    assert values["dC_dw11"] == -30
    assert values["dC_dW2"] == [[120.0, 0.0, 330.0]]
    assert values["hidden"] == [4, 0, 11]
    assert values["quarter"] == 0.25
    for name in ("W2_updated", "grown", "looped", "computed", "broken", "np"):
        assert isinstance(values[name], UnreadAnswer), name
    assert "open(" in values["W2_updated"].reason
    assert "grown.append(3)" in values["grown"].reason
    assert "`for` statement" in values["looped"].reason
    assert "code cell 7, which is not valid Python" in values["broken"].reason

    results = by_id(check_answers(SHEET, values, rubric))
    for name in ("v", "y_predicted", "C", "dC_dw11", "dC_dW2"):
        assert results[f"5.1.{name}"].outcome == "correct", name
    assert results["5.1.W2_updated"].outcome == "error"
    assert "could not be read" in results["5.1.W2_updated"].message
    assert not marker.exists()


def test_read_notebook_deletion_and_item_assignment(tmp_path):
    path = write_notebook(tmp_path / "student.ipynb", [
        "v = [4, 0, 11]\nv[1] = 5",
        "C = 225\ndC_dw11 = -30\ndel (C, dC_dw11)",
        "y_predicted = 18\ny_predicted += 1",
        "dC_dW2 = torch.Tensor(3)\nW2_updated = torch.Tensor([-7, 3, -14.5])",
        "h = 1.5/2\nhidden = np.array([4, 0, 11], np.float32)",
    ])
    values = read_answers_notebook(path)
    assert isinstance(values["v"], UnreadAnswer)
    assert "C" not in values
    assert "dC_dw11" not in values
    assert "+=" in values["y_predicted"].reason
    assert "tensor of that size" in values["dC_dW2"].reason
    assert values["W2_updated"] == [-7, 3, -14.5]
    assert values["h"] == 0.75
    assert values["hidden"] == [4, 0, 11]


def test_read_notebook_rejects_invalid_file(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    with pytest.raises(PracticeError, match="not a valid notebook"):
        read_answers_notebook(path)
    with pytest.raises(PracticeError, match="cannot read notebook"):
        read_answers_notebook(tmp_path / "none.ipynb")


# Showing problems


def test_format_problem_in_sheet_words():
    text = format_problem(SHEET)
    assert "W1 = [[ 2,  1]," in text
    assert "      [ 1, -2]," in text
    assert "W2 = [[-1,  3,  2]]" in text
    assert "x = [1, 2]" in text
    assert "y_target = [3]" in text
    assert "relu'(0) = 1, as on the task sheet" in text
    assert "learning rate α = 0.05" in text
    assert "C(y_predicted, y_target) = ||y_predicted - y_target||²" in text
    for name in ANSWER_NAMES:
        assert name in text


def test_format_problem_states_tolerance_and_conventions(rubric):
    assert "0.001 times the size" in format_problem(SHEET, rubric)
    leaky = format_problem(generate_problem(1, "leaky_relu"))
    assert "leaky_relu'(0) = 1" in leaky
    assert "0.01 h if h < 0" in leaky
    sigmoid = format_problem(generate_problem(1, "sigmoid"))
    assert "σ'(h) = σ(h) (1 - σ(h))" in sigmoid
    assert "At 0" not in sigmoid


def test_problem_notebook_round_trip(tmp_path, rubric):
    problem = generate_problem(7, "relu")
    notebook = problem_notebook(problem)
    nbformat.validate(notebook)
    markdown = notebook.cells[1].source
    assert r"\begin{bmatrix}" in markdown
    assert "w_{11}^{(1)}" in markdown
    assert f"\\alpha = {problem.learning_rate:g}" in markdown
    assert "relu'(0) = 1, as on the task sheet" in markdown
    # The ReLU derivative reads as in the assignment's 5.1 cell.
    assert (r"\sigma'(x) = \begin{cases} 1, & \text{if } x \geq 0 \\ 0, & \text{if } x < 0. "
            r"\end{cases}") in markdown
    answer_cell = notebook.cells[-1]
    assert answer_cell.cell_type == "code"
    for name in ANSWER_NAMES:
        assert re.search(rf"^{name} = \.\.\.", answer_cell.source, re.MULTILINE), name
    assert f"learning rate {problem.learning_rate:g}" in answer_cell.source

    path = tmp_path / "practice.ipynb"
    nbformat.write(notebook, str(path))
    assert_same_problem(problem_from_notebook(path), problem)
    values = read_answers_notebook(path)
    assert all(values[name] is Ellipsis for name in ANSWER_NAMES)
    results = check_answers(problem, values, rubric)
    assert all("placeholder" in r.message for r in results)

    answered = notebook.cells[-1].source
    for name, value in reference_values(problem).items():
        answered = answered.replace(f"{name} = ...", f"{name} = {value!r}", 1)
    notebook.cells[-1].source = answered
    nbformat.write(notebook, str(path))
    checked = check_answers(problem_from_notebook(path), read_answers_notebook(path), rubric)
    assert [r.outcome for r in checked] == ["correct"] * 6


def test_problem_from_notebook_without_metadata(tmp_path):
    path = write_notebook(tmp_path / "plain.ipynb", ["v = 1"])
    with pytest.raises(PracticeError, match="no 'practice_problem' metadata"):
        problem_from_notebook(path)


# Worked solutions


def test_worked_solution_sheet_case():
    text = worked_solution(SHEET)
    for label in STEP_LABELS:
        assert label in text, label
    assert "exact fractions" in text
    assert "h2 = 1·1 + (-2)·2 = -3" in text
    assert "v = [4, 0, 11]" in text
    assert "C = (18 - 3)² = 225" in text
    assert "dC/dW2 = 30·[[4, 0, 11]] = [[120, 0, 330]]" in text
    assert "dC/dw11 = (-30)·1 = -30" in text
    assert "[[-7, 3, -29/2]] (= [[-7, 3, -14.5]])" in text


def test_worked_solution_zero_preactivation():
    text = worked_solution(ZERO_CASE)
    assert "σ'(h) = [1, 1, 1]" in text
    assert "relu'(0) = 1, as on the task sheet" in text
    assert "[[-24, -12], [72, 36], [48, 24]]" in text
    assert "-11/5" in text


@pytest.mark.parametrize("activation", PRACTICE_ACTIVATIONS)
def test_worked_solution_labels_and_number_kind(activation):
    text = worked_solution(generate_problem(3, activation))
    for label in STEP_LABELS:
        assert label in text, label
    kind = "exact fractions" if activation in ("relu", "leaky_relu") else "decimals"
    assert kind in text.splitlines()[0]


def test_worked_solution_decimals_for_irrational_inputs():
    problem = BackpropProblem.from_lists(**_sheet_lists(), learning_rate=math.sqrt(2) / 100)
    assert "decimals" in worked_solution(problem).splitlines()[0]


@pytest.mark.parametrize("activation", PRACTICE_ACTIVATIONS)
def test_worked_solution_answers_pass_the_grader(rubric, activation):
    for seed in range(25):
        problem = generate_problem(seed, activation)
        text = worked_solution(problem)
        answer_lines = text.split("\nAnswers\n")[1].strip().splitlines()
        values = dict(
            parse_answer_assignment(line.split(" (= ")[0].strip()) for line in answer_lines
        )
        assert set(values) == set(ANSWER_NAMES)
        results = check_answers(problem, values, rubric)
        assert [r.outcome for r in results] == ["correct"] * 6, (seed, text)
