"""The model registry of ``srmac train`` and ``srmac adaqat``: every model either verb builds.

Each entry names the data sets it runs on (the first is its default), the
square image side it is shaped for (28: Fashion-MNIST as it is; 32: CIFAR-shaped
nets, which read Fashion-MNIST padded to 32x32 or image folders at
``--image-size 32``; 224: ImageNet-shaped), the class or function that builds
it and which of the shared model options it takes: ``hidden``, ``depth``
(MLP), ``channels`` (CNN, resnet-small), ``width`` (image models), plus
``classes`` and ``in_ch``. The small Fashion-MNIST models are defined in
:mod:`sim.nets`, the image models in :mod:`sim.zoo`; this module imports
neither (nor torch) until a model is built, so the command line can list the
names cheaply.

Quantization contract (:func:`sim.adaqat.qat_model`): every Linear/Conv2d but
the first reads a non-negative input (after a ReLU) unless the layer carries
``srmac_signed_input = True``; the first and the last layer in module order are
the stem and the classifier.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["ModelSpec", "MODELS", "build_model", "model_names", "image_size"]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    ``datasets``: the data sets it runs on, its default first; ``image_size``:
    the side of the square images it is shaped for; ``target`` is
    ``"module:attribute"`` of its builder; ``options`` the keyword arguments (of
    ``hidden, depth, channels, width, classes, in_ch, small_input``) the builder
    takes.
    """

    name: str
    datasets: tuple[str, ...]
    image_size: int
    about: str
    target: str
    options: tuple[str, ...]
    fixed: tuple[tuple[str, object], ...] = ()  # builder arguments of this entry

    @property
    def dataset(self) -> str:
        """The data set it runs on by default."""
        return self.datasets[0]

    def builder(self):
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


_FMNIST, _IMAGES = ("fashion-mnist",), ("imagenet",)
_BOTH = ("fashion-mnist", "imagenet")

MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("mlp", _FMNIST, 28, "784-hidden(x depth)-10 perceptron, ReLU", "sim.nets:mlp",
              ("hidden", "depth", "classes")),
    ModelSpec("cnn", _FMNIST, 28, "two 3x3 conv + max-pool stages, linear classifier",
              "sim.nets:cnn", ("channels", "classes")),
    ModelSpec("resnet-small", _FMNIST, 28, "stem + 3 basic blocks (BatchNorm), linear",
              "sim.nets:ResNetSmall", ("channels", "classes")),
    ModelSpec("resnet20", _BOTH, 32, "ResNet-20, CIFAR-shaped (16/32/64 channels x width)",
              "sim.zoo:ResNet20", ("classes", "in_ch", "width")),
    ModelSpec("mobilenet-v2-cifar", _BOTH, 32,
              "MobileNet-V2 for 32x32 inputs (stride-1 stem and second stage; 17 depthwise "
              "convs)", "sim.zoo:MobileNetV2", ("classes", "in_ch", "width"),
              fixed=(("small_input", True),)),
    ModelSpec("resnet18", _IMAGES, 224, "ResNet-18 (torchvision parameter names)",
              "sim.zoo:ResNet18", ("classes", "in_ch", "width")),
    ModelSpec("mobilenet-v2", _IMAGES, 224, "MobileNet-V2 (torchvision parameter names)",
              "sim.zoo:MobileNetV2", ("classes", "in_ch", "width")),
)}


def model_names(dataset: str | None = None) -> list[str]:
    """Registered model names, all or those that run on ``dataset``."""
    return [n for n, s in MODELS.items() if dataset is None or dataset in s.datasets]


def image_size(name: str) -> int:
    """The square image side model ``name`` is shaped for (28, 32 or 224)."""
    return MODELS[name].image_size


def build_model(name: str, *, hidden: int = 256, depth: int = 1, channels: int = 8,
                width: float = 1.0, classes: int | None = None, in_ch: int | None = None):
    """A float ``nn.Module`` from the registry.

    ``classes`` defaults to 10 (1000 for the ImageNet-shaped models), ``in_ch``
    to the channels of the model's default data set (1 for Fashion-MNIST, 3 for
    images): the training verbs pass their data's.
    """
    spec = MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    if not width > 0:
        raise ValueError(f"--width must be > 0, got {width}")
    small = spec.dataset == "fashion-mnist"
    given = dict(hidden=hidden, depth=depth, channels=channels, width=width,
                 classes=classes or (10 if spec.image_size <= 32 else 1000),
                 in_ch=in_ch or (1 if small else 3))
    return spec.builder()(**{k: given[k] for k in spec.options}, **dict(spec.fixed))


def __getattr__(name):
    # the Fashion-MNIST nets, importable from here as before (sim.nets, loaded on first use)
    if name in ("mlp", "cnn", "ResNetSmall"):
        return getattr(importlib.import_module("sim.nets"), name)
    raise AttributeError(f"module 'sim.models' has no attribute {name!r}")
