"""The narrow CPU kernel: MAC chains in int32 lanes for narrow formats (numba).

The same steps as :mod:`ref.fast.kernel` (and :func:`ref.mac.mac_step`), but

* **int32 lanes**: addends are normalised to bit :data:`TOP` = 29 instead of
  60, so one 512-bit vector holds 16 lanes instead of 8. Every shift amount is
  masked with ``& 31`` so that LLVM can prove it fits a 32-bit shift and keeps
  the whole loop in 32-bit lanes (``vpsllvd``, ``vplzcntd``);
* **the accumulator stays decoded** across ``k``: sign, significand with its
  leading one at bit ``TOP`` (0 for zero) and exponent of that leading one
  (:data:`NO_EXP` for zero). Both are canonical functions of the value, so the
  next MAC sees exactly what unpacking the packed code would give; the code
  is packed once, at the end of the tile;
* **finite chains only**: no NaN / infinity logic in the loop. A tile whose
  A row, B column tile or initial accumulators hold a NaN or an infinity, or
  in which any MAC overflows (the only way a finite chain reaches a special
  or saturated code), is reported back untouched and rerun by the int64
  kernel, which implements every rule. So codes are identical either way;
* **one loop per rounding mode and random-word source** (:func:`variant_tag`),
  each compiled on first use: in one shared loop the branches on the mode
  stopped LLVM from vectorising at all;
* the generator step is fused into the MAC loop (xorshift32 on the 32-bit
  pattern), and the rounding shifts work on the sum normalised to bit 30, so
  they are all right shifts.

:func:`fits` says when a configuration may take this path: the window of
``TOP + 2 = 31`` bits must hold the addends' precisions and keep the rounding
position at least two bits above the jam bit (``TOP >= man + extra + 3`` with
``extra`` = 1 for ``rn``, 0 for ``rz``, ``r`` for SR), and exponents and packed
magnitudes must fit int32.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from . import kernel as _kernel  # noqa: F401  (sets the CPU feature string first)
from .layout import (
    P_BIAS,
    P_EFMAX,
    P_EMIN,
    P_MAN,
    P_MAXCODE,
    P_R,
    P_RMASK,
    P_SPEC,
    P_SUB,
    P_W,
    RN,
    RZ,
    SPEC_FN,
    SPEC_IEEE,
    SR_EAGER,
)

__all__ = ["fits", "gemm_tiles32", "variant_tag", "TOP", "NO_EXP"]

I = np.int32  # noqa: E741
TOP = 29  # bit index of the leading one of a normalised addend (sums stay below 2**31)
NO_EXP = -(1 << 24)  # exponent of a zero addend ("-inf"); differences stay within int32
_EXP_LIMIT = 1 << 20  # |exponents| of both formats must stay below this


def fits(cfg) -> bool:
    """True when ``cfg`` can run in int32 lanes (see the module docstring)."""
    fin, acc = cfg.in_fmt, cfg.acc_fmt
    man = acc.man_bits
    extra = cfg.extra_bits
    if 2 * fin.precision > TOP or acc.precision > TOP or man + extra + 3 > TOP:
        return False
    if cfg.rand_bits > 31 or acc.width > 31:
        return False
    exps = (fin.emin - fin.man_bits, fin.emax + 1, acc.emin - man, acc.emax + 2)
    if any(abs(e) >= _EXP_LIMIT for e in exps):
        return False
    # largest grid exponent a finite MAC can reach, relative to emin, packed with man bits
    top_exp = max(acc.emax + 2, 2 * (fin.emax + 1) + 2)
    return ((top_exp - acc.emin + 1) << man) + (1 << (man + 2)) < (1 << 31)


def variant_tag(mode: int, source: int) -> tuple:
    """The loop variant as a type: a tuple of ``mode + 4 * source + 1`` zeros.

    ``mode``: ``layout.RN`` ... ``layout.SR_EAGER``; ``source`` of the random
    words: 0 none, 1 the PEs' xorshift32 generators, 2 explicit words. The
    tuple's length is known when numba compiles, so each variant gets its own
    loop with the other variants' work removed (compiled on first use and
    cached on disk) from one source. (``numba.literally`` does the same but
    re-runs type inference on every call: ~0.5 s each.)
    """
    return (0,) * (mode + 4 * source + 1)


@nb.njit(nogil=True, cache=True)
def _row32(zsg, zn, ze, g, w, bdec, sa, siga, expa, P, tag):
    """MAC step k of one tile on the decoded accumulators; returns True if any lane overflowed.

    ``zsg`` / ``zn`` / ``ze``: int32 sign, significand (leading one at bit TOP,
    0 for zero) and exponent of the leading one (NO_EXP for zero), updated in
    place. ``g``: the PEs' xorshift32 states (int32 bit patterns), stepped in
    place (source 1); ``w``: explicit int32 random words (source 2). ``bdec``:
    (4, n) int32 decoded B row k. ``tag``: :func:`variant_tag`.
    """
    mode = (len(tag) - 1) % 4  # compile-time constants: the other variants fold away
    source = (len(tag) - 1) // 4
    r = I(P[P_R])
    man = I(P[P_MAN])
    sub = P[P_SUB] != 0
    emin = I(P[P_EMIN])
    maxcode = I(P[P_MAXCODE])
    rmask = I(P[P_RMASK])
    one_r = I(I(1) << (r & I(31)))
    rlow = I(one_r - 1)
    three_r = I(3 * one_r)
    extra = I(1) if mode == RN else (I(0) if mode == RZ else r)
    c_round = I(30 - man - extra)  # rounding shift of the bit-30-normalised sum, less (eg - e)
    c_sr = I(30 - man)  # the same, down to the ulp (SR: t >> r)
    ovf = False
    for j in range(zn.shape[0]):
        # ---- the exact product, normalised to bit TOP
        ps = I(sa ^ bdec[0, j])
        psig = I(siga * bdec[1, j])
        blp = I(32 - I(leading_zeros(np.uint32(psig))))
        npr = I(psig << (I(TOP + 1 - blp) & 31))
        ep = I(expa + bdec[2, j] + blp - 1) if psig != 0 else I(NO_EXP)
        zs = zsg[j]
        nz = zn[j]
        ez = ze[j]
        if source == 1:  # xorshift32 (13, 17, 5) as ref.prng.step, on the 32-bit pattern
            x = g[j]
            x = I(x ^ I(x << 13))
            x = I(x ^ I(I(x >> 17) & 0x7FFF))  # logical shift
            x = I(x ^ I(x << 5))
            g[j] = x
            word = I(x & rmask)
        elif source == 2:
            word = w[j]
        else:
            word = I(0)
        # ---- align, jam, add
        z_big = ez >= ep
        e_big = max(ez, ep)
        d = I(ez - ep) if z_big else I(ep - ez)
        big = nz if z_big else npr
        small = npr if z_big else nz
        dsh = I(min(d, I(31)) & 31)
        q = I(small >> dsh)
        small_j = I(q | (I(1) if I(q << dsh) != small else I(0)))
        eff_sub = zs != ps
        S = I(big - small_j) if eff_sub else I(big + small_j)
        neg = S < 0  # only under effective subtraction, where the signs differ
        S = I(-S) if neg else S
        sign = I((zs if z_big else ps) ^ (I(1) if neg else I(0)))
        exact_zero = S == 0
        sign = I(zs & ps) if exact_zero else sign  # +0 unless both addends are -0
        lsb = I(e_big - TOP)
        # ---- round S * 2**lsb on the accumulator grid. Sn: S with its leading
        # one at bit 30, so every rounding shift is a right shift (>= 0)
        lz = I(leading_zeros(np.uint32(S)))
        e = I(lsb + 31 - lz)
        Sn = I(S << (I(lz - 1) & 31))
        eg = max(e, emin)
        de = I(eg - e)  # > 0 only for results below 2**emin
        sh = I(min(I(de + c_round), I(31)) & 31)
        t = I(Sn >> sh)
        if mode == RN:
            kq = I(t >> 1)
            below = I(t << sh) != Sn
            up = ((t & 1) == 1) & (below | ((kq & 1) == 1))
        elif mode == RZ:
            kq = t
            up = False
        else:
            R = I(word & rlow)
            kq = I(Sn >> (I(min(I(de + c_sr), I(31))) & 31))  # t >> r
            up = I(I(t & rlow) + R) >= one_r
        m = I(kq + (I(1) if up else I(0)))
        if mode == SR_EAGER:
            # far path (contract 3.3); the close path keeps the lazy result
            anchor = max(I(e_big - 1) if eff_sub else e_big, emin)
            s2 = I(anchor - man - r - lsb)  # >= TOP - 1 - man - r >= 2 (fits)
            T = I(S >> (I(min(s2, I(31))) & 31))
            Y = I(T + R)
            kk = max(I(31 - I(leading_zeros(np.uint32(Y))) - man - r), I(0))  # 0, 1 or 2
            # B_k * 2**r = word & (2**(r+kk) - 2**r), by selects (a shift of the
            # loop-invariant 2**r by kk was widened to 64-bit lanes)
            Bkr = I(word & (I(0) if kk == 0 else (one_r if kk == 1 else three_r)))
            far = not (eff_sub & (d <= 1))
            m = I(I(Y + Bkr) >> (I(r + kk) & 31)) if far else m
            eg = I(anchor + kk) if far else eg
        # ---- the rounded value as the next accumulator (overflow: the tile reruns wide)
        mag = I(I(I(eg - emin) << (man & 31)) + m)
        zero = exact_zero | (mag == 0) | ((not sub) & (e < emin))
        ovf = ovf | ((mag > maxcode) & (not exact_zero))
        bl = I(32 - I(leading_zeros(np.uint32(m))))
        zsg[j] = sign
        zn[j] = I(0) if zero else I(m << (I(TOP + 1 - bl) & 31))
        ze[j] = I(NO_EXP) if zero else I(eg - man + bl - 1)
    return ovf


@nb.njit(nogil=True, cache=True)
def gemm_tiles32(Adec, Bt, Z, G, RAND, P, tiles, rowbad, colbad, redo, tag):
    """Run the listed tiles of ``Z <- chains over k`` in int32 lanes, in place.

    Arguments as :func:`ref.fast.kernel.gemm_tiles`; ``tiles``: int64 tile ids.
    ``rowbad`` (M,) / ``colbad`` (nJ,): A row / B column tile holds a NaN or an
    infinity. A tile that meets a special value (there, or in its initial
    accumulators) or overflows is left untouched in Z and G and flagged
    ``redo[t] = 1`` for the int64 kernel. ``tag``: :func:`variant_tag`.
    """
    nJ = Bt.shape[0]
    K = Bt.shape[1]
    JB = Bt.shape[3]
    N = Z.shape[1]
    use_gen = G.shape[0] > 0
    use_rand = RAND.shape[0] > 0
    W = P[P_W]
    man = P[P_MAN]
    efmax = P[P_EFMAX]
    bias = P[P_BIAS]
    sub = P[P_SUB]
    spec = P[P_SPEC]
    hidden = np.int64(1) << man
    magmask = (np.int64(1) << (W - 1)) - 1
    w = np.zeros(JB, dtype=np.int32)
    zsg = np.zeros(JB, dtype=np.int32)
    zn = np.zeros(JB, dtype=np.int32)
    ze = np.full(JB, NO_EXP, dtype=np.int32)
    g = np.ones(JB, dtype=np.int32)
    for t in tiles:
        i = t // nJ
        jt = t % nJ
        if rowbad[i] or colbad[jt]:
            redo[t] = 1
            continue
        j0 = jt * JB
        n = min(JB, N - j0)
        special = False
        for j in range(n):  # decode the initial accumulators (ref.codec.unpack)
            zc = Z[i, j0 + j]
            ef = (zc >> man) & efmax
            mf = zc & (hidden - 1)
            if spec == SPEC_IEEE:
                special |= ef == efmax
            elif spec == SPEC_FN:
                special |= (zc & magmask) == magmask
            sig = (mf | hidden) if ef != 0 else (mf if sub != 0 else 0)
            bl = 64 - np.int64(leading_zeros(np.uint64(sig)))
            zsg[j] = (zc >> (W - 1)) & 1
            zn[j] = (sig << (TOP + 1 - bl)) if sig != 0 else 0
            ze[j] = (max(ef, 1) - bias - man + bl - 1) if sig != 0 else NO_EXP
        if special:
            redo[t] = 1
            continue
        for j in range(n, JB):  # padding lanes: +0 accumulators
            zsg[j] = 0
            zn[j] = 0
            ze[j] = NO_EXP
        if use_gen:
            for j in range(n):
                x = G[i, j0 + j]
                g[j] = x - (np.int64(1) << 32) if x >= (np.int64(1) << 31) else x
        ovf = False
        for k in range(K):
            if use_rand:
                for j in range(n):
                    w[j] = RAND[i, j0 + j, k]
            ovf = ovf | _row32(zsg, zn, ze, g, w, Bt[jt, k], I(Adec[i, k, 0]),
                               I(Adec[i, k, 1]), I(Adec[i, k, 2]), P, tag)
        if ovf:
            redo[t] = 1
            continue
        emin = P[P_EMIN]
        for j in range(n):  # pack (the values are on the grid: the shifts are exact)
            if zn[j] == 0:
                mag = np.int64(0)
            else:
                e = np.int64(ze[j])
                eg = max(e, emin)
                mag = ((eg - emin) << man) + (np.int64(zn[j]) >> (TOP - man + eg - e))
            Z[i, j0 + j] = (np.int64(zsg[j]) << (W - 1)) | mag
        if use_gen:
            for j in range(n):
                G[i, j0 + j] = np.int64(g[j]) & 0xFFFFFFFF
