"""srmac training simulator: DNN layers whose GEMMs run on the emulated SR MAC.

Public API: :class:`QLinear`, :class:`QConv2d` (drop-in ``nn.Linear`` /
``nn.Conv2d``), :class:`LayerConfig` and :func:`make_layer_config` (the three
GEMM MACs and the operand quantizers of a layer), :func:`quantize_model` and
:func:`set_config` (convert / configure a whole model),
:class:`LowPrecisionSGD` (SGD with momentum, rounded updates, loss scaling),
:func:`load_fashion_mnist` / :func:`read_idx` (data). The ``srmac train``
command is :mod:`sim.cli`, its run :mod:`sim.train`; the training loop shared
with AdaQAT (:mod:`sim.adaqat`) is :mod:`sim.loop`, the model registry
:mod:`sim.models`, the run folders :mod:`sim.results`.

Names are imported lazily, so ``import sim.cli`` (done by every ``srmac``
command) does not import torch.
"""

import importlib

_EXPORTS = {
    "QLinear": "layers", "QConv2d": "layers",
    "LayerConfig": "quant", "Quantizer": "quant", "make_layer_config": "quant",
    "parse_quantizer": "quant",
    "quantize_model": "convert", "set_config": "convert", "qlayers": "convert",
    "total_macs": "convert", "reset_macs": "convert",
    "LowPrecisionSGD": "optim",
    "load_fashion_mnist": "data", "read_idx": "data", "write_idx": "data",
    "DatasetMissingError": "data",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
