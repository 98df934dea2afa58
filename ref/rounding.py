"""Rounding an exact value to a format (contract section 2), on int64 arrays.

Exact values travel as *unpacked* integers: ``(sign, sig, exp)`` with value
``(-1)**sign * sig * 2**exp``, ``0 <= sig < 2**62``. Every function takes an
``ops`` namespace (:mod:`ref.backend`) so the same code runs on NumPy and on
PyTorch (CPU or CUDA) and gives the same bits.

Two steps, shared by :func:`ref.codec.encode` and the MAC modes:

* :func:`round_to_grid` picks the integer ``m`` and the grid exponent ``eg`` of
  the rounded magnitude ``m * 2**(eg - man_bits)`` for ``rn``, ``rz`` or ``sr``.
* :func:`pack` turns ``(sign, m, eg)`` into a code, applying the overflow,
  flush-to-zero and signed-zero rules of contract section 1.
"""

from __future__ import annotations

from .formats import FloatFormat

__all__ = ["bit_length", "round_to_grid", "pack", "shift_right_floor", "special_codes"]

_CLAMP = 63


def bit_length(ops, sig):
    """Elementwise bit length of a non-negative int64 array (0 for 0).

    Uses the float64 exponent, then corrects the one-off error that float
    rounding introduces for values above 2**53.
    """
    bl = ops.frexp_exp(ops.to_float64(sig))
    top = ops.maximum(bl - 1, 0)
    too_big = (sig >> top) == 0  # float rounded sig up to the next power of two
    return ops.where(too_big & (bl > 0), bl - 1, bl)


def shift_right_floor(ops, sig, s):
    """``(floor(sig / 2**s), sig mod 2**s != 0)`` for s >= 0, and exact left shifts for s < 0.

    ``s`` is an int64 array; shifts beyond 63 bits give 0 with the remainder flag
    set when ``sig`` is non-zero. Callers guarantee a left-shifted result fits.
    """
    sr = ops.minimum(ops.maximum(s, 0), _CLAMP)
    sl = ops.minimum(ops.maximum(-s, 0), _CLAMP)
    q = sig >> sr
    rem = (sig - (q << sr)) != 0
    q = q << sl
    return q, rem


def round_to_grid(ops, sig, exp, fmt: FloatFormat, mode: str, rbits: int = 0, R=None):
    """Round the magnitude ``sig * 2**exp`` on the grid of ``fmt``.

    Returns ``(m, eg, e)``: the rounded magnitude is ``m * 2**(eg - man_bits)``
    with ``eg = max(e, emin)``; ``e = floor(log2(sig * 2**exp))`` is returned
    for the flush rule (meaningless where sig == 0). ``m`` may equal
    ``2**precision`` (a carry into the next binade); :func:`pack` handles it.

    ``mode`` is ``"rn"`` (ties to even), ``"rz"`` or ``"sr"`` (SR_{p,r}: round up
    iff ``floor(f * 2**r) + R >= 2**r``, with ``R`` an int64 array in [0, 2**r)).
    """
    man = fmt.man_bits
    e = exp + bit_length(ops, sig) - 1
    eg = ops.maximum(e, fmt.emin)
    if mode == "rn":
        extra = 1
    elif mode == "rz":
        extra = 0
    elif mode == "sr":
        extra = rbits
    else:  # pragma: no cover - callers validate
        raise ValueError(f"unknown rounding mode {mode!r}")
    # t = floor(|x| / (ulp * 2**-extra)); 'below' says whether bits were dropped.
    t, below = shift_right_floor(ops, sig, eg - man - extra - exp)
    if mode == "rz":
        return t, eg, e
    if mode == "rn":
        k = t >> 1
        half = (t & 1) == 1
        up = half & (below | ((k & 1) == 1))
        return k + ops.as_int(up), eg, e
    k = t >> rbits
    frac = t & ((1 << rbits) - 1)
    up = (frac + R) >= (1 << rbits)
    return k + ops.as_int(up), eg, e


def special_codes(ops, fmt: FloatFormat, sign, is_nan, is_inf, codes):
    """Overwrite ``codes`` with the codes of NaN and signed infinities.

    A format without NaN ("none") maps NaN to +0; a format without inf maps
    inf to NaN ("fn") or, when it saturates or has no NaN, to the signed max.
    """
    s = sign << (fmt.width - 1)
    if fmt.has_inf:
        inf = s | fmt.inf_code
    elif fmt.saturate or not fmt.has_nan:
        inf = s | fmt.max_code
    else:
        inf = s * 0 + fmt.nan_code
    codes = ops.where(is_inf, inf, codes)
    nan = fmt.nan_code if fmt.has_nan else 0
    return ops.where(is_nan, nan, codes)


def pack(ops, fmt: FloatFormat, sign, m, eg, e, *, exact_zero, mode: str):
    """Encode ``(-1)**sign * m * 2**(eg - man_bits)`` as a code of ``fmt``.

    * overflow (magnitude above the largest finite value): the largest finite
      value under ``rz``, when the format saturates or has no specials;
      otherwise inf ("ieee") or the canonical NaN ("fn");
    * ``subnormals=False``: an exact value below ``2**emin`` (its exponent
      ``e < emin``) flushes to a signed zero;
    * ``exact_zero`` (boolean array) marks exact zero values: their sign was
      already resolved by the caller.
    """
    man = fmt.man_bits
    # ((eg - emin) << man) + m is the magnitude code for normals, subnormals
    # (eg == emin, m < 2**man) and a carry to the next binade (m == 2**p) alike.
    # A grid exponent above emax + 2 overflows whatever m is; clamping it there
    # keeps the shift inside int64 (encode of 1.0 into a format with a huge bias
    # and 52 mantissa bits) without changing any result.
    mag = ((ops.minimum(eg, fmt.emax + 2) - fmt.emin) << man) + m
    overflow = mag > fmt.max_code
    if mode == "rz" or fmt.saturate or fmt.specials == "none":
        ovf_code = fmt.max_code
    elif fmt.specials == "ieee":
        ovf_code = fmt.inf_code
    else:
        ovf_code = None  # NaN, unsigned canonical code
    if not fmt.subnormals:
        mag = ops.where(e < fmt.emin, 0, mag)
    mag = ops.where(exact_zero, 0, mag)
    signed = (sign << (fmt.width - 1)) | ops.minimum(mag, fmt.max_code)
    if ovf_code is None:
        return ops.where(overflow & ~exact_zero, fmt.nan_code, signed)
    return ops.where(overflow & ~exact_zero, (sign << (fmt.width - 1)) | ovf_code, signed)
