"""The model registry of ``srmac train`` and ``srmac adaqat``: every model either verb builds.

Each entry names the data set it is shaped for (28x28 gray Fashion-MNIST, or
ImageNet-style RGB folders), the class or function that builds it and which of
the shared model options it takes: ``hidden``, ``depth`` (MLP), ``channels``
(CNN, resnet-small), ``width`` (zoo models), plus ``classes`` and ``in_ch``.
The small Fashion-MNIST models are defined in :mod:`sim.nets`, the ImageNet
architectures in :mod:`sim.zoo`; this module imports neither (nor torch) until
a model is built, so the command line can list the names cheaply.

Quantization contract (:func:`sim.adaqat.qat_model`): every Linear/Conv2d but
the first reads a non-negative input (after a ReLU) unless the layer carries
``srmac_signed_input = True``; the first and the last layer in module order are
the stem and the classifier.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["ModelSpec", "MODELS", "build_model", "model_names"]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    ``target`` is ``"module:attribute"`` of its builder; ``options`` the
    keyword arguments (of ``hidden, depth, channels, width, classes, in_ch``)
    the builder takes.
    """

    name: str
    dataset: str
    about: str
    target: str
    options: tuple[str, ...]

    def builder(self):
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("mlp", "fashion-mnist", "784-hidden(x depth)-10 perceptron, ReLU", "sim.nets:mlp",
              ("hidden", "depth", "classes")),
    ModelSpec("cnn", "fashion-mnist", "two 3x3 conv + max-pool stages, linear classifier",
              "sim.nets:cnn", ("channels", "classes")),
    ModelSpec("resnet-small", "fashion-mnist", "stem + 3 basic blocks (BatchNorm), linear",
              "sim.nets:ResNetSmall", ("channels", "classes")),
    ModelSpec("resnet18", "imagenet", "ResNet-18 (torchvision parameter names)",
              "sim.zoo:ResNet18", ("classes", "in_ch", "width")),
    ModelSpec("mobilenet-v2", "imagenet", "MobileNet-V2 (torchvision parameter names)",
              "sim.zoo:MobileNetV2", ("classes", "in_ch", "width")),
)}


def model_names(dataset: str | None = None) -> list[str]:
    """Registered model names, all or those shaped for ``dataset``."""
    return [n for n, s in MODELS.items() if dataset is None or s.dataset == dataset]


def build_model(name: str, *, hidden: int = 256, depth: int = 1, channels: int = 8,
                width: float = 1.0, classes: int | None = None, in_ch: int | None = None):
    """A float ``nn.Module`` from the registry (classes / input channels default to its data set's)."""
    spec = MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    if not width > 0:
        raise ValueError(f"--width must be > 0, got {width}")
    small = spec.dataset == "fashion-mnist"
    given = dict(hidden=hidden, depth=depth, channels=channels, width=width,
                 classes=classes or (10 if small else 1000), in_ch=in_ch or (1 if small else 3))
    return spec.builder()(**{k: given[k] for k in spec.options})


def __getattr__(name):
    # the Fashion-MNIST nets, importable from here as before (sim.nets, loaded on first use)
    if name in ("mlp", "cnn", "ResNetSmall"):
        return getattr(importlib.import_module("sim.nets"), name)
    raise AttributeError(f"module 'sim.models' has no attribute {name!r}")
