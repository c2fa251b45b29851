"""Build small notebooks for tests: the correct answers, a correct ConvNet and its
layer table, plus whatever cells a test adds."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

IMPORTS = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\nimport numpy as np"
ANSWERS = """v = [4, 0, 11]
y_predicted = 18
C = 225
dC_dw11 = -30
dC_dW2 = [120, 0, 330]
W2_updated = [-7, 3, -14.5]"""
CONVNET = """class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 20, 5)
        self.fc1 = nn.Linear(2880, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))"""
TABLE = """layer_table = [("conv", 520, (20, 24, 24)), ("relu", 0, (20, 24, 24)),
               ("pool", 0, (20, 12, 12)), ("flatten", 0, (2880,)), ("fc1", 288100, (100,)),
               ("relu", 0, (100,)), ("fc2", 1010, (10,))]
total_params = 289630"""
CORRECT = [IMPORTS, ANSWERS, CONVNET, TABLE]


def write_notebook(path: Path, cells: list[str]) -> Path:
    """Write a notebook with one code cell per source string."""
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in cells]), path)
    return path
