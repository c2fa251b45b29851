"""Generate the Exercise 5 notebooks: the assignment, its solution and sample submissions.

Run from anywhere with the project's Python:

    .venv/bin/python tools/build_notebooks.py

The script writes

- ``assignment/exercise5.ipynb``: the notebook that students fill in,
- ``solutions/exercise5_solution.ipynb``: the same notebook completed,
- ``submissions/<student id>.ipynb``: sample student notebooks, one scenario each
  (see ``SCENARIOS``), for testing the grader.

Every notebook is nbformat 4.5 with empty outputs and fixed cell ids, so running the
script again reproduces the same files. The solution and each submission are the
assignment with some code cells replaced and, for a few submissions, extra cells
inserted (see ``Completion``).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT_PATH = REPOSITORY_ROOT / "assignment" / "exercise5.ipynb"
SOLUTION_PATH = REPOSITORY_ROOT / "solutions" / "exercise5_solution.ipynb"
SUBMISSIONS_DIR = REPOSITORY_ROOT / "submissions"

# Sample submissions: file name (a student id) and the scenario that it tests.
# The leading letter is a short label for the scenario.
SCENARIOS = {
    "ox47ukev.ipynb": "a: all correct. Layers as module attributes, F.relu and x.view in forward",
    "ri12poqa.ipynb": "b: all correct. Functional forward with F.relu, F.max_pool2d, torch.flatten",
    "ud85yhel.ipynb": "c: all correct. Whole ConvNet in nn.Sequential ending in nn.Softmax(dim=1), trained with NLLLoss on log, leaves a top-level tensor named loss",
    "ak03ziwu.ipynb": "d: all correct. 5.1 answers as NumPy arrays, ConvNet ends in F.log_softmax",
    "ej61nomy.ipynb": "e: all correct. 5.1 answers as torch tensors from autograd (requires_grad) and column vectors",
    "is29febo.ipynb": "f: 5.1 without ReLU: v = [4, -3, 11], y = 9, C = 36, dC_dw11 = -12, dC_dW2 = [48, -36, 132], W2_updated = [-3.4, 4.8, -4.6]",
    "uv70dica.ipynb": "g: 5.1 without the factor 2 in dC/dy: dC_dw11 = -15, dC_dW2 = [60, 0, 165], W2_updated = [-4, 3, -6.25]",
    "yk58rusa.ipynb": "h: 5.1 update with the wrong sign: W2_updated = [5, 3, 18.5]",
    "eb34tuwo.ipynb": "i: convolution with padding=2, fc1 3920 -> 100, table consistent with that model",
    "ha92xeli.ipynb": "j: convolution with 6 output channels, fc1 864 -> 100, table consistent with that model",
    "ow16mapi.ipynb": "k: no pooling layer, fc1 11520 -> 100, table without a pool row and consistent with that model",
    "iq88sone.ipynb": "l: class named CNN instead of ConvNet, used consistently. All else correct",
    "um45guvy.ipynb": "m: a 5.2 cell raises NameError (y_pred undefined). All else correct",
    "zo07qima.ipynb": "n: an extra-experiment cell after the CNN training never ends (loop counter never increases). All else correct",
    "ap53leru.ipynb": "o: 5.1 answers as fractions.Fraction and floats, accuracies as percentages. All correct",
    "ny21hoke.ipynb": "p: table with fc1 = 288000 (bias forgotten) and total_params = 289530. All else correct",
}

NOTEBOOK_METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
    "language_info": {
        "name": "python",
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
    },
}


def text(source: str) -> str:
    """Remove the common indentation and the surrounding blank lines of a cell source."""
    return textwrap.dedent(source).strip("\n")


# ---------------------------------------------------------------------------
# The assignment notebook
# ---------------------------------------------------------------------------
#
# Each cell is (cell id, "markdown" or "code", source). Completions refer to cells
# by id. Tutorial code keeps its intermediate values in functions or under names
# that the grader does not read, so that it never overwrites a student's answer
# variable (v, C, y_predicted, ...) or one of their accepted aliases (loss, cost, y_pred).

TITLE = r"""
# Exercise 5: Optimisation

This notebook contains task 5.1 (backpropagation by hand), the PyTorch tutorial of
task 5.2 and the programming task 5.3 (digit recognition with a convolutional neural
network). Complete the cells marked `TODO` and keep the variable and class names
given there, because the grader reads them.

Before you submit, run the whole notebook from top to bottom
(*Kernel → Restart Kernel and Run All Cells*) and check that every cell runs.
"""

SETUP = """
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

# Fixes the random initial weights and the order of the training batches,
# so that a rerun of this notebook prints the same numbers.
torch.manual_seed(0)
print("PyTorch", torch.__version__)
"""

TASK_5_1 = r"""
## 5.1 Backpropagation

Consider the network below. The input $\mathbf{x}$ is connected to a hidden layer,
which is a fully connected layer with weights $\mathbf{W}^{(1)}$ followed by a ReLU
activation. The output of the hidden layer, $\mathbf{v}$, is connected to the output
$\mathbf{y}$ by a linear fully connected layer with weights $\mathbf{W}^{(2)}$.
For simplicity, the fully connected layers have no biases.

$$\mathbf{x} \xrightarrow{\;\mathbf{W}^{(1)}\;} \mathbf{h} \xrightarrow{\;\sigma\;} \mathbf{v} \xrightarrow{\;\mathbf{W}^{(2)}\;} \mathbf{y}_{predicted}$$

With the network output $\mathbf{y}_{predicted}$ and the target output
$\mathbf{y}_{target}$, the cost function is

$$C(\mathbf{y}_{predicted}, \mathbf{y}_{target}) = \|\mathbf{y}_{predicted} - \mathbf{y}_{target}\|_2^2 .$$

The initial weights are

$$\mathbf{W}^{(1)} = \begin{bmatrix} w_{11}^{(1)} & w_{12}^{(1)} \\ w_{21}^{(1)} & w_{22}^{(1)} \\ w_{31}^{(1)} & w_{32}^{(1)} \end{bmatrix} = \begin{bmatrix} 2 & 1 \\ 1 & -2 \\ 1 & 5 \end{bmatrix}, \qquad \mathbf{W}^{(2)} = \begin{bmatrix} w_{11}^{(2)} & w_{12}^{(2)} & w_{13}^{(2)} \end{bmatrix} = \begin{bmatrix} -1 & 3 & 2 \end{bmatrix}. \qquad \text{(A)}$$

The ReLU function $\sigma(x)$ and its derivative $\sigma'(x)$ are

$$\sigma(x) = \begin{cases} x, & \text{if } x \geq 0 \\ 0, & \text{if } x < 0 \end{cases} \qquad \sigma'(x) = \begin{cases} 1, & \text{if } x \geq 0 \\ 0, & \text{if } x < 0. \end{cases}$$

The input $\mathbf{x}$ and the corresponding target output $\mathbf{y}_{target}$ are

$$\mathbf{x} = \begin{bmatrix} 1 \\ 2 \end{bmatrix}, \qquad \mathbf{y}_{target} = [3]. \qquad \text{(B)}$$

i. Calculate the output of the hidden layer $\mathbf{v}$, the predicted output of the
   network $\mathbf{y}_{predicted}$ and the loss $C$, with the initial weights (A) and
   the input and target output (B).

ii. Calculate the partial derivative of the loss with respect to the weight
    $w_{11}^{(1)}$ of the first layer.

iii. Calculate the partial derivative of the loss with respect to the weight matrix
     $\mathbf{W}^{(2)}$ of the second layer.

iv. With the learning rate $\alpha = 0.05$, calculate the new weight matrix
    $\mathbf{W}^{(2)}_{updated}$ after one step of gradient descent.

Write your answers into the variables of the next cell.
"""

ANSWERS_5_1 = """
# TODO: replace each ... with your hand-computed value.
# Accepted forms: numbers (int, float or fractions.Fraction), lists, NumPy arrays and
# torch tensors. A vector may be flat, a row or a column: [1, 2, 3], [[1, 2, 3]] and
# [[1], [2], [3]] are all accepted.

# i.
v = ...            # output of the hidden layer, 3 values
y_predicted = ...  # output of the network
C = ...            # loss

# ii.
dC_dw11 = ...      # dC / dw11 of the first layer W(1)

# iii.
dC_dW2 = ...       # dC / dW(2), 3 values

# iv.
W2_updated = ...   # W(2) after one gradient-descent step with learning rate 0.05
"""

TUTORIAL_INTRO = r"""
## 5.2 Programming task: PyTorch tutorial

The tutorial has three parts:

- i. Basic operations in PyTorch and some building blocks of neural networks:
  activation functions and optimisers.
- ii. The network of task 5.1 in PyTorch, to check your answers and to make your own
  practice problems with other weights or activation functions.
- iii. A feed-forward network that classifies handwritten digits of the MNIST data set.

### 5.2 i. Tensors

A `torch.Tensor` is an n-dimensional array, like a NumPy array, that can also record
the operations applied to it in order to compute gradients.
"""

TENSORS = r'''
a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
b = torch.ones(2, 2)

print("a + b =\n", a + b)
print("element-wise product a * b =\n", a * b)
print("matrix product a @ b =\n", a @ b)
print("shape:", tuple(a.shape), " dtype:", a.dtype)
print("a as one row:", a.reshape(1, 4))
print("a as a NumPy array:\n", a.numpy())
'''

AUTOGRAD_INTRO = r"""
### Autograd

When a tensor is created with `requires_grad=True`, PyTorch records every operation
on it. Calling `.backward()` on a scalar result then computes the derivative of that
result with respect to the tensor and stores it in the tensor's `.grad` attribute.

Example: $f(w) = w^2 + 3w$, so $f'(w) = 2w + 3$, which is 7 at $w = 2$.
"""

AUTOGRAD = """
w = torch.tensor(2.0, requires_grad=True)
f = w**2 + 3 * w
f.backward()
print("f(2) =", f.item(), "  df/dw at w = 2:", w.grad.item())
"""

ACTIVATIONS_INTRO = r"""
### Activation functions

Activation functions are available as functions (`torch.relu`, `torch.sigmoid`,
`torch.tanh`, `torch.softmax`, or the same names in `torch.nn.functional`) and as
modules (`nn.ReLU()`, `nn.Sigmoid()`, `nn.Tanh()`, `nn.Softmax(dim=...)`) that can be
put into a network. Softmax turns a vector of scores into probabilities that sum to 1.
"""

ACTIVATIONS = """
z = torch.linspace(-3, 3, 7)
print("input:  ", z)
print("ReLU:   ", torch.relu(z))
print("sigmoid:", torch.sigmoid(z))
print("tanh:   ", torch.tanh(z))
probabilities = torch.softmax(z, dim=0)
print("softmax:", probabilities, " sum:", probabilities.sum().item())

# The same ReLU as a module, as it would appear inside a network:
print("nn.ReLU:", nn.ReLU()(z))
"""

RELU_GRADIENT = """
# The derivative of ReLU as autograd computes it, at -1, 0 and 2.
# Autograd uses 0 as the derivative at exactly 0 (see the note in part ii).
z = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
torch.relu(z).sum().backward()
print("relu'(z) for z = [-1, 0, 2]:", z.grad)
"""

OPTIMISERS_INTRO = r"""
### Optimisers

An optimiser from `torch.optim` updates parameters from their gradients. Each training
step has the same three calls: `optimiser.zero_grad()` clears the old gradients,
`loss.backward()` computes new ones, and `optimiser.step()` updates the parameters.

- **SGD** (gradient descent): $\theta \leftarrow \theta - \alpha \, \nabla_\theta C$.
- **SGD with momentum** adds a fraction of the previous update to the current one,
  which speeds up progress along directions where the gradient keeps its sign.
- **Adam** scales each parameter's step by running estimates of the mean and the
  variance of its gradient.

The next cell fits a line $y = w x + b$ to noisy points of $y = 2x + 1$ with each
optimiser, for 100 steps from the same starting point.
"""

OPTIMISERS = r'''
x_toy = torch.linspace(-1, 1, 50).unsqueeze(1)
y_toy = 2 * x_toy + 1 + 0.1 * torch.randn_like(x_toy)


def fit_line(make_optimiser, steps=100):
    """Fit nn.Linear(1, 1) to (x_toy, y_toy) and return weight, bias and final MSE."""
    torch.manual_seed(0)  # the same initial weight and bias for every optimiser
    line = nn.Linear(1, 1)
    optimiser = make_optimiser(line.parameters())
    for _ in range(steps):
        optimiser.zero_grad()
        mse = F.mse_loss(line(x_toy), y_toy)
        mse.backward()
        optimiser.step()
    return line.weight.item(), line.bias.item(), mse.item()


optimisers = {
    "SGD, lr 0.1": lambda params: torch.optim.SGD(params, lr=0.1),
    "SGD with momentum 0.9, lr 0.1": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    "Adam, lr 0.1": lambda params: torch.optim.Adam(params, lr=0.1),
}
for name, make_optimiser in optimisers.items():
    weight, bias, final_mse = fit_line(make_optimiser)
    print(f"{name:30s} w = {weight:.3f}  b = {bias:.3f}  MSE = {final_mse:.4f}")
'''

NETWORK_5_1_INTRO = r"""
### 5.2 ii. The network of task 5.1 in PyTorch

The function below builds the network of task 5.1 from given weights, runs one forward
pass, lets autograd compute the gradients, and performs one step of gradient descent
on $\mathbf{W}^{(2)}$. Use it to check your answers to 5.1.
"""

NETWORK_5_1 = r'''
def backprop_example(W1, W2, x, target, activation=torch.relu, learning_rate=0.05):
    """Print the forward pass, the gradients and one gradient-descent step of the 5.1 network."""
    W1 = torch.tensor(W1, dtype=torch.float32, requires_grad=True)
    W2 = torch.tensor(W2, dtype=torch.float32, requires_grad=True)
    x = torch.tensor(x, dtype=torch.float32)
    target = torch.tensor(target, dtype=torch.float32)

    h = W1 @ x                # pre-activation of the hidden layer
    hidden = activation(h)    # v
    output = W2 @ hidden      # y_predicted
    cost = ((output - target) ** 2).sum()
    cost.backward()           # fills W1.grad and W2.grad

    with torch.no_grad():
        W2_new = W2 - learning_rate * W2.grad

    print("h = W1 x          :", h.detach())
    print("v                 :", hidden.detach())
    print("y_predicted       :", output.detach())
    print("C                 :", cost.item())
    print("dC/dW1            :\n", W1.grad)
    print("dC/dw11           :", W1.grad[0, 0].item())
    print("dC/dW2            :", W2.grad)
    print("W2 after one step :", W2_new)


backprop_example(
    W1=[[2, 1], [1, -2], [1, 5]],
    W2=[[-1, 3, 2]],
    x=[1, 2],
    target=[3],
)
'''

RELU_AT_ZERO_NOTE = r"""
**ReLU at 0.** The task sheet defines $\sigma'(0) = 1$, but PyTorch autograd uses
$\sigma'(0) = 0$. For the numbers of task 5.1 this makes no difference, because no
pre-activation is exactly 0: $\mathbf{h} = \mathbf{W}^{(1)}\mathbf{x} = [4, -3, 11]$.
With other numbers it can: for $\mathbf{x} = [2, 1]$ the same weights give
$\mathbf{h} = [5, 0, 7]$, and autograd reports $\partial C / \partial w_{21}^{(1)} = 0$,
where the rule of the task sheet gives 72. The next cell runs this case.

**Practice.** Change the weights, the input, the target or the activation
(for example `activation=torch.sigmoid` or `torch.tanh`) to make your own practice
problems. Work out the values by hand first, then compare.
"""

NETWORK_5_1_PRACTICE = """
backprop_example(
    W1=[[2, 1], [1, -2], [1, 5]],
    W2=[[-1, 3, 2]],
    x=[2, 1],
    target=[3],
)
"""

MNIST_INTRO = r"""
### 5.2 iii. A feed-forward network for handwritten digits

The MNIST data set contains grayscale images of handwritten digits, 28×28 pixels each,
with their labels 0 to 9. `transforms.ToTensor()` turns each image into a float tensor
of shape `(1, 28, 28)` with values in [0, 1]. A `DataLoader` cuts the data set into
shuffled batches of 64 images.
"""

MNIST_DATA = """
transform = transforms.ToTensor()
train_set = datasets.MNIST(root="data", train=True, download=True, transform=transform)
test_set = datasets.MNIST(root="data", train=False, download=True, transform=transform)

train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
test_loader = DataLoader(test_set, batch_size=1000)

print(f"{len(train_set)} training images, {len(test_set)} test images")
image, label = train_set[0]
print("one image:", tuple(image.shape), " its label:", label)
"""

FFN_MODEL_INTRO = r"""
The network flattens each image into a vector of 784 values, passes it through a fully
connected layer with 128 neurons and ReLU, and ends in a fully connected layer with 10
outputs, one score per digit. It returns the raw scores (logits), because
`nn.CrossEntropyLoss` applies log-softmax itself.
"""

FFN_MODEL = """
class FeedForwardNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.flatten(x)       # (N, 1, 28, 28) -> (N, 784)
        x = F.relu(self.fc1(x))   # (N, 128)
        return self.fc2(x)        # (N, 10)


ffn_model = FeedForwardNet()
print(ffn_model)
"""

TRAINING_HELPERS_INTRO = r"""
Training runs over the batches of the training set: forward pass, loss, backward pass,
optimiser step. Evaluation counts how many test images get the right label. Task 5.3
reuses both functions.
"""

TRAINING_HELPERS = r'''
def train_one_epoch(model, loader, optimiser, loss_function):
    """Train model for one pass over loader and return the mean training loss."""
    model.train()
    loss_sum = 0.0
    for images, labels in loader:
        optimiser.zero_grad()
        batch_loss = loss_function(model(images), labels)
        batch_loss.backward()
        optimiser.step()
        loss_sum += batch_loss.item() * len(labels)
    return loss_sum / len(loader.dataset)


@torch.no_grad()
def evaluate(model, loader):
    """Return the fraction of images in loader that model labels correctly."""
    model.eval()
    correct = 0
    for images, labels in loader:
        correct += (model(images).argmax(dim=1) == labels).sum().item()
    return correct / len(loader.dataset)
'''

FFN_TRAIN = """
ffn_optimiser = torch.optim.Adam(ffn_model.parameters(), lr=1e-3)
mean_loss = train_one_epoch(ffn_model, train_loader, ffn_optimiser, nn.CrossEntropyLoss())
print(f"epoch 1: mean training loss {mean_loss:.3f}")
"""

FFN_ACCURACY = """
ffn_accuracy = evaluate(ffn_model, test_loader)
print(f"feed-forward network, test accuracy: {ffn_accuracy:.3f}")
"""

TASK_5_3 = r"""
## 5.3 Programming task: digit recognition using CNNs

Build and train a convolutional neural network (CNN) that classifies the handwritten
digits. The MNIST data of task 5.2 (`train_loader`, `test_loader`) is reused here.
The layers are documented at <https://pytorch.org/docs/stable/nn.html>.

i. Complete the network architecture in the class `ConvNet`:
   - The input is a grayscale image of size 28×28.
   - The first layer is a convolution with a 5×5 kernel, stride 1 and 20 output
     feature maps, followed by a ReLU activation.
   - A max pooling layer with a 2×2 window and stride 2 is applied to the output of
     the activation.
   - The output of the max pooling is flattened into one long vector, which is the
     input to a fully connected layer with 100 neurons, followed by a ReLU activation.
   - The last layer is a fully connected layer that produces one score per class,
     for the 10 digits.

ii. Train the CNN and compare its performance with the feed-forward network of
    task 5.2.

iii. Calculate the number of learnable parameters and the output shape of each layer.
     Check your answers with the model summary in the last cell of this notebook.

Keep the class name `ConvNet`, and give its constructor no required argument, because
the grader builds and trains `ConvNet()` itself. `forward` takes a batch of shape
`(N, 1, 28, 28)` and returns shape `(N, 10)`.
"""

CONVNET_SKELETON = """
class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        # TODO: define the layers: a 5x5 convolution from 1 to 20 channels with stride 1,
        # ReLU, 2x2 max pooling with stride 2, flatten, a fully connected layer with
        # 100 neurons, ReLU, and a fully connected layer with 10 outputs.

    def forward(self, x):
        # TODO: apply the layers in order. x has shape (N, 1, 28, 28), and the result
        # must have shape (N, 10).
        raise NotImplementedError("ConvNet.forward is not implemented yet")
"""

TRAIN_CNN_INTRO = r"""
### 5.3 ii. Training

The next cell trains your `ConvNet` for one epoch with batches of 64 images and Adam
(learning rate 0.001), then measures its test accuracy. If your network ends in
softmax or log-softmax, change the loss so that it matches: `nn.CrossEntropyLoss`
expects raw scores, `nn.NLLLoss` expects log-probabilities.
"""

TRAIN_CNN = """
torch.manual_seed(0)
cnn_model = ConvNet()
cnn_optimiser = torch.optim.Adam(cnn_model.parameters(), lr=1e-3)
mean_loss = train_one_epoch(cnn_model, train_loader, cnn_optimiser, nn.CrossEntropyLoss())
cnn_accuracy = evaluate(cnn_model, test_loader)

print(f"CNN: mean training loss {mean_loss:.3f}, test accuracy {cnn_accuracy:.3f}")
print(f"feed-forward network of 5.2: test accuracy {ffn_accuracy:.3f}")
"""

TABLE_INTRO = r"""
### 5.3 iii. Parameters and output shapes

Fill in one row per layer: its name, its number of learnable parameters and its output
shape without the batch dimension, for example `(20, 24, 24)` or `(100,)` (a tuple
with one element needs the comma). Then give the total number of learnable parameters
of the network.
"""

LAYER_TABLE_PLACEHOLDER = """
# TODO: replace each ... with the number of learnable parameters and the output shape.
layer_table = [
    # (layer, learnable parameters, output shape)
    ("conv",    ..., ...),
    ("relu",    ..., ...),
    ("pool",    ..., ...),
    ("flatten", ..., ...),
    ("fc1",     ..., ...),
    ("relu",    ..., ...),
    ("fc2",     ..., ...),
]
total_params = ...
"""

SUMMARY_INTRO = r"""
### Model summary

Compare your table with the summary of your network.
"""

SUMMARY = """
from torchinfo import summary

summary(ConvNet(), input_size=(1, 1, 28, 28))
"""

ASSIGNMENT_CELLS = [
    ("title", "markdown", TITLE),
    ("setup", "code", SETUP),
    ("task-5-1", "markdown", TASK_5_1),
    ("answers-5-1", "code", ANSWERS_5_1),
    ("tutorial-intro", "markdown", TUTORIAL_INTRO),
    ("tensors", "code", TENSORS),
    ("autograd-intro", "markdown", AUTOGRAD_INTRO),
    ("autograd", "code", AUTOGRAD),
    ("activations-intro", "markdown", ACTIVATIONS_INTRO),
    ("activations", "code", ACTIVATIONS),
    ("relu-gradient", "code", RELU_GRADIENT),
    ("optimisers-intro", "markdown", OPTIMISERS_INTRO),
    ("optimisers", "code", OPTIMISERS),
    ("network-5-1-intro", "markdown", NETWORK_5_1_INTRO),
    ("network-5-1", "code", NETWORK_5_1),
    ("relu-at-zero-note", "markdown", RELU_AT_ZERO_NOTE),
    ("network-5-1-practice", "code", NETWORK_5_1_PRACTICE),
    ("mnist-intro", "markdown", MNIST_INTRO),
    ("mnist-data", "code", MNIST_DATA),
    ("ffn-model-intro", "markdown", FFN_MODEL_INTRO),
    ("ffn-model", "code", FFN_MODEL),
    ("training-helpers-intro", "markdown", TRAINING_HELPERS_INTRO),
    ("training-helpers", "code", TRAINING_HELPERS),
    ("ffn-train", "code", FFN_TRAIN),
    ("ffn-accuracy", "code", FFN_ACCURACY),
    ("task-5-3", "markdown", TASK_5_3),
    ("convnet", "code", CONVNET_SKELETON),
    ("train-cnn-intro", "markdown", TRAIN_CNN_INTRO),
    ("train-cnn", "code", TRAIN_CNN),
    ("layer-table-intro", "markdown", TABLE_INTRO),
    ("layer-table", "code", LAYER_TABLE_PLACEHOLDER),
    ("summary-intro", "markdown", SUMMARY_INTRO),
    ("summary", "code", SUMMARY),
]


@dataclass
class Completion:
    """Changes that turn the assignment into one completed notebook."""

    # Cell id -> new source of that code cell.
    replace: dict[str, str] = field(default_factory=dict)
    # Cell id -> code cells (new id, source) inserted after that cell.
    insert_after: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def build_notebook(completion: Completion | None = None) -> nbformat.NotebookNode:
    """Build the assignment notebook, completed by ``completion`` if one is given."""
    completion = completion or Completion()
    known_ids = {cell_id for cell_id, _, _ in ASSIGNMENT_CELLS}
    code_ids = {cell_id for cell_id, kind, _ in ASSIGNMENT_CELLS if kind == "code"}
    unknown_ids = set(completion.insert_after) - known_ids
    if unknown_ids:
        raise ValueError(f"insert_after names cell ids not in the assignment: {sorted(unknown_ids)}")
    not_code_ids = set(completion.replace) - code_ids
    if not_code_ids:
        raise ValueError(f"replace names ids that are not code cells of the assignment: {sorted(not_code_ids)}")

    notebook = new_notebook(metadata=NOTEBOOK_METADATA)
    for cell_id, kind, source in ASSIGNMENT_CELLS:
        if kind == "markdown":
            notebook.cells.append(new_markdown_cell(text(source), id=cell_id))
        else:
            source = completion.replace.get(cell_id, source)
            notebook.cells.append(new_code_cell(text(source), id=cell_id))
        for extra_id, extra_source in completion.insert_after.get(cell_id, []):
            notebook.cells.append(new_code_cell(text(extra_source), id=extra_id))
    nbformat.validate(notebook)
    return notebook


# ---------------------------------------------------------------------------
# The reference solution
# ---------------------------------------------------------------------------

SOLUTION_ANSWERS = """
# i.   h = W1 x = [4, -3, 11], v = relu(h), y = W2 v, C = (y - 3)^2
v = [4, 0, 11]
y_predicted = 18
C = 225

# ii.  dC/dy = 2 (y - 3) = 30
#      dC/dh = dC/dy * W2 * relu'(h) = [-30, 0, 60], dC/dw11 = dC/dh1 * x1
dC_dw11 = -30

# iii. dC/dW2 = dC/dy * v^T
dC_dW2 = [[120, 0, 330]]

# iv.  W2 - 0.05 * dC/dW2
W2_updated = [[-7, 3, -14.5]]
"""

SOLUTION_CONVNET = """
class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5, stride=1)  # -> (20, 24, 24)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)       # -> (20, 12, 12)
        self.flatten = nn.Flatten()                             # -> (2880,)
        self.fc1 = nn.Linear(2880, 100)                         # 2880 = 20 * 12 * 12
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))
        x = self.flatten(x)
        x = self.relu2(self.fc1(x))
        return self.fc2(x)  # raw scores (logits), as nn.CrossEntropyLoss expects
"""

SOLUTION_LAYER_TABLE = """
# conv: 20 filters of 1 x 5 x 5 weights plus 20 biases = 520; fc1: 2880 * 100 + 100 = 288100;
# fc2: 100 * 10 + 10 = 1010. Activations, pooling and flatten have no parameters.
layer_table = [
    # (layer, learnable parameters, output shape)
    ("conv",    520,    (20, 24, 24)),
    ("relu",    0,      (20, 24, 24)),
    ("pool",    0,      (20, 12, 12)),
    ("flatten", 0,      (2880,)),
    ("fc1",     288100, (100,)),
    ("relu",    0,      (100,)),
    ("fc2",     1010,   (10,)),
]
total_params = 289630
"""

SOLUTION = Completion(
    replace={
        "answers-5-1": SOLUTION_ANSWERS,
        "convnet": SOLUTION_CONVNET,
        "layer-table": SOLUTION_LAYER_TABLE,
    }
)


# ---------------------------------------------------------------------------
# Sample submissions
# ---------------------------------------------------------------------------
#
# Each submission differs from the solution only where its scenario describes. The
# wrong values are the ones that the named mistake produces, and each layer table
# is correct for the student's own model unless the scenario says otherwise.

# a: layers as module attributes, F.relu and x.view in forward.
SUBMISSION_A = Completion(
    replace={
        "answers-5-1": """
            # i.  h = W1 x = [4, -3, 11], relu -> v
            v = [4, 0, 11]
            y_predicted = 18          # -4 + 0 + 22
            C = 225                   # (18 - 3)^2

            # ii. dC/dy = 2(y - t) = 30, dC/dh1 = 30 * w11(2) * relu'(4) = -30, times x1 = 1
            dC_dw11 = -30

            # iii. dC/dW2 = dC/dy * v^T
            dC_dW2 = [120, 0, 330]

            # iv. W2 - 0.05 * dC/dW2
            W2_updated = [-7, 3, -14.5]
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super(ConvNet, self).__init__()
                    self.conv = nn.Conv2d(in_channels=1, out_channels=20, kernel_size=5, stride=1)
                    self.pool = nn.MaxPool2d(2, stride=2)
                    self.fc1 = nn.Linear(20 * 12 * 12, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = self.pool(F.relu(self.conv(x)))
                    x = x.view(x.size(0), -1)
                    x = F.relu(self.fc1(x))
                    x = self.fc2(x)
                    return x
        """,
        "layer-table": """
            layer_table = [
                # (layer, learnable parameters, output shape)
                ("conv",    520,    (20, 24, 24)),   # 20*5*5 + 20
                ("relu",    0,      (20, 24, 24)),
                ("pool",    0,      (20, 12, 12)),
                ("flatten", 0,      (2880,)),
                ("fc1",     288100, (100,)),         # 2880*100 + 100
                ("relu",    0,      (100,)),
                ("fc2",     1010,   (10,)),          # 100*10 + 10
            ]
            total_params = 289630
        """,
    }
)

# b: functional forward pass.
SUBMISSION_B = Completion(
    replace={
        "answers-5-1": """
            v = [4.0, 0.0, 11.0]
            y_predicted = 18.0
            C = 225.0

            dC_dw11 = -30.0

            dC_dW2 = [[120.0, 0.0, 330.0]]

            W2_updated = [[-7.0, 3.0, -14.5]]
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 20, 5)
                    self.fc1 = nn.Linear(2880, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = F.relu(self.conv1(x))
                    x = F.max_pool2d(x, 2, 2)
                    x = torch.flatten(x, 1)
                    x = F.relu(self.fc1(x))
                    return self.fc2(x)
        """,
        "layer-table": """
            # shapes copied with the batch dimension like in the torchinfo summary
            layer_table = [
                ("Conv2d",    520,    (1, 20, 24, 24)),
                ("ReLU",      0,      (1, 20, 24, 24)),
                ("MaxPool2d", 0,      (1, 20, 12, 12)),
                ("Flatten",   0,      (1, 2880)),
                ("Linear",    288100, (1, 100)),
                ("ReLU",      0,      (1, 100)),
                ("Linear",    1010,   (1, 10)),
            ]
            total_params = 520 + 288100 + 1010
        """,
    }
)

# c: the whole network in nn.Sequential ending in softmax, trained with NLLLoss on log.
SUBMISSION_C = Completion(
    replace={
        "answers-5-1": """
            v = (4, 0, 11)
            y_predicted = 18
            C = 225
            dC_dw11 = -30
            dC_dW2 = (120, 0, 330)
            W2_updated = (-7, 3, -14.5)
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.model = nn.Sequential(
                        nn.Conv2d(1, 20, kernel_size=5, stride=1),
                        nn.ReLU(),
                        nn.MaxPool2d(kernel_size=2, stride=2),
                        nn.Flatten(),
                        nn.Linear(2880, 100),
                        nn.ReLU(),
                        nn.Linear(100, 10),
                        nn.Softmax(dim=1),  # class probabilities like the sheet says
                    )

                def forward(self, x):
                    return self.model(x)
        """,
        "train-cnn": """
            torch.manual_seed(0)
            cnn_model = ConvNet()
            optimizer = torch.optim.Adam(cnn_model.parameters(), lr=1e-3)
            criterion = nn.NLLLoss()

            # my network outputs probabilities, so I take the log and use NLLLoss
            cnn_model.train()
            for images, labels in train_loader:
                optimizer.zero_grad()
                out = cnn_model(images)
                loss = criterion(torch.log(out + 1e-9), labels)
                loss.backward()
                optimizer.step()

            cnn_accuracy = evaluate(cnn_model, test_loader)
            print("CNN test accuracy:", cnn_accuracy)
            print("FFN test accuracy:", ffn_accuracy)
        """,
        "layer-table": """
            layer_table = [
                ("conv", 520, (20, 24, 24)),
                ("relu", 0, (20, 24, 24)),
                ("maxpool", 0, (20, 12, 12)),
                ("flatten", 0, (2880,)),
                ("linear1", 288100, (100,)),
                ("relu", 0, (100,)),
                ("linear2", 1010, (10,)),
            ]
            total_params = 289630
        """,
    }
)

# d: 5.1 answers as NumPy arrays, ConvNet ends in F.log_softmax.
SUBMISSION_D = Completion(
    replace={
        "answers-5-1": """
            v = np.array([4, 0, 11])
            y_predicted = np.array([18])
            C = np.array([225])

            dC_dw11 = np.float64(-30)
            dC_dW2 = np.array([[120, 0, 330]])      # same shape as W2: (1, 3)
            W2_updated = np.array([[-1, 3, 2]]) - 0.05 * dC_dW2
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 20, 5, 1)
                    self.pool1 = nn.MaxPool2d(2, 2)
                    self.fc1 = nn.Linear(20*12*12, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = self.pool1(F.relu(self.conv1(x)))
                    x = x.flatten(start_dim=1)
                    x = F.relu(self.fc1(x))
                    x = self.fc2(x)
                    return F.log_softmax(x, dim=1)
        """,
        "train-cnn": """
            torch.manual_seed(0)
            cnn_model = ConvNet()
            cnn_optimiser = torch.optim.Adam(cnn_model.parameters(), lr=1e-3)
            # forward returns log-probabilities -> NLLLoss instead of CrossEntropyLoss
            mean_loss = train_one_epoch(cnn_model, train_loader, cnn_optimiser, nn.NLLLoss())
            cnn_accuracy = evaluate(cnn_model, test_loader)

            print(f"CNN: mean training loss {mean_loss:.3f}, test accuracy {cnn_accuracy:.3f}")
            print(f"feed-forward network of 5.2: test accuracy {ffn_accuracy:.3f}")
        """,
        "layer-table": """
            layer_table = [
                # (layer, learnable parameters, output shape)
                ("conv1",   20 * (5 * 5 + 1),  (20, 24, 24)),
                ("relu",    0,                 (20, 24, 24)),
                ("pool1",   0,                 (20, 12, 12)),
                ("flatten", 0,                 (2880,)),
                ("fc1",     2880 * 100 + 100,  (100,)),
                ("relu",    0,                 (100,)),
                ("fc2",     100 * 10 + 10,     (10,)),
            ]
            total_params = sum(row[1] for row in layer_table)
        """,
    }
)

# e: 5.1 answers as torch tensors from autograd, vectors as columns.
SUBMISSION_E = Completion(
    replace={
        "answers-5-1": """
            # calculated by hand first, then done again with autograd (same numbers)
            W1_t = torch.tensor([[2., 1.], [1., -2.], [1., 5.]], requires_grad=True)
            W2_t = torch.tensor([[-1., 3., 2.]], requires_grad=True)
            x_t = torch.tensor([[1.], [2.]])     # column vector like on the sheet
            target_t = torch.tensor([[3.]])

            v = torch.relu(W1_t @ x_t)           # (3, 1)
            y_predicted = W2_t @ v               # (1, 1)
            C = ((y_predicted - target_t) ** 2).sum()
            C.backward()

            dC_dw11 = W1_t.grad[0, 0]
            dC_dW2 = W2_t.grad.T                 # as a column (3, 1)
            W2_updated = W2_t - 0.05 * W2_t.grad
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.features = nn.Sequential(
                        nn.Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1)),
                        nn.ReLU(inplace=True),
                        nn.MaxPool2d(kernel_size=(2, 2), stride=(2, 2)),
                    )
                    self.classifier = nn.Sequential(
                        nn.Linear(20 * 12 * 12, 100),
                        nn.ReLU(inplace=True),
                        nn.Linear(100, 10),
                    )

                def forward(self, x):
                    x = self.features(x)
                    x = x.reshape(x.shape[0], -1)
                    return self.classifier(x)
        """,
        "layer-table": """
            # -1 = batch size
            layer_table = [
                ("Conv2d",    520,    (-1, 20, 24, 24)),
                ("ReLU",      0,      (-1, 20, 24, 24)),
                ("MaxPool2d", 0,      (-1, 20, 12, 12)),
                ("reshape",   0,      (-1, 2880)),
                ("Linear",    288100, (-1, 100)),
                ("ReLU",      0,      (-1, 100)),
                ("Linear",    1010,   (-1, 10)),
            ]
            total_params = 289630
        """,
    }
)

# f: forgot the ReLU in 5.1, so every 5.1 value after h is wrong.
SUBMISSION_F = Completion(
    replace={
        "answers-5-1": """
            # hidden layer: W1 * x
            # 2*1 + 1*2 = 4
            # 1*1 - 2*2 = -3
            # 1*1 + 5*2 = 11
            v = [4, -3, 11]
            y_predicted = -1*4 + 3*(-3) + 2*11    # = 9
            C = (y_predicted - 3)**2              # = 36

            # dC/dy = 2*(y - 3) = 12
            dC_dw11 = 12 * (-1) * 1               # dC/dy * w11(2) * x1
            dC_dW2 = [12*4, 12*(-3), 12*11]
            W2_updated = [-1 - 0.05*48, 3 - 0.05*(-36), 2 - 0.05*132]
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 20, kernel_size=5)
                    self.act = nn.ReLU()
                    self.maxpool = nn.MaxPool2d(2, 2)
                    self.dense1 = nn.Linear(2880, 100)
                    self.dense2 = nn.Linear(100, 10)

                def forward(self, x):
                    out = self.maxpool(self.act(self.conv(x)))
                    out = out.view(-1, 2880)
                    out = self.act(self.dense1(out))
                    out = self.dense2(out)
                    return out
        """,
        "layer-table": SOLUTION_LAYER_TABLE,
    }
)

# g: dC/dy written as (y - t) instead of 2 (y - t).
SUBMISSION_G = Completion(
    replace={
        "answers-5-1": """
            v = [4, 0, 11]
            y_predicted = 18
            C = 225

            # chain rule: dC/dy = y - t = 15
            dC_dw11 = -15      # 15 * (-1) * 1 * 1
            dC_dW2 = [60, 0, 165]
            W2_updated = [-4, 3, -6.25]
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.c1 = nn.Conv2d(1, 20, 5, stride=1)
                    self.l1 = nn.Linear(2880, 100)
                    self.l2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = F.max_pool2d(F.relu(self.c1(x)), kernel_size=2, stride=2)
                    x = x.view(-1, 20 * 12 * 12)
                    x = F.relu(self.l1(x))
                    return self.l2(x)
        """,
        "layer-table": """
            layer_table = [
                ("conv", 520, (20, 24, 24)),
                ("relu", 0, (20, 24, 24)),
                ("pool", 0, (20, 12, 12)),
                ("flatten", 0, (2880,)),
                ("fc1", 288100, (100,)),
                ("relu", 0, (100,)),
                ("fc2", 1010, (10,)),
            ]
            total_params = 289630
        """,
    }
)

# h: gradient added instead of subtracted in the update.
SUBMISSION_H = Completion(
    replace={
        "answers-5-1": """
            # i
            v = [4, 0, 11]
            y_predicted = 18
            C = 225
            # ii
            dC_dw11 = -30
            # iii
            dC_dW2 = [[120, 0, 330]]
            # iv  W2_new = W2 + lr * dC/dW2
            W2_updated = [[5, 3, 18.5]]
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv_block = nn.Sequential(
                        nn.Conv2d(1, 20, 5),
                        nn.ReLU(),
                        nn.MaxPool2d(2, 2),
                    )
                    self.fc_block = nn.Sequential(
                        nn.Flatten(),
                        nn.Linear(2880, 100),
                        nn.ReLU(),
                        nn.Linear(100, 10),
                    )

                def forward(self, x):
                    return self.fc_block(self.conv_block(x))
        """,
        "layer-table": SOLUTION_LAYER_TABLE,
    }
)

# i: padding=2 in the convolution, table consistent with that model.
SUBMISSION_I = Completion(
    replace={
        "answers-5-1": SOLUTION_ANSWERS,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    # padding 2 keeps the 28x28 size
                    self.conv1 = nn.Conv2d(1, 20, kernel_size=5, stride=1, padding=2)
                    self.relu = nn.ReLU()
                    self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
                    self.fc1 = nn.Linear(20 * 14 * 14, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = self.pool(self.relu(self.conv1(x)))
                    x = torch.flatten(x, start_dim=1)
                    x = self.relu(self.fc1(x))
                    return self.fc2(x)
        """,
        "layer-table": """
            layer_table = [
                # (layer, learnable parameters, output shape)
                ("conv",    520,    (20, 28, 28)),
                ("relu",    0,      (20, 28, 28)),
                ("pool",    0,      (20, 14, 14)),
                ("flatten", 0,      (3920,)),
                ("fc1",     392100, (100,)),
                ("relu",    0,      (100,)),
                ("fc2",     1010,   (10,)),
            ]
            total_params = 393630
        """,
    }
)

# j: 6 output channels in the convolution, table consistent with that model.
SUBMISSION_J = Completion(
    replace={
        "answers-5-1": """
            W1 = np.array([[2, 1], [1, -2], [1, 5]])
            W2 = np.array([[-1, 3, 2]])
            x = np.array([1, 2])
            target = 3
            alpha = 0.05

            h = W1 @ x
            v = np.maximum(h, 0)
            y_predicted = (W2 @ v).item()
            C = (y_predicted - target) ** 2

            dC_dy = 2 * (y_predicted - target)
            relu_grad = (h >= 0).astype(float)      # relu'(0) = 1 like on the sheet
            dC_dh = dC_dy * W2.flatten() * relu_grad
            dC_dw11 = dC_dh[0] * x[0]
            dC_dW2 = dC_dy * v.reshape(1, -1)
            W2_updated = W2 - alpha * dC_dW2
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 6, 5)
                    self.fc1 = nn.Linear(6 * 12 * 12, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = F.max_pool2d(F.relu(self.conv1(x)), 2)
                    x = torch.flatten(x, 1)
                    x = F.relu(self.fc1(x))
                    x = self.fc2(x)
                    return x
        """,
        "layer-table": """
            layer_table = [
                ("conv1",   156,   (6, 24, 24)),
                ("relu",    0,     (6, 24, 24)),
                ("pool",    0,     (6, 12, 12)),
                ("flatten", 0,     (864,)),
                ("fc1",     86500, (100,)),
                ("relu",    0,     (100,)),
                ("fc2",     1010,  (10,)),
            ]
            total_params = 87666
        """,
    }
)

# k: no pooling layer, table consistent with that model (no pool row).
SUBMISSION_K = Completion(
    replace={
        "answers-5-1": """
            v = [4, 0, 11]
            y_predicted = 18
            C = 225
            dC_dw11 = -30
            dC_dW2 = [120, 0, 330]
            W2_updated = [-7, 3, -14.5]
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 20, kernel_size=5, stride=1)
                    self.relu = nn.ReLU()
                    self.flatten = nn.Flatten()
                    self.fc1 = nn.Linear(20 * 24 * 24, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = self.relu(self.conv(x))
                    x = self.flatten(x)
                    x = self.relu(self.fc1(x))
                    x = self.fc2(x)
                    return x
        """,
        "layer-table": """
            layer_table = [
                ("conv",    520,     (20, 24, 24)),
                ("relu",    0,       (20, 24, 24)),
                ("flatten", 0,       (11520,)),
                ("fc1",     1152100, (100,)),
                ("relu",    0,       (100,)),
                ("fc2",     1010,    (10,)),
            ]
            total_params = 1153630
        """,
    }
)

# l: the class is called CNN instead of ConvNet, in every cell that uses it.
SUBMISSION_L = Completion(
    replace={
        "answers-5-1": """
            v = [4, 0, 11]          # relu([4, -3, 11])
            y_predicted = 18
            C = 225
            dC_dw11 = -30
            dC_dW2 = [[120, 0, 330]]
            W2_updated = [[-7, 3, -14.5]]
        """,
        "convnet": """
            class CNN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 20, kernel_size=5, stride=1)
                    self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
                    self.fc1 = nn.Linear(2880, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = self.pool(F.relu(self.conv1(x)))
                    x = x.view(x.shape[0], -1)
                    x = F.relu(self.fc1(x))
                    return self.fc2(x)
        """,
        "train-cnn": """
            torch.manual_seed(0)
            cnn_model = CNN()
            cnn_optimiser = torch.optim.Adam(cnn_model.parameters(), lr=1e-3)
            mean_loss = train_one_epoch(cnn_model, train_loader, cnn_optimiser, nn.CrossEntropyLoss())
            cnn_accuracy = evaluate(cnn_model, test_loader)

            print(f"CNN: mean training loss {mean_loss:.3f}, test accuracy {cnn_accuracy:.3f}")
            print(f"feed-forward network of 5.2: test accuracy {ffn_accuracy:.3f}")
        """,
        "layer-table": SOLUTION_LAYER_TABLE,
        "summary": """
            from torchinfo import summary

            summary(CNN(), input_size=(1, 1, 28, 28))
        """,
    }
)

# m: an extra 5.2 cell uses a name that is never defined and raises NameError.
SUBMISSION_M = Completion(
    replace={
        "answers-5-1": """
            v = [4, 0, 11]
            y_predicted = 18
            C = 225
            dC_dw11 = -30
            dC_dW2 = [[120, 0, 330]]
            W2_updated = [[-7, 3, -14.5]]
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 20, 5)
                    self.pool = nn.MaxPool2d(2, 2)
                    self.fc1 = nn.Linear(2880, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = self.pool(F.relu(self.conv1(x)))
                    x = x.view(-1, 2880)
                    x = F.relu(self.fc1(x))
                    return self.fc2(x)
        """,
        "layer-table": SOLUTION_LAYER_TABLE,
    },
    insert_after={
        "network-5-1": [
            (
                "compare-with-5-1",
                """
                # compare with my answers from 5.1
                print(v, y_pred, C)
                """,
            )
        ]
    },
)

# n: an extra experiment after the CNN training whose loop never ends, because the
# loop counter is never increased. It sleeps and prints one line per second, so the
# hung kernel uses almost no CPU.
SUBMISSION_N = Completion(
    replace={
        "answers-5-1": """
            v = [4, 0, 11]
            y_predicted = 18
            C = 225
            dC_dw11 = -30
            dC_dW2 = [120, 0, 330]
            W2_updated = [-7, 3, -14.5]
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 20, 5)
                    self.fc1 = nn.Linear(2880, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
                    x = torch.flatten(x, 1)
                    x = F.relu(self.fc1(x))
                    return self.fc2(x)
        """,
        "layer-table": SOLUTION_LAYER_TABLE,
    },
    insert_after={
        "train-cnn": [
            (
                "learning-rate-experiment",
                """
                # extra experiment: try other learning rates
                import time

                learning_rates = [1e-2, 1e-3, 1e-4]
                i = 0
                while i < len(learning_rates):
                    lr = learning_rates[i]
                    print("training with lr", lr)
                    # TODO retrain the CNN with this lr
                    time.sleep(1)
                """,
            )
        ]
    },
)

# o: 5.1 answers as Fraction and floats, both accuracies as percentages.
SUBMISSION_O = Completion(
    replace={
        "answers-5-1": """
            from fractions import Fraction

            v = [Fraction(4), Fraction(0), Fraction(11)]
            y_predicted = Fraction(18)
            C = Fraction(225)

            dC_dw11 = round(-30.0, 2)
            dC_dW2 = [round(120.0, 2), round(0.0, 2), round(330.0, 2)]

            alpha = Fraction(1, 20)
            W2_updated = [Fraction(-1) - alpha * 120, Fraction(3) - alpha * 0, Fraction(2) - alpha * 330]
        """,
        "ffn-accuracy": """
            ffn_accuracy = round(100 * evaluate(ffn_model, test_loader), 1)   # in percent
            print(f"feed-forward network, test accuracy: {ffn_accuracy} %")
        """,
        "convnet": """
            class ConvNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(1, 20, 5, stride=1)
                    self.relu = nn.ReLU()
                    self.maxpool = nn.MaxPool2d(2, stride=2)
                    self.fc1 = nn.Linear(2880, 100)
                    self.fc2 = nn.Linear(100, 10)

                def forward(self, x):
                    x = self.maxpool(self.relu(self.conv1(x)))
                    x = x.view(x.size(0), -1)
                    x = self.relu(self.fc1(x))
                    return self.fc2(x)
        """,
        "train-cnn": """
            torch.manual_seed(0)
            cnn_model = ConvNet()
            cnn_optimiser = torch.optim.Adam(cnn_model.parameters(), lr=1e-3)
            mean_loss = train_one_epoch(cnn_model, train_loader, cnn_optimiser, nn.CrossEntropyLoss())
            cnn_accuracy = round(100 * evaluate(cnn_model, test_loader), 1)   # in percent

            print(f"CNN test accuracy: {cnn_accuracy} %   FFN test accuracy: {ffn_accuracy} %")
        """,
        "layer-table": SOLUTION_LAYER_TABLE,
    }
)

# p: fc1 bias forgotten in the table, so fc1 and the total are 100 too low.
SUBMISSION_P = Completion(
    replace={
        "answers-5-1": """
            # 5.1 i
            v = [4, 0, 11]
            y_predicted = 18
            C = 225
            # 5.1 ii
            dC_dw11 = -30
            # 5.1 iii
            dC_dW2 = [120, 0, 330]
            # 5.1 iv
            W2_updated = [-7, 3, -14.5]
        """,
        "convnet": SOLUTION_CONVNET,
        "layer-table": """
            layer_table = [
                # (layer, learnable parameters, output shape)
                ("conv",    520,    (20, 24, 24)),   # 20 * (5*5) + 20
                ("relu",    0,      (20, 24, 24)),
                ("pool",    0,      (20, 12, 12)),
                ("flatten", 0,      (2880,)),
                ("fc1",     288000, (100,)),         # 2880 * 100
                ("relu",    0,      (100,)),
                ("fc2",     1010,   (10,)),
            ]
            total_params = 289530
        """,
    }
)

SUBMISSIONS = {
    "ox47ukev.ipynb": SUBMISSION_A,
    "ri12poqa.ipynb": SUBMISSION_B,
    "ud85yhel.ipynb": SUBMISSION_C,
    "ak03ziwu.ipynb": SUBMISSION_D,
    "ej61nomy.ipynb": SUBMISSION_E,
    "is29febo.ipynb": SUBMISSION_F,
    "uv70dica.ipynb": SUBMISSION_G,
    "yk58rusa.ipynb": SUBMISSION_H,
    "eb34tuwo.ipynb": SUBMISSION_I,
    "ha92xeli.ipynb": SUBMISSION_J,
    "ow16mapi.ipynb": SUBMISSION_K,
    "iq88sone.ipynb": SUBMISSION_L,
    "um45guvy.ipynb": SUBMISSION_M,
    "zo07qima.ipynb": SUBMISSION_N,
    "ap53leru.ipynb": SUBMISSION_O,
    "ny21hoke.ipynb": SUBMISSION_P,
}


def write_notebook(notebook: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    print(f"wrote {path.relative_to(REPOSITORY_ROOT)}")


def main() -> None:
    if set(SUBMISSIONS) != set(SCENARIOS):
        mismatched = sorted(set(SUBMISSIONS) ^ set(SCENARIOS))
        raise ValueError(f"SUBMISSIONS and SCENARIOS must list the same file names, these are in only one: {mismatched}")
    write_notebook(build_notebook(), ASSIGNMENT_PATH)
    write_notebook(build_notebook(SOLUTION), SOLUTION_PATH)
    for file_name, completion in SUBMISSIONS.items():
        write_notebook(build_notebook(completion), SUBMISSIONS_DIR / file_name)


if __name__ == "__main__":
    main()
