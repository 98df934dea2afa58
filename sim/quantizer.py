"""``sim.Quantizer``: a module that rounds a tensor to a format, forward and backward.

Put it between layers (or let :func:`sim.quantize_model` attach one to the
output of every norm, activation, softmax or pooling layer): the forward pass
rounds the activations with one specification, the backward pass rounds the
gradient flowing back through it with another, e.g.::

    q = sim.Quantizer("e4m3:rn", "e5m2:sr:8")   # E4M3 forward, E5M2 with SR backward

A specification is ``<format>:rn``, ``<format>:rz`` or ``<format>:sr:<r>``
(:func:`sim.parse_quantizer`), or ``None`` to leave that direction unchanged.
The gradient of the forward rounding is straight-through (the identity).
SR seeds come from the module's ``srmac_rng`` buffer like a layer's
(:mod:`sim.seeds`); under DDP dim 0 is the sample dimension.
"""

from __future__ import annotations

import torch.nn as nn

from . import ops
from .layers import SeededModule
from .quant import QuantSpec, parse_quantizer
from .seeds import Stream, sample_layout

__all__ = ["Quantizer"]


def _spec(value, what: str) -> QuantSpec | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    spec = parse_quantizer(value)
    if spec.fmt is None:
        raise ValueError(f"Quantizer {what} {value!r} names no format: write e.g. "
                         f"'e4m3:{spec.spec()}'")
    return spec


class Quantizer(SeededModule, nn.Module):
    """Round activations to ``forward`` and their gradients to ``backward`` (see module doc)."""

    def __init__(self, forward=None, backward=None, *, layer_id: int = 0, seed: int = 0,
                 device=None):
        super().__init__()
        self.fwd = _spec(forward, "forward")
        self.bwd = _spec(backward, "backward")
        self._fwd = "" if self.fwd is None else self.fwd.spec()
        self._bwd = "" if self.bwd is None else self.bwd.spec()
        self._init_seeds(layer_id, seed, device)

    def forward(self, x):
        if not (self._fwd or self._bwd):
            return x
        return ops.quantize(x, self._call_rng(), self._fwd, self._bwd, list(sample_layout()),
                            self.training, Stream.Q_OUT)

    def copy(self, *, layer_id: int, seed: int) -> Quantizer:
        """A new quantizer with the same specifications and other seeds."""
        return Quantizer(self._fwd or None, self._bwd or None, layer_id=layer_id, seed=seed,
                         device=self.srmac_rng.device)

    def extra_repr(self) -> str:
        return f"forward={self._fwd or None}, backward={self._bwd or None}"
