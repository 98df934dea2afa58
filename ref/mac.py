"""The fused MAC ``z' = round(z + a*b)`` on code arrays (contract section 3).

The exact sum is formed in an int64 window: both addends are normalised so
their leading bit sits at bit 60, the smaller one is shifted right and every
bit shifted out is OR-ed ("jammed") into bit 0. Rounding always happens at
least two bits above bit 0, so the jammed sum has the same floor at every
rounding position as the exact sum, and a non-zero bit 0 tells that it is
inexact (see docs/design.md).
"""

from __future__ import annotations

import numpy as np

from . import prng
from .backend import ops_for
from .checks import integer_array, reserve, shape_of
from .codec import unpack
from .config import MacConfig, Rounding, check_config
from .rounding import bit_length, pack, round_to_grid, shift_right_floor, special_codes

__all__ = ["mac", "unpack_inputs", "product", "mac_step", "split_rand"]

_TOP = 60  # bit index of the leading one of a normalised addend
_NO_EXP = -(1 << 40)  # exponent of a zero addend ("-inf"); real exponents are > -2**31
#: Peak bytes per output element of :func:`mac` (int64 temporaries of mac_step), measured
#: with tracemalloc on NumPy (tests/test_strict_inputs.py keeps it above the measured peak).
_MAC_BYTES = 360


def unpack_inputs(ops, codes, fmt):
    """Unpack input-format codes once (for reuse across a chain)."""
    return unpack(ops, ops.asint(codes), fmt)


def product(ops, ua, ub):
    """Exact product of two unpacked operands: ``(sign, sig, exp, is_nan, is_inf)``."""
    sa, siga, expa, nana, infa = ua
    sb, sigb, expb, nanb, infb = ub
    zero_a = (siga == 0) & ~(nana | infa)
    zero_b = (sigb == 0) & ~(nanb | infb)
    is_nan = nana | nanb | (infa & zero_b) | (infb & zero_a)
    is_inf = (infa | infb) & ~is_nan
    return sa ^ sb, siga * sigb, expa + expb, is_nan, is_inf


def split_rand(cfg: MacConfig, rand):
    """``(R, B)`` from a random word: R = low r bits, B = the next 2 bits (eager)."""
    if not cfg.is_sr:
        return None, None
    r = cfg.rbits
    return rand & ((1 << r) - 1), (rand >> r) & 3


def _normalise(ops, sig, exp):
    """Shift so the leading one is at bit _TOP; returns (sig', lsb exponent, floor(log2))."""
    bl = bit_length(ops, sig)
    sh = _TOP + 1 - bl
    nonzero = sig != 0
    e = ops.where(nonzero, exp + bl - 1, _NO_EXP)
    return sig << ops.minimum(sh, 63), e


def mac_step(ops, cfg: MacConfig, z, prod, R=None, B=None):
    """One MAC on an accumulator code array ``z`` and an unpacked exact product."""
    acc = cfg.acc_fmt
    sz, sigz, expz, nanz, infz = unpack(ops, z, acc)
    sp, sigp, expp, nanp, infp = prod

    nz, ez = _normalise(ops, sigz, expz)
    npr, ep = _normalise(ops, sigp, expp)
    z_big = ez >= ep
    e_big = ops.maximum(ez, ep)
    d = ops.where(z_big, ez - ep, ep - ez)
    big = ops.where(z_big, nz, npr)
    small = ops.where(z_big, npr, nz)
    small_j, lost = shift_right_floor(ops, small, d)
    small_j = small_j | ops.as_int(lost)  # jam the shifted-out bits into bit 0
    eff_sub = sz != sp  # a zero addend counts by its sign bit
    S = ops.where(eff_sub, big - small_j, big + small_j)
    neg = S < 0
    S = ops.where(neg, -S, S)
    sign = ops.where(neg, ops.where(z_big, sp, sz), ops.where(z_big, sz, sp))
    exact_zero = S == 0
    sign = ops.where(exact_zero, sz & sp, sign)  # +0 unless both addends are -0
    lsb = e_big - _TOP

    mode = cfg.grid_mode
    m, eg, e = round_to_grid(ops, S, lsb, acc, mode, cfg.rbits or 0, R)

    if cfg.rounding is Rounding.SR_EAGER:
        m, eg = _eager_far(ops, cfg, S, lsb, e_big, d, eff_sub, R, B, m, eg)

    codes = pack(ops, acc, sign, m, eg, e, exact_zero=exact_zero, mode=mode)
    is_nan = nanz | nanp | (infz & infp & (sz != sp))
    is_inf = (infz | infp) & ~is_nan
    return special_codes(ops, acc, ops.where(infz, sz, sp), is_nan, is_inf, codes)


def _eager_far(ops, cfg, S, lsb, e_big, d, eff_sub, R, B, m_close, eg_close):
    """Contract 3, sr_eager far path; the close path keeps the lazy result."""
    acc = cfg.acc_fmt
    man, r = acc.man_bits, cfg.rbits
    anchor = ops.maximum(ops.where(eff_sub, e_big - 1, e_big), acc.emin)
    gw = anchor - man - r  # log2 of the window unit w
    T, _ = shift_right_floor(ops, S, gw - lsb)
    Y = T + R
    k = ops.maximum(bit_length(ops, Y) - 1 - man - r, 0)  # 0, 1 or 2
    Bk = B & ((1 << k) - 1)
    M = (Y + (Bk << r)) >> (r + k)
    close = eff_sub & (d <= 1)
    return ops.where(close, m_close, M), ops.where(close, eg_close, anchor + k)


def mac(z, a, b, cfg: MacConfig, rand=None, *, seed=None):
    """Elementwise MAC on code arrays: ``round(z + a*b)`` for ``cfg.rounding``.

    ``z`` holds accumulator-format codes, ``a`` and ``b`` input-format codes
    (integer arrays or Python ints); they broadcast. For the SR modes,
    ``rand`` holds ``cfg.rand_bits`` random bits per element (R in the low r
    bits, B above for eager), in a shape that broadcasts to the output's
    without enlarging it; without it, ``seed`` (0..2**64-1) drives the
    project PRNG (element n uses PE (n, 0), one step).
    Returns accumulator codes (NumPy int64, or torch int64 on the inputs' device).
    """
    from .codec import random_bits

    cfg = check_config(cfg, "ref.mac")
    if seed is not None:
        seed = prng.check_seed(seed)
    if rand is not None and not cfg.is_sr:
        raise ValueError(f"rand given but rounding {cfg.rounding!r} uses no random bits")
    ops = ops_for(z, a, b, rand)
    shapes = [shape_of(x, name) for x, name in ((z, "z"), (a, "a"), (b, "b"))]
    try:
        out_shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"shape mismatch: z {shapes[0]}, a {shapes[1]}, b {shapes[2]}") from None
    n = int(np.prod(out_shape, dtype=np.int64))
    reserve(n * _MAC_BYTES, f"ref.mac of {n} elements", getattr(ops, "device", None))
    z = integer_array(ops, z, "z")
    a = integer_array(ops, a, "a")
    b = integer_array(ops, b, "b")
    cfg.acc_fmt.check_codes(z)
    cfg.in_fmt.check_codes(a)
    cfg.in_fmt.check_codes(b)
    z, a, b = ops.broadcast(z, a, b)
    prod = product(ops, unpack_inputs(ops, a, cfg.in_fmt), unpack_inputs(ops, b, cfg.in_fmt))
    R = B = None
    if cfg.is_sr:
        word = random_bits(ops, tuple(z.shape), cfg.rand_bits, rand, seed)
        R, B = split_rand(cfg, word)
    return mac_step(ops, cfg, z, prod, R, B)
