"""A call's work before the tile kernels, compiled and split over the threads (numba).

Before the MAC chains, every call of :func:`ref.fast.matmul` decodes its
operands into the tile kernels' layouts and, for SR from a seed, seeds the
PEs' generators. In NumPy these steps ran on one thread (a fifth of a
256 x 256 x 256 call, and all of the second thread's idle time);
:func:`prologue` does them in ``nparts`` independent parts that run on the
same threads as the tiles, with the GIL released:

* A's rows: decoded from the format's table (``Adec``, ``(M, K, 4)``) and
  flagged when they hold a NaN or an infinity (``rowbad``);
* B's rows ``k``: decoded into column tiles of ``JB`` (``Bt``, ``(nJ, K, 4,
  JB)``, the last tile padded with +0) and flagged per tile and ``k``
  (``badk``);
* the generator states ``G``: ``ref.prng``'s seeding rule, compiled from its
  own source (:func:`ref.prng.seed_hash`, bound to numba here), for PE ``(i,
  j)``, or ``(j, i)`` when the kernels run the transposed product.

Formats wider than 16 bits have no decode table: their operands are decoded
by :func:`ref.fast.plan.decode_operand` beforehand and the prologue only
flags them (``table`` empty).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .. import prng
from .layout import C_INF, C_NAN
from .macbody import bind
from .numba_cache import njit

__all__ = ["prologue", "seed_hash"]

# ref.prng's seeding rule, compiled from its source: the same operators on int64 (a
# product of two 32-bit values wraps modulo 2**64 and keeps its low 32 bits)
_NS = dict(vars(prng), __name__=__name__)
_NS["_mix"] = nb.njit(bind(prng._mix, _NS))
#: :func:`ref.prng.seed_hash` compiled by numba: ``(base, key, i, j)`` -> the PE's state.
seed_hash = nb.njit(bind(prng.seed_hash, _NS))

_SPECIAL = C_NAN | C_INF


@nb.njit(nogil=True)
def _span(n, part, nparts):
    """The ``part``-th of ``nparts`` contiguous shares of ``range(n)``."""
    return n * part // nparts, n * (part + 1) // nparts


@njit(nogil=True)
def prologue(A, B, table, Adec, Bt, rowbad, badk, G, base, key, swap, part, nparts):
    """Part ``part`` of ``nparts`` of the decoding, flagging and seeding (in place).

    ``A`` (M, K), ``B`` (K, N): int64 codes (any strides). ``table``: the
    format's decode table (:func:`ref.fast.plan.decode_table`), or empty when
    ``Adec`` / ``Bt`` are decoded already. ``rowbad`` (M,), ``badk`` (nJ, K):
    bool, an A row / a tile's B row holds a NaN or an infinity. ``G``: the
    (M, N) states to seed from ``(base, key)`` (:func:`ref.prng.seed_words`),
    PE ``(i, j)``, or ``(j, i)`` when ``swap``; (0, 0) when no generator is
    seeded. The parts write disjoint rows: they may run at once.
    """
    M, K = Adec.shape[0], Adec.shape[1]
    nJ, JB = Bt.shape[0], Bt.shape[3]
    N = B.shape[1]
    decode = table.shape[0] > 0
    i0, i1 = _span(M, part, nparts)
    for i in range(i0, i1):
        bad = 0
        for k in range(K):
            if decode:
                c = A[i, k]
                for f in range(4):
                    Adec[i, k, f] = table[c, f]
            bad |= Adec[i, k, 3]
        rowbad[i] = (bad & _SPECIAL) != 0
    k0, k1 = _span(K, part, nparts)
    for k in range(k0, k1):
        for jt in range(nJ):
            j0 = jt * JB
            if decode:
                n = min(JB, N - j0)
                for jj in range(n):
                    c = B[k, j0 + jj]
                    for f in range(4):
                        Bt[jt, k, f, jj] = table[c, f]
                for jj in range(n, JB):  # padding: +0 codes
                    for f in range(4):
                        Bt[jt, k, f, jj] = table[0, f]
            bad = 0
            for jj in range(JB):
                bad |= Bt[jt, k, 3, jj]
            badk[jt, k] = (bad & _SPECIAL) != 0
    r0, r1 = _span(G.shape[0], part, nparts)
    for a in range(r0, r1):
        for b in range(G.shape[1]):
            G[a, b] = seed_hash(base, key, np.int64(b), np.int64(a)) if swap else \
                seed_hash(base, key, np.int64(a), np.int64(b))
