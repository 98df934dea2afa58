"""Binary floating-point formats (contract section 1).

A :class:`FloatFormat` describes a sign | exponent | mantissa encoding of
``1 + exp_bits + man_bits`` bits. Codes are unsigned integers (bit patterns);
values are real numbers. Everything here is pure Python and exact: the array
code lives in :mod:`ref.codec` and :mod:`ref.rounding`.

Derived quantities are read-only properties, so a format is a small immutable
value object that ``hwgen/``, ``sim/`` and ``boards/`` import and never redefine.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

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
]

SPECIALS = ("ieee", "fn", "none")

# Widest significand + exponent arithmetic the int64 array code supports.
_MAX_CODE_BITS = 63  # codes are non-negative int64
_MAX_MAN_BITS = 52


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
        try:
            exp_bits = operator.index(self.exp_bits)
            man_bits = operator.index(self.man_bits)
        except TypeError:
            raise ValueError(
                f"exp_bits and man_bits must be integers, got {self.exp_bits!r}, {self.man_bits!r}"
            ) from None
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
        if exp_bits > 16:
            raise ValueError(f"exp_bits={exp_bits} exceeds 16; use at most 16 exponent bits")
        if self.specials not in SPECIALS:
            raise ValueError(f"specials must be one of {SPECIALS}, got {self.specials!r}")
        if self.specials == "ieee" and man_bits == 0:
            raise ValueError(
                "specials='ieee' with man_bits=0 leaves no NaN code; use specials='fn' or 'none'"
            )
        object.__setattr__(self, "exp_bits", exp_bits)
        object.__setattr__(self, "man_bits", man_bits)
        bias = (1 << (exp_bits - 1)) - 1 if self.bias is None else operator.index(self.bias)
        object.__setattr__(self, "bias", bias)
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
        return float(self.max_significand) * 2.0 ** (self.emax - self.man_bits)

    @property
    def min_normal(self) -> float:
        return 2.0**self.emin

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.man_bits)

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


def _min_max(codes):
    """(min, max) of an array-like of ints (NumPy or torch), or (None, None) if empty."""
    if hasattr(codes, "numel"):  # torch
        if codes.numel() == 0:
            return None, None
        return int(codes.min()), int(codes.max())
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
    kw = dict(kw)
    for opt in options:
        o = opt.strip().lower()
        if o == "sub":
            kw["subnormals"] = True
        elif o == "nosub":
            kw["subnormals"] = False
        elif o == "sat":
            kw["saturate"] = True
        elif o == "nosat":
            kw["saturate"] = False
        elif o in SPECIALS:
            kw["specials"] = o
        elif o.startswith("bias="):
            try:
                kw["bias"] = int(o[5:])
            except ValueError:
                raise ValueError(f"bad bias in format option {opt!r}: expected bias=<int>") from None
        else:
            raise ValueError(
                f"unknown format option {opt!r}; expected one of {', '.join(FORMAT_OPTIONS)}"
            )
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
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"format must be a non-empty string, got {text!r}")
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
