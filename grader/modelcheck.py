"""Check an exported student model in a process of its own: layers, output shape,
and the grader's own training run for task 5.3 ii.

The archive was written by the student's kernel, but loading it runs no student
Python code: ``torch.export`` archives hold an ATen graph and tensors. Run as
``python -m grader.modelcheck`` with a JSON request on standard input; the JSON
report goes to standard output.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Seconds between the check's own deadline and the parent's kill.
_KILL_MARGIN = 15
_CURVE_EVERY = 10  # training steps per point of the loss and accuracy curve


class ModelCheckError(Exception):
    """The model check process failed or ran past its time limit."""


def _param_bounds(program: Any) -> dict[str, float]:
    """Map parameter names of conv and fc layers to PyTorch's default init bound."""
    import torch

    to_fqn = program.graph_signature.inputs_to_parameters
    state = program.state_dict
    bounds: dict[str, float] = {}
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        names = [to_fqn[a.name] for a in node.args if isinstance(a, torch.fx.Node) and a.name in to_fqn]
        weights = [n for n in names if state[n].dim() >= 2]
        if not weights:
            continue
        weight = state[weights[0]]
        op = getattr(node.target, "__name__", "")
        # addmm and mm take the transposed weight, so fan-in is its first dimension.
        fan_in = weight.shape[0] if op.startswith(("addmm", "mm")) else weight[0].numel()
        for name in names:
            bounds[name] = 1.0 / math.sqrt(max(1, fan_in))
    return bounds


def _reinitialise(module: Any, bounds: dict[str, float], seed: int) -> None:
    """Give conv and fc parameters fresh seeded values, so training starts from the
    same kind of state for every student, whatever the notebook trained before."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name in bounds:
                parameter.uniform_(-bounds[name], bounds[name], generator=generator)


def _loss_function(last_kind: str):
    import torch
    import torch.nn.functional as F

    if last_kind == "log_softmax":
        return F.nll_loss
    if last_kind == "softmax":
        return lambda output, target: F.nll_loss(torch.log(output.clamp_min(1e-12)), target)
    return F.cross_entropy


def _batches(images, size: int, fixed: int):
    """Yield evaluation batches; a model exported at a fixed batch size gets padded ones."""
    import torch

    step = fixed or size
    for start in range(0, len(images), step):
        batch = images[start : start + step]
        count = len(batch)
        if fixed and count < fixed:
            padding = torch.zeros((fixed - count, *batch.shape[1:]), dtype=batch.dtype)
            batch = torch.cat([batch, padding])
        yield batch, count


def _evaluate(module, images, labels, fixed: int) -> float:
    import torch

    correct = 0
    with torch.no_grad():
        offset = 0
        for batch, count in _batches(images, 500, fixed):
            predicted = module(batch)[:count].argmax(dim=1)
            correct += int((predicted == labels[offset : offset + count]).sum())
            offset += count
    return correct / max(1, len(labels))


def _train(program: Any, layers: list[dict[str, Any]], request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from .mnist import load_arrays

    recipe = request["training"]
    torch.manual_seed(recipe["seed"])
    data = load_arrays(Path(request["data_dir"]))
    train_x = torch.from_numpy(data.train_images.copy()).float().div_(255).unsqueeze(1)
    train_y = torch.from_numpy(data.train_labels.copy()).long()
    test_x = torch.from_numpy(data.test_images.copy()).float().div_(255).unsqueeze(1)
    test_y = torch.from_numpy(data.test_labels.copy()).long()

    module = program.module()
    _reinitialise(module, _param_bounds(program), recipe["seed"])
    kinds = [layer["kind"] for layer in layers if layer["kind"] != "dropout"]
    last_kind = kinds[-1] if kinds else "other"
    loss_fn = _loss_function(last_kind)
    fixed = int(request.get("fixed_batch") or 0)
    batch_size = fixed or recipe["batch_size"]
    if recipe["optimizer"] == "adam":
        optimizer = torch.optim.Adam(module.parameters(), lr=recipe["learning_rate"])
    else:
        optimizer = torch.optim.SGD(
            module.parameters(), lr=recipe["learning_rate"], momentum=recipe["momentum"]
        )

    generator = torch.Generator().manual_seed(recipe["seed"])
    order = torch.randperm(len(train_x), generator=generator)
    position = 0
    curve: list[dict[str, Any]] = []
    window_loss, window_correct, window_seen = 0.0, 0, 0
    started = time.monotonic()
    for step in range(1, recipe["steps"] + 1):
        if position + batch_size > len(order):
            order = torch.randperm(len(train_x), generator=generator)
            position = 0
        index = order[position : position + batch_size]
        position += batch_size
        output = module(train_x[index])
        loss = loss_fn(output, train_y[index])
        if not torch.isfinite(loss):
            return {"error": f"the training loss became {float(loss)} at step {step}",
                    "curve": curve, "loss": "nll" if "softmax" in last_kind else "cross_entropy"}
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        window_loss += float(loss) * len(index)
        window_correct += int((output.detach().argmax(dim=1) == train_y[index]).sum())
        window_seen += len(index)
        if step % _CURVE_EVERY == 0 or step == recipe["steps"]:
            curve.append({"step": step, "loss": round(window_loss / window_seen, 5),
                          "accuracy": round(window_correct / window_seen, 5)})
            window_loss, window_correct, window_seen = 0.0, 0, 0
    train_seconds = time.monotonic() - started
    accuracy = _evaluate(module, test_x, test_y, fixed)
    return {
        "accuracy": accuracy,
        "test_images": len(test_y),
        "train_images": len(train_y),
        "steps": recipe["steps"],
        "batch_size": batch_size,
        "loss": {"log_softmax": "nll_loss", "softmax": "nll_loss on log(softmax)"}.get(
            last_kind, "cross_entropy"
        ),
        "output": last_kind if "softmax" in last_kind else "logits",
        "curve": curve,
        "seconds": round(train_seconds, 3),
    }


def check_archive(request: dict[str, Any]) -> dict[str, Any]:
    """Load the exported model, list its layers and, if asked, train and test it."""
    import torch

    from .layers import layers_from_program, output_shape

    torch.set_num_threads(int(request["training"]["threads"]))
    program = torch.export.load(request["archive"])
    layers = [layer.to_dict() for layer in layers_from_program(program)]
    report: dict[str, Any] = {
        "layers": layers,
        "output_shape": output_shape(program),
        "total_params": sum(int(t.numel()) for t in program.state_dict.values()
                            if isinstance(t, torch.nn.Parameter) or t.requires_grad),
    }
    if request.get("train", True):
        try:
            report["training"] = _train(program, layers, request)
        except RuntimeError as error:
            report["training"] = {"error": f"training failed: {str(error)[:500]}"}
    return report


def run_model_check(request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``check_archive`` in a child process with a time limit and return its report."""
    threads = str(request["training"]["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "grader.modelcheck"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout + _KILL_MARGIN,
            env=env,
        )
    except subprocess.TimeoutExpired as error:
        raise ModelCheckError(f"the model check ran longer than {timeout:.0f} s") from error
    if completed.returncode != 0:
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelCheckError(f"the model check failed: {last_line[:500]}")
    return json.loads(completed.stdout)


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    request = json.load(sys.stdin)
    json.dump(check_archive(request), sys.stdout)


if __name__ == "__main__":
    main()
