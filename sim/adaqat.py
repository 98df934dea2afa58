"""AdaQAT core: LSQ quantizers, real-valued bit-widths and their update rule.

AdaQAT (Gernigon, Filip, Sentieys et al., AICAS 2024, arXiv 2404.16876) learns
the weight and activation bit-widths ``N_w`` and ``N_a`` of a network during
quantization-aware training. This module holds the pieces; the training loop
is :mod:`sim.adaqat_train`.

* :class:`LsqQuantizer`: fake quantizer with a learnable step size ``s``
  (LSQ, Esser et al. 2020). Signed (weights, symmetric per tensor) grid
  ``s * {-2^(b-1), ..., 2^(b-1) - 1}``; unsigned (post-ReLU activations) grid
  ``s * {0, ..., 2^b - 1}``. Rounding uses a straight-through estimator, the
  step-size gradient is LSQ's, scaled by ``1 / sqrt(numel * Q_p)``.
* :class:`BitWidth`: one real-valued bit-width ``N`` used as ``ceil(N)`` bits,
  with bounds, a learning rate and the freezing rule.
* :func:`fd_gradients`: finite-difference task-loss gradients
  ``L(ceil N) - L(ceil N - 1)`` for ``N_w`` and ``N_a`` on one batch.
* :func:`hw_gradients`: gradient of ``L_HW = N_w * N_a`` (BitOPs per MAC).
* :func:`qat_model`: replaces every ``nn.Linear`` / ``nn.Conv2d`` by a
  :class:`QuantLayer` that reads its widths from a shared :class:`BitState`.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LsqQuantizer", "BitWidth", "BitState", "QuantLayer", "qat_model", "fd_gradients",
           "hw_gradients", "layer_macs", "bitops", "quant_range", "frozen_bn_stats",
           "FIRST_LAYER_ACT_BITS"]

#: The first layer reads raw 8-bit pixels: its activations are not quantized
#: further and count as 8 bits in BitOPs.
FIRST_LAYER_ACT_BITS = 8


def quant_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer grid ``(Q_n, Q_p)`` of a ``bits``-bit quantizer (``bits`` >= 1)."""
    bits = int(bits)
    if bits < 1:
        raise ValueError(f"quantizer bit-width must be >= 1, got {bits}")
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    # round in the forward pass, identity gradient in the backward pass
    return x + (torch.round(x) - x).detach()


def _grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    # value x, gradient scaled by g
    return x * g + (x - x * g).detach()


class LsqQuantizer(nn.Module):
    """Fake quantizer ``s * clamp(round(x / s), Q_n, Q_p)`` with learnable step ``s``.

    ``signed=True``: symmetric per-tensor weight grid; ``signed=False``:
    unsigned grid for non-negative (post-ReLU) activations. The step is
    initialised on the first call to ``2 * mean|x| / sqrt(Q_p)`` (LSQ) for the
    bit-width of that call (``Q_p`` >= 1 is used for the 1-bit signed grid).
    """

    def __init__(self, signed: bool):
        super().__init__()
        self.signed = bool(signed)
        self.step = nn.Parameter(torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        qn, qp = quant_range(bits, self.signed)
        qp_eff = max(qp, 1)
        if not bool(self.initialized):
            with torch.no_grad():
                self.step.copy_(2 * x.detach().abs().mean().clamp_min(1e-8) / math.sqrt(qp_eff))
                self.initialized.fill_(True)
        s = _grad_scale(self.step, 1.0 / math.sqrt(x.numel() * qp_eff))
        s = s.abs().clamp_min(1e-8)  # keep the step positive
        return _ste_round(torch.clamp(x / s, qn, qp)) * s


@dataclass
class BitState:
    """Integer bit-widths (``ceil`` of the real ones) the quantized layers use now."""

    w_bits: int = 8
    a_bits: int = 8


class QuantLayer(nn.Module):
    """A ``nn.Linear`` or ``nn.Conv2d`` with LSQ-quantized weights and input activations.

    ``quant_input=False`` (first layer) leaves the input as it is (raw pixels).
    """

    def __init__(self, layer: nn.Module, state: BitState, quant_input: bool):
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise ValueError(f"QuantLayer wraps nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        self.layer = layer
        self.state = state
        self.quant_input = quant_input
        self.wq = LsqQuantizer(signed=True)
        self.aq = LsqQuantizer(signed=False) if quant_input else None
        self.macs = 0  # multiply-accumulates per sample, set by layer_macs()

    def forward(self, x):
        if self.aq is not None:
            x = self.aq(x, self.state.a_bits)
        w = self.wq(self.layer.weight, self.state.w_bits)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        c = self.layer
        return F.conv2d(x, w, c.bias, c.stride, c.padding, c.dilation, c.groups)


def qat_model(model: nn.Module, state: BitState) -> nn.Module:
    """Wrap every Linear/Conv2d of ``model`` (in place) in a :class:`QuantLayer`.

    The first such layer (in module order) keeps its float input; every other
    one quantizes its input on the unsigned grid, so it must follow a ReLU
    (directly, or through pooling / a residual add + ReLU), as in all models
    of :mod:`sim.adaqat_models`.
    """
    first = [True]

    def visit(mod):
        for name, child in mod.named_children():
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                setattr(mod, name, QuantLayer(child, state, quant_input=not first[0]))
                first[0] = False
            else:
                visit(child)

    visit(model)
    if first[0]:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to quantize")
    return model


def layer_macs(model: nn.Module, input_shape=(1, 1, 28, 28)) -> list[QuantLayer]:
    """Set and return each QuantLayer's MACs per sample (from one forward pass)."""
    layers = [m for m in model.modules() if isinstance(m, QuantLayer)]
    hooks = []

    def hook(mod, inp, out):
        w = mod.layer.weight
        per_out = w[0].numel()  # in_features, or in_ch/groups * kh * kw
        mod.macs = int(out[0].numel() * per_out)

    for m in layers:
        hooks.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return layers


def bitops(model: nn.Module, w_bits: int, a_bits: int) -> int:
    """BitOPs per sample: sum over layers of ``w_bits * a_bits * MACs`` (first layer: 8-bit input)."""
    total = 0
    for m in model.modules():
        if isinstance(m, QuantLayer):
            ab = a_bits if m.quant_input else FIRST_LAYER_ACT_BITS
            total += int(w_bits) * int(ab) * m.macs
    return total


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module):
    """Forward passes inside leave BatchNorm running statistics unchanged (momentum 0)."""
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.momentum, m.num_batches_tracked.clone()))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom, nbt in saved:
            m.momentum = mom
            m.num_batches_tracked.copy_(nbt)


def loss_at(model, state: BitState, x, y, w_bits: int, a_bits: int) -> float:
    """Cross-entropy of ``model`` on ``(x, y)`` at the given integer widths (no update)."""
    old = (state.w_bits, state.a_bits)
    state.w_bits, state.a_bits = int(w_bits), int(a_bits)
    try:
        with torch.no_grad(), frozen_bn_stats(model):
            return float(F.cross_entropy(model(x), y))
    finally:
        state.w_bits, state.a_bits = old


def fd_gradients(model, state: BitState, x, y, w_bits: int, a_bits: int) -> tuple[float, float]:
    """Finite-difference task-loss gradients ``(dL/dN_w, dL/dN_a)`` on one batch.

    ``dL/dN_w = L(w, a) - L(w - 1, a)`` and ``dL/dN_a = L(w, a) - L(w, a - 1)``,
    with ``w = ceil(N_w)``, ``a = ceil(N_a)`` (both >= 2). Usually negative:
    one more bit lowers the loss.
    """
    if w_bits < 2 or a_bits < 2:
        raise ValueError(f"finite differences need widths >= 2, got W{w_bits}/A{a_bits}")
    base = loss_at(model, state, x, y, w_bits, a_bits)
    lw = loss_at(model, state, x, y, w_bits - 1, a_bits)
    la = loss_at(model, state, x, y, w_bits, a_bits - 1)
    return base - lw, base - la


def hw_gradients(n_w: float, n_a: float) -> tuple[float, float]:
    """Gradient of ``L_HW = N_w * N_a`` (BitOPs per MAC): ``(N_a, N_w)``."""
    return float(n_a), float(n_w)


class BitWidth:
    """A real-valued bit-width ``N`` in ``[lo, hi]``, used as ``ceil(N)`` bits.

    Update (while not frozen): ``N <- clip(N - lr * g, lo, hi)``. Freezing rule:
    after each update, if the last ``patience`` + 1 values of ``N`` span less
    than ``tol`` (max - min), ``N`` freezes: it is set to ``ceil(N)`` and every
    later :meth:`update` leaves it unchanged.
    """

    def __init__(self, init: float, lo: float, hi: float, lr: float, patience: int, tol: float,
                 name: str = "N"):
        if not (2 <= lo <= hi):
            raise ValueError(f"{name} bounds must satisfy 2 <= lo <= hi, got [{lo}, {hi}]")
        if not lo <= init <= hi:
            raise ValueError(f"{name} initial width {init} is outside its bounds [{lo}, {hi}]")
        if lr < 0:
            raise ValueError(f"bit-width learning rate must be >= 0, got {lr}")
        if patience < 1:
            raise ValueError(f"freeze patience must be >= 1 step, got {patience}")
        if tol <= 0:
            raise ValueError(f"freeze tolerance must be > 0, got {tol}")
        self.name, self.lo, self.hi, self.lr = name, float(lo), float(hi), float(lr)
        self.patience, self.tol = int(patience), float(tol)
        self.value = float(init)
        self.frozen = False
        self.frozen_at: int | None = None  # update count when it froze
        self.steps = 0
        self._hist = deque([self.value], maxlen=self.patience + 1)

    @property
    def bits(self) -> int:
        """Integer width the quantizers use: ``ceil(N)`` (at least ``ceil(lo)``)."""
        return max(math.ceil(self.value - 1e-9), math.ceil(self.lo - 1e-9))

    def freeze(self) -> None:
        if not self.frozen:
            self.value = float(self.bits)
            self.frozen, self.frozen_at = True, self.steps

    def update(self, grad: float) -> float:
        """One step with gradient ``grad``; returns the new value."""
        if self.frozen:
            return self.value
        if not math.isfinite(grad):
            raise ValueError(f"{self.name} gradient is not finite: {grad}")
        self.steps += 1
        self.value = min(max(self.value - self.lr * grad, self.lo), self.hi)
        self._hist.append(self.value)
        if len(self._hist) == self._hist.maxlen and max(self._hist) - min(self._hist) < self.tol:
            self.freeze()
        return self.value
