"""AdaQAT core: quantized layers, real-valued bit-widths, their gradients and freezing rule.

AdaQAT (Gernigon, Filip, Sentieys et al., AICAS 2024, arXiv 2404.16876) learns
the weight and activation bit-widths ``N_w`` and ``N_a`` of a network during
quantization-aware training; the quantizers use ``ceil(N)`` bits.

* :func:`qat_model` wraps every ``nn.Linear`` / ``nn.Conv2d`` in a
  :class:`QuantLayer` (quantizers from :mod:`sim.adaqat.quantizers`). The
  first layer reads the raw 8-bit image (its input is not quantized); with
  ``first_last_bits=8`` (the paper's setting) the first layer's weights and
  the last layer's weights and input stay at 8 bits and only the others learn.
* :func:`fd_gradients` / :func:`fd_gradients_per_layer`: finite-difference
  task-loss gradients ``L(ceil N) - L(ceil N - 1)`` on one batch.
* :func:`hw_cost` and its gradients: BitOPs per MAC,
  ``L_HW = sum_l MACs_l * w_l * a_l / sum_l MACs_l`` over every layer (fixed
  ones included at their fixed widths), the same function in network-wide and
  per-layer mode.
* :class:`BitWidth`: one real width with bounds, a learning rate and the
  freezing rule (:func:`freeze_decision`: the integer width settled and no
  longer drifting, or alternating between two neighbours, then the higher one).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import QConv2d, QLinear
from .quantizers import make_quantizers

__all__ = ["BitState", "QuantLayer", "qat_model", "quant_layers", "set_mac", "layer_macs",
           "bitops", "hw_cost", "hw_gradients", "hw_gradients_per_layer", "fd_gradients",
           "fd_gradients_per_layer", "frozen_bn_stats", "freeze_decision", "BitWidth",
           "INPUT_BITS", "SIGNED_INPUT"]

#: The first layer reads the raw 8-bit pixels: its input is not quantized further and
#: counts as 8 bits in BitOPs.
INPUT_BITS = 8

#: Attribute of a Linear/Conv2d whose input may be negative (quantized on a signed grid);
#: models set it (see :mod:`sim.zoo`).
SIGNED_INPUT = "srmac_signed_input"


@dataclass
class BitState:
    """Integer widths (``ceil`` of the real ones) the learning layers use now."""

    w_bits: int = 8
    a_bits: int = 8


class QuantLayer(nn.Module):
    """A ``nn.Linear`` or ``nn.Conv2d`` with quantized weights and input.

    ``wq``, ``aq``: the weight and input quantizers (``aq=None``: the first
    layer, whose input is the raw image). ``fixed_w`` / ``fixed_a``: widths
    kept fixed (the first and last layers), else the layer reads
    ``state.w_bits`` / ``state.a_bits``. ``name`` is its path in the model.
    """

    def __init__(self, layer: nn.Module, state: BitState, *, wq: nn.Module,
                 aq: nn.Module | None, fixed_w: int | None = None, fixed_a: int | None = None,
                 name: str = ""):
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise ValueError(f"QuantLayer wraps nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        self.layer, self.state, self.wq, self.aq = layer, state, wq, aq
        self.fixed_w, self.fixed_a, self.name = fixed_w, fixed_a, name
        self.macs = 0  # multiply-accumulates per sample, set by layer_macs()
        self._emu = []  # [QLinear | QConv2d] when the GEMMs run on an emulated MAC (set_mac)

    @property
    def quant_input(self) -> bool:
        return self.aq is not None

    @property
    def learn_w(self) -> bool:
        """Whether the weight width is learned (not fixed)."""
        return self.fixed_w is None

    @property
    def learn_a(self) -> bool:
        """Whether the input width is learned (quantized and not fixed)."""
        return self.aq is not None and self.fixed_a is None

    @property
    def w_bits(self) -> int:
        return self.state.w_bits if self.fixed_w is None else self.fixed_w

    @property
    def a_bits(self) -> int:
        if self.aq is None:
            return INPUT_BITS
        return self.state.a_bits if self.fixed_a is None else self.fixed_a

    def set_mac(self, config, layer_id: int = 0, seed: int = 0) -> None:
        """Run this layer's GEMMs on the emulated MAC ``config`` (``None``: float).

        The GEMMs (forward and both backward ones, as :class:`sim.QLinear` /
        :class:`sim.QConv2d` run them) take the fake-quantized operands
        ``q_x``, ``q_w``, which the MAC's input quantizers round to its input
        format (a grid finer than the format's precision is rounded there, as
        it would be on an FP8 datapath); the chains start from the bias.
        """
        if config is None:
            self._emu = []
            return
        lay = self.layer
        dev = lay.weight.device
        if isinstance(lay, nn.Linear):
            emu = QLinear(lay.in_features, lay.out_features, False, config=config,
                          layer_id=layer_id, seed=seed, device=dev)
        else:
            emu = QConv2d(lay.in_channels, lay.out_channels, lay.kernel_size, lay.stride,
                          lay.padding, lay.dilation, lay.groups, False, lay.padding_mode,
                          config=config, layer_id=layer_id, seed=seed, device=dev)
        self._emu = [emu]  # a list: not a sub-module, so its unused weight is no parameter

    def forward(self, x):
        if self.aq is not None:
            x = self.aq(x, self.a_bits)
        w = self.wq(self.layer.weight, self.w_bits)
        lay = self.layer
        if self._emu:
            return self._emulated(x, w)
        if isinstance(lay, nn.Linear):
            return F.linear(x, w, lay.bias)
        return F.conv2d(x, w, lay.bias, lay.stride, lay.padding, lay.dilation, lay.groups)

    def _emulated(self, x, w):
        # the emulated layer's GEMMs on the quantized operands; this layer's bias (a
        # training call advances the emulated layer's step, an evaluation does not)
        emu = self._emu[0]
        emu.train(self.training)
        return emu.emulate(x, w, self.layer.bias)


def qat_model(model: nn.Module, state: BitState, *, per_layer: bool = False,
              quantizer: str = "dorefa-pact", first_last_bits: int | None = 8) -> nn.Module:
    """Wrap every Linear/Conv2d of ``model`` (in place) in a :class:`QuantLayer`.

    The first such layer in module order keeps its float input; every other
    one quantizes its input on the unsigned grid, so it must follow a ReLU
    (directly, or through pooling / a residual add + ReLU), as in all models
    of :mod:`sim.models`, unless the layer has the attribute
    :data:`SIGNED_INPUT` set (then a signed grid). ``first_last_bits`` (e.g.
    8): the first layer's weights and the last layer's weights and input stay
    at that width; ``None``: they learn like the others. ``per_layer=False``:
    all layers share ``state``; ``True``: each gets its own copy of it.
    """
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not targets:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to quantize")
    last = len(targets) - 1
    for i, (path, child) in enumerate(targets):
        st = BitState(state.w_bits, state.a_bits) if per_layer else state
        wq, aq = make_quantizers(quantizer, getattr(child, SIGNED_INPUT, False), i > 0)
        end = first_last_bits if i in (0, last) else None
        q = QuantLayer(child, st, wq=wq, aq=aq, fixed_w=end,
                       fixed_a=end if i == last and i > 0 else None, name=path)
        parent_name, _, attr = path.rpartition(".")
        if not attr:
            raise ValueError("qat_model wraps the layers of a model, not a bare layer")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, q)
    return model


def quant_layers(model: nn.Module) -> list[QuantLayer]:
    """The :class:`QuantLayer` modules of ``model`` in module order (the first reads raw input)."""
    return [m for m in model.modules() if isinstance(m, QuantLayer)]


def set_mac(model: nn.Module, config, seed: int = 0) -> None:
    """Run every QuantLayer's GEMMs on the emulated MAC ``config`` (e.g. ``"e5m2:e6m5:sr_eager:4"``)."""
    for i, m in enumerate(quant_layers(model)):
        try:
            m.set_mac(config, layer_id=i, seed=seed)
        except ValueError as exc:
            raise ValueError(f"--mac {config}: layer {m.name or i}: {exc}") from None


def layer_macs(model: nn.Module, input_shape=(1, 1, 28, 28)) -> list[QuantLayer]:
    """Set and return each QuantLayer's MACs per sample (from one forward pass of zeros).

    The quantizers' state (initialisation flags, steps, clips) is restored
    afterwards: the zero input must not initialise them.
    """
    layers = quant_layers(model)
    hooks = []

    def hook(mod, inp, out):
        per_out = mod.layer.weight[0].numel()  # in_features, or in_ch/groups * kh * kw
        mod.macs = int(out[0].numel() * per_out)

    for m in layers:
        hooks.append(m.register_forward_hook(hook))
    saved = [(q, {k: v.clone() for k, v in q.state_dict().items()})
             for m in layers for q in (m.wq, m.aq) if q is not None]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
        for q, sd in saved:
            q.load_state_dict(sd)
    return layers


def bitops(model: nn.Module, w_bits: int | None = None, a_bits: int | None = None) -> int:
    """BitOPs per sample: sum over layers of ``w_l * a_l * MACs_l``.

    Fixed layers count at their fixed widths, the first layer's input at 8
    bits; learned widths are ``w_bits`` / ``a_bits`` when given, else each
    layer's current ones.
    """
    total = 0
    for m in quant_layers(model):
        wb = w_bits if (w_bits is not None and m.learn_w) else m.w_bits
        ab = a_bits if (a_bits is not None and m.learn_a) else m.a_bits
        total += int(wb) * int(ab) * m.macs
    return total


def _widths(layers, n_w, n_a) -> tuple[list[float], list[float]]:
    """Per-layer real widths: learned ones from ``n_w`` / ``n_a``, fixed ones their bits."""
    w = [float(nw) if m.learn_w else float(m.w_bits) for m, nw in zip(layers, n_w, strict=True)]
    a = [float(na) if m.learn_a else float(m.a_bits) for m, na in zip(layers, n_a, strict=True)]
    return w, a


def _total_macs(layers) -> int:
    total = sum(m.macs for m in layers)
    if total <= 0:
        raise ValueError("layer MACs are not set: call layer_macs(model, input_shape) first")
    return total


def hw_cost(layers: Sequence[QuantLayer], n_w, n_a) -> float:
    """BitOPs per MAC ``sum_l MACs_l * w_l * a_l / sum_l MACs_l`` at real widths.

    ``n_w``, ``n_a``: one real width for every learning layer (network-wide),
    or a list with one entry per layer (``None`` where the width is fixed).
    """
    n_w, n_a = _per_layer(layers, n_w), _per_layer(layers, n_a)
    w, a = _widths(layers, n_w, n_a)
    return sum(m.macs * wl * al for m, wl, al in zip(layers, w, a, strict=True)) / _total_macs(layers)


def _per_layer(layers, n):
    return list(n) if isinstance(n, (list, tuple)) else [n] * len(layers)


def hw_gradients_per_layer(layers: Sequence[QuantLayer], n_w: Sequence[float | None],
                           n_a: Sequence[float | None]) -> list[tuple[float | None, float | None]]:
    """Gradient of :func:`hw_cost` per layer: ``(a_l * MACs_l / M, w_l * MACs_l / M)``.

    ``None`` where a width is fixed (first and last layers, the first layer's
    input). With equal learned widths everywhere, the sums over layers are
    :func:`hw_gradients`.
    """
    total = _total_macs(layers)
    w, a = _widths(layers, n_w, n_a)
    return [(al * m.macs / total if m.learn_w else None, wl * m.macs / total if m.learn_a else None)
            for m, wl, al in zip(layers, w, a, strict=True)]


def hw_gradients(layers: Sequence[QuantLayer], n_w: float, n_a: float) -> tuple[float, float]:
    """Gradient of :func:`hw_cost` in ``(N_w, N_a)`` when every learning layer shares them."""
    g = hw_gradients_per_layer(layers, [n_w] * len(layers), [n_a] * len(layers))
    return sum(gw for gw, _ in g if gw is not None), sum(ga for _, ga in g if ga is not None)


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


def _loss(model, x, y) -> float:
    with torch.no_grad(), frozen_bn_stats(model):
        return float(F.cross_entropy(model(x), y))


@contextlib.contextmanager
def _widths_set(state: BitState, w_bits: int, a_bits: int):
    old = (state.w_bits, state.a_bits)
    state.w_bits, state.a_bits = int(w_bits), int(a_bits)
    try:
        yield
    finally:
        state.w_bits, state.a_bits = old


def fd_gradients(model, state: BitState, x, y, w_bits: int, a_bits: int) -> tuple[float, float]:
    """Finite-difference task-loss gradients ``(dL/dN_w, dL/dN_a)`` on one batch.

    ``dL/dN_w = L(w, a) - L(w - 1, a)`` and ``dL/dN_a = L(w, a) - L(w, a - 1)``,
    with ``w = ceil(N_w)``, ``a = ceil(N_a)`` (both >= 2) the widths of every
    learning layer (``state``). Usually negative: one more bit lowers the loss.
    """
    if w_bits < 2 or a_bits < 2:
        raise ValueError(f"finite differences need widths >= 2, got W{w_bits}/A{a_bits}")
    with _widths_set(state, w_bits, a_bits):
        base = _loss(model, x, y)
    with _widths_set(state, w_bits - 1, a_bits):
        lw = _loss(model, x, y)
    with _widths_set(state, w_bits, a_bits - 1):
        la = _loss(model, x, y)
    return base - lw, base - la


def fd_gradients_per_layer(model, x, y) -> list[tuple[float | None, float | None]]:
    """Per-layer finite-difference gradients ``[(dL/dN_w,l, dL/dN_a,l), ...]`` on one batch.

    For layer ``l`` at its own widths ``(w_l, a_l)``, every other layer
    unchanged: ``dL/dN_w,l = L - L(w_l - 1)``, ``dL/dN_a,l = L - L(a_l - 1)``,
    with ``L`` the loss at everyone's current widths; ``None`` for a fixed
    width. Costs one forward pass plus one per learned width. Every layer
    must have its own :class:`BitState` (``qat_model(per_layer=True)``).
    """
    layers = quant_layers(model)
    if len({id(m.state) for m in layers}) != len(layers):
        raise ValueError("per-layer finite differences need qat_model(..., per_layer=True)")
    for m in layers:
        if (m.learn_w and m.state.w_bits < 2) or (m.learn_a and m.state.a_bits < 2):
            raise ValueError(f"finite differences need widths >= 2, got "
                             f"W{m.state.w_bits}/A{m.state.a_bits} in layer {m.name}")
    base = _loss(model, x, y)
    out = []
    for m in layers:
        w, a = m.state.w_bits, m.state.a_bits
        gw = ga = None
        if m.learn_w:
            with _widths_set(m.state, w - 1, a):
                gw = base - _loss(model, x, y)
        if m.learn_a:
            with _widths_set(m.state, w, a - 1):
                ga = base - _loss(model, x, y)
        out.append((gw, ga))
    return out


def freeze_decision(ints: Sequence[int], values: Sequence[float] | None = None) -> int | None:
    """The width to freeze at after a window of integer widths, or ``None`` (keep learning).

    * settled: every value in the window is the same ``k``, and the real
      ``values`` (when given) no longer drift: their net move over the window is
      less than half their total movement (or zero movement: held at a bound)
      -> ``k``;
    * oscillating: the window holds exactly two neighbours ``k``, ``k + 1``
      and goes back and forth (at least two changes) -> ``k + 1``, the higher.

    A window that crosses one boundary once, spans three or more values, or
    drifts steadily inside one integer width is still moving.
    """
    distinct = set(ints)
    if len(distinct) == 1:
        if values is not None and len(values) > 1:
            path = sum(abs(q - p) for p, q in zip(values, values[1:], strict=False))
            if path > 0 and abs(values[-1] - values[0]) >= 0.5 * path:
                return None  # drifting (slowly) inside one integer width
        return next(iter(distinct))
    lo, hi = min(distinct), max(distinct)
    if len(distinct) == 2 and hi == lo + 1:
        changes = sum(1 for p, q in zip(ints, ints[1:], strict=False) if p != q)
        if changes >= 2:
            return hi
    return None


class BitWidth:
    """A real-valued bit-width ``N`` in ``[lo, hi]``, used as ``ceil(N)`` bits.

    Update (while not frozen): ``N <- clip(N - lr * g, lo, hi)``. Freezing:
    after each update, the integer widths of the last ``patience`` updates
    (and the one before them) and the real values go to :func:`freeze_decision`;
    when it decides,
    ``N`` is set to that width and every later :meth:`update` leaves it
    unchanged (:attr:`frozen_at`: the update count, :attr:`frozen_how`:
    ``"settled"`` or ``"oscillating"``).
    """

    def __init__(self, init: float, lo: float, hi: float, lr: float, patience: int,
                 name: str = "N"):
        if not (2 <= lo <= hi):
            raise ValueError(f"{name} bounds must satisfy 2 <= lo <= hi, got [{lo}, {hi}]")
        if not lo <= init <= hi:
            raise ValueError(f"{name} initial width {init} is outside its bounds [{lo}, {hi}]")
        if not (lr >= 0 and math.isfinite(lr)):
            raise ValueError(f"bit-width learning rate must be >= 0, got {lr}")
        if patience < 1:
            raise ValueError(f"freeze patience must be >= 1 update, got {patience}")
        self.name, self.lo, self.hi, self.lr = name, float(lo), float(hi), float(lr)
        self.patience = int(patience)
        self.value = float(init)
        self.frozen = False
        self.frozen_at: int | None = None  # update count when it froze
        self.frozen_how: str | None = None
        self.steps = 0
        self._ints = deque([self.bits], maxlen=self.patience + 1)
        self._values = deque([self.value], maxlen=self.patience + 1)

    @property
    def bits(self) -> int:
        """Integer width the quantizers use: ``ceil(N)`` (at least ``ceil(lo)``)."""
        return max(math.ceil(self.value - 1e-9), math.ceil(self.lo - 1e-9))

    def freeze(self, bits: int | None = None, how: str = "settled") -> None:
        if not self.frozen:
            self.value = float(self.bits if bits is None else bits)
            self.frozen, self.frozen_at, self.frozen_how = True, self.steps, how

    def update(self, grad: float) -> float:
        """One step with gradient ``grad``; returns the new value."""
        if self.frozen:
            return self.value
        if not math.isfinite(grad):
            raise ValueError(f"{self.name} gradient is not finite: {grad}")
        self.steps += 1
        self.value = min(max(self.value - self.lr * grad, self.lo), self.hi)
        self._ints.append(self.bits)
        self._values.append(self.value)
        if len(self._ints) == self._ints.maxlen:
            ints = list(self._ints)
            k = freeze_decision(ints, list(self._values))
            if k is not None:
                self.freeze(k, "settled" if len(set(ints)) == 1 else "oscillating")
        return self.value
