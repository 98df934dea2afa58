"""srmac training simulator: DNN layers whose GEMMs run on the emulated SR MAC.

Public API: :class:`QLinear`, :class:`QConv1d`, :class:`QConv2d` (drop-in
``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d``, any groups and padding mode),
:class:`QMatMul` and :func:`matmul` (``torch.matmul`` on the emulated MAC),
:class:`MatMul` (its float placeholder), :class:`Quantizer` and
:func:`quantize` (a rounding module, forward and backward formats),
:class:`LayerConfig`, :func:`make_layer_config` and :func:`fp8_config` (the
three GEMM MACs and the operand roundings of a layer), :func:`quantize_model`
and :func:`set_config` (convert / configure a whole model, with a report of
what stays float), :class:`LowPrecisionOptimizer` and :func:`build_optimizer`
(any ``torch.optim`` optimizer with rounded weights and state),
:class:`LowPrecisionSGD`, :func:`sample_positions` (DDP layouts),
:func:`build_model` (the model registry), :func:`load_fashion_mnist` /
:func:`read_idx` (data).

The ``srmac train`` command is :mod:`sim.cli`, its run :mod:`sim.train`; the
training loop shared with AdaQAT (:mod:`sim.adaqat`) is :mod:`sim.loop`, the
model registry :mod:`sim.models` (small nets in :mod:`sim.nets`, image model
classes in :mod:`sim.zoo`), the run folders :mod:`sim.results`.

Names are imported lazily, so ``import sim.cli`` (done by every ``srmac``
command) does not import torch.
"""

import importlib

_EXPORTS = {
    "QLinear": "layers", "QConv1d": "layers", "QConv2d": "layers", "QMatMul": "layers",
    "MatMul": "layers", "matmul": "functional", "quantize": "functional",
    "Quantizer": "quantizer",
    "LayerConfig": "quant", "QuantSpec": "quant", "make_layer_config": "quant",
    "parse_quantizer": "quant", "fp8_config": "quant",
    "quantize_model": "convert", "set_config": "convert", "qlayers": "convert",
    "total_macs": "convert", "reset_macs": "convert", "ConversionReport": "convert",
    "sample_positions": "seeds", "build_model": "models",
    "LowPrecisionOptimizer": "optim", "LowPrecisionSGD": "optim", "build_optimizer": "optim",
    "load_fashion_mnist": "data", "read_idx": "data", "write_idx": "data",
    "DatasetMissingError": "data",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
