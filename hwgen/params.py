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
