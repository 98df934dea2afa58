"""The fake quantizers of AdaQAT: DoReFa weights and PACT activations (the paper's), or LSQ.

Every quantizer maps a float tensor ``x`` and an integer bit-width ``b`` to
``q = k * s``: integers ``k`` on a ``b``-bit grid times a step ``s``, with a
straight-through estimator (STE) for the rounding. Two calls:

* ``q = quantizer(x, b)``: the fake-quantized tensor, with the quantizer's
  gradients (to ``x`` and to its own parameters);
* ``k, s = quantizer.codes(x, b)``: the integers ``k = q / s`` (carrying
  ``q``'s gradient) and the step ``s`` (detached), e.g. to check or export
  the grid. (With ``--mac``, :class:`sim.adaqat.QuantLayer` feeds ``q`` to
  the emulated GEMMs: scaling the integers' GEMM by ``s_x s_w`` afterwards
  would scale the incoming gradient by ``s_x s_w`` too, ~1e-5 at 8 bits,
  below an 8-bit format's range.)

Quantizers (``--quantizer``):

* ``dorefa-pact`` (default, as in AdaQAT):
  :class:`DoReFaWeight`: ``u = tanh(w) / (2 max|tanh w|) + 1/2`` in [0, 1],
  ``q = m * (2 round((2^b - 1) u) / (2^b - 1) - 1)``: ``2^b`` levels, odd
  integers ``k`` in ``[-(2^b - 1), 2^b - 1]``, step ``s = m / (2^b - 1)``.
  DoReFa's ``q`` lies in [-1, 1]; here it is scaled by ``m = max|tanh w|``,
  so that a layer keeps the scale of its float weights (the small models have
  no BatchNorm to absorb it), and ``m`` is a constant in the backward pass
  (the gradient to ``w`` is ``1 - tanh(w)^2`` times the STE's).
  :class:`PactActivation`: ``y = clip(x, 0, alpha)`` with a learnable clip
  ``alpha``, ``q = round(y (2^b - 1) / alpha) alpha / (2^b - 1)``; PACT's
  gradient: 1 to ``alpha`` where ``x >= alpha``, STE to ``x`` inside. Signed
  inputs (linear bottlenecks): ``clip(x, -alpha, alpha)`` on
  ``k in [-2^(b-1), 2^(b-1) - 1]``, ``s = alpha / 2^(b-1)``. ``alpha`` is
  initialised on the first call to ``mean|x| + 3 std|x|``.
  Dropping one bit keeps the clipping range and halves the resolution.
* ``lsq``: :class:`LsqQuantizer`, one learnable step ``s`` per tensor,
  ``q = s clamp(round(x / s), Q_n, Q_p)``, LSQ's step gradient scaled by
  ``1 / sqrt(N * Q_p)`` with ``N`` the weights of the tensor or the features
  of one sample (activations). The step serves every width, so dropping one
  bit halves the clipping range at the same resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["DoReFaWeight", "PactActivation", "LsqQuantizer", "QUANTIZERS", "make_quantizers",
           "quant_range", "ste_round"]

#: ``--quantizer`` values.
QUANTIZERS = ("dorefa-pact", "lsq")


def quant_range(bits: int, signed: bool) -> tuple[int, int]:
    """Two's-complement integer grid ``(Q_n, Q_p)`` of a ``bits``-bit quantizer (``bits`` >= 1)."""
    bits = int(bits)
    if bits < 1:
        raise ValueError(f"quantizer bit-width must be >= 1, got {bits}")
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` in the forward pass, the identity's gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def _grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    # value x, gradient scaled by g
    return x * g + (x - x * g).detach()


class _Quantizer(nn.Module):
    signed = True

    def step(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        """The grid step ``s`` at ``bits`` bits (detached)."""
        raise NotImplementedError

    def codes(self, x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(k, s)``: ``q / s`` (integer-valued, with ``q``'s gradient) and the detached step."""
        s = self.step(x, bits)
        k = self(x, bits) / s
        return k + (torch.round(k) - k).detach(), s  # exact integers, q's gradient

    def keep_in_range(self) -> None:
        """Called after every optimizer step: keep learnable parameters valid."""


class DoReFaWeight(_Quantizer):
    """DoReFa weight quantizer, scaled by ``max|tanh w|`` (see the module docstring)."""

    def forward(self, w: torch.Tensor, bits: int) -> torch.Tensor:
        n = 2 ** int(bits) - 1
        t = torch.tanh(w)
        m = t.detach().abs().max().clamp_min(1e-8)
        return (2 * ste_round((t / (2 * m) + 0.5) * n) / n - 1) * m

    def step(self, w: torch.Tensor, bits: int) -> torch.Tensor:
        return (torch.tanh(w.detach()).abs().max().clamp_min(1e-8) / (2 ** int(bits) - 1))


class PactActivation(_Quantizer):
    """PACT: clip to a learnable ``alpha``, then a uniform grid of ``2^b`` levels."""

    def __init__(self, signed: bool = False):
        super().__init__()
        self.signed = bool(signed)
        self.alpha = nn.Parameter(torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def _init(self, x: torch.Tensor) -> None:
        if not bool(self.initialized):
            with torch.no_grad():
                a = x.detach().abs().float()
                self.alpha.copy_((a.mean() + 3 * a.std()).clamp_min(1e-3))
                self.initialized.fill_(True)

    def _levels(self, bits: int) -> int:
        return 2 ** (int(bits) - 1) if self.signed else 2 ** int(bits) - 1

    def forward(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        self._init(x)
        qn, qp = quant_range(bits, self.signed)
        a = self.alpha
        # clip(x, lo, alpha) written with relu: the gradient to alpha is 1 above it (PACT)
        y = x - torch.relu(x - a)
        y = y + torch.relu(-a - y) if self.signed else torch.relu(y)
        s = (a / self._levels(bits)).detach()
        q = s * torch.clamp(torch.round(y.detach() / s), qn, qp)
        return y + (q - y).detach()

    def step(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        return self.alpha.detach() / self._levels(bits)

    def keep_in_range(self) -> None:
        with torch.no_grad():
            self.alpha.abs_().clamp_(min=1e-3)


class LsqQuantizer(_Quantizer):
    """Fake quantizer ``s * clamp(round(x / s), Q_n, Q_p)`` with learnable step ``s`` (LSQ).

    ``signed=True``: symmetric per-tensor grid; ``signed=False``: unsigned
    grid for non-negative (post-ReLU) activations. ``activation=True``: ``x``'s
    first dimension is the batch, and the step gradient is scaled by
    ``1 / sqrt(features * Q_p)`` (features per sample, as LSQ says), else by
    ``1 / sqrt(numel * Q_p)``. The step is initialised on the first call to
    ``2 * mean|x| / sqrt(Q_p)`` for the bit-width of that call (``Q_p`` >= 1
    is used for the 1-bit signed grid).
    """

    def __init__(self, signed: bool, activation: bool = False):
        super().__init__()
        self.signed, self.activation = bool(signed), bool(activation)
        self.step_size = nn.Parameter(torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def grad_scale(self, x: torch.Tensor, bits: int) -> float:
        """LSQ's step-gradient scale ``1 / sqrt(N * Q_p)`` for ``x`` at ``bits`` bits."""
        qp = max(quant_range(bits, self.signed)[1], 1)
        n = x[0].numel() if self.activation and x.dim() > 1 else x.numel()
        return 1.0 / math.sqrt(n * qp)

    def forward(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        qn, qp = quant_range(bits, self.signed)
        if not bool(self.initialized):
            with torch.no_grad():
                init = 2 * x.detach().abs().mean().clamp_min(1e-8) / math.sqrt(max(qp, 1))
                self.step_size.copy_(init)
                self.initialized.fill_(True)
        s = _grad_scale(self.step_size, self.grad_scale(x, bits)).abs().clamp_min(1e-8)
        return ste_round(torch.clamp(x / s, qn, qp)) * s

    def step(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        return self.step_size.detach().abs().clamp_min(1e-8)

    def keep_in_range(self) -> None:
        # one large gradient can kick a step through zero, which collapses a layer
        with torch.no_grad():
            self.step_size.abs_().clamp_(min=1e-6)


def make_quantizers(kind: str, signed_input: bool, quantize_input: bool):
    """``(weight quantizer, input quantizer or None)`` of one layer for ``--quantizer kind``."""
    if kind == "dorefa-pact":
        return DoReFaWeight(), PactActivation(signed_input) if quantize_input else None
    if kind == "lsq":
        return (LsqQuantizer(True),
                LsqQuantizer(signed_input, activation=True) if quantize_input else None)
    raise ValueError(f"unknown quantizer {kind!r}: choose one of {', '.join(QUANTIZERS)}")
