"""Operation tracing: module, functional and nn.Sequential styles give the same layers."""

import torch
import torch.nn.functional as F
from torch import nn

from conftest import export_layers
from reference_models import Functional, Reference, SequentialSoftmax

EXPECTED = [
    ("conv", [20, 24, 24], 520),
    ("relu", [20, 24, 24], 0),
    ("pool", [20, 12, 12], 0),
    ("flatten", [2880], 0),
    ("fc", [100], 288100),
    ("relu", [100], 0),
    ("fc", [10], 1010),
]


def summary(layers):
    return [(layer["kind"], layer["shape"], layer["params"]) for layer in layers]


def test_module_style():
    layers = export_layers(Reference())
    assert summary(layers) == EXPECTED
    conv = layers[0]["settings"]
    assert conv["kernel"] == [5, 5]
    assert conv["stride"] == [1, 1]
    assert conv["padding"] == [0, 0]
    assert (conv["in_channels"], conv["out_channels"]) == (1, 20)
    assert layers[2]["settings"] == {"mode": "max", "kernel": [2, 2], "stride": [2, 2],
                                     "padding": [0, 0]}
    assert layers[4]["settings"] == {"in_features": 2880, "out_features": 100, "bias": True}


def test_functional_style():
    assert summary(export_layers(Functional())) == EXPECTED


def test_sequential_with_softmax():
    layers = export_layers(SequentialSoftmax())
    assert summary(layers[:-1]) == EXPECTED
    assert layers[-1]["kind"] == "softmax"


def test_functional_weights_and_dropout():
    class Raw(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(20, 1, 5, 5))
            self.b = nn.Parameter(torch.zeros(20))
            self.fc1 = nn.Linear(2880, 100)
            self.drop = nn.Dropout(0.3)
            self.fc2 = nn.Linear(100, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(F.conv2d(x, self.w, self.b)), kernel_size=2)
            x = self.drop(F.relu(self.fc1(x.view(-1, 2880))))
            return F.log_softmax(self.fc2(x), dim=1)

    layers = export_layers(Raw())
    kinds = [layer["kind"] for layer in layers]
    assert kinds == ["conv", "relu", "pool", "flatten", "fc", "relu", "dropout", "fc", "log_softmax"]
    assert layers[0]["params"] == 520
    assert layers[2]["settings"]["stride"] == [2, 2]  # the default stride is the window


def test_padding_and_average_pool_recorded():
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(6 * 14 * 14, 10))
    layers = export_layers(model)
    assert layers[0]["settings"]["padding"] == [2, 2]
    assert layers[0]["shape"] == [6, 28, 28]
    assert layers[2]["settings"]["mode"] == "avg"
    assert layers[-1]["settings"]["in_features"] == 1176
