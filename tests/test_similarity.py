"""Similarity leads: a renamed copy is found, independent work and template code are not."""

import shutil

from conftest import REPO, SUBMISSIONS
from grader.similarity import find_similar
from notebooks import CONVNET, IMPORTS, write_notebook

TEMPLATE = REPO / "assignment" / "exercise5.ipynb"
OWN_CODE = """def train(model, loader, epochs):
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(epochs):
        for images, labels in loader:
            optimiser.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimiser.step()
    return model"""


def renamed(code: str) -> str:
    return (code.replace("optimiser", "opt").replace("images", "xb").replace("labels", "yb")
            .replace("0.01", "0.05").replace("epochs", "n"))


def test_renamed_copy_is_listed(tmp_path):
    original = write_notebook(tmp_path / "a.ipynb", [IMPORTS, CONVNET, OWN_CODE])
    copy = write_notebook(tmp_path / "b.ipynb", [IMPORTS, renamed(CONVNET.replace("self.conv", "self.c1")),
                                                 renamed(OWN_CODE)])
    shutil.copy(SUBMISSIONS / "ow16mapi.ipynb", tmp_path / "c.ipynb")
    pairs = find_similar({"a": original, "b": copy, "c": tmp_path / "c.ipynb"}, TEMPLATE)
    assert [(pair.first, pair.second) for pair in pairs] == [("a", "b")]
    assert pairs[0].similarity >= 0.8
    assert "            loss.backward()" in pairs[0].shared_lines


def test_template_code_alone_is_not_similar(tmp_path):
    first = shutil.copy(TEMPLATE, tmp_path / "a.ipynb")
    second = shutil.copy(TEMPLATE, tmp_path / "b.ipynb")
    assert find_similar({"a": first, "b": second}, TEMPLATE) == []


def test_sample_submissions_are_not_flagged():
    notebooks = {path.stem: path for path in SUBMISSIONS.glob("*.ipynb")}
    assert find_similar(notebooks, TEMPLATE) == []
