"""Models for ``srmac adaqat``: the ``srmac train`` MLP/CNN plus a small ResNet."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .models import build_model
from .zoo import BasicBlock

__all__ = ["ADAQAT_MODELS", "build_adaqat_model", "ResNetSmall"]

ADAQAT_MODELS = ("mlp", "cnn", "resnet-small")


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


def build_adaqat_model(name: str, *, hidden: int = 256, channels: int = 8) -> nn.Module:
    if name == "resnet-small":
        return ResNetSmall(channels)
    if name in ("mlp", "cnn"):
        return build_model(name, hidden=hidden, channels=channels)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(ADAQAT_MODELS)}")
