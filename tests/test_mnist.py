"""The built-in MNIST sample, other layouts, and broken data files."""

import gzip
import shutil

import pytest

from grader.mnist import BUILTIN_DIR, DataError, load_arrays, write_torchvision_layout


def test_builtin_sample():
    data = load_arrays()
    assert data.train_images.shape == (8000, 28, 28)
    assert data.test_images.shape == (2000, 28, 28)
    assert sorted(set(data.train_labels.tolist())) == list(range(10))


def test_torchvision_layout_is_read_by_torchvision(tmp_path):
    from torchvision.datasets import MNIST

    write_torchvision_layout(BUILTIN_DIR, tmp_path)
    dataset = MNIST(str(tmp_path), train=False, download=True)
    assert len(dataset) == 2000
    assert load_arrays(tmp_path).test_labels.tolist() == dataset.targets.tolist()


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte .* not found"):
        load_arrays(tmp_path)


def test_corrupt_file(tmp_path):
    for path in BUILTIN_DIR.glob("*.gz"):
        shutil.copy(path, tmp_path)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as stream:
        stream.write(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match="magic number 0x803, expected 0x801"):
        load_arrays(tmp_path)
