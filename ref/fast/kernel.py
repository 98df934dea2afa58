"""The CPU kernel of the fast path: MAC chains over tiles of the output (numba).

One MAC is the contract's ``z' = round(z + a*b)`` on int64 scalars:
:func:`ref.fast.macbody.mac64`, the same steps as :func:`ref.mac.mac_step`
(unpack the accumulator code, normalise both addends so their leading one sits
at bit 60, shift the smaller right and jam the lost bits into bit 0, add, round
on the accumulator grid, pack with the overflow / flush / signed-zero rules,
then the NaN and infinity codes). This module also binds the MAC bodies of
:mod:`ref.fast.macbody` to numba (:data:`BODIES`); the Triton kernels bind the
same source (:mod:`ref.fast.triton_kernels`).

Why it is written this way (measurements in docs/performance.md):

* the MAC body uses selects only (``select`` is ``a if c else b``, which LLVM
  turns into a vector select) and is inlined by LLVM into the loop over output
  columns, so the loop vectorises (AVX2 / AVX-512: ``vplzcntq`` for the bit
  lengths, ``vpsllvq`` for the shifts). (numba's own IR-level inlining,
  ``inline="always"``, multiplied the compile time; LLVM's does not);
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

from . import macbody
from .layout import (
    P_BIAS,
    P_EFMAX,
    P_EMIN,
    P_EXTRA,
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
)
from .numba_cache import njit

__all__ = ["gemm_tiles", "prefer_wide_vectors", "BODIES"]


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


# ---- the numba binding of ref.fast.macbody (small functions: LLVM inlines them)


@nb.njit
def _select(c, a, b):
    return a if c else b


@nb.njit
def _smax(a, b):
    return max(a, b)


@nb.njit
def _smin(a, b):
    return min(a, b)


@nb.njit
def _not(c):
    return not c


@nb.njit
def _clz32(x):
    return np.int32(leading_zeros(np.uint32(x)))


@nb.njit
def _clz64(x):
    return np.int64(leading_zeros(np.uint64(x)))


#: The MAC bodies of :mod:`ref.fast.macbody` compiled by numba, by name.
BODIES = macbody.bind_all(dict(__name__=__name__, I=np.int32, L=np.int64, select=_select, smax=_smax, smin=_smin,
                               NOT=_not, clz32=_clz32, clz64=_clz64), nb.njit)
_mac64 = BODIES["mac64"]
_xorshift32_wide = BODIES["xorshift32_wide"]


@nb.njit(nogil=True)
def _row(z, w, bdec, sa, siga, expa, ca, P):
    """MAC step k of one tile: ``z[j] <- round(z[j] + a * b[j])`` with random words ``w[j]``.

    ``a`` arrives decoded (sign, significand, exponent, class bits), ``bdec`` is
    (4, n) int32: B's row k decoded the same way, ``z`` the tile's accumulator codes.
    """
    mode = P[P_MODE]
    r = P[P_R]
    extra = P[P_EXTRA]
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
    for j in range(z.shape[0]):
        z[j] = _mac64(z[j], sa, siga, expa, ca, np.int64(bdec[0, j]), np.int64(bdec[1, j]),
                      np.int64(bdec[2, j]), np.int64(bdec[3, j]), w[j], mode, r, extra, W, man,
                      efmax, bias, sub, spec, emin, maxcode, ovf, infval, nanval)


@nb.njit(nogil=True)
def _step_words(g, w, rmask):
    """Step each PE's xorshift32 state once (13, 17, 5, as ref.prng.step); w <- masked word."""
    for j in range(g.shape[0]):
        x = _xorshift32_wide(g[j])
        g[j] = x
        w[j] = x & rmask


@njit(nogil=True)
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
