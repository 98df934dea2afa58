"""Small Fashion-MNIST models (float ``nn.Module``; convert with :func:`sim.quantize_model`)."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["build_model", "MODELS"]

MODELS = ("mlp", "cnn")


def mlp(hidden: int = 256, classes: int = 10) -> nn.Module:
    """784-hidden-10 perceptron with ReLU."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def cnn(channels: int = 8, classes: int = 10) -> nn.Module:
    """Two 3x3 conv (pad 1) + ReLU + 2x2 max-pool stages, then a linear classifier."""
    c1, c2 = channels, 2 * channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 7 * 7, classes),
    )


def build_model(name: str, *, hidden: int = 256, channels: int = 8) -> nn.Module:
    if name == "mlp":
        return mlp(hidden)
    if name == "cnn":
        return cnn(channels)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
