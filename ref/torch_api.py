"""PyTorch entry point: ``torch.matmul`` through the emulated SR MAC (``ref.sr_matmul``).

``sr_matmul`` is the custom operator ``torch.ops.srmac.sr_matmul``
(:mod:`torch.library`): a fake kernel gives shapes without data (meta tensors,
``torch.compile`` without graph breaks), autograd is registered with
``setup_context``, and ``vmap`` applies it slice by slice.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import prng
from .backend import ops_for
from .codec import decode, encode
from .config import MacConfig, parse_mac
from .dispatch import matmul

__all__ = ["sr_matmul"]


def _shapes(ashape, bshape):
    """``torch.matmul`` broadcasting: promoted shapes of A, B, the batch and the result."""
    a1 = (1, *ashape) if len(ashape) == 1 else tuple(ashape)
    b1 = (*bshape, 1) if len(bshape) == 1 else tuple(bshape)
    if len(ashape) == 0 or len(bshape) == 0 or a1[-1] != b1[-2]:
        raise ValueError(f"shape mismatch: cannot multiply {tuple(ashape)} by {tuple(bshape)}")
    try:
        batch = tuple(torch.broadcast_shapes(a1[:-2], b1[:-2]))
    except RuntimeError:
        raise ValueError(f"shape mismatch: batch dimensions of {tuple(ashape)} and "
                         f"{tuple(bshape)} do not broadcast") from None
    out = [*batch] + ([a1[-2]] if len(ashape) >= 2 else []) + ([b1[-1]] if len(bshape) >= 2 else [])
    return a1, b1, batch, tuple(out)


def _encode(x, cfg, rounding, rbits, seed):
    kw = {"rbits": rbits, "seed": seed} if rounding == "sr" else {}
    return encode(x.detach(), cfg.in_fmt, rounding, **kw)


@torch.library.custom_op("srmac::sr_matmul", mutates_args=())
def _sr_matmul(A: Tensor, B: Tensor, mac: str, seed: int, in_rounding: str, in_rbits: int,
               in_seed: int) -> Tensor:
    cfg = parse_mac(mac)
    a1, b1, batch, out = _shapes(A.shape, B.shape)
    m, k, n = a1[-2], a1[-1], b1[-1]
    dtype = torch.promote_types(A.dtype, B.dtype)
    # A and B draw from distinct streams (seeds 2s and 2s+1): no correlated rounding.
    a = _encode(A, cfg, in_rounding, in_rbits, 2 * in_seed).reshape(a1)
    b = _encode(B, cfg, in_rounding, in_rbits, 2 * in_seed + 1).reshape(b1)
    g = math.prod(batch)
    if k == 0:  # chains of no MACs: +0
        codes = torch.zeros((g * m, n), dtype=torch.int64, device=A.device)
    elif math.prod(b1[:-2]) == 1:
        # B is shared by every batch entry: one tall GEMM, batch entry g's row i is row g*m + i.
        codes = matmul(a.expand(*batch, m, k).reshape(g * m, k), b.reshape(k, n), cfg, seed=seed)
    else:
        av = a.expand(*batch, m, k).reshape(g, m, k)
        bv = b.expand(*batch, k, n).reshape(g, k, n)
        ops = ops_for(av)
        cols = torch.arange(n, device=A.device).reshape(1, n)
        parts = []
        for i in range(g):  # the PEs of batch entry i are rows i*m ... of the same tall array
            rows = torch.arange(i * m, (i + 1) * m, device=A.device).reshape(m, 1)
            state = prng.seed_state(ops, seed, rows, cols) if cfg.is_sr else None
            parts.append(matmul(av[i], bv[i], cfg, state=state) if state is not None
                         else matmul(av[i], bv[i], cfg))
        codes = torch.cat(parts)
    return decode(codes, cfg.acc_fmt).to(dtype).reshape(out)


@_sr_matmul.register_fake
def _(A, B, mac, seed, in_rounding, in_rbits, in_seed):
    parse_mac(mac)  # a bad spec fails while tracing, not at the first real call
    return A.new_empty(_shapes(A.shape, B.shape)[3], dtype=torch.promote_types(A.dtype, B.dtype))


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])


def _operand_grad(x, y, shape, left: bool):
    """``x @ y`` summed to ``shape``; a 2-D operand's sum over the batch is one folded GEMM
    (as torch.matmul's own backward computes it)."""
    if len(shape) == 2 and max(x.dim(), y.dim()) > 2:
        if left:  # g (..., M, N) @ b^T (..., N, K) -> (M, K): contract over (batch, N)
            y = y.expand(*x.shape[:-2], *y.shape[-2:])
            return x.movedim(-2, 0).reshape(x.shape[-2], -1) @ y.reshape(-1, y.shape[-1])
        # a^T (..., K, M) @ g (..., M, N) -> (K, N): contract over (batch, M)
        x = x.expand(*y.shape[:-2], *x.shape[-2:])
        return x.transpose(-1, -2).reshape(-1, x.shape[-2]).t() @ y.reshape(-1, y.shape[-1])
    return (x @ y).sum_to_size(shape)


def _backward(ctx, grad):
    # Straight-through: the gradients of the exact product torch.matmul(A, B).
    A, B = ctx.saved_tensors
    a = A.unsqueeze(0) if A.dim() == 1 else A
    b = B.unsqueeze(-1) if B.dim() == 1 else B
    g = grad
    if B.dim() == 1:
        g = g.unsqueeze(-1)
    if A.dim() == 1:
        g = g.unsqueeze(-2)
    gA = gB = None
    if ctx.needs_input_grad[0]:
        gA = _operand_grad(g, b.transpose(-1, -2).to(g.dtype), a.shape, left=True)
        gA = gA.reshape(A.shape).to(A.dtype)
    if ctx.needs_input_grad[1]:
        gB = _operand_grad(a.transpose(-1, -2).to(g.dtype), g, b.shape, left=False)
        gB = gB.reshape(B.shape).to(B.dtype)
    return gA, gB, None, None, None, None, None


_sr_matmul.register_autograd(_backward, setup_context=_setup)


def _vmap(info, in_dims, A, B, *rest):
    outs = [_sr_matmul(A.select(in_dims[0], i) if in_dims[0] is not None else A,
                       B.select(in_dims[1], i) if in_dims[1] is not None else B, *rest)
            for i in range(info.batch_size)]
    return torch.stack(outs), 0


torch.library.register_vmap(_sr_matmul, _vmap)


@torch._dynamo.assume_constant_result
def _mac_spec(cfg) -> str:
    """The spec string of ``cfg``; torch.compile takes it as a constant (no tracing)."""
    return parse_mac(cfg).spec()


def _check_operand(name: str, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError("sr_matmul takes torch tensors; use ref.matmul for code arrays")
    if x.is_complex():
        raise ValueError(f"sr_matmul: {name} is complex ({x.dtype}); the MAC is real-valued: "
                         "multiply real and imaginary parts separately")
    if not x.is_floating_point():
        raise ValueError(f"sr_matmul: {name} has integer dtype {x.dtype}; pass float values "
                         "(x.float()), or call ref.matmul on integer codes")


def sr_matmul(A: torch.Tensor, B: torch.Tensor, cfg: MacConfig | str, seed: int = 0, *,
              in_rounding: str = "rn", in_rbits: int | None = None, in_seed: int | None = None):
    """``torch.matmul(A, B)`` through the emulated MAC of ``cfg`` (float tensors in and out).

    The inputs are rounded to ``cfg.in_fmt`` (``in_rounding``: rn, rz or sr;
    with sr, ``in_rbits`` random bits seeded by ``in_seed``, default ``seed``:
    A's elements with seed ``2 * in_seed``, B's with ``2 * in_seed + 1``, in
    row-major order), every output is a MAC chain over k starting from +0
    (``K = 0`` gives zeros), and the result is the float value of the
    accumulator codes.

    Shapes follow ``torch.matmul``: 1-D operands, batch dimensions that
    broadcast. The PEs of batch entry ``g`` (flattened broadcast batch index)
    are rows ``g*M ... g*M + M - 1`` of one tall array with base ``seed``, so a
    batch gives the bits of the 2-D product of the stacked rows.

    Dtypes: floating-point inputs only (integer and bool: ``ValueError``,
    complex: refused); the result has ``torch.promote_types(A.dtype,
    B.dtype)`` (float32 @ float64 -> float64), into which the accumulator
    values are cast (exact unless the accumulator is wider than that dtype).
    Gradients are straight-through (those of ``torch.matmul(A, B)``).
    """
    spec = _mac_spec(cfg)
    _check_operand("A", A)
    _check_operand("B", B)
    _shapes(A.shape, B.shape)
    in_seed = int(seed) if in_seed is None else int(in_seed)
    if in_rounding == "sr" and in_rbits is None:
        raise ValueError("sr_matmul: in_rounding='sr' needs in_rbits (1..30)")
    return _sr_matmul(A, B, spec, int(seed), in_rounding, int(in_rbits or 0), in_seed)
