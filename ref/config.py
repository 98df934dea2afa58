"""``MacConfig``: the one description of a MAC that every part of srmac imports."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from enum import StrEnum

from .checks import InputTypeError
from .formats import (
    FloatFormat,
    apply_format_options,
    is_format_option,
    is_format_token,
    parse_format,
)

__all__ = [
    "Rounding", "MacConfig", "ROUNDINGS", "SR_ROUNDINGS", "MAX_RBITS", "required_rbits", "parse_mac",
    "check_rbits", "check_config",
]


class Rounding(StrEnum):
    """The rounding of a fused MAC (contract section 3), with what each mode implies.

    A ``StrEnum``: ``Rounding.SR_EAGER == "sr_eager"``, so specs, JSON and CSV
    keep the plain names. Every part of srmac derives its flags from here.
    """

    RN = "rn"
    RZ = "rz"
    SR_LAZY = "sr_lazy"
    SR_EAGER = "sr_eager"

    @property
    def description(self) -> str:
        """One line on what the mode computes."""
        return {
            "rn": "round to nearest, ties to even, of the exact sum",
            "rz": "round toward zero (truncate) the exact sum",
            "sr_lazy": "SR_{p,r} of the normalised exact sum (classic design)",
            "sr_eager": "random bits added before normalisation at an operand-chosen anchor, "
            "a 2-bit second stage when the sum carries above it (proposed design)",
        }[self.value]

    @property
    def is_sr(self) -> bool:
        """True for the stochastic modes (they take ``rbits`` random bits)."""
        return self in (Rounding.SR_LAZY, Rounding.SR_EAGER)

    @property
    def grid_mode(self) -> str:
        """The mode of :func:`ref.rounding.round_to_grid` that rounds the sum: rn, rz or sr."""
        return "sr" if self.is_sr else self.value

    def rand_bits(self, rbits: int | None) -> int:
        """Random bits one MAC consumes: r (lazy), r + 2 (eager: R and B), 0 (rn / rz)."""
        return {Rounding.SR_LAZY: rbits, Rounding.SR_EAGER: rbits + 2}.get(self, 0) if rbits else 0

    def extra_bits(self, rbits: int | None) -> int:
        """Bits kept below the last significand bit before rounding: 1 (rn), 0 (rz), r (SR)."""
        return {Rounding.RN: 1, Rounding.RZ: 0}.get(self, rbits or 0)

    @classmethod
    def parse(cls, text) -> Rounding:
        """A :class:`Rounding` from its name (``"sr"`` means ``sr_lazy``); ValueError otherwise."""
        if isinstance(text, cls):
            return text
        if text == "sr":
            return cls.SR_LAZY
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {text!r}") from None


ROUNDINGS = tuple(m.value for m in Rounding)
SR_ROUNDINGS = tuple(m.value for m in Rounding if m.is_sr)
#: r + 2 random bits per eager MAC come from one 32-bit generator word.
MAX_RBITS = 30
# The int64 datapath keeps sums below 2**62 with the significand normalised to
# bit 60; rounding must stay at least two bits above the sticky (jam) bit.
_MAX_ACC_P_PLUS_R = 56
_MAX_IN_PRECISION = 29


def check_rbits(rbits) -> int:
    """``rbits`` as an int; bools, floats and strings refused (the range is the caller's)."""
    if isinstance(rbits, bool) or type(rbits).__name__ in ("bool", "bool_"):
        raise InputTypeError(f"rbits must be an integer, got the bool {rbits!r}")
    try:
        return operator.index(rbits)
    except TypeError:
        raise InputTypeError(f"rbits must be an integer, got {rbits!r}") from None


def required_rbits(n: int) -> int:
    """Random bits for SR in a chain of length ``n``: ``ceil(log2(n) / 2)``, at least 1.

    The smallest r with ``4**r >= n`` (exact, no floating point). The poster's
    result (El Arar et al., arXiv 2408.03069).
    """
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"chain length must be >= 1, got {n}")
    r = 0
    while 4**r < n:
        r += 1
    return max(r, 1)


@dataclass(frozen=True)
class MacConfig:
    """A fused MAC ``z' = round(z + a*b)`` (contract section 3).

    Parameters
    ----------
    in_fmt : FloatFormat or str
        Format of the multiplier inputs ``a``, ``b``.
    acc_fmt : FloatFormat or str
        Format of the accumulator ``z``.
    rounding : Rounding or {"rn", "rz", "sr_lazy", "sr_eager"}
    rbits : int or None
        Random bits ``r`` (1..30) for the SR modes; None (or 0) for rn / rz.
    """

    in_fmt: FloatFormat
    acc_fmt: FloatFormat
    rounding: Rounding = Rounding.RN
    rbits: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "in_fmt", parse_format(self.in_fmt))
        object.__setattr__(self, "acc_fmt", parse_format(self.acc_fmt))
        if not isinstance(self.rounding, str) or self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        r = self.rbits
        if self.rounding.is_sr:
            if r is None:
                raise ValueError(f"rounding {self.rounding.value!r} needs rbits (1..{MAX_RBITS})")
            r = check_rbits(r)
            if not 1 <= r <= MAX_RBITS:
                raise ValueError(f"rbits={r} out of range: SR needs 1..{MAX_RBITS} random bits")
            if self.acc_fmt.precision + r > _MAX_ACC_P_PLUS_R:
                raise ValueError(
                    f"accumulator precision {self.acc_fmt.precision} + rbits {r} exceeds "
                    f"{_MAX_ACC_P_PLUS_R}: use fewer random bits or a narrower accumulator"
                )
        else:
            if r not in (None, 0):
                raise ValueError(f"rbits={r!r} is only meaningful for SR; use rbits=None with {self.rounding.value!r}")
            r = None
        object.__setattr__(self, "rbits", r)
        if self.in_fmt.precision > _MAX_IN_PRECISION:
            raise ValueError(
                f"input precision {self.in_fmt.precision} exceeds {_MAX_IN_PRECISION}: the exact "
                "product must fit the 64-bit datapath"
            )
        if self.acc_fmt.precision + 2 > _MAX_ACC_P_PLUS_R:
            raise ValueError(f"accumulator precision {self.acc_fmt.precision} is too wide")
        self._check_exponent_span()

    def _check_exponent_span(self):
        """Refuse configurations whose packed accumulator magnitude could overflow int64.

        A MAC packs ``((eg - emin) << man_bits) + m`` with ``eg`` at most two
        binades above the larger of the accumulator's top exponent and the
        largest product's (``2 * (emax_in + 1)``). With the usual biases this
        is tiny; an accumulator bias far from the inputs' with a wide
        mantissa is not (e.g. e5m2 into e10m52:bias=1000000).
        """
        i, a = self.in_fmt, self.acc_fmt
        top = max(a.emax + 2, 2 * (i.emax + 1) + 2)
        span = top - a.emin + 1
        if (span << a.man_bits) + (1 << (a.man_bits + 2)) >= 1 << 63:
            raise ValueError(
                f"products of {i.name} reach 2**{2 * (i.emax + 1)}, {span} binades above the "
                f"smallest exponent of {a.name} (2**{a.emin}): with {a.man_bits} mantissa bits "
                "its codes would overflow 64-bit arithmetic; bring the biases closer or use "
                "fewer accumulator mantissa bits"
            )

    # ---- derived -------------------------------------------------------------
    @property
    def is_sr(self) -> bool:
        """True for sr_lazy / sr_eager."""
        return self.rounding.is_sr

    @property
    def rand_bits(self) -> int:
        """Random bits one MAC consumes: r (lazy), r + 2 (eager), 0 (rn / rz)."""
        return self.rounding.rand_bits(self.rbits)

    @property
    def grid_mode(self) -> str:
        """How the sum is rounded on the accumulator grid: "rn", "rz" or "sr"."""
        return self.rounding.grid_mode

    @property
    def extra_bits(self) -> int:
        """Bits kept below the last significand bit before rounding: 1 (rn), 0 (rz), r (SR)."""
        return self.rounding.extra_bits(self.rbits)

    @property
    def product_exact_in_acc(self) -> bool:
        """True when every product of two finite inputs is representable in the accumulator."""
        i, a = self.in_fmt, self.acc_fmt
        if a.precision < 2 * i.precision:
            return False
        lo = 2 * (i.emin - i.man_bits)
        hi = 2 * (i.emax + 1)
        return lo >= a.emin - a.man_bits and hi <= a.emax + 1

    def spec(self) -> str:
        """``in:acc:rounding[:r]`` string that :func:`parse_mac` reads back."""
        parts = [self.in_fmt.spec(), self.acc_fmt.spec(), self.rounding]
        if self.rbits:
            parts.append(str(self.rbits))
        return ":".join(parts)

    def __str__(self) -> str:
        r = f", r={self.rbits}" if self.rbits else ""
        return f"{self.in_fmt.name} x {self.in_fmt.name} -> {self.acc_fmt.name}, {self.rounding}{r}"

    def to_dict(self) -> dict:
        return {
            "in_fmt": self.in_fmt.to_dict(),
            "acc_fmt": self.acc_fmt.to_dict(),
            "rounding": self.rounding.value,
            "rbits": self.rbits,
            "rand_bits": self.rand_bits,
        }

    def replace(self, **changes) -> MacConfig:
        kw = dict(in_fmt=self.in_fmt, acc_fmt=self.acc_fmt, rounding=self.rounding, rbits=self.rbits)
        kw.update(changes)
        if not Rounding.parse(kw["rounding"]).is_sr:
            kw["rbits"] = None
        return MacConfig(**kw)


def check_config(cfg, where: str) -> MacConfig:
    """``cfg`` if it is a :class:`MacConfig`; a one-line error naming what was passed otherwise."""
    if isinstance(cfg, MacConfig):
        return cfg
    hint = f" (for a spec string use ref.parse_mac({cfg!r}))" if isinstance(cfg, str) else ""
    raise InputTypeError(f"{where} needs a MacConfig as cfg, got {type(cfg).__name__} {cfg!r}{hint}")


def parse_mac(text: str | MacConfig) -> MacConfig:
    """Parse ``in:acc:rounding[:r]`` with optional format options after each format.

    Examples: ``e5m2:e6m5:sr_eager:4``, ``e4m3:fp16:rn``,
    ``e5m2:nosub:e6m5:nosub:sat:sr_lazy:8``. ``fp32`` alone means an FP32 x FP32
    -> FP32 round-to-nearest MAC (the float baseline).
    """
    if isinstance(text, MacConfig):
        return text
    if not isinstance(text, str):
        raise InputTypeError(
            f"a MAC must be a MacConfig or a spec string such as 'e5m2:e6m5:sr_eager:4', got {text!r}"
        )
    if not text.strip():
        raise ValueError(f"MAC spec must be a non-empty string, got {text!r}")
    tokens = [t.strip().lower() for t in text.strip().split(":") if t.strip()]
    fmts: list[tuple[str, list[str]]] = []
    rounding = None
    rbits = None
    for tok in tokens:
        if is_format_token(tok) and rounding is None:
            fmts.append((tok, []))
        elif is_format_option(tok) and fmts and rounding is None:
            fmts[-1][1].append(tok)
        elif (tok in ROUNDINGS or tok == "sr") and rounding is not None:
            raise ValueError(
                f"MAC spec {text!r} names two roundings ({rounding.value!r} and {tok!r}); give one"
            )
        elif tok in ROUNDINGS or tok == "sr":
            rounding = Rounding.parse(tok)
        elif tok.isascii() and tok.isdigit() and rounding is not None and rbits is None:
            rbits = int(tok)
        else:
            raise ValueError(
                f"cannot parse MAC spec {text!r} at {tok!r}: expected "
                "<in-format>:<acc-format>:<rn|rz|sr_lazy|sr_eager>[:<rbits>], e.g. e5m2:e6m5:sr_eager:4"
            )
    if len(fmts) == 1 and rounding is None:
        fmts.append(fmts[0])
    if len(fmts) != 2:
        raise ValueError(
            f"MAC spec {text!r} needs an input and an accumulator format, e.g. e5m2:e6m5:rn"
        )
    in_fmt, acc_fmt = (apply_format_options(parse_format(n), o) for n, o in fmts)
    return MacConfig(in_fmt, acc_fmt, rounding or "rn", rbits)
