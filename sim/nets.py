"""The small Fashion-MNIST models (float ``nn.Module``), registered in :mod:`sim.models`."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .zoo import BasicBlock

__all__ = ["mlp", "cnn", "ResNetSmall"]


def mlp(hidden: int = 256, classes: int = 10, depth: int = 1) -> nn.Module:
    """784 - ``hidden`` (x ``depth`` layers, each + ReLU) - ``classes`` perceptron."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, classes))


def cnn(channels: int = 8, classes: int = 10) -> nn.Module:
    """Two 3x3 conv (pad 1) + ReLU + 2x2 max-pool stages, then a linear classifier."""
    c1, c2 = channels, 2 * channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 7 * 7, classes),
    )


class ResNetSmall(nn.Module):
    """Stem conv (c) + ReLU, blocks c, 2c (stride 2), 4c (stride 2), average pool, linear."""

    def __init__(self, channels: int = 8, classes: int = 10):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(c, c, 1), BasicBlock(c, 2 * c, 2),
                                    BasicBlock(2 * c, 4 * c, 2))
        self.fc = nn.Linear(4 * c, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
