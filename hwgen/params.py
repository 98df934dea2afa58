"""Datapath widths of a MAC, derived from a :class:`ref.MacConfig` (one source of truth).

The adder works in a fixed-point *window* of ``window`` bits (bit 0 .. ``top + 2``):

* each non-zero addend is normalised, then placed so that the exponent
  ``e_ref = max(e_big, acc.emin)`` sits at bit ``top`` (the larger addend's
  leading one is at ``top``, or lower when both addends are below ``2**emin``);
* the smaller addend is shifted right with every lost bit jammed into bit 0;
* when both addends are below ``2**emin`` the larger one is shifted right too
  (the subnormal grid stays fixed); only a product can lose bits there, and
  then the other addend is the accumulator, whose bits all sit at or above
  bit ``top - man_bits``, so it loses none;
* ``top`` is chosen so that (a) at most one addend loses bits and the other
  has bit 0 clear, (b) every rounding position (guard bit included) stays at
  least two bits above the jammed bit even after the normaliser's small left
  shift in the far case, and (c) the close case (``d <= 1``) is exact.

Under these conditions the jammed sum has the same floor at every rounding
position as the exact sum and is non-zero below it iff the exact sum is, so
the circuit matches the golden model bit for bit (see docs/hardware.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ref.config import MacConfig

__all__ = ["MacParams", "bits_for"]

# Hardware generator limits: wider windows work, but make slow and large circuits.
MAX_WINDOW = 96


def bits_for(n: int) -> int:
    """Unsigned bits that hold 0..n."""
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class MacParams:
    cfg: MacConfig

    # ---- formats ------------------------------------------------------------
    @property
    def inp(self):
        return self.cfg.in_fmt

    @property
    def acc(self):
        return self.cfg.acc_fmt

    @property
    def r(self) -> int:
        """Random bits R (0 for rn / rz)."""
        return self.cfg.rbits or 0

    @property
    def extra(self) -> int:
        """Bits kept below the last significand bit before rounding: 1 (rn), 0 (rz), r (SR)."""
        return self.cfg.extra_bits

    # ---- significands -------------------------------------------------------
    @property
    def prod_width(self) -> int:
        """Exact product significand width 2 * p_in (bits)."""
        return 2 * self.inp.precision

    @property
    def top(self) -> int:
        """Bit index of exponent ``e_ref`` in the window."""
        a = self.acc
        wide = max(self.prod_width, a.precision)
        return max(wide + 2, a.man_bits + max(self.extra, 1) + 4)

    @property
    def window(self) -> int:
        """Sum width: bits 0 .. top+1 (carry of an addition); eager adds one more."""
        return self.top + 2

    @property
    def shift_width(self) -> int:
        """Alignment shift amount width; amounts >= window are clamped (all bits to sticky)."""
        return bits_for(self.window)

    # ---- exponents ------------------------------------------------------------
    @property
    def exp_width(self) -> int:
        """Signed width of every internal exponent (leading-one exponents, e_ref, grid)."""
        i, a = self.inp, self.acc
        lo = min(2 * (i.emin - i.man_bits), a.emin - a.man_bits) - self.window
        hi = max(2 * (i.emax + 1), a.emax + 1) + self.window
        return max(abs(lo), abs(hi)).bit_length() + 2

    @property
    def mag_width(self) -> int:
        """Width of the rounded magnitude code before the overflow check (one carry bit)."""
        return self.acc.exp_bits + self.acc.man_bits + 2

    def check(self) -> None:
        """Raise ValueError for configurations the generator does not build."""
        if self.window > MAX_WINDOW:
            raise ValueError(
                f"{self.cfg.spec()} needs a {self.window}-bit adder window; the generator "
                f"supports at most {MAX_WINDOW}: use narrower formats or fewer random bits"
            )


#: The accumulation datapaths: ``dual`` (close/far paths, the default where it
#: applies) and ``single`` (one general path, every configuration).
DATAPATHS = ("dual", "single")
DEFAULT_DATAPATH = "dual"


@dataclass(frozen=True)
class DualParams:
    """Widths of the dual-path (close/far) accumulation step for ``cfg``.

    Both addends travel in the accumulator's *grid form*: an unsigned biased
    exponent field ``E >= 1`` (``max(E, 1)`` of a code; subnormals and zero sit
    at ``E = 1`` with a zero hidden bit) and a ``p``-bit significand whose last
    bit weighs ``2**(E - bias - man_bits)``. The product is brought into this form
    before the pipeline register, which needs every product to be exactly
    representable on the accumulator's grid apart from its exponent range
    (:meth:`limit`): then the loop is an adder of two equal-precision operands.

    The far path works in a window anchored at bit ``anchor`` (the hidden bit of
    a result whose exponent is the anchor): ``extra`` bits below the last kept
    bit (r for SR, 1 for rn, 0 for rz) and one jam bit at bit 0 beneath them.
    """

    cfg: MacConfig

    @property
    def acc(self):
        return self.cfg.acc_fmt

    @property
    def man(self) -> int:
        return self.acc.man_bits

    @property
    def precision(self) -> int:
        """Significand bits of both addends (the accumulator's precision)."""
        return self.acc.precision

    @property
    def r(self) -> int:
        return self.cfg.rbits or 0

    @property
    def extra(self) -> int:
        return self.cfg.extra_bits

    @property
    def anchor(self) -> int:
        """Far window: bit index of the anchor's hidden bit (jam bit 0, extra bits above it)."""
        return self.man + self.extra + 1

    @property
    def far_width(self) -> int:
        """Far window width: bits 0 .. anchor + 1 (one carry above the anchor)."""
        return self.anchor + 2

    @property
    def prod_exp_max(self) -> int:
        """Largest biased grid exponent of a product (may exceed the accumulator's field)."""
        i = self.cfg.in_fmt
        return 2 * i.emax + 1 + self.acc.bias

    @property
    def exp_width(self) -> int:
        """Unsigned width of every biased exponent field in the loop (room for +4)."""
        top = max((1 << self.acc.exp_bits) - 1, self.prod_exp_max) + 5
        return bits_for(top)

    def limit(self) -> str | None:
        """Why the dual path cannot build ``cfg`` (None when it can)."""
        i, a = self.cfg.in_fmt, self.acc
        pp = 2 * i.precision
        if pp > a.precision:
            return (
                f"the dual datapath needs the exact product ({pp} significand bits) no wider "
                f"than the accumulator's precision ({a.precision} bits) of {self.cfg.spec()}"
            )
        lo, grid = 2 * (i.emin - i.man_bits), a.emin - a.man_bits
        if lo < grid:
            return (
                f"the dual datapath needs every product on the accumulator's grid, but "
                f"{self.cfg.spec()} has products down to 2**{lo}, below its last "
                f"subnormal bit 2**{grid}"
            )
        return None

    def check(self) -> None:
        """Raise ValueError (one line, naming the limit) when the dual path cannot build cfg."""
        why = self.limit()
        if why:
            raise ValueError(f"{why}: use datapath='single' (--datapath single)")


def resolve_datapath(cfg: MacConfig, datapath: str | None) -> str:
    """The datapath a unit for ``cfg`` builds: ``datapath`` checked, or the default.

    ``None`` picks ``dual`` where :meth:`DualParams.limit` allows it and ``single``
    otherwise; an explicit ``"dual"`` outside its limits raises ValueError.
    """
    if datapath is None:
        return "single" if DualParams(cfg).limit() else DEFAULT_DATAPATH
    if datapath not in DATAPATHS:
        raise ValueError(f"datapath must be one of {DATAPATHS}, got {datapath!r}")
    if datapath == "dual":
        DualParams(cfg).check()
    return datapath
