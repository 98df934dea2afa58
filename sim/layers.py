"""``QLinear`` and ``QConv2d``: drop-in ``nn.Linear`` / ``nn.Conv2d`` on emulated MACs.

Forward and both backward GEMMs run through the golden model (:func:`ref.matmul`
on codes) inside a custom :class:`torch.autograd.Function`:

* forward ``y = x W^T + b``: chains start from the bias (rounded to nearest in
  the accumulator format), then accumulate ``x[i, k] * W[j, k]``;
* ``dx = dy W`` with ``config.bwd_input``;
* ``dW = dy^T x`` and ``db = 1^T dy`` with ``config.bwd_weight``.

An operand is rounded to a GEMM's input format once per layer call: when two
GEMMs share an input format they share the codes (as a stored FP8 tensor
would be reused), otherwise it is rounded again with its own seed.

Seeds: every call of a layer draws fresh seeds from
``(seed, layer_id, call index, training, stream, rank)`` (:mod:`sim.seeds`), so
a run is deterministic for a given base seed and call sequence.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair

import ref

from .gemm import conv_gemm, conv_input_grad_codes, gemm, unfold_codes
from .quant import LayerConfig, make_layer_config
from .seeds import Stream, derive_seed

__all__ = ["QLinear", "QConv2d", "QLayerMixin"]

_STREAMS = [v for k, v in vars(Stream).items() if k.isupper() and v < Stream.OPT_MOMENTUM]


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class QLayerMixin:
    """State shared by the emulated layers: configuration, seeds and a MAC count."""

    def _init_q(self, config, layer_id: int, seed: int):
        self.config = make_layer_config(config)
        self.layer_id = int(layer_id)
        self.seed = int(seed)
        self.calls = {True: 0, False: 0}  # training / eval call counters
        self.macs = 0  # emulated MACs performed by this layer (all three GEMMs)

    def _copy_from(self, mod):
        """Take ``mod``'s parameters and training mode (for ``from_float``); returns self."""
        with torch.no_grad():
            self.weight.copy_(mod.weight)
            if mod.bias is not None:
                self.bias.copy_(mod.bias)
        self.train(mod.training)
        return self

    def set_config(self, config) -> None:
        self.config = make_layer_config(config)

    def next_seeds(self) -> dict[int, int]:
        """Seeds of this call, per stream; advances the call counter of the mode."""
        mode = bool(self.training)
        call = self.calls[mode]
        self.calls[mode] = call + 1
        rank = _rank()
        return {s: derive_seed(self.seed, self.layer_id, call, int(mode), s, rank)
                for s in _STREAMS}

    def q_extra_repr(self) -> str:
        c = self.config
        return (f"layer_id={self.layer_id}, fwd={c.fwd.spec()}, bwd_input={c.bwd_input.spec()}, "
                f"bwd_weight={c.bwd_weight.spec()}, weight={c.weight.spec()}, act={c.act.spec()}, "
                f"grad={c.grad.spec()}")


def _codes(cache, key, quantizer, x, fmt, seed):
    """Codes of ``x`` in ``fmt``, rounded once per (operand, format) per layer call."""
    k = (key, fmt)
    if k not in cache:
        cache[k] = quantizer.encode(x, fmt, seed)
    return cache[k]


def _ones_codes(m, fmt, device):
    return ref.encode(torch.ones((1, m), dtype=torch.float64, device=device), fmt)


def _bias_grad(gcodes, cfg, seeds, dtype, layer):
    """Bias gradient: the emulated GEMM of a ones row with the (rows x out) gradient codes."""
    f = cfg.bwd_weight.in_fmt
    ones = _ones_codes(gcodes.shape[0], f, gcodes.device)
    return gemm(ones, gcodes, cfg.bwd_weight, seeds[Stream.BIAS_GEMM], dtype=dtype,
                counter=layer).reshape(-1)


class _QLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, layer, seeds):
        cfg: LayerConfig = layer.config
        f = cfg.fwd.in_fmt
        cache = {}
        xc = _codes(cache, "x", cfg.act, x, f, seeds[Stream.Q_ACT])
        wc = _codes(cache, "w", cfg.weight, weight, f, seeds[Stream.Q_WEIGHT])
        c = None if bias is None else ref.encode(bias.detach().reshape(1, -1), cfg.fwd.acc_fmt)
        y = gemm(xc, wc.transpose(0, 1), cfg.fwd, seeds[Stream.FWD_GEMM], c, dtype=x.dtype,
                 counter=layer)
        ctx.save_for_backward(x, weight)
        ctx.layer, ctx.seeds, ctx.cache, ctx.cfg = layer, seeds, cache, cfg
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        cfg, seeds, cache, layer = ctx.cfg, ctx.seeds, ctx.cache, ctx.layer
        g = g.contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            f = cfg.bwd_input.in_fmt
            gc = _codes(cache, "g", cfg.grad, g, f, seeds[Stream.Q_GRAD])
            wc = _codes(cache, "w", cfg.weight, weight, f, seeds[Stream.Q_WEIGHT_BWD])
            dx = gemm(gc, wc, cfg.bwd_input, seeds[Stream.BWD_INPUT_GEMM], dtype=x.dtype,
                      counter=layer)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            f = cfg.bwd_weight.in_fmt
            gc = _codes(cache, "g", cfg.grad, g, f, seeds[Stream.Q_GRAD_BWD])
            if ctx.needs_input_grad[1]:
                xc = _codes(cache, "x", cfg.act, x, f, seeds[Stream.Q_ACT_BWD])
                dw = gemm(gc.transpose(0, 1), xc, cfg.bwd_weight, seeds[Stream.BWD_WEIGHT_GEMM],
                          dtype=weight.dtype, counter=layer)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                db = _bias_grad(gc, cfg, seeds, weight.dtype, layer)
        ctx.cache = None
        return dx, dw, db, None, None


class QLinear(QLayerMixin, nn.Linear):
    """``nn.Linear`` whose three GEMMs run on the emulated MAC of ``config``.

    ``config``: a :class:`sim.LayerConfig` or a MAC spec for all three GEMMs
    (e.g. ``"e5m2:e6m5:sr_eager:4"``). Inputs may have leading dimensions.
    """

    def __init__(self, in_features, out_features, bias=True, *, config="fp32:fp32:rn",
                 layer_id=0, seed=0, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._init_q(config, layer_id, seed)

    @classmethod
    def from_float(cls, mod: nn.Linear, config, layer_id=0, seed=0) -> QLinear:
        q = cls(mod.in_features, mod.out_features, mod.bias is not None, config=config,
                layer_id=layer_id, seed=seed, device=mod.weight.device, dtype=mod.weight.dtype)
        return q._copy_from(mod)

    def forward(self, x):
        lead = x.shape[:-1]
        y = _QLinearFn.apply(x.reshape(-1, self.in_features), self.weight, self.bias, self,
                             self.next_seeds())
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", " + self.q_extra_repr()


class _QConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, layer, seeds):
        cfg: LayerConfig = layer.config
        geo = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
        f = cfg.fwd.in_fmt
        cache = {}
        xc = _codes(cache, "x", cfg.act, x, f, seeds[Stream.Q_ACT])
        wc = _codes(cache, "w", cfg.weight, weight, f, seeds[Stream.Q_WEIGHT])
        c = None if bias is None else ref.encode(bias.detach(), cfg.fwd.acc_fmt)
        y, cols = conv_gemm(xc, wc, cfg.fwd, seeds[Stream.FWD_GEMM], c=c, dtype=x.dtype,
                            counter=layer, **geo)
        cache[("cols", f)] = cols
        ctx.save_for_backward(x, weight)
        ctx.layer, ctx.seeds, ctx.cache, ctx.cfg, ctx.geo = layer, seeds, cache, cfg, geo
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        cfg, seeds, cache, layer, geo = ctx.cfg, ctx.seeds, ctx.cache, ctx.layer, ctx.geo
        g = g.contiguous()
        n, o = g.shape[:2]
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            f = cfg.bwd_input.in_fmt
            gc = _codes(cache, "g", cfg.grad, g, f, seeds[Stream.Q_GRAD])
            wc = _codes(cache, "w", cfg.weight, weight, f, seeds[Stream.Q_WEIGHT_BWD])
            gp, wt = conv_input_grad_codes(gc, wc, x.shape[2:], **geo)
            dx, _ = conv_gemm(gp, wt, cfg.bwd_input, seeds[Stream.BWD_INPUT_GEMM], stride=(1, 1),
                              padding=(0, 0), dilation=geo["dilation"], dtype=x.dtype,
                              counter=layer)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            f = cfg.bwd_weight.in_fmt
            gc = _codes(cache, "g", cfg.grad, g, f, seeds[Stream.Q_GRAD_BWD])
            gm = gc.permute(0, 2, 3, 1).reshape(-1, o)  # rows (n, p, q), as im2col
            if ctx.needs_input_grad[1]:
                if ("cols", f) not in cache:
                    xc = _codes(cache, "x", cfg.act, x, f, seeds[Stream.Q_ACT_BWD])
                    cache[("cols", f)] = unfold_codes(xc, weight.shape[2:], **geo)
                dw = gemm(gm.transpose(0, 1), cache[("cols", f)], cfg.bwd_weight,
                          seeds[Stream.BWD_WEIGHT_GEMM], dtype=weight.dtype, counter=layer)
                dw = dw.reshape(weight.shape)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                db = _bias_grad(gm, cfg, seeds, weight.dtype, layer)
        ctx.cache = None
        return dx, dw, db, None, None


class QConv2d(QLayerMixin, nn.Conv2d):
    """``nn.Conv2d`` (groups 1, zero padding) as im2col + emulated GEMMs.

    Forward: chains over ``(c, i, j)``; ``dx``: a stride-1 convolution of the
    zero-stuffed output gradient with the flipped kernel, chains over
    ``(o, i, j)``; ``dW``: chains over ``(n, p, q)``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", *, config="fp32:fp32:rn", layer_id=0,
                 seed=0, device=None, dtype=None):
        if groups != 1:
            raise ValueError(f"QConv2d supports groups=1 only, got groups={groups}")
        if padding_mode != "zeros":
            raise ValueError(f"QConv2d supports padding_mode='zeros' only, got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"QConv2d needs integer padding, got {padding!r}: give the pad sizes")
        super().__init__(in_channels, out_channels, kernel_size, stride, _pair(padding), dilation,
                         groups, bias, padding_mode, device=device, dtype=dtype)
        self._init_q(config, layer_id, seed)

    @classmethod
    def from_float(cls, mod: nn.Conv2d, config, layer_id=0, seed=0) -> QConv2d:
        q = cls(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                mod.dilation, mod.groups, mod.bias is not None, mod.padding_mode, config=config,
                layer_id=layer_id, seed=seed, device=mod.weight.device, dtype=mod.weight.dtype)
        return q._copy_from(mod)

    def forward(self, x):
        squeeze = x.dim() == 3
        if squeeze:
            x = x.unsqueeze(0)
        y = _QConv2dFn.apply(x, self.weight, self.bias, self, self.next_seeds())
        return y.squeeze(0) if squeeze else y

    def extra_repr(self) -> str:
        return super().extra_repr() + ", " + self.q_extra_repr()
