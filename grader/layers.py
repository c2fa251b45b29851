"""Layer records from an exported model: the operations its forward pass runs.

``torch.export`` turns a model's forward pass into a graph of ATen operations, the
same graph whether the student wrote ``nn.Conv2d`` modules, ``F.conv2d`` calls or an
``nn.Sequential``. Each operation of interest becomes one record with its kind,
settings, output shape (batch dimension dropped) and learnable parameter count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

# ATen operation names (without overload) grouped by the kind of layer they are.
_KINDS = {
    "conv": {"conv2d", "convolution", "_convolution", "conv1d", "conv3d"},
    "relu": {"relu", "relu_"},
    "activation": {
        "leaky_relu", "leaky_relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "gelu",
        "elu", "elu_", "silu", "silu_", "hardtanh", "hardtanh_", "relu6", "selu", "mish",
    },
    "pool": {
        "max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d",
        "adaptive_max_pool2d", "max_pool1d", "avg_pool1d",
    },
    "flatten": {"view", "reshape", "flatten", "_unsafe_view"},
    "fc": {"linear", "addmm", "mm", "matmul"},
    "softmax": {"softmax", "_softmax"},
    "log_softmax": {"log_softmax", "_log_softmax"},
    "dropout": {"dropout", "dropout_", "native_dropout", "feature_dropout", "alpha_dropout"},
}
# Operations that compute nothing a layer table would list.
_IGNORED = {"sym_size", "detach", "alias", "clone", "contiguous", "_assert_tensor_metadata",
            "lift_fresh_copy", "zeros_like", "_to_copy", "to", "t"}


@dataclass
class Layer:
    """One operation of the forward pass, as a row of a layer table."""

    kind: str  # conv, relu, activation, pool, flatten, fc, softmax, log_softmax, dropout, other
    op: str  # the ATen operation name
    shape: list[int]  # output shape without the batch dimension
    params: int  # learnable parameters this operation uses
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _op_name(target: Any) -> str:
    name = getattr(target, "__name__", str(target))  # e.g. "conv2d.default"
    return name.split(".")[0]


def _kind(op: str) -> str:
    for kind, names in _KINDS.items():
        if op in names:
            return kind
    return "other"


def _shape(node: torch.fx.Node) -> list[int]:
    value = node.meta.get("val")
    shape = getattr(value, "shape", None)
    if shape is None:
        return []
    # Symbolic sizes (the batch dimension) are dropped with the first entry.
    return [int(size) if isinstance(size, int) else -1 for size in list(shape)[1:]]


def _pair(value: Any, default: int) -> list[int]:
    if value is None or value == []:
        return [default, default]
    if isinstance(value, int):
        return [value, value]
    values = [int(v) for v in value]
    return values * 2 if len(values) == 1 else values


def _conv_settings(node: torch.fx.Node, weight_shape: list[int]) -> dict[str, Any]:
    args = list(node.args)
    stride = args[3] if len(args) > 3 else node.kwargs.get("stride", 1)
    padding = args[4] if len(args) > 4 else node.kwargs.get("padding", 0)
    settings: dict[str, Any] = {
        "in_channels": weight_shape[1] if len(weight_shape) > 1 else None,
        "out_channels": weight_shape[0] if weight_shape else None,
        "kernel": weight_shape[2:],
        "stride": _pair(stride, 1),
        "bias": len(args) > 2 and args[2] is not None,
    }
    settings["padding"] = padding if isinstance(padding, str) else _pair(padding, 0)
    return settings


def _pool_settings(node: torch.fx.Node, op: str) -> dict[str, Any]:
    args = list(node.args)
    if op.startswith("adaptive"):
        return {"mode": "max" if "max" in op else "avg", "output_size": _pair(args[1], 1)}
    kernel = _pair(args[1], 1)
    stride = _pair(args[2] if len(args) > 2 else None, 0)
    if stride == [0, 0]:
        stride = kernel  # PyTorch's default stride is the window size.
    padding = _pair(args[3] if len(args) > 3 else 0, 0)
    return {"mode": "max" if "max" in op else "avg", "kernel": kernel, "stride": stride,
            "padding": padding}


def _parameter_shapes(program: torch.export.ExportedProgram) -> dict[str, list[int]]:
    """Map each parameter placeholder's node name to the parameter's shape."""
    signature = program.graph_signature
    state = program.state_dict
    return {
        node_name: list(state[fqn].shape)
        for node_name, fqn in signature.inputs_to_parameters.items()
        if fqn in state
    }


def layers_from_program(program: torch.export.ExportedProgram) -> list[Layer]:
    """List the forward pass's operations of interest, in execution order."""
    parameters = _parameter_shapes(program)
    records: list[Layer] = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        op = _op_name(node.target)
        if op in _IGNORED:
            continue
        kind = _kind(op)
        if kind == "flatten" and len(_shape(node)) != 1:
            kind = "other"  # a reshape that keeps image dimensions is not a flatten
        used = [arg.name for arg in node.args if isinstance(arg, torch.fx.Node)]
        param_shapes = [parameters[name] for name in used if name in parameters]
        params = sum(int(torch.Size(shape).numel()) for shape in param_shapes)
        settings: dict[str, Any] = {}
        if kind == "conv":
            settings = _conv_settings(node, param_shapes[0] if param_shapes else [])
        elif kind == "pool":
            settings = _pool_settings(node, op)
        elif kind == "fc" and param_shapes:
            weight = next((s for s in param_shapes if len(s) == 2), [0, 0])
            # linear stores (out, in); addmm and mm take an already transposed weight.
            out_features, in_features = weight if op == "linear" else weight[::-1]
            settings = {"in_features": in_features, "out_features": out_features,
                        "bias": any(len(s) == 1 for s in param_shapes)}
        elif kind == "activation":
            settings = {"function": op.rstrip("_")}
        records.append(Layer(kind, op, _shape(node), params, settings))
    return records


def output_shape(program: torch.export.ExportedProgram) -> list[Any]:
    """Return the forward output's shape, with -1 for a symbolic batch size."""
    output_node = next(node for node in program.graph.nodes if node.op == "output")
    first = output_node.args[0]
    if isinstance(first, (list, tuple)):
        first = first[0] if first else None
    if not isinstance(first, torch.fx.Node):
        return []
    value = first.meta.get("val")
    shape = getattr(value, "shape", None)
    if shape is None:
        return []
    return [int(size) if isinstance(size, int) else -1 for size in shape]
