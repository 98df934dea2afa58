"""PyTorch entry point: emulated SR matmul on float tensors, usable inside autograd."""

from __future__ import annotations

import torch

from .codec import decode, encode
from .config import MacConfig, parse_mac
from .dispatch import matmul

__all__ = ["sr_matmul"]


class _SRMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, B, cfg, seed, in_rounding, in_rbits, in_seed):
        ctx.save_for_backward(A, B)
        sr = in_rounding == "sr"
        # A and B draw from distinct streams (seeds 2s and 2s+1): no correlated rounding.
        a = encode(A.detach(), cfg.in_fmt, in_rounding, **({"rbits": in_rbits, "seed": 2 * in_seed} if sr else {}))
        b = encode(B.detach(), cfg.in_fmt, in_rounding, **({"rbits": in_rbits, "seed": 2 * in_seed + 1} if sr else {}))
        codes = matmul(a, b, cfg, seed=seed)
        return decode(codes, cfg.acc_fmt).to(A.dtype)

    @staticmethod
    def backward(ctx, grad):
        # Straight-through: the gradient of the exact product A @ B.
        A, B = ctx.saved_tensors
        gA = grad @ B.transpose(0, 1).to(grad.dtype) if ctx.needs_input_grad[0] else None
        gB = A.transpose(0, 1).to(grad.dtype) @ grad if ctx.needs_input_grad[1] else None
        return gA, gB, None, None, None, None, None


def sr_matmul(A: torch.Tensor, B: torch.Tensor, cfg: MacConfig | str, seed: int = 0, *,
              in_rounding: str = "rn", in_rbits: int | None = None, in_seed: int | None = None):
    """``A @ B`` through the emulated MAC of ``cfg`` (float tensors in and out).

    The inputs are rounded to ``cfg.in_fmt`` (``in_rounding``: rn, rz or sr),
    every output is a MAC chain over k (seeded PE generators, base ``seed``),
    and the result is the float value of the accumulator codes, in ``A``'s
    dtype. Gradients are straight-through (those of ``A @ B``). ``A`` may have
    leading batch dimensions: ``(..., K) @ (K, N)``. With ``in_rounding="sr"``
    the input rounding is seeded by ``in_seed`` (default: ``seed``).
    """
    cfg = parse_mac(cfg)
    if not (isinstance(A, torch.Tensor) and isinstance(B, torch.Tensor)):
        raise ValueError("sr_matmul takes torch tensors; use ref.matmul for code arrays")
    if B.dim() != 2 or A.dim() < 1 or A.shape[-1] != B.shape[0]:
        raise ValueError(f"shape mismatch: cannot multiply {tuple(A.shape)} by {tuple(B.shape)}")
    lead = A.shape[:-1]
    A2 = A.reshape(-1, A.shape[-1])
    in_seed = int(seed) if in_seed is None else int(in_seed)
    out = _SRMatmul.apply(A2, B, cfg, int(seed), in_rounding, in_rbits, in_seed)
    return out.reshape(*lead, B.shape[1])
