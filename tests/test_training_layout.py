"""The memory format of the grader's training run: channels_last where a model computes
the same outputs in it, the default layout everywhere else."""

import pytest
import torch
from torch import nn

from grader import modelcheck
from grader.mnist import BUILTIN_DIR
from reference_models import Functional, Reference

SAMPLE = torch.rand(8, 1, 28, 28)


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


class ReadsMemory(Reference):
    """Takes ten values straight from the convolution's memory, whose order the layout sets."""

    def forward(self, x):
        maps = self.conv(x)
        return torch.as_strided(maps, (maps.shape[0], 10), (maps.stride(0), 1)).contiguous()


def export(model: nn.Module) -> nn.Module:
    batch = torch.export.Dim("batch", min=1, max=4096)
    return torch.export.export(model.eval(), (SAMPLE,), dynamic_shapes=({0: batch},)).module()


@pytest.mark.parametrize("model, layout", [
    (Reference(), torch.channels_last),
    (export(Reference()), torch.channels_last),
    (Functional(), torch.contiguous_format),  # view() on the convolution's output
    (export(Functional()), torch.contiguous_format),
    (Linear(), torch.contiguous_format),  # no convolution to speed up
    (ReadsMemory(), torch.contiguous_format),
])
def test_layout_choice(model, layout):
    assert modelcheck._training_layout(model, SAMPLE) == layout


def test_layout_trial_leaves_model_unchanged():
    model = Reference()
    modelcheck._training_layout(model, SAMPLE)
    assert model.conv.weight.is_contiguous()


def test_view_model_still_trains(rubric, tmp_path):
    path = tmp_path / "model.pt2"
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(Functional().eval(), (SAMPLE,), dynamic_shapes=({0: batch},)), path)
    program = torch.export.load(path)
    request = {"training": {**rubric.training.__dict__, "steps": 30}, "data_dir": str(BUILTIN_DIR),
               "fixed_batch": 0}
    result = modelcheck._train(program, modelcheck.inspect_archive(program)["layers"], request)
    assert "error" not in result
    assert result["accuracy"] > 0.5
