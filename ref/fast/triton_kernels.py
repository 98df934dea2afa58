"""The device kernels of the fast path (Triton): MAC chains over output tiles on a GPU.

One program computes a ``BM x BN`` tile of outputs: it loads the tile's
initial accumulators (and generator states), runs the whole chain over ``k``
with everything in registers (decoded accumulators, the per-PE xorshift32
states stepped in place, or explicit random words loaded per ``k``), and
stores the tile once. The MAC is :mod:`ref.fast.macbody`, the same source the
CPU kernels compile with numba, bound here to Triton:

* :func:`gemm_narrow`: int32 lanes, finite chains (:func:`ref.fast.macbody.mac32`).
  A tile whose A rows, B columns or initial accumulators hold a NaN or an
  infinity, or in which a MAC overflows, stores nothing and sets its ``redo``
  flag, as the CPU's int32 kernel does;
* :func:`gemm_wide`: int64, every rule (:func:`ref.fast.macbody.mac64`), for the
  listed tiles (those flagged, or all of them when the configuration does not
  fit int32 lanes).

The configuration (rounding, formats, ``r``) is ``constexpr``: each one is
compiled once (Triton caches it on disk) with the other modes' work removed.

With ``TRITON_INTERPRET=1`` (set before this module is imported) Triton runs
the same kernels on CPU tensors with NumPy's exact integer operations; that is
how CI tests them without a GPU (tests/test_device_kernel.py). The only
difference is the bit count: ``__nv_clz`` on the device, an exact float64
form in the interpreter (which cannot call device libraries).
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

from . import macbody

try:  # Triton >= 3.2: resolved for the target when compiling
    from triton.language.extra import libdevice
except ImportError:  # pragma: no cover - older Triton
    from triton.language.extra.cuda import libdevice

__all__ = ["gemm_narrow", "gemm_wide", "INTERPRET", "BODIES"]

#: True when Triton runs kernels in its NumPy interpreter (``TRITON_INTERPRET=1``).
INTERPRET = (bool(triton.knobs.runtime.interpret) if hasattr(triton, "knobs")  # Triton >= 3.4
             else os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"))

_NATIVE_CLZ = tl.constexpr(not INTERPRET)


def _jit_helper(fn):
    """``triton.jit`` for the small functions below; in the interpreter they stay plain Python
    (the interpreter re-patches ``triton.language`` on every call of a jit function, which made
    the bodies ~10x slower there; the kernels that call them are interpreted as usual)."""
    return fn if INTERPRET else triton.jit(fn)


@_jit_helper
def _i32(x):
    return tl.cast(x, tl.int32)


@_jit_helper
def _i64(x):
    return tl.cast(x, tl.int64)


@_jit_helper
def _select(c, a, b):
    return tl.where(c, a, b)


@_jit_helper
def _smax(a, b):
    return tl.maximum(a, b)


@_jit_helper
def _smin(a, b):
    return tl.minimum(a, b)


@_jit_helper
def _not(c):
    return c == 0


@_jit_helper
def _floor_log2(x):
    """floor(log2(x)) of int64 ``x >= 0`` (``-1`` for 0), exact: float64 exponent, corrected
    where the conversion rounded up to the next power of two."""
    bits = tl.cast(x, tl.float64).to(tl.int64, bitcast=True)
    e = tl.cast((bits >> 52) - 1023, tl.int64)
    e = tl.where(x == 0, -1, e)
    up = (e >= 0) & ((tl.full(x.shape, 1, tl.int64) << tl.maximum(e, 0)) > x)
    return tl.where(up, e - 1, e)


@_jit_helper
def _clz32(x):
    if _NATIVE_CLZ:
        return tl.cast(libdevice.clz(x), tl.int32)
    else:
        return tl.cast(31 - _floor_log2(tl.cast(x, tl.int64)), tl.int32)


@_jit_helper
def _clz64(x):
    if _NATIVE_CLZ:
        return tl.cast(libdevice.clz(x), tl.int64)
    else:
        return tl.cast(63 - _floor_log2(x), tl.int64)


_NS = dict(__name__=__name__, tl=tl, I=_i32, L=_i64, select=_select, smax=_smax, smin=_smin, NOT=_not,
           clz32=_clz32, clz64=_clz64)
# Compiled kernels may read only constexpr globals; the interpreter runs the bodies as Python,
# where a constexpr on the left of an operator with a tensor does not work: plain ints there.
_NS.update({name: value if INTERPRET else tl.constexpr(value)
            for name, value in macbody.CONSTANTS.items()})
#: The MAC bodies of :mod:`ref.fast.macbody` as Triton functions, by name.
BODIES = macbody.bind_all(_NS, _jit_helper)
product32 = BODIES["product32"]
mac32 = BODIES["mac32"]
unpack32 = BODIES["unpack32"]
pack32 = BODIES["pack32"]
xorshift32 = BODIES["xorshift32"]
xorshift32_wide = BODIES["xorshift32_wide"]
mac64 = BODIES["mac64"]


@triton.jit
def _any(x):
    """1 if any element of the 2-D boolean block ``x`` is set, else 0 (int32 scalar)."""
    return tl.max(tl.max(x.to(tl.int32), axis=1), axis=0)


@triton.jit
def gemm_narrow(Adec, Bdec, Z, G, RAND, rowbad, colbad, redo, M, N, K,
                MODE: tl.constexpr, SOURCE: tl.constexpr, R: tl.constexpr, EXTRA: tl.constexpr,
                W: tl.constexpr,
                MAN: tl.constexpr, EFMAX: tl.constexpr, BIAS: tl.constexpr, SUB: tl.constexpr,
                SPEC: tl.constexpr, EMIN: tl.constexpr, EMAX: tl.constexpr,
                RMASK: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    """One ``BM x BN`` tile of ``Z <- chains over k`` in int32 lanes.

    ``Adec`` (K, 4, M) / ``Bdec`` (K, 4, N) int32: decoded operands (sign,
    significand, exponent, class bits), a row ``k`` of fields contiguous.
    ``Z`` (M, N) int64 codes, ``G`` (M, N) int64 generator states (SOURCE 1),
    ``RAND`` (M, N, K) int64 words (SOURCE 2). ``rowbad`` (M,) / ``colbad``
    (N,) int32: the A row / B column holds a NaN or an infinity. A tile that
    meets one, or in which a result reaches the top binade ``EMAX`` (where it
    may overflow), stores nothing and sets ``redo[tile] = 1``.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m * BM + tl.arange(0, BM)
    cols = pid_n * BN + tl.arange(0, BN)
    rin = rows < M
    cin = cols < N
    inside = rin[:, None] & cin[None, :]
    offs = rows[:, None].to(tl.int64) * N + cols[None, :]
    zc = tl.load(Z + offs, mask=inside, other=0)
    zs, zn, ze, special = unpack32(zc, W, MAN, EFMAX, BIAS, SUB, SPEC)
    bad = _any(special & inside)
    bad = tl.maximum(bad, tl.max(tl.load(rowbad + rows, mask=rin, other=0), axis=0))
    bad = tl.maximum(bad, tl.max(tl.load(colbad + cols, mask=cin, other=0), axis=0))
    if SOURCE == 1:
        g = tl.load(G + offs, mask=inside, other=1).to(tl.int32)  # the 32-bit pattern
    else:
        g = tl.zeros((BM, BN), tl.int32)
    top = tl.full((BM, BN), EMIN, tl.int32)
    for k in range(0, K):
        k4 = tl.cast(k * 4, tl.int64)  # offsets in int64: K x 4 x M may pass 2**31
        arow = Adec + k4 * M + rows
        brow = Bdec + k4 * N + cols
        sa = tl.load(arow, mask=rin, other=0)[:, None]
        siga = tl.load(arow + M, mask=rin, other=0)[:, None]
        expa = tl.load(arow + 2 * M, mask=rin, other=0)[:, None]
        sb = tl.load(brow, mask=cin, other=0)[None, :]
        sigb = tl.load(brow + N, mask=cin, other=0)[None, :]
        expb = tl.load(brow + 2 * N, mask=cin, other=0)[None, :]
        ps, npr, ep = product32(sa, siga, expa, sb, sigb, expb)
        if SOURCE == 1:
            g = xorshift32(g)
            word = g & RMASK
        elif SOURCE == 2:
            word = tl.load(RAND + offs * K + k, mask=inside, other=0).to(tl.int32)
        else:
            word = tl.zeros((BM, BN), tl.int32)
        zs, zn, ze, eg = mac32(zs, zn, ze, ps, npr, ep, word, MODE, R, EXTRA, MAN, EMIN, SUB)
        top = tl.maximum(top, eg)
    # a result in the top binade may have overflowed: the wide kernel owns that rule
    bad = tl.maximum(bad, _any((top >= EMAX) & inside))
    keep = (inside & (bad == 0)) != 0  # (the interpreter makes block & scalar int32)
    tl.store(Z + offs, pack32(zs, zn, ze, W, MAN, EMIN), mask=keep)
    if SOURCE == 1:
        tl.store(G + offs, g.to(tl.uint32).to(tl.int64), mask=keep)
    tl.store(redo + pid_m * tl.num_programs(1) + pid_n, bad)


@triton.jit
def gemm_wide(Adec, Bdec, Z, G, RAND, tiles, tiles_n, M, N, K,
              MODE: tl.constexpr, SOURCE: tl.constexpr, R: tl.constexpr, EXTRA: tl.constexpr,
              W: tl.constexpr,
              MAN: tl.constexpr, EFMAX: tl.constexpr, BIAS: tl.constexpr, SUB: tl.constexpr,
              SPEC: tl.constexpr, EMIN: tl.constexpr, MAXCODE: tl.constexpr, OVF: tl.constexpr,
              INFVAL: tl.constexpr, NANVAL: tl.constexpr, RMASK: tl.constexpr,
              BM: tl.constexpr, BN: tl.constexpr):
    """Tile ``tiles[program]`` (row-major over ``tiles_n`` column tiles) in int64, every rule."""
    t = tl.load(tiles + tl.program_id(0))
    pid_m = t // tiles_n
    pid_n = t % tiles_n
    rows = pid_m * BM + tl.arange(0, BM)
    cols = pid_n * BN + tl.arange(0, BN)
    rin = rows < M
    cin = cols < N
    inside = rin[:, None] & cin[None, :]
    offs = rows[:, None].to(tl.int64) * N + cols[None, :]
    zc = tl.load(Z + offs, mask=inside, other=0)
    if SOURCE == 1:
        g = tl.load(G + offs, mask=inside, other=1)
    else:
        g = tl.zeros((BM, BN), tl.int64)
    for k in range(0, K):
        k4 = tl.cast(k * 4, tl.int64)  # offsets in int64: K x 4 x M may pass 2**31
        arow = Adec + k4 * M + rows
        brow = Bdec + k4 * N + cols
        sa = tl.load(arow, mask=rin, other=0)[:, None]
        siga = tl.load(arow + M, mask=rin, other=0)[:, None]
        expa = tl.load(arow + 2 * M, mask=rin, other=0)[:, None]
        ca = tl.load(arow + 3 * M, mask=rin, other=4)[:, None]
        sb = tl.load(brow, mask=cin, other=0)[None, :]
        sigb = tl.load(brow + N, mask=cin, other=0)[None, :]
        expb = tl.load(brow + 2 * N, mask=cin, other=0)[None, :]
        cb = tl.load(brow + 3 * N, mask=cin, other=4)[None, :]
        if SOURCE == 1:
            g = xorshift32_wide(g)
            word = g & RMASK
        elif SOURCE == 2:
            word = tl.load(RAND + offs * K + k, mask=inside, other=0)
        else:
            word = tl.zeros((BM, BN), tl.int64)
        zc = mac64(zc, sa, siga, expa, ca, sb, sigb, expb, cb, word, MODE, R, EXTRA, W, MAN,
                   EFMAX, BIAS, SUB, SPEC, EMIN, MAXCODE, OVF, INFVAL, NANVAL)
    tl.store(Z + offs, zc, mask=inside)
    if SOURCE == 1:
        tl.store(G + offs, g, mask=inside)
