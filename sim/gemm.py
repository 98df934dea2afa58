"""Emulated GEMMs on codes, and the code-tensor reshuffles of convolution.

Every GEMM of the simulator is a set of MAC chains of the golden model:
output ``C[i, j]`` is the chain ``z <- round(z + a[i, k] * b[k, j])`` over
``k`` in the accumulator format, on the generator of PE ``(row_i, col_j)``.
Every GEMM calls :func:`ref.matmul` (a batch of GEMMs, e.g. the groups of a
depthwise convolution or attention heads, one call each); on CUDA, a batch of
short chains runs side by side with :func:`ref.mac` instead, one MAC per
``k`` for all outputs at once (one kernel launch per ``k``, not per group):
the same codes, by the definition of ``ref.matmul`` (the tests compare them).
On the CPU the compiled ``ref.matmul`` is ~30x faster than that torch loop
even called once per group (depthwise 96 channels, 16x16: 0.6 s vs 18 s).

Convolutions become GEMMs by im2col on *codes*: the windows are strided views
of the int64 code tensor (``Tensor.unfold``), gathered by one copy into
``F.unfold``'s layout; zero padding inserts code 0 (+0 in every format), and
reflect / replicate / circular padding copy codes (``F.pad`` on a float64
copy: a code is a 32-bit-or-narrower integer, exact in float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import ref
from ref import prng

from .seeds import pe_states

__all__ = ["gemm", "gemm_codes", "bgemm_codes", "decode", "unfold_codes", "conv_pads",
           "pad_codes", "conv_codes", "conv_weight_grad_codes", "conv_input_grad_codes",
           "transpose_weight_codes", "unpad_grad", "out_size"]

# Formats up to this width decode through a table of all their codes.
_LUT_MAX_WIDTH = 16
_LUTS: dict = {}
# On CUDA, batched GEMMs with chains up to this long run side by side (ref.mac per k).
_SIDE_BY_SIDE_MAX_K = 64


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


def _init_acc(c, shape, device):
    z = torch.zeros(shape, dtype=torch.int64, device=device)
    return z if c is None else (z + c.to(torch.int64))


def gemm_codes(a, b, cfg: ref.MacConfig, seed: int, c=None, *, rows=None, cols=None):
    """Accumulator codes of the emulated ``c + a @ b``.

    ``a``: (M, K), ``b``: (K, N) int64 codes in ``cfg.in_fmt``; ``c``: optional
    accumulator codes broadcast to (M, N) (the chains' start values). PE ``(i,
    j)`` runs on the generator of ``(rows[i], cols[j])`` of base ``seed``
    (default ``i``, ``j``: exactly ``ref.matmul(a, b, cfg, c, seed=seed)``).
    ``K = 0`` returns ``c`` (or +0): a chain of no MACs.
    """
    m, k = a.shape
    n = b.shape[1]
    if k == 0:
        return _init_acc(c, (m, n), a.device)
    a, b = a.contiguous(), b.contiguous()
    if cfg.is_sr and (rows is not None or cols is not None):
        rows = torch.arange(m, device=a.device) if rows is None else rows
        cols = torch.arange(n, device=a.device) if cols is None else cols
        return ref.matmul(a, b, cfg, c, state=pe_states(seed, rows[:, None], cols[None, :]))
    return ref.matmul(a, b, cfg, c, seed=int(seed))


def bgemm_codes(a, b, cfg: ref.MacConfig, seed: int, c=None, *, rows, cols,
                side_by_side: bool | None = None):
    """A batch of emulated GEMMs: ``c[g] + a[g] @ b[g]`` on PEs ``(rows[g, i], cols[g, j])``.

    ``a``: (G, M, K), ``b``: (G, K, N) codes; ``c``: optional codes broadcast to
    (G, M, N); ``rows``: (G, M), ``cols``: (G, N) int64 PE coordinates. Each
    output is the chain of :func:`gemm_codes`. ``side_by_side`` (default: on
    CUDA for chains up to 64 MACs) runs all chains at once with ``ref.mac``.
    """
    g, m, k = a.shape
    n = b.shape[2]
    if k == 0:
        return _init_acc(c, (g, m, n), a.device)
    if side_by_side is None:
        side_by_side = a.device.type == "cuda" and g > 1 and k <= _SIDE_BY_SIDE_MAX_K
    if not side_by_side:
        cb = None if c is None else torch.broadcast_to(c, (g, m, n))
        out = [gemm_codes(a[i], b[i], cfg, seed, None if cb is None else cb[i],
                          rows=rows[i], cols=cols[i]) for i in range(g)]
        return torch.stack(out)
    z = _init_acc(c, (g, m, n), a.device)
    gen = pe_states(seed, rows[:, :, None], cols[:, None, :]) if cfg.is_sr else None
    mask = (1 << cfg.rand_bits) - 1
    for kk in range(k):
        word = None
        if gen is not None:
            gen = prng.step(gen)  # each PE steps once per MAC, as in ref.matmul
            word = gen & mask
        z = ref.mac(z, a[:, :, kk:kk + 1], b[:, kk:kk + 1, :], cfg, rand=word)
    return z


def gemm(a, b, cfg: ref.MacConfig, seed: int, c=None, *, dtype=torch.float32, rows=None,
         cols=None):
    """Float value (``dtype``) of :func:`gemm_codes`: the decoded accumulators."""
    return decode(gemm_codes(a, b, cfg, seed, c, rows=rows, cols=cols), cfg.acc_fmt).to(dtype)


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a convolution over ``size`` with ``p`` padding in all."""
    return (size + p - d * (k - 1) - 1) // s + 1


def conv_pads(padding, kernel, dilation) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` pads of a 2-D convolution.

    ``padding``: ``'valid'``, ``'same'`` (total ``d * (k - 1)`` per side pair,
    the extra one on the right / bottom, as torch does) or ``(ph, pw)``.
    """
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        out = []
        for k, d in zip(kernel[::-1], dilation[::-1], strict=True):  # width first, as F.pad
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)
    ph, pw = padding
    return pw, pw, ph, ph


def pad_codes(xc, pads, mode: str):
    """Pad an (N, C, H, W) code tensor: ``'zeros'`` inserts code 0, other modes copy codes."""
    if not any(pads):
        return xc
    if mode == "zeros":
        return F.pad(xc, pads)
    return F.pad(xc.to(torch.float64), pads, mode=mode).to(torch.int64)


def unfold_codes(codes, kernel, *, stride=(1, 1), dilation=(1, 1)):
    """im2col of an (N, C, H, W) code tensor: the (N * L, C * kh * kw) codes of
    ``F.unfold`` (rows ``(n, p, q)``, columns ``(c, i, j)``), in the codes' dtype."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    win = codes.unfold(2, (kh - 1) * dh + 1, sh)[..., ::dh]  # (N, C, Ho, W, kh)
    win = win.unfold(3, (kw - 1) * dw + 1, sw)[..., ::dw]  # (N, C, Ho, Wo, kh, kw)
    n, c, ho, wo = win.shape[:4]
    return win.permute(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)


def _group_cols(cols, groups):
    """(N*L, C*kk) -> (G, N*L, C/G*kk): im2col columns are ordered (c, i, j)."""
    m, ckk = cols.shape
    return cols.reshape(m, groups, ckk // groups).permute(1, 0, 2)


def conv_codes(xp, wc, cfg, seed, *, stride, dilation, groups=1, c=None, rows=None):
    """Accumulator codes of an emulated convolution of padded codes ``xp`` with ``wc``.

    ``xp``: (N, C, Hp, Wp) (already padded), ``wc``: (O, C / groups, kh, kw).
    Output ``(n, o, p, q)`` is the chain over ``(c, i, j)`` of its group (im2col
    order), starting from ``c[o]`` (the bias) or +0, on the PE ``(row, o)``
    with ``row`` the global id of ``(n, p, q)`` (``rows``: (N * Ho * Wo,) or
    None for ``0, 1, ...``). Returns the codes (N, O, Ho, Wo) and the im2col
    matrix of ``xp``.
    """
    n = xp.shape[0]
    o, cg, kh, kw = wc.shape
    cols = unfold_codes(xp, (kh, kw), stride=stride, dilation=dilation)
    ho = out_size(xp.shape[2], kh, stride[0], 0, dilation[0])
    wo = out_size(xp.shape[3], kw, stride[1], 0, dilation[1])
    og = o // groups
    if groups == 1:
        cinit = None if c is None else c.reshape(1, o)
        codes = gemm_codes(cols, wc.reshape(o, -1).t(), cfg, seed, cinit, rows=rows)
    else:
        m = cols.shape[0]
        r = torch.arange(m, device=xp.device) if rows is None else rows
        codes = bgemm_codes(_group_cols(cols, groups),
                            wc.reshape(groups, og, cg * kh * kw).transpose(1, 2), cfg, seed,
                            None if c is None else c.reshape(groups, 1, og),
                            rows=r.expand(groups, m),
                            cols=torch.arange(o, device=xp.device).reshape(groups, og))
        codes = codes.permute(1, 0, 2).reshape(m, o)
    return codes.reshape(n, ho, wo, o).permute(0, 3, 1, 2).contiguous(), cols


def conv_weight_grad_codes(gm, cols, cfg, seed, *, groups=1):
    """Codes of ``dW``: per group, ``G^T @ cols``, chains over the rows ``(n, p, q)``.

    ``gm``: (N * L, O) gradient codes in im2col row order, ``cols``: (N * L, C *
    kk). Returns (O, C / groups * kk); PE ``(o, column)``.
    """
    m, o = gm.shape
    if groups == 1:
        return gemm_codes(gm.t(), cols, cfg, seed)
    og = o // groups
    a = gm.t().reshape(groups, og, m)
    b = _group_cols(cols, groups)
    width = b.shape[2]
    out = bgemm_codes(a, b, cfg, seed, rows=torch.arange(o, device=gm.device).reshape(groups, og),
                      cols=torch.arange(width, device=gm.device).expand(groups, width))
    return out.reshape(o, width)


def transpose_weight_codes(wc, groups=1):
    """Kernel of the transposed convolution: (O, C/G, kh, kw) -> (C, O/G, kh, kw), flipped."""
    o, cg, kh, kw = wc.shape
    w = wc.reshape(groups, o // groups, cg, kh, kw).flip(3, 4).transpose(1, 2)
    return w.reshape(groups * cg, o // groups, kh, kw).contiguous()


def conv_input_grad_codes(gc, in_hw, kernel, *, stride, dilation):
    """Zero-stuffed, padded output-gradient codes: ``dx`` is then a stride-1 convolution.

    ``dxp[n, c, h, w] = sum_{o, i, j} G[n, o, p, q] W[o, c, i, j]`` over
    ``p*s + i*d = h`` (``xp`` the padded input of size ``in_hw``). Insert
    ``s - 1`` zero codes between the output gradients and pad by ``d*(k-1)``
    (plus the rows the forward stride dropped); a stride-1 dilated convolution
    with :func:`transpose_weight_codes` is then ``dxp``, each output a chain
    over ``(o, i, j)`` of its group (zero products included, as a systolic
    array would run them).
    """
    n, o, p, q = gc.shape
    lo = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    # lo zero rows before the stuffed gradient ((p - 1) * s + 1 rows), and after it lo plus
    # the input rows the forward stride dropped: in_hw + lo rows, so that the stride-1
    # convolution with a kernel spanning lo + 1 rows gives in_hw rows
    size = [h + low for h, low in zip(in_hw, lo, strict=True)]
    out = torch.zeros((n, o, *size), dtype=gc.dtype, device=gc.device)
    out[:, :, lo[0]:lo[0] + (p - 1) * stride[0] + 1:stride[0],
        lo[1]:lo[1] + (q - 1) * stride[1] + 1:stride[1]] = gc
    return out


def unpad_grad(dxp, pads, mode: str, in_hw):
    """Gradient of the unpadded input from the gradient of the padded one (float).

    ``'zeros'``: a crop. Other modes copy input values into the border, so each
    input's gradient is the sum of the gradients of its copies: the interior
    value plus those of its 1-3 border copies, added in float64 and rounded
    once to ``dxp``'s dtype (the only additions of a layer outside a MAC chain).
    """
    left, right, top, bottom = pads
    hp, wp = dxp.shape[2], dxp.shape[3]
    if mode == "zeros" or not any(pads):
        return dxp[:, :, top:hp - bottom, left:wp - right]
    h, w = in_hw
    index = torch.arange(h * w, dtype=torch.float64, device=dxp.device).reshape(1, 1, h, w)
    src = F.pad(index, pads, mode=mode).reshape(-1).to(torch.int64)
    n, c = dxp.shape[:2]
    out = torch.zeros((n, c, h * w), dtype=torch.float64, device=dxp.device)
    out.index_add_(2, src, dxp.reshape(n, c, hp * wp).to(torch.float64))
    return out.reshape(n, c, h, w).to(dxp.dtype)
