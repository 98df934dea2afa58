"""Output quantizers for the layers that are not GEMMs: norms, activations, softmax, pooling.

:func:`attach` turns e.g. an ``nn.BatchNorm2d`` into a ``QBatchNorm2d`` (the
same module, its parameters and state-dict names unchanged) whose output goes
through a :class:`sim.Quantizer` held as its ``out_quant`` child. The layer's
arithmetic itself stays float32; what the next layer sees is the rounded value
(and what flows back into the layer is the gradient rounded by the quantizer's
backward specification).
"""

from __future__ import annotations

import torch.nn as nn

from .quantizer import Quantizer

__all__ = ["KINDS", "kind_of", "attach", "OutputQuantized"]

#: The non-GEMM layers that can carry an output quantizer, by kind.
KINDS: dict[str, tuple[type, ...]] = {
    "norm": (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
             nn.InstanceNorm1d, nn.InstanceNorm2d, nn.RMSNorm),
    "activation": (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU,
                   nn.ELU, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.PReLU),
    "softmax": (nn.Softmax, nn.LogSoftmax),
    "pool": (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
             nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d),
}


class OutputQuantized:
    """Mixin: ``forward`` is the base layer's, then ``self.out_quant``."""

    def forward(self, *args, **kwargs):
        return self.out_quant(super().forward(*args, **kwargs))


_CLASSES: dict[type, type] = {}
for _kind in KINDS.values():
    for _base in _kind:
        _name = "Q" + _base.__name__
        _cls = type(_name, (OutputQuantized, _base), {"__module__": __name__,
                                                      "__qualname__": _name})
        globals()[_name] = _cls  # importable by name: picklable
        _CLASSES[_base] = _cls
        __all__.append(_name)


_BASES = {cls: base for base, cls in _CLASSES.items()}


def kind_of(module: nn.Module) -> str | None:
    """``'norm'``, ``'activation'``, ``'softmax'`` or ``'pool'`` for a layer of :data:`KINDS`."""
    t = _BASES.get(type(module), type(module))
    for kind, classes in KINDS.items():
        if t in classes:
            return kind
    return None


def attach(module: nn.Module, quantizer: Quantizer) -> nn.Module:
    """Give ``module`` (exactly one of :data:`KINDS`' classes) the output quantizer; in place."""
    if isinstance(module, OutputQuantized):
        module.out_quant = quantizer
        return module
    cls = _CLASSES.get(type(module))
    if cls is None:
        raise ValueError(f"{type(module).__name__} cannot take an output quantizer: "
                         f"supported are {', '.join(sorted(c.__name__ for c in _CLASSES))}")
    module.__class__ = cls
    module.out_quant = quantizer
    return module
