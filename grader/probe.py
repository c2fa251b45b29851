"""Code the grader runs inside the student's kernel, before and after the notebook.

The grader sends this file's source to the kernel and calls one function, so the
module imports nothing from the grader package. Nothing computed here is trusted:
``extract`` only copies the student's values into JSON and exports the student's
model as a ``torch.export`` archive, and the grader checks both in its own processes.
"""

import json
import numbers
import os
import traceback

# Names a notebook always has, left out of the "names that look close" list.
_KERNEL_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
_MAX_ELEMENTS = 100_000
_MAX_DEPTH = 6


def setup(config):
    """Point every ``torchvision.datasets.MNIST`` root at the grader's data copy.

    ``config`` contains ``raw_dir`` (a folder with the four uncompressed IDX files),
    ``train_images`` (how many training images the notebook sees; 0 for all) and
    ``threads`` (torch CPU threads).
    """
    import torch

    torch.set_num_threads(int(config["threads"]))
    if not torch.cuda.is_available():
        _map_accelerators_to_cpu(torch)
    try:
        from torchvision.datasets import mnist
    except ImportError:
        return
    raw_dir = config["raw_dir"]
    limit = int(config["train_images"])
    original_raw = mnist.MNIST.raw_folder
    original_processed = mnist.MNIST.processed_folder
    original_load = mnist.MNIST._load_data

    # Subclasses such as FashionMNIST keep their own folders.
    def raw_folder(self):
        return raw_dir if type(self) is mnist.MNIST else original_raw.fget(self)

    def processed_folder(self):
        if type(self) is mnist.MNIST:
            return os.path.join(os.path.dirname(raw_dir), "processed")
        return original_processed.fget(self)

    def load_data(self):
        data, targets = original_load(self)
        if type(self) is mnist.MNIST and self.train and limit > 0:
            return data[:limit], targets[:limit]
        return data, targets

    mnist.MNIST.raw_folder = property(raw_folder)
    mnist.MNIST.processed_folder = property(processed_folder)
    mnist.MNIST._load_data = load_data


_ACCELERATORS = ("cuda", "mps", "xpu")


def _is_accelerator(device):
    """Return whether ``device`` (a string or a torch.device) names a GPU-like device."""
    if isinstance(device, str) or type(device).__name__ == "device":
        kind = str(getattr(device, "type", device)).split(":")[0]
        return kind in _ACCELERATORS
    return False


def _map_accelerators_to_cpu(torch):
    """Make ``.cuda()`` and ``.to("cuda")`` (or "mps") keep tensors and modules on the CPU.

    Grading runs on the CPU; a notebook written for a GPU would otherwise fail in every
    cell that moves data. Factory calls such as ``torch.zeros(..., device="cuda")`` still
    fail. Each mapped call sets ``torch._grader_mapped_device`` for the feedback.
    """

    def mark():
        torch._grader_mapped_device = True

    def cpu(device):
        if _is_accelerator(device):
            mark()
            return "cpu"
        return device

    def module_cuda(self, device=None):
        mark()
        return self

    def tensor_cuda(self, *args, **kwargs):
        mark()
        return self

    def wrap_to(original):
        def to(self, *args, **kwargs):
            args = tuple(cpu(arg) for arg in args)
            if "device" in kwargs:
                kwargs["device"] = cpu(kwargs["device"])
            return original(self, *args, **kwargs)

        return to

    torch.nn.Module.cuda = module_cuda
    torch.Tensor.cuda = tensor_cuda
    torch.nn.Module.to = wrap_to(torch.nn.Module.to)
    torch.Tensor.to = wrap_to(torch.Tensor.to)


def _plain(value, depth=0):
    """Convert a value to JSON types: numbers, strings, None and lists of them."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    if value is None or isinstance(value, str):
        return value
    if value is Ellipsis:
        return {"placeholder": True}
    if isinstance(value, bool):
        raise TypeError("bool")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    type_name = type(value).__module__ + "." + type(value).__qualname__
    if type_name.startswith("torch.") and hasattr(value, "detach"):
        if value.numel() > _MAX_ELEMENTS:
            raise ValueError(f"{value.numel()} elements")
        if value.is_complex():
            raise TypeError("complex tensor")
        return value.detach().to("cpu").double().tolist()
    if type_name.startswith("numpy.") and hasattr(value, "tolist"):
        if getattr(value, "size", 1) > _MAX_ELEMENTS:
            raise ValueError(f"{value.size} elements")
        return _plain(value.tolist(), depth + 1)
    if type(value).__name__ == "Size" or isinstance(value, (list, tuple)):
        if len(value) > _MAX_ELEMENTS:
            raise ValueError(f"{len(value)} elements")
        return [_plain(item, depth + 1) for item in value]
    raise TypeError(type_name)


def _read_value(namespace, names):
    for name in names:
        if name in namespace:
            value = namespace[name]
            try:
                return {"name": name, "value": _plain(value)}
            except (TypeError, ValueError) as error:
                return {"name": name, "error": f"{type(value).__name__}: {error}"}
    return None


def _find_class(namespace, names):
    import torch

    for name in names:
        candidate = namespace.get(name)
        if isinstance(candidate, type) and issubclass(candidate, torch.nn.Module):
            return name, candidate
    return None, None


def _describe_name(namespace, names):
    """Say what the graded class name is bound to when it is not a Module class."""
    for name in names:
        if name in namespace:
            return f"{name} is bound to {type(namespace[name]).__name__}, not a torch.nn.Module class"
    return ""


def _user_names(namespace):
    """List the notebook's own global names, for suggesting a rename."""
    names = []
    for name, value in namespace.items():
        if name.startswith("_") or name in _KERNEL_NAMES or type(value).__name__ == "module":
            continue
        names.append(name)
    return sorted(names)[:1000]


def _short_error(error):
    lines = traceback.format_exception_only(type(error), error)
    return "".join(lines).strip()[-2000:]


def _export_model(cls, config, report):
    import torch

    try:
        model = cls()
    except Exception as error:
        report["model_error"] = "constructing the model failed: " + _short_error(error)
        return
    model.eval()
    example = torch.zeros(2, 1, 28, 28)
    try:
        with torch.no_grad():
            output = model(example)
        report["forward_shape"] = list(getattr(output, "shape", []))
    except Exception as error:
        report["model_error"] = "forward on a (2, 1, 28, 28) batch failed: " + _short_error(error)
        return
    try:
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        report["fixed_batch"] = 0
    except Exception as dynamic_error:
        # A forward that hard-codes the batch size only exports at that size.
        size = int(config["batch_size"])
        try:
            program = torch.export.export(model, (torch.zeros(size, 1, 28, 28),))
            report["fixed_batch"] = size
        except Exception:
            report["model_error"] = "exporting the model failed: " + _short_error(dynamic_error)
            return
    torch.export.save(program, config["archive"])
    report["archive"] = config["archive"]


def extract(config):
    """Write the graded names and the exported model to the files named in ``config``.

    ``config`` contains ``names`` (graded name to accepted names, in order),
    ``class_names`` (accepted names of the model class), ``archive`` and ``output``
    (file paths in the working folder) and ``batch_size``.
    """
    from IPython import get_ipython

    namespace = get_ipython().user_ns
    report = {"values": {}, "globals": []}
    for graded, names in config["names"].items():
        found = _read_value(namespace, names)
        if found is not None:
            report["values"][graded] = found
    report["globals"] = _user_names(namespace)
    import torch

    report["mapped_device"] = bool(getattr(torch, "_grader_mapped_device", False))
    name, cls = _find_class(namespace, config["class_names"])
    if cls is None:
        report["class_problem"] = _describe_name(namespace, config["class_names"])
    else:
        report["class_name"] = name
        _export_model(cls, config, report)
    with open(config["output"], "w", encoding="utf-8") as stream:
        json.dump(report, stream)
