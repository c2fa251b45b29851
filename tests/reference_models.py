"""Small ConvNet variants in the styles students write, for tests."""

import torch
import torch.nn.functional as F
from torch import nn


class Reference(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 20, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(2880, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5, stride=1)
        self.fc1 = nn.Linear(20 * 12 * 12, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


class SequentialSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
            nn.Linear(2880, 100), nn.ReLU(), nn.Linear(100, 10), nn.Softmax(dim=1),
        )

    def forward(self, x):
        return self.net(x)


def variant(padding=0, channels=20, pool=True, pool_stride=2):
    """Build the reference network with one common mistake."""
    side = 28 - 4 + 2 * padding
    layers = [nn.Conv2d(1, channels, 5, padding=padding), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2, pool_stride))
        side = (side - 2) // pool_stride + 1
    layers += [nn.Flatten(), nn.Linear(channels * side * side, 100), nn.ReLU(), nn.Linear(100, 10)]
    return nn.Sequential(*layers)
