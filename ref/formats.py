"""Binary floating-point formats (contract section 1).

A :class:`FloatFormat` describes a sign | exponent | mantissa encoding of
``1 + exp_bits + man_bits`` bits. Codes are unsigned integers (bit patterns);
values are real numbers. Everything here is pure Python and exact: the array
code lives in :mod:`ref.codec` and :mod:`ref.rounding`.

Derived quantities are read-only properties, so a format is a small immutable
value object that ``hwgen/``, ``sim/`` and ``boards/`` import and never redefine.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field

import numpy as np

from .checks import InputTypeError

__all__ = [
    "FloatFormat",
    "E5M2",
    "E4M3",
    "E6M5",
    "FP16",
    "BF16",
    "FP32",
    "NAMED_FORMATS",
    "parse_format",
    "SPECIALS",
    "MAX_BIAS",
]

SPECIALS = ("ieee", "fn", "none")

# Widest significand + exponent arithmetic the int64 array code supports.
_MAX_CODE_BITS = 63  # codes are non-negative int64
_MAX_MAN_BITS = 52
_MAX_EXP_BITS = 16
#: |bias| limit. With exp_bits <= 16 and man_bits <= 52 every exponent of a
#: value lies within +-(2**29 + 2**16 + 52) < 2**30, so the exponent of any
#: exact product of two values fits int32 (NumPy's ldexp, the int32 decoded
#: operands of ref.fast) and stays far above the MAC's zero-exponent marker
#: -2**40; encode's int64 code arithmetic is clamped at emax + 2 (ref.rounding.pack).
MAX_BIAS = 1 << 29
# float64: smallest subnormal 2**-1074, largest finite value below 2**1024.
_F64_MIN_EXP = -1074
_F64_MAX_EXP = 1023


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def _int_param(name: str, v) -> int:
    """An int parameter; bools, floats and strings are refused with a message naming ``v``."""
    if _is_bool(v):
        raise InputTypeError(f"{name} must be an integer, got the bool {v!r}")
    try:
        return operator.index(v)
    except TypeError:
        raise InputTypeError(f"{name} must be an integer, got {v!r}") from None


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format.

    Parameters
    ----------
    exp_bits : int
        Width of the exponent field, >= 2.
    man_bits : int
        Width of the stored mantissa (fraction) field, >= 0. Precision is
        ``p = man_bits + 1``.
    bias : int, optional
        Exponent bias; defaults to ``2**(exp_bits-1) - 1``.
    subnormals : bool
        If False, codes with a zero exponent field read as (signed) zero and
        results below ``2**emin`` flush to zero.
    specials : {"ieee", "fn", "none"}
        ``"ieee"``: all-ones exponent encodes inf / NaN. ``"fn"``: no inf, only
        the all-ones magnitude code is NaN (OCP E4M3). ``"none"``: every code
        is finite.
    saturate : bool
        Overflow gives the largest finite value instead of inf / NaN.
    name : str, optional
        Display name; derived from the parameters when omitted.
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    subnormals: bool = True
    specials: str = "ieee"
    saturate: bool = False
    name: str | None = field(default=None, compare=False)

    def __post_init__(self):
        exp_bits = _int_param("exp_bits", self.exp_bits)
        man_bits = _int_param("man_bits", self.man_bits)
        if exp_bits < 2:
            raise ValueError(f"exp_bits must be >= 2, got {exp_bits}")
        if man_bits < 0:
            raise ValueError(f"man_bits must be >= 0, got {man_bits}")
        if man_bits > _MAX_MAN_BITS:
            raise ValueError(
                f"man_bits={man_bits} exceeds {_MAX_MAN_BITS}: the golden model computes "
                "in 64-bit integers"
            )
        if 1 + exp_bits + man_bits > _MAX_CODE_BITS:
            raise ValueError(
                f"format e{exp_bits}m{man_bits} needs {1 + exp_bits + man_bits} bits; "
                f"at most {_MAX_CODE_BITS} are supported"
            )
        if exp_bits > _MAX_EXP_BITS:
            raise ValueError(
                f"exp_bits={exp_bits} exceeds {_MAX_EXP_BITS}; use at most {_MAX_EXP_BITS} exponent bits"
            )
        if not isinstance(self.specials, str) or self.specials not in SPECIALS:
            raise ValueError(f"specials must be one of {SPECIALS}, got {self.specials!r}")
        if self.specials == "ieee" and man_bits == 0:
            raise ValueError(
                "specials='ieee' with man_bits=0 leaves no NaN code; use specials='fn' or 'none'"
            )
        for flag in ("subnormals", "saturate"):
            if not _is_bool(getattr(self, flag)):
                raise InputTypeError(
                    f"{flag} must be True or False, got {getattr(self, flag)!r}"
                )
        if self.name is not None and not isinstance(self.name, str):
            raise InputTypeError(f"name must be a string, got {self.name!r}")
        bias = (1 << (exp_bits - 1)) - 1 if self.bias is None else _int_param("bias", self.bias)
        if abs(bias) > MAX_BIAS:
            raise ValueError(
                f"bias={bias} is outside -2**29..2**29 ({-MAX_BIAS}..{MAX_BIAS}): every exponent "
                "the golden model computes must fit 32 bits; use a bias in that range"
            )
        object.__setattr__(self, "exp_bits", exp_bits)
        object.__setattr__(self, "man_bits", man_bits)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "specials", str(self.specials))
        object.__setattr__(self, "subnormals", bool(self.subnormals))
        object.__setattr__(self, "saturate", bool(self.saturate))
        if self.name is None:
            object.__setattr__(self, "name", self._derived_name())

    # ---- derived, read-only -------------------------------------------------
    @property
    def width(self) -> int:
        """Total code width in bits."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def precision(self) -> int:
        """Significand precision p = man_bits + 1 (bits)."""
        return self.man_bits + 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number, 1 - bias."""
        return 1 - self.bias

    @property
    def exp_field_max(self) -> int:
        return (1 << self.exp_bits) - 1

    @property
    def man_mask(self) -> int:
        return (1 << self.man_bits) - 1

    @property
    def sign_mask(self) -> int:
        return 1 << (self.exp_bits + self.man_bits)

    @property
    def mag_mask(self) -> int:
        return self.sign_mask - 1

    @property
    def max_code(self) -> int:
        """Magnitude code of the largest finite value."""
        if self.specials == "ieee":
            return ((self.exp_field_max - 1) << self.man_bits) | self.man_mask
        if self.specials == "fn":
            return self.mag_mask - 1
        return self.mag_mask

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value."""
        return (self.max_code >> self.man_bits) - self.bias

    @property
    def max_significand(self) -> int:
        """Integer significand (hidden bit included) of the largest finite value."""
        return (self.max_code & self.man_mask) | (1 << self.man_bits)

    @property
    def has_inf(self) -> bool:
        return self.specials == "ieee"

    @property
    def has_nan(self) -> bool:
        return self.specials != "none"

    @property
    def nan_code(self) -> int | None:
        """The canonical NaN code (positive sign), or None if the format has no NaN."""
        if self.specials == "ieee":
            return (self.exp_field_max << self.man_bits) | (1 << (self.man_bits - 1))
        if self.specials == "fn":
            return self.mag_mask
        return None

    @property
    def inf_code(self) -> int | None:
        """Code of +inf, or None if the format has no infinity."""
        return (self.exp_field_max << self.man_bits) if self.specials == "ieee" else None

    @property
    def max_value(self) -> float:
        """The largest finite value as a float (inf when it is beyond float64)."""
        return _ldexp(self.max_significand, self.emax - self.man_bits)

    @property
    def min_normal(self) -> float:
        """``2**emin`` as a float (0.0 when it is below float64's range)."""
        return _ldexp(1, self.emin)

    @property
    def min_subnormal(self) -> float:
        """``2**(emin - man_bits)`` as a float (0.0 when it is below float64's range)."""
        return _ldexp(1, self.emin - self.man_bits)

    @property
    def fits_float64(self) -> bool:
        """True when every finite value of the format is exactly a float64.

        Its smallest step ``2**(emin - man_bits)`` is at least ``2**-1074`` (the
        smallest float64 subnormal) and its largest exponent ``emax`` at most
        1023 (``man_bits <= 52`` already holds).
        """
        return self.emin - self.man_bits >= _F64_MIN_EXP and self.emax <= _F64_MAX_EXP

    def check_fits_float64(self, what: str = "decode") -> None:
        """Raise ValueError unless :attr:`fits_float64`, naming the bias range that would."""
        if self.fits_float64:
            return
        lo = (self.max_code >> self.man_bits) - _F64_MAX_EXP  # emax <= 1023
        hi = 1 - self.man_bits - _F64_MIN_EXP  # emin - man_bits >= -1074
        raise ValueError(
            f"{what}: the values of {self.name} span 2**{self.emin - self.man_bits} .. "
            f"2**{self.emax + 1}, outside float64 (2**-1074 .. 2**1024), so they cannot be "
            f"returned as floats; use codes, or a bias in {lo}..{hi} for e{self.exp_bits}m{self.man_bits}"
        )

    @property
    def num_codes(self) -> int:
        return 1 << self.width

    # ---- helpers ------------------------------------------------------------
    def check_codes(self, codes) -> None:
        """Raise ValueError if any code is outside ``[0, 2**width)``."""
        lo, hi = _min_max(codes)
        if lo is not None and (lo < 0 or hi >= self.num_codes):
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"code {bad} is out of range for {self.name} (codes are 0..{self.num_codes - 1})"
            )

    def _derived_name(self) -> str:
        """``e<E>m<M>`` plus the options that differ from what that token parses to.

        ``e4m3`` alone names the OCP E4M3 (fn, saturating), so its variants
        spell out ``ieee`` / ``nosat`` to round-trip through :func:`parse_format`.
        """
        base = f"e{self.exp_bits}m{self.man_bits}"
        ref = NAMED_FORMATS.get(base) if "NAMED_FORMATS" in globals() else None
        d_bias = (1 << (self.exp_bits - 1)) - 1
        d_sub, d_specials, d_sat = True, "ieee", False
        if ref is not None:
            d_sub, d_specials, d_sat = ref.subnormals, ref.specials, ref.saturate
        opts = []
        if self.bias != d_bias:
            opts.append(f"bias={self.bias}")
        if self.specials != d_specials:
            opts.append(self.specials)
        if self.subnormals != d_sub:
            opts.append("sub" if self.subnormals else "nosub")
        if self.saturate != d_sat:
            opts.append("sat" if self.saturate else "nosat")
        return ":".join([base, *opts])

    def __str__(self) -> str:
        return self.name

    def spec(self) -> str:
        """A string that :func:`parse_format` turns back into an equal format."""
        return self._derived_name()

    def to_dict(self) -> dict:
        """JSON-friendly description (used by hardware sidecars)."""
        return {
            "name": self.name,
            "exp_bits": self.exp_bits,
            "man_bits": self.man_bits,
            "bias": self.bias,
            "subnormals": self.subnormals,
            "specials": self.specials,
            "saturate": self.saturate,
            "width": self.width,
        }


def _ldexp(sig: int, exp: int) -> float:
    """``sig * 2**exp`` as a float: inf above float64's range, 0.0 below it."""
    if exp > _F64_MAX_EXP + 1:
        return math.inf
    try:
        return math.ldexp(float(sig), exp)
    except OverflowError:
        return math.inf


def _min_max(codes):
    """(min, max) of an array-like of ints (NumPy or torch), or (None, None) if empty."""
    if hasattr(codes, "numel"):  # torch
        if codes.numel() == 0:
            return None, None
        lo, hi = codes.aminmax()  # one pass over the codes
        return int(lo), int(hi)
    import numpy as np

    arr = np.asarray(codes)
    if arr.size == 0:
        return None, None
    return int(arr.min()), int(arr.max())


E5M2 = FloatFormat(5, 2, name="E5M2")
E4M3 = FloatFormat(4, 3, specials="fn", saturate=True, name="E4M3")
E6M5 = FloatFormat(6, 5, name="E6M5")
FP16 = FloatFormat(5, 10, name="FP16")
BF16 = FloatFormat(8, 7, name="BF16")
FP32 = FloatFormat(8, 23, name="FP32")

NAMED_FORMATS = {
    "e5m2": E5M2,
    "e4m3": E4M3,
    "e6m5": E6M5,
    "fp16": FP16,
    "bf16": BF16,
    "fp32": FP32,
}

_GENERIC = re.compile(r"^e(\d+)m(\d+)$")
FORMAT_OPTIONS = ("sub", "nosub", "sat", "nosat", "ieee", "fn", "none", "bias=<int>")


def is_format_token(token: str) -> bool:
    t = token.strip().lower()
    return t in NAMED_FORMATS or bool(_GENERIC.match(t))


def is_format_option(token: str) -> bool:
    t = token.strip().lower()
    return t in FORMAT_OPTIONS or t.startswith("bias=")


def apply_format_options(fmt: FloatFormat, options) -> FloatFormat:
    """Return ``fmt`` with the CLI options (``nosub``, ``sat``, ``fn``, ``bias=N``...) applied."""
    if not options:
        return fmt
    return FloatFormat(**_options_to_kwargs(_format_kwargs(fmt), options))


def _format_kwargs(fmt: FloatFormat) -> dict:
    return dict(
        exp_bits=fmt.exp_bits,
        man_bits=fmt.man_bits,
        bias=fmt.bias,
        subnormals=fmt.subnormals,
        specials=fmt.specials,
        saturate=fmt.saturate,
    )


def _options_to_kwargs(kw: dict, options) -> dict:
    """Apply format options; a second option for the same field (``sat:nosat``) is refused."""
    kw = dict(kw)
    given: dict[str, str] = {}
    for opt in options:
        o = opt.strip().lower()
        if o in ("sub", "nosub"):
            key, value = "subnormals", o == "sub"
        elif o in ("sat", "nosat"):
            key, value = "saturate", o == "sat"
        elif o in SPECIALS:
            key, value = "specials", o
        elif o.startswith("bias="):
            key = "bias"
            digits = o[5:].strip()
            if not re.fullmatch(r"[+-]?\d+", digits):
                raise ValueError(f"bad bias in format option {opt!r}: expected bias=<int>")
            if len(digits.lstrip("+-0")) > 40:  # far beyond MAX_BIAS (and int()'s digit limit)
                raise ValueError(
                    f"bias={digits[:16]}... is outside -2**29..2**29 ({-MAX_BIAS}..{MAX_BIAS}); "
                    "use a bias in that range"
                )
            value = int(digits)
        else:
            raise ValueError(
                f"unknown format option {opt!r}; expected one of {', '.join(FORMAT_OPTIONS)}"
            )
        if key in given:
            raise ValueError(
                f"format options {given[key]!r} and {opt!r} both set {key}; give one"
            )
        given[key] = opt
        kw[key] = value
    return kw


def parse_format(text: str | FloatFormat) -> FloatFormat:
    """Parse a CLI format string.

    Accepts the named formats (``e5m2``, ``e4m3``, ``e6m5``, ``fp16``, ``bf16``,
    ``fp32``), a generic ``e<E>m<M>`` (IEEE-style specials, subnormals on), and
    ``:``-separated options: ``nosub``, ``sub``, ``sat``, ``nosat``, ``ieee``,
    ``fn``, ``none``, ``bias=N``; e.g. ``e6m5:nosub:sat``.
    """
    if isinstance(text, FloatFormat):
        return text
    if not isinstance(text, str):
        raise InputTypeError(
            f"format must be a FloatFormat or a format string such as 'e5m2', got {text!r}"
        )
    if not text.strip():
        raise ValueError(
            f"format must be a FloatFormat or a format string such as 'e5m2', got {text!r}"
        )
    head, *options = text.strip().split(":")
    key = head.strip().lower()
    if key in NAMED_FORMATS:
        if not options:
            return NAMED_FORMATS[key]
        kw = _format_kwargs(NAMED_FORMATS[key])
    else:
        m = _GENERIC.match(key)
        if not m:
            raise ValueError(
                f"unknown format {head!r}; use one of {', '.join(NAMED_FORMATS)} "
                "or e<E>m<M>, optionally followed by :nosub, :sat, :fn, :none, :bias=N"
            )
        kw = dict(exp_bits=int(m.group(1)), man_bits=int(m.group(2)))
    # Options apply before construction: e2m0:fn is valid although e2m0 (ieee) is not.
    return FloatFormat(**_options_to_kwargs(kw, options))
