"""The emulated layers as PyTorch custom operators: ``torch.ops.srmac.*``.

Each layer call is one operator whose kernel runs its GEMM on codes through
the golden model; its backward is a second operator running the two
backward GEMMs. Registered with :mod:`torch.library`:

* a fake (meta) kernel for each, so shapes propagate without data: meta
  tensors work and ``torch.compile`` traces a converted model in one graph;
* ``setup_context`` / backward (``register_autograd``), so autograd, AOT
  autograd and ``torch.compile`` see an ordinary differentiable op;
* a vmap rule: ``vmap(f)(x)[i] == f(x[i])``, the op applied to each slice
  with the same seeds (a batch of independent calls).

Every argument is a tensor or a plain value: the layer configuration travels
as its spec string (:meth:`sim.LayerConfig.spec`), the seeds as the layer's
``srmac_rng`` tensor ``(base seed, layer id, step)``, the sample layout as
``(stride, offset)`` (:mod:`sim.seeds`). Nothing in a layer's ``forward``
reads a tensor's value, so nothing breaks a compiled graph.

Operand rounding: an operand is rounded into a GEMM's input format once per
layer call and format, with the stream of its first GEMM (``Q_ACT`` for the
activations of the forward GEMM ...) or, when a later GEMM takes another
format, that GEMM's stream (``Q_ACT_BWD`` ...). With a storage format
(``e4m3:sr:8``) it is rounded once, with the first stream, and carried into
every GEMM format. The backward operator recomputes the codes from the same
seeds, so they are the forward's codes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

import ref

from .gemm import (
    bgemm_codes,
    conv_codes,
    conv_input_grad_codes,
    conv_weight_grad_codes,
    decode,
    gemm,
    out_size,
    pad_codes,
    transpose_weight_codes,
    unfold_codes,
    unpad_grad,
)
from .quant import LayerConfig, QuantSpec, parse_quantizer
from .seeds import Positions, Stream, derive_seed

__all__ = ["qlinear", "qconv2d", "qmatmul", "quantize", "mac_count", "reset_mac_count"]

_MACS: dict[int, int] = {}


def mac_count(counter: int) -> int:
    """Emulated MACs run by the kernels for ``counter`` (a layer's counter id)."""
    return _MACS.get(counter, 0)


def reset_mac_count(counter: int, value: int = 0) -> None:
    _MACS[counter] = value


def _count(counter: int, n: int) -> None:
    if counter >= 0:
        _MACS[counter] = _MACS.get(counter, 0) + int(n)


class _Call:
    """What a kernel needs from its arguments: configuration, seeds, positions."""

    def __init__(self, rng: Tensor, config: str | None, layout, training: bool):
        self.cfg = LayerConfig.from_spec(config) if config is not None else None
        self.seed, self.layer_id, self.step = (int(v) for v in rng.tolist())
        self.training = bool(training)
        self.pos = Positions(layout)

    def seed_of(self, stream: int, *, shard: bool = False) -> int:
        """Seed of ``stream`` in this call; ``shard``: a chain over this rank's samples only."""
        return derive_seed(self.seed, self.layer_id, self.step, int(self.training), stream,
                           self.pos.shard if shard else 0)

    def operand(self, spec: QuantSpec, x, fmt, first_fmt, stream, later_stream, positions):
        """Codes of operand ``x`` in GEMM format ``fmt`` (see the module doc)."""
        same = spec.fmt is not None or fmt == first_fmt
        return spec.encode(x, fmt, self.seed_of(stream if same else later_stream), positions)

    def act(self, x, fmt, positions):
        """Activation codes for a GEMM in ``fmt`` (first used by the forward GEMM)."""
        return self.operand(self.cfg.act, x, fmt, self.cfg.fwd.in_fmt, Stream.Q_ACT,
                            Stream.Q_ACT_BWD, positions)

    def weight(self, x, fmt, positions):
        """Weight codes for a GEMM in ``fmt`` (first used by the forward GEMM)."""
        return self.operand(self.cfg.weight, x, fmt, self.cfg.fwd.in_fmt, Stream.Q_WEIGHT,
                            Stream.Q_WEIGHT_BWD, positions)

    def grad(self, x, fmt, positions):
        """Output-gradient codes for a GEMM in ``fmt`` (first used by the input-gradient GEMM)."""
        return self.operand(self.cfg.grad, x, fmt, self.cfg.bwd_input.in_fmt, Stream.Q_GRAD,
                            Stream.Q_GRAD_BWD, positions)


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


def _loop_vmap(op, n_out: int = 1):
    """A vmap rule that applies ``op`` to each slice (same seeds: independent calls)."""

    def rule(info, in_dims, *args):
        outs = []
        for i in range(info.batch_size):
            sliced = [a.select(d, i) if isinstance(a, Tensor) and d is not None else a
                      for a, d in zip(args, in_dims, strict=True)]
            outs.append(op(*sliced))
        if n_out == 1:
            return torch.stack(outs), 0
        return tuple(torch.stack([o[k] for o in outs]) for k in range(n_out)), (0,) * n_out

    torch.library.register_vmap(op, rule)


# ---- seeds -------------------------------------------------------------------------------

@torch.library.custom_op("srmac::rng_snapshot", mutates_args=())
def rng_snapshot(rng: Tensor) -> Tensor:
    """A copy of a layer's ``srmac_rng`` before the call advances it.

    An operator, not ``rng.clone()``: Inductor's partitioner recomputes a cheap
    clone in the backward graph from the buffer, which by then holds the
    advanced step, so the backward GEMMs would draw the next call's seeds.
    An operator's output is saved instead.
    """
    return rng.clone()


@rng_snapshot.register_fake
def _(rng):
    return torch.empty_like(rng)


# ---- linear ------------------------------------------------------------------------------

def _rows(x: Tensor) -> tuple[Tensor, int, int]:
    """``x`` as (rows, features), with its sample count and rows per sample."""
    x2 = x.reshape(-1, x.shape[-1])
    n = x.shape[0] if x.dim() >= 2 else 1
    return x2, n, (x2.shape[0] // n if n else 0)


def _elements(pos: Positions, n: int, x2: Tensor):
    """Global positions of the elements of a (rows, features) tensor of ``n`` samples."""
    if pos.trivial or n == 0:
        return None
    return pos.elements((n, x2.numel() // n), x2.device).reshape(x2.shape)


@torch.library.custom_op("srmac::qlinear", mutates_args=())
def qlinear(x: Tensor, weight: Tensor, bias: Tensor | None, rng: Tensor, config: str,
            layout: list[int], training: bool, counter: int) -> Tensor:
    """``x @ weight^T + bias`` on the forward MAC (chains start from the bias, RN in acc)."""
    call = _Call(rng, config, layout, training)
    cfg = call.cfg
    x2, n, per = _rows(x)
    f = cfg.fwd.in_fmt
    xc = call.act(x2, f, _elements(call.pos, n, x2))
    wc = call.weight(weight, f, None)
    c = None if bias is None else ref.encode(bias.detach().reshape(1, -1), cfg.fwd.acc_fmt)
    y = gemm(xc, wc.t(), cfg.fwd, call.seed_of(Stream.FWD_GEMM), c, dtype=x.dtype,
             rows=call.pos.rows(n, per, x.device))
    _count(counter, x2.shape[0] * weight.shape[0] * weight.shape[1])
    return y.reshape(*x.shape[:-1], weight.shape[0])


@qlinear.register_fake
def _(x, weight, bias, rng, config, layout, training, counter):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@torch.library.custom_op("srmac::qlinear_backward", mutates_args=())
def qlinear_backward(grad: Tensor, x: Tensor, weight: Tensor, rng: Tensor, config: str,
                     layout: list[int], training: bool, counter: int,
                     needs: list[bool]) -> tuple[Tensor, Tensor, Tensor]:
    """``(dx, dW, db)``: ``dx = g W`` (bwd_input), ``dW = g^T x``, ``db = 1^T g`` (bwd_weight)."""
    call = _Call(rng, config, layout, training)
    cfg = call.cfg
    x2, n, per = _rows(x)
    g2 = grad.reshape(-1, weight.shape[0])
    elems = _elements(call.pos, n, g2)
    m, (o, k) = g2.shape[0], weight.shape
    dx, dw, db = _empty(x), _empty(weight), _empty(weight)
    if needs[0]:
        f = cfg.bwd_input.in_fmt
        gc = call.grad(g2, f, elems)
        wc = call.weight(weight, f, None)
        dx = gemm(gc, wc, cfg.bwd_input, call.seed_of(Stream.BWD_INPUT_GEMM), dtype=x.dtype,
                  rows=call.pos.rows(n, per, x.device)).reshape(x.shape)
        _count(counter, m * o * k)
    if needs[1] or needs[2]:
        f = cfg.bwd_weight.in_fmt
        gc = call.grad(g2, f, elems)
        if needs[1]:
            xc = call.act(x2, f, _elements(call.pos, n, x2))
            dw = gemm(gc.t(), xc, cfg.bwd_weight,
                      call.seed_of(Stream.BWD_WEIGHT_GEMM, shard=True), dtype=weight.dtype)
            _count(counter, m * o * k)
        if needs[2]:
            db = _bias_grad(gc, cfg, call, weight.dtype)
            _count(counter, m * o)
    return dx, dw, db


def _bias_grad(gm, cfg, call, dtype):
    """``1^T g``: the emulated GEMM of a row of ones with the (rows, out) gradient codes."""
    one = ref.encode(torch.ones(1, dtype=torch.float64), cfg.bwd_weight.in_fmt)  # 1.0's code
    ones = torch.full((1, gm.shape[0]), int(one[0]), dtype=torch.int64, device=gm.device)
    return gemm(ones, gm, cfg.bwd_weight, call.seed_of(Stream.BIAS_GEMM, shard=True),
                dtype=dtype).reshape(-1)


@qlinear_backward.register_fake
def _(grad, x, weight, rng, config, layout, training, counter, needs):
    return (x.new_empty(x.shape) if needs[0] else x.new_empty(0),
            weight.new_empty(weight.shape) if needs[1] else weight.new_empty(0),
            weight.new_empty(weight.shape[0]) if needs[2] else weight.new_empty(0))


def _qlinear_setup(ctx, inputs, output):
    x, weight, bias, rng, *rest = inputs
    ctx.save_for_backward(x, weight, rng)
    ctx.rest, ctx.has_bias = rest, bias is not None


def _qlinear_bwd(ctx, grad):
    x, weight, rng = ctx.saved_tensors
    need = ctx.needs_input_grad
    needs = [bool(need[0]), bool(need[1]), ctx.has_bias and bool(need[2])]
    dx, dw, db = qlinear_backward(grad, x, weight, rng, *ctx.rest, needs)
    return (dx if needs[0] else None, dw if needs[1] else None, db if needs[2] else None,
            None, None, None, None, None)


qlinear.register_autograd(_qlinear_bwd, setup_context=_qlinear_setup)


# ---- conv2d ------------------------------------------------------------------------------

@torch.library.custom_op("srmac::qconv2d", mutates_args=())
def qconv2d(x: Tensor, weight: Tensor, bias: Tensor | None, rng: Tensor, config: str,
            stride: list[int], pads: list[int], dilation: list[int], groups: int,
            padding_mode: str, layout: list[int], training: bool, counter: int) -> Tensor:
    """2-D convolution of (N, C, H, W) ``x``; ``pads``: (left, right, top, bottom)."""
    call = _Call(rng, config, layout, training)
    cfg = call.cfg
    n = x.shape[0]
    o, cg, kh, kw = weight.shape
    f = cfg.fwd.in_fmt
    xc = call.act(x, f, call.pos.elements(x.shape, x.device))
    wc = call.weight(weight, f, None)
    xp = pad_codes(xc, pads, padding_mode)
    ho, wo = _conv_out(x.shape, weight.shape, stride, pads, dilation)
    c = None if bias is None else ref.encode(bias.detach(), cfg.fwd.acc_fmt)
    codes, _ = conv_codes(xp, wc, cfg.fwd, call.seed_of(Stream.FWD_GEMM), stride=stride,
                          dilation=dilation, groups=groups, c=c,
                          rows=call.pos.rows(n, ho * wo, x.device))
    _count(counter, n * ho * wo * o * cg * kh * kw)
    return decode(codes, cfg.fwd.acc_fmt).to(x.dtype)


def _conv_out(xshape, wshape, stride, pads, dilation):
    return (out_size(xshape[2], wshape[2], stride[0], pads[2] + pads[3], dilation[0]),
            out_size(xshape[3], wshape[3], stride[1], pads[0] + pads[1], dilation[1]))


@qconv2d.register_fake
def _(x, weight, bias, rng, config, stride, pads, dilation, groups, padding_mode, layout,
      training, counter):
    ho, wo = _conv_out(x.shape, weight.shape, stride, pads, dilation)
    return x.new_empty((x.shape[0], weight.shape[0], ho, wo))


@torch.library.custom_op("srmac::qconv2d_backward", mutates_args=())
def qconv2d_backward(grad: Tensor, x: Tensor, weight: Tensor, rng: Tensor, config: str,
                     stride: list[int], pads: list[int], dilation: list[int], groups: int,
                     padding_mode: str, layout: list[int], training: bool, counter: int,
                     needs: list[bool]) -> tuple[Tensor, Tensor, Tensor]:
    """``(dx, dW, db)`` of :func:`qconv2d`.

    ``dx``: a stride-1 convolution of the zero-stuffed output gradient with the
    flipped, channel-swapped kernel (chains over ``(o, i, j)`` of the group),
    on the bwd_input MAC; for zero padding only the interior is computed, for
    the other modes the padded input's gradient is folded back
    (:func:`sim.gemm.unpad_grad`). ``dW``: chains over ``(n, p, q)``; ``db``: over
    the same rows, both on the bwd_weight MAC.
    """
    call = _Call(rng, config, layout, training)
    cfg = call.cfg
    n, o, ho, wo = grad.shape
    _, cg, kh, kw = weight.shape
    left, right, top, bottom = pads
    h, w = x.shape[2], x.shape[3]
    elems = call.pos.elements(grad.shape, grad.device)
    dx, dw, db = _empty(x), _empty(weight), _empty(weight)
    if needs[0]:
        f = cfg.bwd_input.in_fmt
        gc = call.grad(grad, f, elems)
        wc = call.weight(weight, f, None)
        hp, wp = h + top + bottom, w + left + right
        gp = conv_input_grad_codes(gc, (hp, wp), (kh, kw), stride=stride, dilation=dilation)
        zeros = padding_mode == "zeros"
        if zeros:  # only the interior: outputs top .. top + h - 1 of the padded grid
            gp = gp[:, :, top:top + h + dilation[0] * (kh - 1),
                    left:left + w + dilation[1] * (kw - 1)]
            hp, wp = h, w
        codes, _ = conv_codes(gp, transpose_weight_codes(wc, groups), cfg.bwd_input,
                              call.seed_of(Stream.BWD_INPUT_GEMM), stride=(1, 1),
                              dilation=dilation, groups=groups,
                              rows=call.pos.rows(n, hp * wp, x.device))
        dxp = decode(codes, cfg.bwd_input.acc_fmt).to(x.dtype)
        dx = dxp if zeros else unpad_grad(dxp, pads, padding_mode, (h, w))
        _count(counter, n * hp * wp * x.shape[1] * (o // groups) * kh * kw)
    if needs[1] or needs[2]:
        f = cfg.bwd_weight.in_fmt
        gc = call.grad(grad, f, elems)
        gm = gc.permute(0, 2, 3, 1).reshape(-1, o)  # rows (n, p, q), as im2col
        if needs[1]:
            xc = call.act(x, f, call.pos.elements(x.shape, x.device))
            cols = unfold_codes(pad_codes(xc, pads, padding_mode), (kh, kw), stride=stride,
                                dilation=dilation)
            codes = conv_weight_grad_codes(gm, cols, cfg.bwd_weight,
                                           call.seed_of(Stream.BWD_WEIGHT_GEMM, shard=True),
                                           groups=groups)
            dw = decode(codes, cfg.bwd_weight.acc_fmt).to(weight.dtype).reshape(weight.shape)
            _count(counter, gm.shape[0] * o * cg * kh * kw)
        if needs[2]:
            db = _bias_grad(gm, cfg, call, weight.dtype)
            _count(counter, gm.shape[0] * o)
    return dx, dw, db


@qconv2d_backward.register_fake
def _(grad, x, weight, rng, config, stride, pads, dilation, groups, padding_mode, layout,
      training, counter, needs):
    return (x.new_empty(x.shape) if needs[0] else x.new_empty(0),
            weight.new_empty(weight.shape) if needs[1] else weight.new_empty(0),
            weight.new_empty(weight.shape[0]) if needs[2] else weight.new_empty(0))


def _qconv2d_bwd(ctx, grad):
    x, weight, rng = ctx.saved_tensors
    need = ctx.needs_input_grad
    needs = [bool(need[0]), bool(need[1]), ctx.has_bias and bool(need[2])]
    dx, dw, db = qconv2d_backward(grad, x, weight, rng, *ctx.rest, needs)
    return (dx if needs[0] else None, dw if needs[1] else None, db if needs[2] else None,
            *([None] * 10))


qconv2d.register_autograd(_qconv2d_bwd, setup_context=_qlinear_setup)  # same saved inputs


# ---- matmul ------------------------------------------------------------------------------

class _Plan:
    """``torch.matmul`` broadcasting of ``a @ b``: promoted shapes, batch, result, samples."""

    def __init__(self, ashape, bshape):
        if len(ashape) == 0 or len(bshape) == 0:
            raise ValueError("matmul: both arguments need at least 1 dimension, got "
                             f"{tuple(ashape)} and {tuple(bshape)}")
        self.a1 = (1, *ashape) if len(ashape) == 1 else tuple(ashape)
        self.b1 = (*bshape, 1) if len(bshape) == 1 else tuple(bshape)
        self.m, self.k = self.a1[-2:]
        self.n = self.b1[-1]
        if self.b1[-2] != self.k:
            raise ValueError(f"shape mismatch: cannot multiply {tuple(ashape)} by "
                             f"{tuple(bshape)} (inner sizes {self.k} and {self.b1[-2]})")
        try:
            self.batch = tuple(torch.broadcast_shapes(self.a1[:-2], self.b1[:-2]))
        except RuntimeError:
            raise ValueError(f"shape mismatch: batch dimensions of {tuple(ashape)} and "
                             f"{tuple(bshape)} do not broadcast") from None
        self.g = math.prod(self.batch)
        out = [*self.batch]
        if len(ashape) >= 2:
            out.append(self.m)
        if len(bshape) >= 2:
            out.append(self.n)
        self.out = tuple(out)
        self.full = (*self.batch, self.m, self.n)
        self.a_rows = len(ashape) >= 2  # without batch dims, a's rows are the samples

    def padded(self, shape):
        return (1,) * (len(self.batch) + 2 - len(shape)) + tuple(shape)

    def sampled(self, shape1, is_a: bool) -> bool:
        """True when a (promoted) operand carries the sample dimension at dim 0."""
        if self.batch:
            return len(shape1) == len(self.batch) + 2 and shape1[0] == self.batch[0]
        return is_a and self.a_rows

    def rows(self, pos: Positions, lead, per_entry: int, device):
        """(prod(lead), per_entry) global row ids of a batch of GEMMs with batch shape ``lead``."""
        g = math.prod(lead)
        r = None
        if self.batch and len(lead) == len(self.batch) and lead and lead[0] == self.batch[0]:
            r = pos.rows(lead[0], g // lead[0] * per_entry, device) if lead[0] else None
        elif not self.batch and self.a_rows and g == 1:
            r = pos.rows(per_entry, 1, device)
        if r is None:
            r = torch.arange(g * per_entry, dtype=torch.int64, device=device)
        return r.reshape(g, per_entry)


def _contract(left, right, out_batch, cfg, seed, rows):
    """Codes of ``left @ right`` per batch entry, broadcast dims absent from ``out_batch``
    summed inside the chains (chain order: (summed batch index, contraction index))."""
    nd = left.dim() - 2
    bs = left.shape[:nd]
    red = [i for i in range(nd) if out_batch[i] == 1 and bs[i] != 1]
    keep = [i for i in range(nd) if i not in red]
    pk = math.prod(bs[i] for i in keep)
    pr = math.prod(bs[i] for i in red)
    m, j = left.shape[-2:]
    p = right.shape[-1]
    perm = [*keep, *red, nd, nd + 1]
    lp = left.permute(perm).reshape(pk, pr, m, j).permute(0, 2, 1, 3).reshape(pk, m, pr * j)
    rp = right.permute(perm).reshape(pk, pr * j, p)
    cols = torch.arange(p, dtype=torch.int64, device=left.device).expand(pk, p)
    codes = bgemm_codes(lp, rp, cfg, seed, rows=rows, cols=cols)
    return codes.reshape(*out_batch, m, p)


@torch.library.custom_op("srmac::qmatmul", mutates_args=())
def qmatmul(a: Tensor, b: Tensor, rng: Tensor, config: str, layout: list[int], training: bool,
            counter: int) -> Tensor:
    """``torch.matmul(a, b)`` on the forward MAC (``act`` rounds ``a``, ``weight`` rounds ``b``).

    Batch entry ``g`` (flattened broadcast batch index) row ``i`` runs on PE row
    ``g * M + i``, as if the batch were one tall GEMM.
    """
    call = _Call(rng, config, layout, training)
    cfg = call.cfg
    plan = _Plan(a.shape, b.shape)
    a1, b1 = a.reshape(plan.a1), b.reshape(plan.b1)
    f = cfg.fwd.in_fmt
    pos = call.pos
    ac = call.act(a1, f, pos.elements(a1.shape, a.device) if plan.sampled(a1.shape, True)
                  else None)
    bc = call.weight(b1, f, pos.elements(b1.shape, b.device) if plan.sampled(b1.shape, False)
                     else None)
    left = ac.expand(*plan.batch, plan.m, plan.k)
    right = bc.expand(*plan.batch, plan.k, plan.n)
    codes = _contract(left, right, plan.batch, cfg.fwd, call.seed_of(Stream.FWD_GEMM),
                      plan.rows(pos, plan.batch, plan.m, a.device))
    _count(counter, plan.g * plan.m * plan.n * plan.k)
    dtype = torch.promote_types(a.dtype, b.dtype)
    return decode(codes, cfg.fwd.acc_fmt).to(dtype).reshape(plan.out)


@qmatmul.register_fake
def _(a, b, rng, config, layout, training, counter):
    plan = _Plan(a.shape, b.shape)
    return a.new_empty(plan.out, dtype=torch.promote_types(a.dtype, b.dtype))


@torch.library.custom_op("srmac::qmatmul_backward", mutates_args=())
def qmatmul_backward(grad: Tensor, a: Tensor, b: Tensor, rng: Tensor, config: str,
                     layout: list[int], training: bool, counter: int,
                     needs: list[bool]) -> tuple[Tensor, Tensor]:
    """``(da, db)``: ``da = g b^T`` (bwd_input MAC), ``db = a^T g`` (bwd_weight MAC).

    Where ``a`` (or ``b``) was broadcast over batch dimensions, its gradient sums
    over them inside the chains. A gradient that does not carry the sample
    dimension (a chain over samples) is a per-rank chain under DDP.
    """
    call = _Call(rng, config, layout, training)
    cfg = call.cfg
    plan = _Plan(a.shape, b.shape)
    a1, b1 = a.reshape(plan.a1), b.reshape(plan.b1)
    g1 = grad.reshape(plan.full)
    pos = call.pos
    g_sampled = bool(plan.batch) or plan.a_rows
    g_elems = pos.elements(g1.shape, grad.device) if g_sampled else None
    a_s, b_s = plan.sampled(a1.shape, True), plan.sampled(b1.shape, False)
    da, db = _empty(a), _empty(b)
    if needs[0]:
        f = cfg.bwd_input.in_fmt
        gc = call.grad(g1, f, g_elems)
        bc = call.weight(b1, f, pos.elements(b1.shape, b.device) if b_s else None)
        out_batch = plan.padded(a1.shape)[:-2]
        rows = (plan.rows(pos, out_batch, plan.m, a.device) if a_s else
                torch.arange(math.prod(out_batch) * plan.m, device=a.device)
                .reshape(-1, plan.m))
        codes = _contract(gc, bc.expand(*plan.batch, plan.k, plan.n).transpose(-1, -2),
                          out_batch, cfg.bwd_input,
                          call.seed_of(Stream.BWD_INPUT_GEMM, shard=not a_s), rows)
        da = decode(codes, cfg.bwd_input.acc_fmt).to(a.dtype).reshape(a.shape)
        _count(counter, plan.g * plan.m * plan.n * plan.k)
    if needs[1]:
        f = cfg.bwd_weight.in_fmt
        gc = call.grad(g1, f, g_elems)
        ac = call.act(a1, f, pos.elements(a1.shape, a.device) if a_s else None)
        out_batch = plan.padded(b1.shape)[:-2]
        rows = (plan.rows(pos, out_batch, plan.k, b.device) if b_s else
                torch.arange(math.prod(out_batch) * plan.k, device=b.device)
                .reshape(-1, plan.k))
        codes = _contract(ac.expand(*plan.batch, plan.m, plan.k).transpose(-1, -2), gc,
                          out_batch, cfg.bwd_weight,
                          call.seed_of(Stream.BWD_WEIGHT_GEMM, shard=not b_s), rows)
        db = decode(codes, cfg.bwd_weight.acc_fmt).to(b.dtype).reshape(b.shape)
        _count(counter, plan.g * plan.m * plan.n * plan.k)
    return da, db


@qmatmul_backward.register_fake
def _(grad, a, b, rng, config, layout, training, counter, needs):
    return (a.new_empty(a.shape) if needs[0] else a.new_empty(0),
            b.new_empty(b.shape) if needs[1] else b.new_empty(0))


def _qmatmul_setup(ctx, inputs, output):
    a, b, rng, *rest = inputs
    ctx.save_for_backward(a, b, rng)
    ctx.rest = rest


def _qmatmul_bwd(ctx, grad):
    a, b, rng = ctx.saved_tensors
    needs = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])]
    da, db = qmatmul_backward(grad, a, b, rng, *ctx.rest, needs)
    return (da if needs[0] else None, db if needs[1] else None, None, None, None, None, None)


qmatmul.register_autograd(_qmatmul_bwd, setup_context=_qmatmul_setup)


# ---- quantize ----------------------------------------------------------------------------

@torch.library.custom_op("srmac::quantize", mutates_args=())
def quantize(x: Tensor, rng: Tensor, forward: str, backward: str, layout: list[int],
             training: bool, stream: int) -> Tensor:
    """``x`` rounded to the format of the ``forward`` spec (``''``: unchanged).

    Its gradient is the incoming gradient rounded by the ``backward`` spec
    (straight-through otherwise). Under DDP, dim 0 is the sample dimension.
    """
    if not forward:
        return x.clone()
    call = _Call(rng, None, layout, training)
    spec = parse_quantizer(forward)
    return spec.round_values(x, call.seed_of(stream), call.pos.elements(x.shape, x.device))


@quantize.register_fake
def _(x, rng, forward, backward, layout, training, stream):
    return torch.empty_like(x)


def _quantize_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.args = inputs[3:6]


def _quantize_bwd(ctx, grad):
    (rng,) = ctx.saved_tensors
    backward, layout, training = ctx.args
    g = quantize(grad, rng, backward, "", layout, training, Stream.Q_OUT_BWD) if backward else grad
    return g, None, None, None, None, None, None


quantize.register_autograd(_quantize_bwd, setup_context=_quantize_setup)

for _op, _n in ((qlinear, 1), (qlinear_backward, 3), (qconv2d, 1), (qconv2d_backward, 3),
                (qmatmul, 1), (qmatmul_backward, 2), (quantize, 1)):
    _loop_vmap(_op, _n)
