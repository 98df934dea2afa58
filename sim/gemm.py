"""Emulated GEMMs on codes, and the code-tensor reshuffles of convolution.

Every GEMM of the simulator goes through :func:`ref.matmul`: output ``C[i, j]``
is one MAC chain over ``k`` in the accumulator format, with the PE generators
of base seed ``seed``. Convolutions become GEMMs by im2col on *codes*: a code
is a 32-bit-or-narrower integer, exact in float64, so ``F.unfold`` and
``F.pad`` on float64 copies move codes without changing them; padding inserts
code 0 (+0 in every format).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import ref

__all__ = ["gemm", "decode", "unfold_codes", "conv_gemm", "conv_input_grad_codes"]

# Formats up to this width decode through a table of all their codes.
_LUT_MAX_WIDTH = 16
_LUTS: dict = {}


def decode(codes, fmt):
    """``ref.decode`` (float64 values of codes), by table lookup for formats of <= 16 bits.

    The table is ``ref.decode`` of every code of the format, built once per
    format and device, so the result is ``ref.decode``'s by construction
    (NaN, -0 and subnormals included), at the cost of one gather.
    """
    if fmt.width > _LUT_MAX_WIDTH or not isinstance(codes, torch.Tensor):
        return ref.decode(codes, fmt)
    key = (fmt, codes.device)
    table = _LUTS.get(key)
    if table is None:
        table = ref.decode(torch.arange(1 << fmt.width, device=codes.device), fmt)
        _LUTS[key] = table
    return table[codes]


def gemm(a, b, cfg: ref.MacConfig, seed: int, c=None, *, dtype=torch.float32, counter=None):
    """Float value of the emulated ``c + a @ b`` on codes.

    ``a``: (M, K) and ``b``: (K, N) int64 codes in ``cfg.in_fmt``; ``c``:
    optional accumulator codes broadcast to (M, N) (the chains' start values).
    Returns an (M, N) tensor of ``dtype``. ``counter``, if given, is an object
    whose ``macs`` attribute grows by ``M * N * K``.
    """
    a = a.contiguous()
    b = b.contiguous()
    codes = ref.matmul(a, b, cfg, c, seed=int(seed))
    if counter is not None:
        counter.macs += int(a.shape[0]) * int(b.shape[1]) * int(a.shape[1])
    return decode(codes, cfg.acc_fmt).to(dtype)


def unfold_codes(codes, kernel, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """im2col of an (N, C, H, W) code tensor: (N * L, C * kh * kw) codes, rows (n, p, q)."""
    cols = F.unfold(codes.to(torch.float64), kernel, dilation=dilation, padding=padding,
                    stride=stride)
    n, ckk, length = cols.shape
    return cols.transpose(1, 2).reshape(n * length, ckk).to(torch.int64)


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv_gemm(xc, wc, cfg, seed, *, stride, padding, dilation, c=None, dtype=torch.float32,
              counter=None):
    """Emulated 2-D convolution (groups 1) of codes ``xc`` (N, C, H, W) with ``wc`` (O, C, kh, kw).

    Chains run over ``k = (c, i, j)`` (im2col order). ``c``: optional (O,)
    accumulator codes that start every chain (the bias). Returns the float
    output (N, O, Ho, Wo) and the im2col matrix of ``xc`` (N * Ho * Wo, C*kh*kw).
    """
    n, _, h, w = xc.shape
    o, _, kh, kw = wc.shape
    cols = unfold_codes(xc, (kh, kw), stride=stride, padding=padding, dilation=dilation)
    ho = out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = out_size(w, kw, stride[1], padding[1], dilation[1])
    cinit = None if c is None else c.reshape(1, o)
    y = gemm(cols, wc.reshape(o, -1).transpose(0, 1), cfg, seed, cinit, dtype=dtype,
             counter=counter)
    return y.reshape(n, ho, wo, o).permute(0, 3, 1, 2).contiguous(), cols


def conv_input_grad_codes(gc, wc, in_hw, *, stride, padding, dilation):
    """Rearrange codes so that ``dx`` is a stride-1 convolution: ``(G', W')``.

    ``dx[n, c, h, w] = sum_{o, i, j} G[n, o, p, q] W[o, c, i, j]`` over
    ``p*s + i*d - pad = h``. Insert ``s - 1`` zero codes between the output
    gradients, pad by ``d*(k-1) - pad`` (plus the rows the forward stride
    dropped), flip the kernel and swap its channel axes; a stride-1 dilated
    convolution of the two is then ``dx``, each output a chain over
    ``(o, i, j)`` (zero products included, as a systolic array would run them).
    """
    n, o, p, q = gc.shape
    _, c, kh, kw = wc.shape
    up = torch.zeros((n, o, (p - 1) * stride[0] + 1, (q - 1) * stride[1] + 1),
                     dtype=torch.int64, device=gc.device)
    up[:, :, :: stride[0], :: stride[1]] = gc
    pads = []
    for size, k, s, pd, d, g in ((in_hw[1], kw, stride[1], padding[1], dilation[1], q),
                                 (in_hw[0], kh, stride[0], padding[0], dilation[0], p)):
        lo = d * (k - 1) - pd
        extra = size - ((g - 1) * s + 1 + d * (k - 1) - 2 * pd)
        pads += [lo, lo + extra]
    gp = F.pad(up.to(torch.float64), pads).to(torch.int64)
    wt = wc.flip(2, 3).transpose(0, 1).contiguous()
    return gp, wt
