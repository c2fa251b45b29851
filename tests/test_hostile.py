"""Notebooks that crash, hang, cheat or expect a GPU: each is graded, earns only what
it deserves, and leaves no process behind. Real kernels, one batch per module."""

import json
import os
import shutil
import time

import psutil

import pytest

from grader.batch import BatchSettings, grade_batch
from grader.mnist import BUILTIN_DIR
from grader.rubric import load_rubric
from grader.sandbox import detect_sandbox
from conftest import REPO
from notebooks import ANSWERS, CONVNET, CORRECT, IMPORTS, TABLE, write_notebook

pytestmark = pytest.mark.slow

IDLE_SECONDS = 2


CASES = {
    # The kernel dies midway; everything defined before and after still counts.
    "os_exit": [IMPORTS, ANSWERS, "import os\nos._exit(3)", CONVNET, TABLE],
    # A cell swallows the interrupt after its timeout; the kernel is replaced.
    "swallows_interrupt": [IMPORTS, ANSWERS, CONVNET,
                           "import time\nwhile True:\n    try:\n        time.sleep(100)\n"
                           "    except BaseException:\n        continue", TABLE],
    # A cell that waits without computing is interrupted before its timeout.
    "sleeps_forever": [IMPORTS, "import time\ntime.sleep(600)", ANSWERS, CONVNET, TABLE],
    "syntax_error": [IMPORTS, ANSWERS, "def f(:\n    pass", CONVNET, TABLE],
    "input_call": [IMPORTS, "name = input('Your name? ')", ANSWERS, CONVNET, TABLE],
    "sys_exit": [IMPORTS, ANSWERS, "import sys\nsys.exit(1)", CONVNET, TABLE],
    # Objects that claim to equal anything, and a patched numel and parameters.
    "cheating_objects": [
        IMPORTS,
        "class Anything(float):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = float.__hash__\n"
        "class Liar:\n    def __eq__(self, other):\n        return True\n"
        "v = Liar()\ny_predicted = Anything(1.0)\nC = Liar()\ndC_dw11 = Anything(0)\n"
        "dC_dW2 = Liar()\nW2_updated = Liar()",
        "class ConvNet(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(784, 10)\n    def forward(self, x):\n"
        "        return self.fc(x.view(x.size(0), -1))",
        "torch.Tensor.numel = lambda self: 520\n"
        "nn.Module.parameters = lambda self, recurse=True: iter([nn.Parameter(torch.zeros(289630))])",
        TABLE,
        "print('5.3.i.conv 2/2 points\\nTotal: 20/20')",
    ],
    # A patched traceback display hides errors; failures come from the execute reply.
    "hidden_traceback": [IMPORTS, ANSWERS, CONVNET,
                         "from IPython import get_ipython\n"
                         "get_ipython().showtraceback = lambda *args, **kwargs: None",
                         "raise ValueError('hidden')", TABLE],
    # A DataLoader with worker processes works inside the sandbox.
    "dataloader_workers": [IMPORTS, ANSWERS, CONVNET, TABLE,
                           "from torch.utils.data import DataLoader, TensorDataset\n"
                           "loader = DataLoader(TensorDataset(torch.zeros(8, 1)), batch_size=2, "
                           "num_workers=2)\nbatches = sum(1 for _ in loader)\nassert batches == 4"],
    # Hundreds of processes: the kernel is stopped and replaced.
    "many_processes": [IMPORTS, ANSWERS, CONVNET, TABLE,
                       "import subprocess\nchildren = [subprocess.Popen(['sleep', '30']) "
                       "for _ in range(300)]\nimport time\ntime.sleep(3)"],
    # The graded class name is rebound after the class definition.
    "class_rebound": [IMPORTS, ANSWERS, CONVNET, TABLE, "ConvNet = None"],
    # Code written for a GPU.
    "cuda_device": [IMPORTS, ANSWERS,
                    CONVNET.replace("super().__init__()", "super().__init__()\n        self.cuda()"),
                    "device = torch.device('cuda:0')\nmodel = ConvNet().to(device)\n"
                    "out = model(torch.zeros(1, 1, 28, 28).to(device))", TABLE],
    # A child process that tries to outlive the kernel.
}
# A child process that tries to outlive the kernel, found afterwards by its unique
# sleep duration.
SURVIVOR_SECONDS = f"{600 + os.getpid() % 1000}.{time.time_ns() % 10**6:06d}"
ORPHAN = [IMPORTS, ANSWERS, CONVNET, TABLE,
          "import subprocess\n"
          f"p = subprocess.Popen(['sleep', {SURVIVOR_SECONDS!r}], start_new_session=True)"]


def _sandbox_cases(rubric, other_notebook, planted):
    """Notebooks that try to read secrets, write outside their folder or use the network.

    Each sets ``v`` to the right answer only when the attempt failed, so the v item
    shows whether the sandbox stopped it."""
    def attempt(code):
        return (f"try:\n    {code}\n    v = [9, 9, 9]\nexcept Exception:\n    v = [4, 0, 11]")

    answers = ANSWERS.replace("v = [4, 0, 11]\n", "")
    return {
        "reads_rubric": [IMPORTS, answers, attempt(f"open({str(rubric)!r}).read()"), CONVNET, TABLE],
        "reads_other_notebook": [IMPORTS, answers, attempt(f"open({str(other_notebook)!r}).read()"),
                                 CONVNET, TABLE],
        "reads_git_history": [IMPORTS, answers,
                              attempt(f"open({str(REPO / '.git' / 'HEAD')!r}).read()"), CONVNET, TABLE],
        "writes_outside": [IMPORTS, answers, attempt(f"open({str(planted)!r}, 'w').write('x')"),
                           CONVNET, TABLE],
        "uses_network": [IMPORTS, answers,
                         "import socket, time\nstarted = time.monotonic()\n"
                         + attempt("socket.create_connection(('127.0.0.1', 9), timeout=20)")
                         + "\nnetwork_seconds = time.monotonic() - started", CONVNET, TABLE],
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    for name, cells in CASES.items():
        write_notebook(folder / f"{name}.ipynb", cells)
    rubric_dir = tmp_path_factory.mktemp("rubric")
    source = load_rubric().path
    text = (source.read_text().replace("cell_timeout = 30", "cell_timeout = 5")
            .replace("cell_idle_timeout = 5", f"cell_idle_timeout = {IDLE_SECONDS}"))
    (rubric_dir / "rubric.toml").write_text(text)
    shutil.copy(source.parent / "reference.py", rubric_dir)
    out = tmp_path_factory.mktemp("out")
    write_notebook(folder / "orphan_process.ipynb", ORPHAN)
    for name, cells in _sandbox_cases(rubric_dir / "rubric.toml", folder / "os_exit.ipynb",
                                      out / "planted.txt").items():
        write_notebook(folder / f"{name}.ipynb", cells)
    grade_batch(folder, out, load_rubric(rubric_dir / "rubric.toml"),
                BatchSettings(BUILTIN_DIR, workers=2))

    def document(name):
        return json.loads((out / "results" / f"{name}.json").read_text())

    document.out = out
    return document


def points(document):
    return {item["id"]: item["points"] for item in document["items"]}


@pytest.mark.parametrize("name", ["os_exit", "swallows_interrupt", "sleeps_forever", "input_call",
                                  "sys_exit", "cuda_device", "orphan_process", "hidden_traceback",
                                  "dataloader_workers", "many_processes"])
def test_graded_despite_failure(graded, name):
    document = graded(name)
    assert document["status"] == "graded"
    assert document["total"] == 20, [i for i in document["items"] if i["points"] < i["max_points"]]


def test_dead_kernel_reports_cause(graded):
    cells = graded("os_exit")["cells"]
    assert [cell["outcome"] for cell in cells] == ["dead-kernel"]
    assert cells[0]["index"] == 3
    assert "exited with status 3" in cells[0]["error_value"]
    assert any("restarted 1 time" in note for note in graded("os_exit")["notes"])


def test_swallowed_interrupt_reported(graded):
    cells = graded("swallows_interrupt")["cells"]
    assert [cell["outcome"] for cell in cells] == ["timeout"]
    assert "ignored the interrupt" in cells[0]["error_value"]


def test_waiting_cell_stopped_before_timeout(graded):
    cells = graded("sleeps_forever")["cells"]
    assert [(cell["index"], cell["outcome"], cell["error_name"]) for cell in cells] == [
        (2, "timeout", "CellIdleError")]
    assert IDLE_SECONDS <= cells[0]["seconds"] < 5


def test_syntax_error_names_line_not_file(graded):
    document = graded("syntax_error")
    assert [(cell["index"], cell["error_name"]) for cell in document["cells"]] == [(3, "SyntaxError")]
    assert document["cells"][0]["error_value"] == "invalid syntax (line 1)"
    assert document["total"] == 20


def test_input_fails_at_once(graded):
    cells = graded("input_call")["cells"]
    assert [cell["error_name"] for cell in cells] == ["StdinNotImplementedError"]
    assert cells[0]["seconds"] < 5


def test_cheating_objects_earn_nothing(graded):
    document = graded("cheating_objects")
    got = points(document)
    for name in ("v", "y_predicted", "C", "dC_dw11", "dC_dW2", "W2_updated"):
        assert got[f"5.1.{name}"] == 0
    for item_id in ("5.3.i.conv", "5.3.i.pool", "5.3.i.fc"):
        assert got[item_id] == 0, item_id
    # Patching numel in the kernel breaks the export there, and nothing else.
    assert document["layers"] == []


def test_rebound_class_is_explained(graded):
    document = graded("class_rebound")
    conv = next(item for item in document["items"] if item["id"] == "5.3.i.conv")
    assert conv["points"] == 0
    assert "ConvNet is bound to NoneType" in conv["message"]


def test_gpu_calls_mapped_to_cpu(graded):
    assert any("grading runs on the CPU" in note for note in graded("cuda_device")["notes"])


def test_no_process_survives(graded):
    assert graded("orphan_process")["status"] == "graded"
    leftovers = [process.pid for process in psutil.process_iter(["cmdline"])
                 if SURVIVOR_SECONDS in (process.info["cmdline"] or [])]
    assert leftovers == []


needs_bubblewrap = pytest.mark.skipif(detect_sandbox().kind != "bubblewrap",
                                      reason="bubblewrap is not installed or does not work here")


@needs_bubblewrap
@pytest.mark.parametrize("name", ["reads_rubric", "reads_other_notebook", "reads_git_history",
                                  "writes_outside", "uses_network"])
def test_sandbox_blocks_attempt(graded, name):
    document = graded(name)
    assert document["sandbox"] == "bubblewrap"
    v_item = next(item for item in document["items"] if item["id"] == "5.1.v")
    assert v_item["points"] == 1, v_item["message"]
    assert document["total"] == 20


@needs_bubblewrap
def test_planted_file_absent(graded):
    assert graded("writes_outside")["status"] == "graded"
    assert not (graded.out / "planted.txt").exists()


def test_hidden_traceback_still_reported(graded):
    cells = graded("hidden_traceback")["cells"]
    assert [cell["outcome"] for cell in cells] == ["error"]
    assert cells[0]["index"] == 5


def test_dataloader_workers_run(graded):
    assert graded("dataloader_workers")["cells"] == []


def test_many_processes_stop_kernel(graded):
    document = graded("many_processes")
    assert [cell["outcome"] for cell in document["cells"]] == ["dead-kernel"]
    assert "more than 256 processes" in document["cells"][0]["error_value"]
