"""Check an exported student model in a process of its own: layers, output shape,
and the grader's own training run for task 5.3 ii.

The archive was written by the student's kernel, but loading it runs no student
Python code: ``torch.export`` archives hold an ATen graph and tensors. The grader keeps one
``python -m grader.modelcheck --serve`` process per worker and sends it JSON-line
requests: ``inspect`` lists the layers, ``train`` runs the grader's training recipe.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .service import LineService, ServiceError

_CURVE_EVERY = 10  # training steps per point of the loss and accuracy curve


# The model check process failed or ran past its time limit.
ModelCheckError = ServiceError


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


def _parameter_order(program: Any) -> list[str]:
    """List parameter names in the order the forward pass first uses them.

    Initialising in this order, not in attribute order, gives two models with the same
    operations the same starting weights, whatever their layers are called.
    """
    to_fqn = program.graph_signature.inputs_to_parameters
    return [to_fqn[node.name] for node in program.graph.nodes
            if node.op == "placeholder" and node.name in to_fqn]


def _reinitialise(module: Any, program: Any, bounds: dict[str, float], seed: int) -> None:
    """Give conv and fc parameters fresh seeded values, so training starts from the
    same kind of state for every student, whatever the notebook trained before."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    parameters = dict(module.named_parameters())
    with torch.no_grad():
        for name in _parameter_order(program):
            if name in bounds and name in parameters:
                parameters[name].uniform_(-bounds[name], bounds[name], generator=generator)


def _canonical(value: Any, index: dict[str, int]) -> Any:
    import torch

    if isinstance(value, torch.fx.Node):
        return ("node", index[value.name])
    if isinstance(value, (list, tuple)):
        return [_canonical(item, index) for item in value]
    if isinstance(value, dict):
        return {key: _canonical(item, index) for key, item in sorted(value.items())}
    return repr(value)


def structure_key(program: Any) -> str:
    """Hash what the grader's training result depends on: the operations, the
    parameter shapes, and the values of every tensor that training does not reset.

    Two notebooks with the same key train to the same accuracy, so the result can
    be reused. Names of layers and attributes do not enter the key.
    """
    import hashlib

    signature = program.graph_signature
    state = program.state_dict
    constants = getattr(program, "constants", {}) or {}
    reset = set(_param_bounds(program))
    index: dict[str, int] = {}
    digest = hashlib.sha256()
    for position, node in enumerate(program.graph.nodes):
        index[node.name] = position
        if node.op == "placeholder":
            kinds = (("parameter", signature.inputs_to_parameters), ("buffer", signature.inputs_to_buffers),
                     ("constant", signature.inputs_to_lifted_tensor_constants))
            kind, fqn = next(((kind, names[node.name]) for kind, names in kinds if node.name in names),
                             ("input", None))
            tensor = state.get(fqn) if fqn in state else constants.get(fqn)
            if tensor is None:
                description: Any = ["input"]
            else:
                description = [kind, list(tensor.shape), str(tensor.dtype)]
                if fqn not in reset:
                    data = tensor.detach().contiguous().cpu().numpy().tobytes()
                    description.append(hashlib.sha256(data).hexdigest())
        else:
            description = [node.op, str(node.target), _canonical(node.args, index),
                           _canonical(node.kwargs, index)]
        digest.update(repr(description).encode())
    return digest.hexdigest()


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


def _training_layout(module: Any, sample: Any) -> Any:
    """Return the memory format to train ``module`` in: channels_last where the model
    computes the same outputs in it, else the default contiguous format.

    On the CPU, convolution and max pooling run faster in channels_last: a training
    step of the reference model took about 30 % less time (measured with torch 2.14
    on a 2-core AMD EPYC machine). A forward that calls ``view`` on a
    convolution's output fails in that layout, and one that reads strides could
    compute something else, so both keep the default.
    """
    import torch

    if not any(parameter.dim() == 4 for parameter in module.parameters()):
        return torch.contiguous_format
    trial = copy.deepcopy(module)  # a forward could update buffers of the module it runs
    try:
        with torch.no_grad():
            expected = trial(sample)
            trial.to(memory_format=torch.channels_last)
            output = trial(sample)
    except Exception:
        return torch.contiguous_format
    if (not isinstance(output, torch.Tensor) or output.shape != expected.shape
            or not torch.allclose(output, expected, rtol=1e-4, atol=1e-5)):
        return torch.contiguous_format
    return torch.channels_last


@functools.lru_cache(maxsize=2)
def _tensors(data_dir: str) -> tuple[Any, Any, Any, Any]:
    """Load MNIST once per process as float images in [0, 1] and integer labels."""
    import torch

    from .mnist import load_arrays

    data = load_arrays(Path(data_dir))

    def images(array: Any) -> Any:
        return torch.from_numpy(array.copy()).float().div_(255).unsqueeze(1)

    def labels(array: Any) -> Any:
        return torch.from_numpy(array.copy()).long()

    return (images(data.train_images), labels(data.train_labels),
            images(data.test_images), labels(data.test_labels))


def _train(program: Any, layers: list[dict[str, Any]], request: dict[str, Any]) -> dict[str, Any]:
    import torch

    recipe = request["training"]
    torch.manual_seed(recipe["seed"])
    train_x, train_y, test_x, test_y = _tensors(request["data_dir"])

    module = program.module()
    # The recipe trains every parameter: one the notebook froze must not make its
    # structure's cached result differ from an identical model's.
    for parameter in module.parameters():
        parameter.requires_grad_(True)
    _reinitialise(module, program, _param_bounds(program), recipe["seed"])
    kinds = [layer["kind"] for layer in layers if layer["kind"] != "dropout"]
    last_kind = kinds[-1] if kinds else "other"
    loss_fn = _loss_function(last_kind)
    fixed = int(request.get("fixed_batch") or 0)
    batch_size = fixed or recipe["batch_size"]
    module.to(memory_format=_training_layout(module, train_x[:batch_size]))
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
        window_loss += float(loss.detach()) * len(index)
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


def inspect_archive(program: Any) -> dict[str, Any]:
    """List the exported model's layers, output shape, parameter total and structure key."""
    import torch

    from .layers import layers_from_program, output_shape

    layers = [layer.to_dict() for layer in layers_from_program(program)]
    return {
        "layers": layers,
        "output_shape": output_shape(program),
        "total_params": sum(int(t.numel()) for t in program.state_dict.values()
                            if isinstance(t, torch.nn.Parameter) or t.requires_grad),
        "key": structure_key(program),
    }


class _Service:
    """Serve inspect and train requests, keeping the last loaded archive."""

    def __init__(self) -> None:
        self._loaded: tuple[str, Any] | None = None

    def _program(self, archive: str) -> Any:
        import torch

        if self._loaded is None or self._loaded[0] != archive:
            self._loaded = (archive, torch.export.load(archive))
        return self._loaded[1]

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        import torch

        torch.set_num_threads(int(request["threads"]))
        program = self._program(request["archive"])
        if request["op"] == "inspect":
            return inspect_archive(program)
        layers = request["layers"]
        try:
            return {"training": _train(program, layers, request)}
        except RuntimeError as error:
            return {"training": {"error": f"training failed: {str(error)[:500]}"}}


def checker_env(workdir: Path, threads: int) -> dict[str, str]:
    """Return the model check process's environment: short, with fixed thread counts."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
           "LANG": "C.UTF-8", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "CUDA_VISIBLE_DEVICES": "",
           # torch.export.load unpickles a weight marked use_pickle with weights_only=False,
           # which would run code from the archive; this makes every torch.load refuse that.
           "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"}
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


class ModelChecker(LineService):
    """The ``python -m grader.modelcheck --serve`` process of one grading worker."""

    name = "the model check"

    def __init__(self, wrap: Callable[[list[str]], list[str]] = list, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__([sys.executable, "-I", "-m", "grader.modelcheck", "--serve"], wrap, cwd, env)


def _warm_up() -> None:
    """Load what the first request would otherwise load: torch, and the code that
    reads, runs and trains an exported program."""
    import io

    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 26 * 26, 10))
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(model, (torch.zeros(2, 1, 28, 28),)), buffer)
    buffer.seek(0)
    module = torch.export.load(buffer).module()
    torch.nn.functional.cross_entropy(module(torch.zeros(2, 1, 28, 28)), torch.zeros(2, dtype=torch.long)).backward()


def serve() -> None:
    """Serve JSON-line requests from standard input until it closes."""
    import warnings

    warnings.filterwarnings("ignore")
    # Replies use the original standard output; anything else printed goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr
    _warm_up()
    service = _Service()
    for line in sys.stdin:
        try:
            reply = service.handle(json.loads(line))
        except Exception as error:  # one bad archive must not end the service
            reply = {"failure": f"{type(error).__name__}: {str(error)[:500]}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
