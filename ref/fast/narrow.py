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
  in which a result reaches the accumulator's top binade ``emax`` (the only
  place where a finite chain can overflow to a special or saturated code), is
  reported back untouched and rerun by the int64 kernel, which implements
  every rule. So codes are identical either way;
* **one loop per rounding mode and random-word source** (:func:`variant_tag`),
  each compiled on first use: in one shared loop the branches on the mode
  stopped LLVM from vectorising at all;
* the generator step is fused into the MAC loop (xorshift32 on the 32-bit
  pattern), and the rounding shifts work on the sum normalised to bit 30, so
  they are all right shifts;
* the MAC itself is :func:`ref.fast.macbody.mac32` (the same source as the
  Triton kernel's), bound to numba in :mod:`ref.fast.kernel`; eager SR rounds
  both paths with one window formula.

:func:`ref.fast.plan.fits_narrow` says when a configuration may take this path: the window of
``TOP + 2 = 31`` bits must hold the addends' precisions and keep the rounding
position at least two bits above the jam bit (``TOP >= man + extra + 3`` with
``extra`` = 1 for ``rn``, 0 for ``rz``, ``r`` for SR), and exponents and packed
magnitudes must fit int32.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .kernel import BODIES
from .layout import (
    P_BIAS,
    P_EFMAX,
    P_EMAX,
    P_EMIN,
    P_EXTRA,
    P_MAN,
    P_R,
    P_RMASK,
    P_SPEC,
    P_SUB,
    P_W,
)
from .macbody import NO_EXP32 as NO_EXP
from .macbody import TOP32 as TOP
from .numba_cache import njit

__all__ = ["gemm_tiles32", "variant_tag", "TOP", "NO_EXP"]

I = np.int32  # noqa: E741
_product32 = BODIES["product32"]
_mac32 = BODIES["mac32"]
_xorshift32 = BODIES["xorshift32"]
_unpack32 = BODIES["unpack32"]
_pack32 = BODIES["pack32"]


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


@nb.njit(nogil=True)
def _row32(zsg, zn, ze, g, w, bdec, sa, siga, expa, P, tag):
    """MAC step k of one tile on the decoded accumulators; returns the largest grid binade.

    ``zsg`` / ``zn`` / ``ze``: int32 sign, significand (leading one at bit TOP,
    0 for zero) and exponent of the leading one (NO_EXP for zero), updated in
    place. ``g``: the PEs' xorshift32 states (int32 bit patterns), stepped in
    place (source 1); ``w``: explicit int32 random words (source 2). ``bdec``:
    (4, n) int32 decoded B row k. ``tag``: :func:`variant_tag`.
    """
    mode = (len(tag) - 1) % 4  # compile-time constants: the other variants fold away
    source = (len(tag) - 1) // 4
    r = I(P[P_R])
    extra = I(P[P_EXTRA])
    man = I(P[P_MAN])
    sub = I(P[P_SUB])
    emin = I(P[P_EMIN])
    rmask = I(P[P_RMASK])
    top = I(-(1 << 30))
    for j in range(zn.shape[0]):
        ps, npr, ep = _product32(sa, siga, expa, bdec[0, j], bdec[1, j], bdec[2, j])
        if source == 1:
            x = _xorshift32(g[j])
            g[j] = x
            word = I(x & rmask)
        elif source == 2:
            word = w[j]
        else:
            word = I(0)
        s, n, e, eg = _mac32(zsg[j], zn[j], ze[j], ps, npr, ep, word, mode, r, extra, man, emin,
                              sub)
        zsg[j] = s
        zn[j] = n
        ze[j] = e
        top = max(top, eg)
    return top


@njit(nogil=True)
def gemm_tiles32(Adec, Bt, Z, G, RAND, P, tiles, rowbad, colbad, redo, tag):
    """Run the listed tiles of ``Z <- chains over k`` in int32 lanes, in place.

    Arguments as :func:`ref.fast.kernel.gemm_tiles`; ``tiles``: int64 tile ids.
    ``rowbad`` (M,) / ``colbad`` (nJ,): A row / B column tile holds a NaN or an
    infinity. A tile that meets a special value (there, or in its initial
    accumulators) or whose results reach the top binade is left untouched in Z and G and flagged
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
    emin = P[P_EMIN]
    emax = P[P_EMAX]
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
            zsg[j], zn[j], ze[j], sp = _unpack32(Z[i, j0 + j], W, man, efmax, bias, sub, spec)
            special |= sp
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
        top = -(1 << 30)
        for k in range(K):
            if use_rand:
                for j in range(n):
                    w[j] = RAND[i, j0 + j, k]
            top = max(top, _row32(zsg, zn, ze, g, w, Bt[jt, k], I(Adec[i, k, 0]),
                                  I(Adec[i, k, 1]), I(Adec[i, k, 2]), P, tag))
        if top >= emax:  # a result reached the top binade: it may have overflowed
            redo[t] = 1
            continue
        for j in range(n):  # pack (the values are on the grid: the shifts are exact)
            Z[i, j0 + j] = _pack32(zsg[j], zn[j], ze[j], W, man, emin)
        if use_gen:
            for j in range(n):
                G[i, j0 + j] = np.int64(g[j]) & 0xFFFFFFFF
