"""Models for ``srmac adaqat``: the ``srmac train`` MLP/CNN plus a small ResNet."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .models import build_model

__all__ = ["ADAQAT_MODELS", "build_adaqat_model", "ResNetSmall"]

ADAQAT_MODELS = ("mlp", "cnn", "resnet-small")


class _Block(nn.Module):
    """Basic residual block: two 3x3 conv + BN, 1x1 conv shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x):  # x >= 0 (post-ReLU), as the quantized convs expect
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNetSmall(nn.Module):
    """Stem conv (c) + ReLU, blocks c, 2c (stride 2), 4c (stride 2), average pool, linear."""

    def __init__(self, channels: int = 8, classes: int = 10):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU())
        self.blocks = nn.Sequential(_Block(c, c, 1), _Block(c, 2 * c, 2), _Block(2 * c, 4 * c, 2))
        self.fc = nn.Linear(4 * c, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_adaqat_model(name: str, *, hidden: int = 256, channels: int = 8) -> nn.Module:
    if name == "resnet-small":
        return ResNetSmall(channels)
    if name in ("mlp", "cnn"):
        return build_model(name, hidden=hidden, channels=channels)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(ADAQAT_MODELS)}")
