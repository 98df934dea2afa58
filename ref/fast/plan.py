"""What the fast kernels are given: the parameter vector, decoded operands, which kernel runs.

Shared by the CPU kernels (numba, :mod:`ref.fast`) and the device kernels
(Triton, :mod:`ref.fast.device`); imports neither compiler.
"""

from __future__ import annotations

import numpy as np

from ..backend import NumpyOps
from ..codec import unpack
from ..config import MacConfig
from . import layout as L
from .macbody import TOP32

__all__ = ["params", "fits_int32", "fits_narrow", "decode_operand", "decode_codes",
           "decode_table"]

_MODES = {"rn": L.RN, "rz": L.RZ, "sr_lazy": L.SR_LAZY, "sr_eager": L.SR_EAGER}
_SPECIALS = {"ieee": L.SPEC_IEEE, "fn": L.SPEC_FN, "none": L.SPEC_NONE}
_EXP_LIMIT = 1 << 20  # narrow: |exponents| of both formats must stay below this


def params(cfg: MacConfig) -> np.ndarray:
    """The kernels' int64 parameter vector for ``cfg`` (indices ``layout.P_*``)."""
    acc = cfg.acc_fmt
    mode = _MODES[cfg.rounding]
    if cfg.rounding == "rz" or acc.saturate or acc.specials == "none":
        ovf = acc.max_code
    elif acc.specials == "ieee":
        ovf = acc.inf_code
    else:
        ovf = -1  # the canonical NaN
    if acc.has_inf:
        infval = acc.inf_code
    elif acc.saturate or not acc.has_nan:
        infval = acc.max_code
    else:
        infval = -1
    P = np.zeros(L.P_NPARAMS, dtype=np.int64)
    P[L.P_MODE] = mode
    P[L.P_R] = cfg.rbits or 0
    P[L.P_W] = acc.width
    P[L.P_MAN] = acc.man_bits
    P[L.P_EFMAX] = acc.exp_field_max
    P[L.P_BIAS] = acc.bias
    P[L.P_SUB] = int(acc.subnormals)
    P[L.P_SPEC] = _SPECIALS[acc.specials]
    P[L.P_EMIN] = acc.emin
    P[L.P_MAXCODE] = acc.max_code
    P[L.P_OVF] = ovf
    P[L.P_INFVAL] = infval
    P[L.P_NANVAL] = acc.nan_code if acc.has_nan else 0
    P[L.P_RMASK] = (1 << cfg.rand_bits) - 1
    P[L.P_EMAX] = acc.emax  # the largest finite binade: only results there can overflow
    P[L.P_EXTRA] = cfg.extra_bits  # bits below the grid the rounding looks at (ref.config)
    return P


def fits_int32(fmt) -> bool:
    """True when every decoded field of ``fmt`` fits int32 (not so for an extreme custom bias)."""
    lim = 1 << 30
    return abs(fmt.bias) + (1 << fmt.exp_bits) + fmt.man_bits < lim and fmt.precision <= 30


def fits_narrow(cfg: MacConfig) -> bool:
    """True when ``cfg`` can run in int32 lanes (the narrow kernels, :mod:`ref.fast.narrow`).

    The window of ``TOP32 + 2 = 31`` bits must hold the addends' precisions and keep the
    rounding position at least two bits above the jam bit (``TOP32 >= man + extra + 3``
    with ``extra`` = 1 for ``rn``, 0 for ``rz``, ``r`` for SR), and exponents and packed
    magnitudes must fit int32.
    """
    fin, acc = cfg.in_fmt, cfg.acc_fmt
    man = acc.man_bits
    extra = cfg.extra_bits
    if 2 * fin.precision > TOP32 or acc.precision > TOP32 or man + extra + 3 > TOP32:
        return False
    if cfg.rand_bits > 31 or acc.width > 31:
        return False
    exps = (fin.emin - fin.man_bits, fin.emax + 1, acc.emin - man, acc.emax + 2)
    if any(abs(e) >= _EXP_LIMIT for e in exps):
        return False
    # largest grid exponent a finite MAC can reach, relative to emin, packed with man bits
    top_exp = max(acc.emax + 2, 2 * (fin.emax + 1) + 2)
    return ((top_exp - acc.emin + 1) << man) + (1 << (man + 2)) < (1 << 31)


def decode_operand(codes, fmt) -> np.ndarray:
    """(..., 4) int32 per code: sign, integer significand, exponent, class bits.

    The reference's :func:`ref.codec.unpack` decodes; for formats of up to 16
    bits it decodes the ``2**width`` codes once into a table
    (:func:`decode_table`) and the operand is one gather from it. Class bits:
    ``1`` NaN, ``2`` inf, ``4`` zero (``layout.C_*``); an operand with significand
    0 gets the exponent ``layout.ZERO_EXP``, so that the narrow kernels' product
    exponent needs no zero test. int32 holds every field
    when :func:`fits_int32`: input significands have at most 29 bits
    (``MacConfig`` checks it).
    """
    codes = np.asarray(codes, dtype=np.int64)
    if fmt.width <= 16:
        return decode_table(fmt)[codes]
    return decode_codes(codes, fmt)


def decode_codes(codes, fmt, ops=None):
    """:func:`decode_operand` without the table: ``ops`` (default NumPy) arrays, int32."""
    ops = ops or NumpyOps()
    sign, sig, exp, is_nan, is_inf = unpack(ops, codes, fmt)
    zero = (sig == 0) & ~(is_nan | is_inf)
    cls = ops.as_int(is_nan) * L.C_NAN + ops.as_int(is_inf) * L.C_INF + ops.as_int(zero) * L.C_ZERO
    exp = ops.where(sig == 0, L.ZERO_EXP, exp)  # (NaN / inf have sig 0 too: they go wide)
    if ops.name == "torch":
        t = ops.torch
        return t.stack([sign, sig, exp, cls], dim=-1).to(t.int32)
    return np.stack([sign, sig, exp, cls], axis=-1).astype(np.int32)


_TABLES: dict = {}


def decode_table(fmt) -> np.ndarray:
    """(2**width, 4) int32: :func:`decode_codes` of every code of ``fmt`` (cached)."""
    table = _TABLES.get(fmt)
    if table is None:
        table = _TABLES[fmt] = decode_codes(np.arange(fmt.num_codes, dtype=np.int64), fmt)
    return table
