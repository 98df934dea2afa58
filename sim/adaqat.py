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
  :class:`QuantLayer` that reads its widths from a shared :class:`BitState`
  (network-wide widths) or from its own (``per_layer=True``).
* :func:`fd_gradients_per_layer`, :func:`hw_gradients_per_layer`: the same
  two gradients for per-layer widths ``N_w,l``, ``N_a,l``, with the cost
  ``L_HW = sum_l N_w,l * N_a,l * MACs_l / sum_l MACs_l``.
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
           "quant_layers", "fd_gradients_per_layer", "hw_gradients_per_layer", "set_mac",
           "FIRST_LAYER_ACT_BITS", "SIGNED_INPUT"]

#: The first layer reads raw 8-bit pixels: its activations are not quantized
#: further and count as 8 bits in BitOPs.
FIRST_LAYER_ACT_BITS = 8

#: Attribute of a Linear/Conv2d whose input may be negative (quantized on the
#: signed grid); models set it (see :mod:`sim.zoo`).
SIGNED_INPUT = "srmac_signed_input"


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

    def codes(self, x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(k, s)``: integers ``k`` (float tensor, STE) on the grid and the step ``s``."""
        qn, qp = quant_range(bits, self.signed)
        qp_eff = max(qp, 1)
        if not bool(self.initialized):
            with torch.no_grad():
                self.step.copy_(2 * x.detach().abs().mean().clamp_min(1e-8) / math.sqrt(qp_eff))
                self.initialized.fill_(True)
        s = _grad_scale(self.step, 1.0 / math.sqrt(x.numel() * qp_eff))
        s = s.abs().clamp_min(1e-8)  # keep the step positive
        return _ste_round(torch.clamp(x / s, qn, qp)), s

    def forward(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        k, s = self.codes(x, bits)
        return k * s


@dataclass
class BitState:
    """Integer bit-widths (``ceil`` of the real ones) the quantized layers use now."""

    w_bits: int = 8
    a_bits: int = 8


class QuantLayer(nn.Module):
    """A ``nn.Linear`` or ``nn.Conv2d`` with LSQ-quantized weights and input activations.

    ``quant_input=False`` (first layer) leaves the input as it is (raw pixels).
    ``signed_input=True`` quantizes the input on the signed grid (inputs that
    do not follow a ReLU). ``name`` is the layer's path in the model.
    """

    def __init__(self, layer: nn.Module, state: BitState, quant_input: bool,
                 signed_input: bool = False, name: str = ""):
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise ValueError(f"QuantLayer wraps nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        self.layer = layer
        self.state = state
        self.quant_input = quant_input
        self.name = name
        self.wq = LsqQuantizer(signed=True)
        self.aq = LsqQuantizer(signed=bool(signed_input)) if quant_input else None
        self.macs = 0  # multiply-accumulates per sample, set by layer_macs()
        self._emu = []  # [QLinear | QConv2d] when the GEMMs run on an emulated MAC (set_mac)

    def set_mac(self, config, layer_id: int = 0, seed: int = 0) -> None:
        """Run this layer's GEMMs on the emulated MAC ``config`` (``None``: float).

        The GEMMs take the integer grid values ``k_x``, ``k_w`` (rounded to the
        MAC's input format by its quantizers, so integers beyond the format's
        exact range are rounded) and the output is scaled by ``s_x * s_w``;
        the bias is added in float after the GEMM.
        """
        if config is None:
            self._emu = []
            return
        from .layers import QConv2d, QLinear

        lay = self.layer
        if isinstance(lay, nn.Linear):
            emu = QLinear(lay.in_features, lay.out_features, False, config=config,
                          layer_id=layer_id, seed=seed)
        else:
            emu = QConv2d(lay.in_channels, lay.out_channels, lay.kernel_size, lay.stride,
                          lay.padding, lay.dilation, lay.groups, False, config=config,
                          layer_id=layer_id, seed=seed)
        self._emu = [emu]  # a list: not a sub-module, so its unused weight is no parameter

    def forward(self, x):
        if self._emu:
            return self._forward_emulated(x)
        if self.aq is not None:
            x = self.aq(x, self.state.a_bits)
        w = self.wq(self.layer.weight, self.state.w_bits)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        c = self.layer
        return F.conv2d(x, w, c.bias, c.stride, c.padding, c.dilation, c.groups)

    def _forward_emulated(self, x):
        from .layers import _QConv2dFn, _QLinearFn

        emu = self._emu[0]
        emu.train(self.training)  # its seeds depend on the mode
        kx, sx = (x, None) if self.aq is None else self.aq.codes(x, self.state.a_bits)
        kw, sw = self.wq.codes(self.layer.weight, self.state.w_bits)
        if isinstance(self.layer, nn.Linear):
            lead = kx.shape[:-1]
            y = _QLinearFn.apply(kx.reshape(-1, kx.shape[-1]), kw, None, emu, emu.next_seeds())
            y = y.reshape(*lead, y.shape[-1])
        else:
            y = _QConv2dFn.apply(kx, kw, None, emu, emu.next_seeds())
        scale = sw if sx is None else sx * sw
        y = y * scale
        b = self.layer.bias
        if b is None:
            return y
        return y + (b if y.dim() == 2 else b.view(1, -1, 1, 1))


def qat_model(model: nn.Module, state: BitState, per_layer: bool = False) -> nn.Module:
    """Wrap every Linear/Conv2d of ``model`` (in place) in a :class:`QuantLayer`.

    The first such layer (in module order) keeps its float input; every other
    one quantizes its input on the unsigned grid, so it must follow a ReLU
    (directly, or through pooling / a residual add + ReLU), as in all models
    of :mod:`sim.adaqat_models`, unless the layer has the attribute
    :data:`SIGNED_INPUT` set (then the signed grid). ``per_layer=False``: all
    layers share ``state``; ``True``: each gets its own copy of it.
    """
    first = [True]

    def visit(mod, prefix):
        for name, child in mod.named_children():
            path = f"{prefix}{name}"
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                st = BitState(state.w_bits, state.a_bits) if per_layer else state
                setattr(mod, name, QuantLayer(child, st, quant_input=not first[0],
                                              signed_input=getattr(child, SIGNED_INPUT, False),
                                              name=path))
                first[0] = False
            else:
                visit(child, path + ".")

    visit(model, "")
    if first[0]:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to quantize")
    return model


def set_mac(model: nn.Module, config, seed: int = 0) -> None:
    """Run every QuantLayer's GEMMs on the emulated MAC ``config`` (e.g. ``"e5m2:e6m5:sr_eager:4"``)."""
    for i, m in enumerate(quant_layers(model)):
        try:
            m.set_mac(config, layer_id=i, seed=seed)
        except ValueError as exc:
            raise ValueError(f"--mac {config}: layer {m.name or i}: {exc}") from None


def quant_layers(model: nn.Module) -> list[QuantLayer]:
    """The :class:`QuantLayer` modules of ``model`` in module order (the first reads raw input)."""
    return [m for m in model.modules() if isinstance(m, QuantLayer)]


def layer_macs(model: nn.Module, input_shape=(1, 1, 28, 28)) -> list[QuantLayer]:
    """Set and return each QuantLayer's MACs per sample (from one forward pass)."""
    layers = quant_layers(model)
    hooks = []

    def hook(mod, inp, out):
        w = mod.layer.weight
        per_out = w[0].numel()  # in_features, or in_ch/groups * kh * kw
        mod.macs = int(out[0].numel() * per_out)

    for m in layers:
        hooks.append(m.register_forward_hook(hook))
    # the zero input must not initialise LSQ steps: restore their state afterwards
    saved = [(q, q.initialized.clone(), q.step.detach().clone())
             for q in model.modules() if isinstance(q, LsqQuantizer)]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for q, init, step in saved:
                q.initialized.copy_(init)
                q.step.copy_(step)
    return layers


def bitops(model: nn.Module, w_bits: int | None = None, a_bits: int | None = None) -> int:
    """BitOPs per sample: sum over layers of ``w_bits * a_bits * MACs`` (first layer: 8-bit input).

    Widths left ``None`` are each layer's own current widths (per-layer mode).
    """
    total = 0
    for m in quant_layers(model):
        wb = m.state.w_bits if w_bits is None else w_bits
        ab = (m.state.a_bits if a_bits is None else a_bits) if m.quant_input \
            else FIRST_LAYER_ACT_BITS
        total += int(wb) * int(ab) * m.macs
    return total


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module):
    """Forward passes inside leave BatchNorm running statistics unchanged (momentum 0).

    Dropout is switched off inside too, so that the losses of a finite
    difference differ only by the bit-width, not by a fresh dropout mask.
    """
    saved, dropped = [], []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.momentum, m.num_batches_tracked.clone()))
            m.momentum = 0.0
        elif isinstance(m, nn.modules.dropout._DropoutNd) and m.training:
            dropped.append(m)
            m.eval()
    try:
        yield
    finally:
        for m, mom, nbt in saved:
            m.momentum = mom
            m.num_batches_tracked.copy_(nbt)
        for m in dropped:
            m.train()


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


def _layer_loss(model, layer: QuantLayer, x, y, w_bits: int, a_bits: int) -> float:
    old = (layer.state.w_bits, layer.state.a_bits)
    layer.state.w_bits, layer.state.a_bits = int(w_bits), int(a_bits)
    try:
        with torch.no_grad(), frozen_bn_stats(model):
            return float(F.cross_entropy(model(x), y))
    finally:
        layer.state.w_bits, layer.state.a_bits = old


def fd_gradients_per_layer(model, x, y) -> list[tuple[float, float | None]]:
    """Per-layer finite-difference gradients ``[(dL/dN_w,l, dL/dN_a,l), ...]`` on one batch.

    For layer ``l`` at its own widths ``(w_l, a_l)`` (each >= 2), every other
    layer unchanged: ``dL/dN_w,l = L - L(w_l - 1)``, ``dL/dN_a,l = L - L(a_l - 1)``,
    with ``L`` the loss at everyone's current widths. The first layer has no
    activation width (``None``). Costs ``1 + 2 * layers - 1`` forward passes.
    Every layer must have its own :class:`BitState` (``qat_model(per_layer=True)``).
    """
    layers = quant_layers(model)
    if len({id(m.state) for m in layers}) != len(layers):
        raise ValueError("per-layer finite differences need qat_model(..., per_layer=True)")
    for m in layers:
        if m.state.w_bits < 2 or (m.quant_input and m.state.a_bits < 2):
            raise ValueError(f"finite differences need widths >= 2, got "
                             f"W{m.state.w_bits}/A{m.state.a_bits} in layer {m.name}")
    with torch.no_grad(), frozen_bn_stats(model):
        base = float(F.cross_entropy(model(x), y))
    out = []
    for m in layers:
        w, a = m.state.w_bits, m.state.a_bits
        gw = base - _layer_loss(model, m, x, y, w - 1, a)
        ga = base - _layer_loss(model, m, x, y, w, a - 1) if m.quant_input else None
        out.append((gw, ga))
    return out


def hw_gradients_per_layer(layers: list[QuantLayer], n_w: list[float],
                           n_a: list[float | None]) -> list[tuple[float, float | None]]:
    """Gradient of ``L_HW = sum_l N_w,l * N_a,l * MACs_l / sum_l MACs_l``.

    ``(N_a,l * MACs_l / M, N_w,l * MACs_l / M)`` per layer with ``M`` the total
    MACs; the first layer's activation width is the fixed 8-bit input (no
    gradient, ``None``). With equal widths everywhere the sum over layers of
    ``dL_HW/dN_w,l`` is the network-wide ``N_a`` (up to the first layer's 8 bits).
    """
    total = sum(m.macs for m in layers)
    if total <= 0:
        raise ValueError("layer MACs are not set: call layer_macs(model, input_shape) first")
    out = []
    for m, nw, na in zip(layers, n_w, n_a, strict=True):
        f = m.macs / total
        a = float(na) if m.quant_input else float(FIRST_LAYER_ACT_BITS)
        out.append((a * f, float(nw) * f if m.quant_input else None))
    return out


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
