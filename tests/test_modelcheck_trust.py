"""The model check process treats an archive as data: a pickled weight runs no code,
and a notebook's frozen parameters do not change the grader's training result."""

from __future__ import annotations

import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from grader import modelcheck
from grader.execute import read_sandbox_file
from grader.mnist import BUILTIN_DIR
from grader.modelcheck import ModelChecker, ModelCheckError, checker_env
from reference_models import Reference


def export(model: torch.nn.Module, path: Path) -> Path:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.eval(), (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    torch.export.save(program, path)
    return path


class _Marker:
    """Unpickling this creates a file: proof that code from the archive ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.path}",))


def pickled_weight_archive(source: Path, target: Path, marker: Path) -> Path:
    """Copy an archive, storing its first weight as a pickle that would run a command."""
    with zipfile.ZipFile(source) as original:
        config_name = next(name for name in original.namelist() if name.endswith("model_weights_config.json"))
        config = json.loads(original.read(config_name))
        first = next(iter(config["config"].values()))
        first["use_pickle"] = True
        weight_name = config_name.rsplit("/", 1)[0] + "/" + first["path_name"]
        with zipfile.ZipFile(target, "w") as copy:
            for entry in original.infolist():
                if entry.filename == config_name:
                    copy.writestr(entry, json.dumps(config))
                elif entry.filename == weight_name:
                    copy.writestr(entry, pickle.dumps(_Marker(str(marker))))
                else:
                    copy.writestr(entry, original.read(entry))
    return target


def test_pickled_weight_runs_no_code(tmp_path: Path) -> None:
    archive = export(Reference(), tmp_path / "model.pt2")
    marker = tmp_path / "code-ran"
    crafted = pickled_weight_archive(archive, tmp_path / "crafted.pt2", marker)
    checker = ModelChecker(cwd=tmp_path, env=checker_env(tmp_path, 1))
    try:
        request = {"op": "inspect", "archive": str(crafted), "threads": 1}
        with pytest.raises(ModelCheckError, match="Weights only load failed"):
            checker.request(request, 120)
        assert not marker.exists()
        # The process still checks a genuine archive afterwards.
        reply = checker.request({**request, "archive": str(archive)}, 120)
        assert reply["layers"]
    finally:
        checker.close()


def test_frozen_parameters_train_like_trainable_ones(rubric, tmp_path: Path) -> None:
    trainable = Reference()
    frozen = Reference()
    for name, parameter in frozen.named_parameters():
        parameter.requires_grad_(name == "fc2.bias")
    programs = [torch.export.load(export(model, tmp_path / f"model-{number}.pt2"))
                for number, model in enumerate((trainable, frozen))]
    keys = {modelcheck.structure_key(program) for program in programs}
    assert len(keys) == 1  # the cache would hand one's result to the other
    request = {"training": {**rubric.training.__dict__, "steps": 30}, "data_dir": str(BUILTIN_DIR),
               "fixed_batch": 0}
    layers = modelcheck.inspect_archive(programs[0])["layers"]
    accuracies = [modelcheck._train(program, layers, request)["accuracy"] for program in programs]
    assert accuracies[0] == accuracies[1]


def test_read_sandbox_file_refuses_links_and_special_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"value": 42}')
    link = tmp_path / "state.json"
    link.symlink_to(secret)
    with pytest.raises(OSError):
        read_sandbox_file(link, 1000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_sandbox_file(fifo, 1000)
    with pytest.raises(OSError, match="more than 5"):
        read_sandbox_file(secret, 5)
    assert read_sandbox_file(secret, 1000) == b'{"value": 42}'


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
