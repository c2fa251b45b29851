"""Execute notebooks one after another with plain nbclient and write a JSON report.

This is the floor that any grader which executes notebooks pays: one fresh kernel
per notebook, every cell run with a per-cell timeout, nothing else. ``compare.py``
starts this script as a child process so that it can sample the kernels' memory.

    python benchmarks/nbclient_batch.py --work DIR --report FILE.json NOTEBOOK...

Each notebook runs in its own working folder ``DIR/<file stem>/``, which contains a
copy of the notebook and the built-in MNIST sample decompressed into
``data/MNIST/raw/``, where ``torchvision.datasets.MNIST(root="data",
download=True)`` finds it without downloading.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
MNIST_GZIP_DIR = REPOSITORY_ROOT / "grader" / "data" / "mnist"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def write_mnist_raw(data_root: Path) -> Path:
    """Decompress the four MNIST files into ``data_root/MNIST/raw`` and return that folder.

    torchvision's MNIST skips its download when the four uncompressed files exist
    in ``<root>/MNIST/raw``.
    """
    raw_dir = data_root / "MNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_FILES:
        with (
            gzip.open(MNIST_GZIP_DIR / f"{stem}.gz", "rb") as source,
            open(raw_dir / stem, "wb") as target,
        ):
            shutil.copyfileobj(source, target)
    return raw_dir


def execute_notebook(notebook_path: Path, workdir: Path, cell_timeout: int) -> dict:
    """Run one notebook in a fresh kernel in ``workdir`` and summarise its cells."""
    workdir.mkdir(parents=True)
    notebook_copy = workdir / notebook_path.name
    shutil.copyfile(notebook_path, notebook_copy)
    write_mnist_raw(workdir / "data")

    notebook = nbformat.read(notebook_copy, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=cell_timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    started = time.monotonic()
    failure = ""
    try:
        client.execute()
    except Exception as error:  # noqa: BLE001 - a dead kernel must not stop the batch
        failure = f"{type(error).__name__}: {error}"
    seconds = time.monotonic() - started

    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    error_names = [
        output.get("ename", "")
        for cell in code_cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    return {
        "student": notebook_path.stem,
        "seconds": round(seconds, 2),
        "code_cells": len(code_cells),
        # A cell over its timeout is interrupted, so it ends in KeyboardInterrupt.
        "timed_out_cells": error_names.count("KeyboardInterrupt"),
        "error_cells": len(error_names),
        "failure": failure,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work",
        type=Path,
        required=True,
        help="empty or missing folder for the per-notebook working folders",
    )
    parser.add_argument(
        "--report", type=Path, required=True, help="JSON file to write the results to"
    )
    parser.add_argument(
        "--cell-timeout", type=int, default=30, help="seconds one cell may run (default 30)"
    )
    parser.add_argument("notebooks", type=Path, nargs="+", help="notebooks to execute, in order")
    args = parser.parse_args(argv)

    results = []
    for notebook_path in args.notebooks:
        result = execute_notebook(notebook_path, args.work / notebook_path.stem, args.cell_timeout)
        print(
            f"nbclient: {result['student']}: {result['seconds']:.1f} s, "
            f"{result['error_cells']} cells with errors, {result['timed_out_cells']} timed out"
            + (f", {result['failure']}" if result["failure"] else ""),
            flush=True,
        )
        results.append(result)
    args.report.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
