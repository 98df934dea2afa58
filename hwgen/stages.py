"""Loop stages: registers at named cut points of a combinational datapath (C-slow loops).

An interleaved accumulation loop (:class:`hwgen.mac.MacUnit` with ``interleave=L``)
runs ``L`` independent chains through an ``L``-stage loop, one chain per stage: the
loop body is cut by ``L - 1`` register boundaries. Yosys and nextpnr do not retime,
so the boundaries are placed by hand, at the named points of :data:`BOUNDARIES`,
which every component of the dual-path step (:mod:`hwgen.dual`, :mod:`hwgen.close`,
:mod:`hwgen.far`) visits in order:

* ``exp``: after the exponent differences (path decision, larger addend);
* ``align``: after the alignment (far: the two right shifters; close: the 1-bit
  multiplexer);
* ``mid``: the far path before its adder, the close path after its subtractors
  (between ``align`` and ``add`` in the far path, after ``add`` in the close one);
* ``add``: after the significand adders (far sum, both close differences);
* ``round``: after the rounding (close: normalised and rounded; far: the k stage),
  before the select and the encoding.

A set of boundaries is a valid loop whatever their order along each path, as long as
every path from the loop's inputs to its output crosses each enabled boundary exactly
once (then every path has the same number of registers). A component calls
``cut(name, **values)`` at each boundary with *every* value the logic after it uses, and from then on uses only what it gets back: registered copies
(reset-less, no enable: a C-slow loop shifts every cycle) when ``name`` is enabled,
the values themselves otherwise. With no boundary enabled the datapath is the
combinational loop body it always was.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Signal, Value
from amaranth.lib import data

__all__ = ["BOUNDARIES", "DEFAULT_CUTS", "MAX_INTERLEAVE", "Cuts", "check_cuts", "default_cuts"]

#: The cut points of the dual-path step, in datapath order.
BOUNDARIES = ("exp", "align", "mid", "add", "round")

#: Registers inside the loop for each interleave factor L (L - 1 boundaries), chosen by
#: measurement on the iCE40 UP5K and the ECP5-25F (``srmac synth --interleave L --cuts ...``;
#: docs/hardware.md, "Interleaved loops"); ``(L, rounding)`` entries override ``L`` for one
#: rounding.
DEFAULT_CUTS = {
    1: (),
    2: ("add",),
    (2, "sr_eager"): ("mid",),  # eager's far path after the adder is short: move the adder
    3: ("exp", "add"),
    4: ("exp", "align", "add"),
}

#: Largest interleave factor (one stage per boundary, plus one).
MAX_INTERLEAVE = len(BOUNDARIES) + 1


def default_cuts(interleave: int, rounding: str | None = None) -> tuple[str, ...]:
    """The boundaries registered for ``interleave`` chains and ``rounding`` (:data:`DEFAULT_CUTS`;
    beyond it, the first ``interleave - 1`` of :data:`BOUNDARIES`)."""
    if (interleave, rounding) in DEFAULT_CUTS:
        return DEFAULT_CUTS[interleave, rounding]
    return DEFAULT_CUTS.get(interleave, BOUNDARIES[: interleave - 1])


def check_cuts(cuts, interleave: int) -> tuple[str, ...]:
    """``cuts`` in datapath order, checked: known names, no repeats, ``interleave - 1`` of them."""
    cuts = tuple(cuts)
    unknown = [c for c in cuts if c not in BOUNDARIES]
    if unknown:
        raise ValueError(f"unknown loop cut {unknown[0]!r}: choose from {', '.join(BOUNDARIES)}")
    if len(set(cuts)) != len(cuts):
        raise ValueError(f"loop cuts {cuts} name a boundary twice")
    if len(cuts) != interleave - 1:
        raise ValueError(f"interleave {interleave} needs {interleave - 1} loop cuts, "
                         f"got {len(cuts)} ({', '.join(cuts) or 'none'})")
    return tuple(c for c in BOUNDARIES if c in cuts)


class Cuts:
    """The enabled boundaries of one component's datapath, in module ``m``.

    ``cut(name, **values)`` returns a namespace of ``values``: registered in the
    ``sync`` domain when ``name`` is enabled, unchanged otherwise. Structs
    (:class:`amaranth.lib.data.View`) stay structs.
    """

    def __init__(self, m, enabled=()):
        self.m = m
        self.enabled = frozenset(enabled)
        unknown = self.enabled - set(BOUNDARIES)
        if unknown:
            raise ValueError(f"unknown loop cut {sorted(unknown)[0]!r}")

    def __call__(self, name: str, **values) -> SimpleNamespace:
        if name not in BOUNDARIES:
            raise ValueError(f"unknown loop cut {name!r}")
        if name not in self.enabled:
            return SimpleNamespace(**values)
        out = {}
        for key, v in values.items():
            if isinstance(v, data.View):
                reg = Signal(v.shape(), name=f"{name}_{key}", reset_less=True)
            else:
                reg = Signal(Value.cast(v).shape(), name=f"{name}_{key}", reset_less=True)
            self.m.d.sync += reg.eq(v)
            out[key] = reg
        return SimpleNamespace(**out)
