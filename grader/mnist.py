"""MNIST in the standard IDX format: the built-in sample, loading as tensors, and the
folder layout that ``torchvision.datasets.MNIST`` expects.

The package ships 10,000 real MNIST digits (8,000 train, 2,000 test) as the four
gzip IDX files of the MNIST distribution. ``--data DIR`` points the grader at a full
MNIST instead, in torchvision's layout (``DIR/MNIST/raw/``) or as a flat folder of the
four files, gzip-compressed or not.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUILTIN_DIR = Path(__file__).parent / "data" / "mnist"

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX magic numbers: unsigned bytes, 3 dimensions (images) or 1 dimension (labels).
_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801


class DataError(Exception):
    """The MNIST files are missing or not in the IDX format."""


@dataclass(frozen=True)
class MnistArrays:
    """MNIST as uint8 arrays: images (N, 28, 28) and labels (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _find_file(data_dir: Path, stem: str) -> Path:
    for folder in (data_dir / "MNIST" / "raw", data_dir):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise DataError(
        f"MNIST file {stem} (or {stem}.gz) not found in {data_dir} or {data_dir / 'MNIST' / 'raw'}"
    )


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            return handle.read()
    return path.read_bytes()


def _parse_idx(raw: bytes, magic: int, path: Path) -> np.ndarray:
    header_ints = 4 if magic == _IMAGE_MAGIC else 2
    if len(raw) < 4 * header_ints:
        raise DataError(f"{path} is too short to be an IDX file")
    header = np.frombuffer(raw, dtype=">u4", count=header_ints)
    if int(header[0]) != magic:
        raise DataError(f"{path} has IDX magic number {int(header[0]):#x}, expected {magic:#x}")
    shape = tuple(int(n) for n in header[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 * header_ints)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {data.size} bytes of data, expected shape {shape}")
    return data.reshape(shape)


def load_arrays(data_dir: Path = BUILTIN_DIR) -> MnistArrays:
    """Load the four MNIST files from ``data_dir`` as uint8 arrays."""
    arrays = {}
    for key, stem in FILES.items():
        path = _find_file(data_dir, stem)
        magic = _IMAGE_MAGIC if key.endswith("images") else _LABEL_MAGIC
        arrays[key] = _parse_idx(_read_bytes(path), magic, path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(f"{split} split has {len(images)} images but {len(labels)} labels")
    return MnistArrays(**arrays)


def write_torchvision_layout(data_dir: Path, root: Path) -> Path:
    """Write uncompressed copies of the MNIST files to ``root/MNIST/raw``.

    ``torchvision.datasets.MNIST(root, download=True)`` skips its download when the
    four uncompressed files are there. Returns the ``raw`` folder.
    """
    raw_dir = root / "MNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stem in FILES.values():
        source = _find_file(data_dir, stem)
        target = raw_dir / stem
        if source.suffix == ".gz":
            with gzip.open(source, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copyfile(source, target)
    return raw_dir
