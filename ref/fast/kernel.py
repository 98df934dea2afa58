"""The CPU kernel of the fast path: MAC chains over tiles of the output (numba).

One MAC is the contract's ``z' = round(z + a*b)`` on int64 scalars, computed
by the same steps as :func:`ref.mac.mac_step`: unpack the accumulator code,
normalise both addends so their leading one sits at bit 60, shift the smaller
right and jam the lost bits into bit 0 (so the sum has the exact sum's floor
at every rounding position, at least two bits above bit 0), add, round on the
accumulator grid (``rn``, ``rz``, SR_{p,r}; the eager far path), pack with the
overflow / flush / signed-zero rules, then the NaN and infinity codes.

Why it is written this way (measurements in docs/performance.md):

* the MAC body is written out inside the loop over output columns, with
  conditional expressions only (LLVM turns them into selects), so the loop
  vectorises (AVX2 / AVX-512: ``vplzcntq`` for the bit lengths, ``vpsllvq``
  for the shifts); numba's IR-level inlining of helper functions multiplied
  the compile time, so there are no helper calls in the loop;
* the rounding mode is a run-time value: all four roundings share one
  compiled loop (one JIT compile, cached on disk), at the price of computing
  the SR and eager-window terms in ``rn`` / ``rz`` too;
* the kernel releases the GIL; :mod:`ref.fast` runs tiles on all cores with
  Python threads (cheaper to compile than ``prange``).

Configurations whose arithmetic fits 31 bits run first in the int32 kernel
(:mod:`ref.fast.narrow`); this kernel runs everything else, and the tiles
that the int32 kernel hands back (NaN / infinity operands, overflow).

Integers: codes, significands and exponents are int64; generator states are
32-bit values held in int64 (as :mod:`ref.prng`).
"""

from __future__ import annotations

import os

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from .layout import (
    C_INF,
    C_NAN,
    P_BIAS,
    P_EFMAX,
    P_EMIN,
    P_INFVAL,
    P_MAN,
    P_MAXCODE,
    P_MODE,
    P_NANVAL,
    P_OVF,
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

__all__ = ["gemm_tiles", "prefer_wide_vectors"]


def prefer_wide_vectors() -> bool:
    """Let LLVM use 512-bit vectors on AVX-512 hosts (numba's default tuning stops at 256).

    Measured +40 % MAC/s on the CPU kernel (docs/performance.md). It sets
    numba's process-wide CPU feature string, so it only takes effect before
    numba compiles anything in this process, and never overrides a user's
    ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``; ``SRMAC_NUMBA_256=1`` turns it
    off. Returns True when the setting was applied.
    """
    if nb.config.CPU_NAME or nb.config.CPU_FEATURES or os.environ.get("SRMAC_NUMBA_256"):
        return False
    from numba.core.codegen import get_host_cpu_features

    features = get_host_cpu_features()
    if "+avx512f" not in features.split(","):
        return False
    nb.config.CPU_FEATURES = features + ",-prefer-256-bit"
    return True


prefer_wide_vectors()

_TOP = 60  # bit index of the leading one of a normalised addend (as ref.mac)
_NO_EXP = -(1 << 40)  # exponent of a zero addend ("-inf")
MASK32 = 0xFFFFFFFF


@nb.njit(nogil=True, cache=True)
def _row(z, w, bdec, sa, siga, expa, ca, P):
    """MAC step k of one tile: ``z[j] <- round(z[j] + a * b[j])`` with random words ``w[j]``.

    ``a`` arrives decoded (sign, significand, exponent, class bits), ``bdec`` is
    (4, n) int32: B's row k decoded the same way, ``z`` the tile's accumulator codes.
    """
    mode = P[P_MODE]
    r = P[P_R]
    W = P[P_W]
    man = P[P_MAN]
    efmax = P[P_EFMAX]
    bias = P[P_BIAS]
    sub = P[P_SUB]
    spec = P[P_SPEC]
    emin = P[P_EMIN]
    maxcode = P[P_MAXCODE]
    ovf = P[P_OVF]
    infval = P[P_INFVAL]
    nanval = P[P_NANVAL]
    hidden = np.int64(1) << man
    manmask = hidden - 1
    magmask = (np.int64(1) << (W - 1)) - 1
    one_r = np.int64(1) << r
    extra = 1 if mode == RN else (0 if mode == RZ else r)  # rounding bits kept below the ulp
    eager = mode == SR_EAGER
    for j in range(z.shape[0]):
        # ---- the exact product a * b[j] (operands decoded once, outside the loop)
        cb = np.int64(bdec[3, j])
        cor = ca | cb
        # NaN operand, or inf * 0 (C_INF == C_ZERO >> 1)
        nan_bits = (cor & C_NAN) | ((ca & C_INF) & (cb >> 1)) | ((cb & C_INF) & (ca >> 1))
        pnan = nan_bits != 0
        pinf = ((cor & C_INF) != 0) & (nan_bits == 0)
        ps = sa ^ np.int64(bdec[0, j])
        psig = siga * np.int64(bdec[1, j])
        pexp = expa + np.int64(bdec[2, j])
        zc = z[j]
        word = w[j]
        # ---- unpack the accumulator code
        zs = (zc >> (W - 1)) & 1
        ef = (zc >> man) & efmax
        mf = zc & manmask
        zsig = (mf | hidden) if ef != 0 else (mf if sub != 0 else 0)
        zexp = max(ef, 1) - bias - man
        if spec == SPEC_IEEE:
            znan = (ef == efmax) & (mf != 0)
            zinf = (ef == efmax) & (mf == 0)
        elif spec == SPEC_FN:
            znan = (zc & magmask) == magmask
            zinf = False
        else:
            znan = False
            zinf = False
        zsig = 0 if (znan | zinf) else zsig
        # ---- normalise both addends to bit _TOP, align, jam, add
        blz = 64 - np.int64(leading_zeros(np.uint64(zsig)))
        blp = 64 - np.int64(leading_zeros(np.uint64(psig)))
        nz = zsig << min(_TOP + 1 - blz, 63)
        npr = psig << min(_TOP + 1 - blp, 63)
        ez = (zexp + blz - 1) if zsig != 0 else _NO_EXP
        ep = (pexp + blp - 1) if psig != 0 else _NO_EXP
        z_big = ez >= ep
        e_big = max(ez, ep)
        d = (ez - ep) if z_big else (ep - ez)
        big = nz if z_big else npr
        small = npr if z_big else nz
        dsh = min(d, 63)
        q = small >> dsh
        small_j = q | np.int64((q << dsh) != small)
        eff_sub = zs != ps
        S = (big - small_j) if eff_sub else (big + small_j)
        neg = S < 0
        S = -S if neg else S
        sign = (ps if z_big else zs) if neg else (zs if z_big else ps)
        exact_zero = S == 0
        sign = (zs & ps) if exact_zero else sign  # +0 unless both addends are -0
        lsb = e_big - _TOP
        # ---- round S * 2**lsb on the accumulator grid (ref.rounding.round_to_grid)
        e = lsb + 63 - np.int64(leading_zeros(np.uint64(S)))
        eg = max(e, emin)
        s = eg - man - extra - lsb
        sr = min(max(s, 0), 63)
        t = S >> sr
        below = (t << sr) != S
        t = t << min(max(-s, 0), 63)
        R = word & (one_r - 1)
        if mode == RN:
            kq = t >> 1
            up = ((t & 1) == 1) & (below | ((kq & 1) == 1))
        elif mode == RZ:
            kq = t
            up = False
        else:
            kq = t >> r
            up = (t & (one_r - 1)) + R >= one_r
        m = kq + np.int64(up)
        # ---- sr_eager far path (contract 3.3); the close path keeps the lazy result
        anchor = max((e_big - 1) if eff_sub else e_big, emin)
        s2 = anchor - man - r - lsb
        T = (S >> min(max(s2, 0), 63)) << min(max(-s2, 0), 63)
        Y = T + R
        kk = max(63 - np.int64(leading_zeros(np.uint64(Y))) - man - r, 0)  # 0, 1 or 2
        Bk = (word >> r) & ((np.int64(1) << kk) - 1)
        far = eager & (not (eff_sub & (d <= 1)))
        m = ((Y + (Bk << r)) >> (r + kk)) if far else m
        eg = (anchor + kk) if far else eg
        # ---- pack (ref.rounding.pack): overflow, flush to zero, signed zero
        mag = ((eg - emin) << man) + m
        overflow = (mag > maxcode) & (not exact_zero)
        mag = 0 if ((sub == 0) & (e < emin)) | exact_zero else mag
        sbit = sign << (W - 1)
        ovf_code = nanval if ovf < 0 else (sbit | ovf)  # ovf < 0: the canonical NaN
        code = ovf_code if overflow else (sbit | min(mag, maxcode))
        # ---- NaN and infinities (ref.rounding.special_codes)
        is_nan = znan | pnan | (zinf & pinf & (zs != ps))
        is_inf = (zinf | pinf) & (not is_nan)
        isign = zs if zinf else ps
        inf_code = nanval if infval < 0 else ((isign << (W - 1)) | infval)
        code = inf_code if is_inf else code
        z[j] = nanval if is_nan else code


@nb.njit(nogil=True, cache=True)
def _step_words(g, w, rmask):
    """Step each PE's xorshift32 state once (13, 17, 5, as ref.prng.step); w <- masked word."""
    for j in range(g.shape[0]):
        x = g[j]
        x ^= (x << 13) & MASK32
        x ^= x >> 17
        x ^= (x << 5) & MASK32
        g[j] = x
        w[j] = x & rmask


@nb.njit(nogil=True, cache=True)
def gemm_tiles(Adec, Bt, Z, G, RAND, P, tiles):
    """Run the listed tiles (int64 ids) of ``Z <- chains over k``, in place.

    Adec: (M, K, 4) int32 pre-decoded A (sign, significand, exponent, class
    bits). Bt: (nJ, K, 4, JB) B decoded the same way and cut into column
    tiles of JB (the last one padded), so that a tile's row k is contiguous.
    Z: (M, N) accumulator codes. G: (M, N) generator states, stepped once per
    MAC (SR without explicit words), else (0, 0). RAND: (M, N, K) explicit
    random words, else (0, 0, 0). P: parameters (:func:`ref.fast.params`).
    Tile t is row ``t // nJ``, column tile ``t % nJ``; its accumulators stay in
    cache while k advances. Tiles touch disjoint outputs, so threads may run
    disjoint tile lists at once.
    """
    nJ = Bt.shape[0]
    K = Bt.shape[1]
    JB = Bt.shape[3]
    N = Z.shape[1]
    use_gen = G.shape[0] > 0
    use_rand = RAND.shape[0] > 0
    rmask = P[P_RMASK]
    w = np.zeros(JB, dtype=np.int64)
    z = np.zeros(JB, dtype=np.int64)
    g = np.ones(JB, dtype=np.int64)
    for t in tiles:
        i = t // nJ
        jt = t % nJ
        j0 = jt * JB
        n = min(JB, N - j0)
        z[:n] = Z[i, j0:j0 + n]
        if use_gen:
            g[:n] = G[i, j0:j0 + n]
        for k in range(K):
            if use_gen:
                _step_words(g, w, rmask)
            elif use_rand:
                w[:n] = RAND[i, j0:j0 + n, k]
            _row(z, w, Bt[jt, k], np.int64(Adec[i, k, 0]), np.int64(Adec[i, k, 1]),
                 np.int64(Adec[i, k, 2]), np.int64(Adec[i, k, 3]), P)
        Z[i, j0:j0 + n] = z[:n]
        if use_gen:
            G[i, j0:j0 + n] = g[:n]
