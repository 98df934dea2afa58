"""Codes <-> values: ``encode``, ``decode``, ``quantize`` (NumPy and PyTorch).

NumPy arrays (or lists, scalars) in give NumPy out; torch tensors in give torch
tensors out on the same device. Codes are int64 arrays of bit patterns.
"""

from __future__ import annotations

import numpy as np

from . import prng
from .backend import ops_for
from .checks import check_broadcasts_to, integer_array, real_array, reserve, shape_of
from .config import MAX_RBITS, check_rbits
from .formats import FloatFormat, parse_format
from .rounding import pack, round_to_grid, special_codes

__all__ = ["unpack", "decode", "encode", "quantize", "random_bits", "QUANTIZE_ROUNDINGS"]

QUANTIZE_ROUNDINGS = ("rn", "rz", "sr")


def unpack(ops, codes, fmt: FloatFormat):
    """Split codes into ``(sign, sig, exp, is_nan, is_inf)`` int64 / bool arrays.

    A finite code has value ``(-1)**sign * sig * 2**exp``; with
    ``subnormals=False`` a zero exponent field reads as a signed zero.
    """
    man = fmt.man_bits
    sign = (codes >> (fmt.width - 1)) & 1
    efield = (codes >> man) & fmt.exp_field_max
    mfield = codes & fmt.man_mask
    normal = efield != 0
    sig = ops.where(normal, mfield | (1 << man), mfield if fmt.subnormals else 0)
    exp = ops.maximum(efield, 1) - fmt.bias - man
    if fmt.specials == "ieee":
        top = efield == fmt.exp_field_max
        is_inf = top & (mfield == 0)
        is_nan = top & (mfield != 0)
    elif fmt.specials == "fn":
        is_nan = (codes & fmt.mag_mask) == fmt.mag_mask
        is_inf = is_nan & False
    else:
        is_nan = efield < 0
        is_inf = is_nan
    sig = ops.where(is_nan | is_inf, 0, sig)
    return sign, sig, exp, is_nan, is_inf


def decode(codes, fmt) -> np.ndarray:
    """Values (float64) of integer codes.

    ``codes``: an integer array (or Python ints) within ``[0, 2**width)``.
    Refused: float or bool arrays, and formats with values outside float64's
    range (:attr:`FloatFormat.fits_float64`), whose values a float64 cannot hold.
    """
    fmt = parse_format(fmt)
    fmt.check_fits_float64("decode")
    ops = ops_for(codes)
    _reserve_elementwise(ops, codes, "decode", "codes", _DECODE_BYTES)
    codes = integer_array(ops, codes, "codes")
    fmt.check_codes(codes)
    sign, sig, exp, is_nan, is_inf = unpack(ops, codes, fmt)
    mag = ops.ldexp(ops.to_float64(sig), exp)
    mag = ops.where(is_inf, float("inf"), mag)
    val = ops.where(sign == 1, -mag, mag)
    return ops.where(is_nan, float("nan"), val)


#: Peak bytes per element (int64 / float64 temporaries), measured with tracemalloc
#: on NumPy (tests/test_strict_inputs.py checks the estimates stay above the peaks).
_DECODE_BYTES = 80
_ENCODE_BYTES = 128


def _reserve_elementwise(ops, x, what, name, per_element):
    """:func:`ref.checks.reserve` for an elementwise call on ``x``, before it is widened."""
    n = 1
    for d in shape_of(x, name):
        n *= d
    reserve(n * per_element, f"{what} of {n} values", getattr(ops, "device", None))


def _float_unpack(ops, x):
    """float64 array -> (sign, sig, exp, is_nan, is_inf) with sig exact (< 2**53)."""
    is_nan = ops.isnan(x)
    is_inf = ops.isinf(x)
    sign = ops.as_int(ops.signbit(x))
    finite = ops.where(is_nan | is_inf, 0.0, x)
    m, e = ops.frexp(abs(finite))
    sig = ops.asint(m * 9007199254740992.0)  # m in [0.5, 1) times 2**53: exact
    return sign, sig, e - 53, is_nan, is_inf


def random_bits(ops, shape, nbits: int, rand=None, seed=None):
    """Random integers in [0, 2**nbits) of ``shape``.

    From ``rand`` (integers in range, of a shape that broadcasts to ``shape``
    without enlarging it), else from the project PRNG: element ``n``
    (row-major) uses the generator of PE ``(n, 0)`` seeded with ``seed`` and
    stepped once. ``seed=None`` draws a fresh 64-bit seed from the OS.
    """
    if rand is not None:
        rand = integer_array(ops, rand, "rand")
        check_broadcasts_to(tuple(rand.shape), shape, "rand")
        bad = _out_of_range(rand, 1 << nbits)
        if bad is not None:
            raise ValueError(f"random word {bad} is out of range: rand values must be in [0, 2**{nbits})")
        return ops.broadcast(rand, ops.full(shape, 0))[0]
    if seed is None:
        seed = int(np.random.SeedSequence().entropy) & prng.MAX_SEED
    n = 1
    for d in shape:
        n *= d
    state = prng.step(prng.seed_state(ops, seed, ops.arange(n), 0))
    return ops.reshape(state & ((1 << nbits) - 1), tuple(shape))


def _out_of_range(a, hi):
    """The first value of ``a`` outside [0, hi), or None."""
    n = a.numel() if hasattr(a, "numel") else a.size
    if n == 0:
        return None
    lo, top = int(a.min()), int(a.max())
    if lo < 0:
        return lo
    return top if top >= hi else None


def _check_rounding(fmt, rounding, rbits):
    if rounding not in QUANTIZE_ROUNDINGS:
        raise ValueError(f"rounding must be one of {QUANTIZE_ROUNDINGS}, got {rounding!r}")
    if rounding == "sr":
        if rbits is None:
            raise ValueError(f"rounding='sr' needs rbits (1..{MAX_RBITS})")
        rbits = check_rbits(rbits)
        if not 1 <= rbits <= MAX_RBITS:
            raise ValueError(f"rbits={rbits} out of range: SR needs 1..{MAX_RBITS} random bits")
        if fmt.precision + rbits > 61:
            raise ValueError(f"precision {fmt.precision} + rbits {rbits} exceeds 61 bits")
        return rbits
    if rbits not in (None, 0):
        raise ValueError(f"rbits={rbits!r} is only meaningful with rounding='sr'")
    return 0


def encode(x, fmt, rounding: str = "rn", *, rbits=None, rand=None, seed=None):
    """Round values to ``fmt`` and return their codes (int64).

    ``rounding``: ``"rn"`` (nearest, ties to even), ``"rz"`` (toward zero) or
    ``"sr"`` (SR_{p,r} with ``rbits`` random bits from ``rand`` or ``seed``).
    Values are read as float64 (exact for float16/bfloat16/float32/float64
    inputs). NaN into a format without NaN raises ValueError.
    """
    fmt = parse_format(fmt)
    rbits = _check_rounding(fmt, rounding, rbits)
    if seed is not None:
        seed = prng.check_seed(seed)
    if rand is not None and rounding != "sr":
        raise ValueError(f"rand given but rounding {rounding!r} uses no random bits")
    ops = ops_for(x)
    _reserve_elementwise(ops, x, "encode", "x", _ENCODE_BYTES)
    x = real_array(ops, x, "x")
    if rounding == "rn" and ops.name == "torch":
        codes = _encode_by_torch_cast(x, fmt)
        if codes is not None:
            return codes
    return _encode_exact(ops, x, fmt, rounding, rbits, rand, seed)


def _encode_exact(ops, x, fmt, rounding, rbits, rand, seed):
    """:func:`encode` by the contract's steps (unpack, round on the grid, pack)."""
    x = ops.asfloat64(x)
    sign, sig, exp, is_nan, is_inf = _float_unpack(ops, x)
    if not fmt.has_nan and ops.any(is_nan):
        raise ValueError(f"NaN cannot be encoded in {fmt.name} (specials='none')")
    R = random_bits(ops, tuple(x.shape), rbits, rand, seed) if rounding == "sr" else None
    m, eg, e = round_to_grid(ops, sig, exp, fmt, rounding, rbits, R)
    codes = pack(ops, fmt, sign, m, eg, e, exact_zero=sig == 0, mode=rounding)
    return special_codes(ops, fmt, sign, is_nan, is_inf, codes)


def _torch_cast_dtype(fmt: FloatFormat):
    """The torch dtype whose float32 -> dtype cast rounds exactly as ``fmt``'s RN, or None.

    float32 -> float16 / bfloat16 / float8 casts round once, to nearest, ties
    to even, with the same subnormals, overflow and signed zeros as these
    formats (tests/test_torch_casts.py checks them against the contract's
    steps on >= 10**5 values per format); only NaN's code differs (ours is
    canonical). float8_e4m3fn is used only where torch's cast saturates, as
    ``E4M3`` does.
    """
    import torch

    from .formats import BF16, E4M3, E5M2, FP16

    table = {E5M2: torch.float8_e5m2, FP16: torch.float16, BF16: torch.bfloat16}
    if fmt in table:
        return table[fmt]
    if fmt == E4M3 and _torch_e4m3_saturates():
        return torch.float8_e4m3fn
    return None


_E4M3_SATURATES = None


def _torch_e4m3_saturates() -> bool:
    global _E4M3_SATURATES
    if _E4M3_SATURATES is None:
        import torch

        one = torch.tensor([1000.0, float("inf")]).to(torch.float8_e4m3fn).float()
        _E4M3_SATURATES = bool((one == 448.0).all())
    return _E4M3_SATURATES


def _encode_by_torch_cast(x, fmt: FloatFormat):
    """RN codes of a float32 tensor through torch's own cast (about 20x faster), else None."""
    import torch

    if x.dtype != torch.float32:
        return None  # float64 casts round twice (through float32); float16 -> float8 untested
    dtype = _torch_cast_dtype(fmt)
    if dtype is None:
        return None
    narrow = x.to(dtype).view(torch.uint8 if fmt.width == 8 else torch.int16)  # a new tensor
    # a NaN casts to some NaN code (magnitude above the infinity's, or the largest finite
    # one's without infinities): found and made the canonical one (< 2**15) on the 1- or
    # 2-byte codes, before they are widened
    nan = (narrow & fmt.mag_mask) > (fmt.inf_code if fmt.has_inf else fmt.max_code)
    codes = narrow.masked_fill_(nan, fmt.nan_code).to(torch.int64)
    return codes if fmt.width == 8 else codes & 0xFFFF  # int16 -> int64 extended the sign


def quantize(x, fmt, rounding: str = "rn", *, rbits=None, rand=None, seed=None):
    """Round values to ``fmt`` and return the rounded values.

    NumPy in -> float64 NumPy out. Torch in -> torch out on the same device,
    in the input's floating dtype when every value of ``fmt`` fits it
    exactly, else float64.
    """
    fmt = parse_format(fmt)
    codes = encode(x, fmt, rounding, rbits=rbits, rand=rand, seed=seed)
    vals = decode(codes, fmt)
    ops = ops_for(x)
    if ops.name == "torch" and x.is_floating_point() and _fits(fmt, x.dtype):
        return vals.to(x.dtype)
    return vals


def _fits(fmt: FloatFormat, dtype) -> bool:
    """True when every finite value of ``fmt`` is exactly a value of the torch ``dtype``."""
    import math

    import torch

    fi = torch.finfo(dtype)
    man = round(-math.log2(fi.eps))  # stored mantissa bits
    emin = round(math.log2(fi.tiny))  # smallest normal exponent
    emax = math.floor(math.log2(fi.max))
    return (
        fmt.man_bits <= man
        and fmt.emin - fmt.man_bits >= emin - man
        and fmt.emax <= emax
    )
