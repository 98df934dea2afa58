"""Convert a float model to emulated layers, and configure / inspect them."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch.nn as nn

from .layers import QConv2d, QLayerMixin, QLinear
from .quant import LayerConfig, make_layer_config

__all__ = ["quantize_model", "set_config", "qlayers", "total_macs", "reset_macs"]


def _resolve(config, name: str, module: nn.Module) -> LayerConfig:
    if callable(config) and not isinstance(config, LayerConfig):
        config = config(name, module)
    elif isinstance(config, dict):
        config = config.get(name, config.get("*"))
        if config is None:
            raise ValueError(f"no configuration for layer {name!r}: add it or a '*' default")
    return make_layer_config(config)


def quantize_model(model: nn.Module, config, *, seed: int = 0, inplace: bool = False) -> nn.Module:
    """Swap every ``nn.Linear`` / ``nn.Conv2d`` for :class:`QLinear` / :class:`QConv2d`.

    Weights are copied. ``config`` is one :class:`LayerConfig` or MAC spec for
    every layer, a dict ``{layer name: config}`` (``"*"`` for the rest), or a
    callable ``(name, module) -> config``. Layer ids (which feed the seeds)
    number the layers in ``named_modules`` order from 0. Returns the converted
    model (a deep copy unless ``inplace``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    targets = [(n, m) for n, m in model.named_modules()
               if isinstance(m, (nn.Linear, nn.Conv2d)) and not isinstance(m, QLayerMixin)]
    for layer_id, (name, mod) in enumerate(targets):
        cfg = _resolve(config, name, mod)
        cls = QConv2d if isinstance(mod, nn.Conv2d) else QLinear
        q = cls.from_float(mod, cfg, layer_id=layer_id, seed=seed)
        if name == "":
            return q  # the model itself was a single layer
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, q)
    return model


def qlayers(model: nn.Module) -> Iterator[tuple[str, QLayerMixin]]:
    """The emulated layers of ``model`` with their names."""
    for name, m in model.named_modules():
        if isinstance(m, QLayerMixin):
            yield name, m


def set_config(model: nn.Module, config: LayerConfig | str | dict | Callable) -> None:
    """Set the configuration of every emulated layer (same forms as :func:`quantize_model`)."""
    for name, m in qlayers(model):
        m.set_config(_resolve(config, name, m))


def total_macs(model: nn.Module) -> int:
    """Emulated MACs performed so far by all layers of ``model``."""
    return sum(m.macs for _, m in qlayers(model))


def reset_macs(model: nn.Module) -> None:
    for _, m in qlayers(model):
        m.macs = 0
