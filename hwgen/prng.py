"""The per-PE xorshift32 generators in hardware, identical to :mod:`ref.prng`.

:class:`Xorshift32Gen` is one generator; :class:`Xorshift32Ring` holds one generator per
chain of an interleaved PE (:class:`hwgen.mac.MacUnit` with ``interleave=L``), in a ring
that turns every cycle with the chains of the loop.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.prng import seed_state_int

__all__ = ["Xorshift32Gen", "Xorshift32Ring", "xorshift_step"]


def xorshift_step(x):
    """One xorshift32 step (13, 17, 5) on a 32-bit Amaranth value (combinational)."""
    x = (x ^ (x << 13))[:32]
    x = x ^ (x >> 17)
    return (x ^ (x << 5))[:32]


class Xorshift32Gen(wiring.Component):
    """Seeded xorshift32: ``word`` is the state after one more step; ``advance`` commits it.

    Ports: ``advance`` In(1) (a valid operation this cycle), ``word`` Out(32)
    (combinational: the random word of the operation issued this cycle).
    The state resets (sync reset) to ``seed_state_int(seed, i, j)`` and steps only
    when ``advance`` is high, so idle cycles never consume random bits.
    """

    def __init__(self, seed: int = 0, i: int = 0, j: int = 0):
        self.seed, self.i, self.j = seed, i, j
        self.init = seed_state_int(seed, i, j)
        super().__init__({"advance": In(1), "word": Out(32)})

    def elaborate(self, platform):
        m = Module()
        state = Signal(32, init=self.init)
        m.d.comb += self.word.eq(xorshift_step(state))
        with m.If(self.advance):
            m.d.sync += state.eq(self.word)
        return m


class Xorshift32Ring(wiring.Component):
    """One seeded xorshift32 per chain, in a ring that turns every cycle.

    ``pes``: the logical PE ``(i, j)`` whose generator each chain ``l`` has (chain ``l``
    resets to ``seed_state_int(seed, *pes[l])``). At cycle ``t`` after reset the
    generator of chain ``(t - offset) mod L`` is at the head: ``word`` (combinational)
    is its state after one more step, and ``advance`` (a MAC of that chain this cycle)
    commits it. Idle cycles turn the ring without stepping, so each chain's stream
    depends only on its own MACs, as :class:`Xorshift32Gen`'s does.

    Ports: ``advance`` In(1), ``word`` Out(32).
    """

    def __init__(self, seed: int, pes, offset: int = 0):
        self.seed, self.pes = seed, [tuple(p) for p in pes]
        if not self.pes:
            raise ValueError("a generator ring needs at least one chain")
        n = len(self.pes)
        # ring slot k holds, at reset, the chain that reaches the head at cycle k
        self.init = [seed_state_int(seed, *self.pes[(k - offset) % n]) for k in range(n)]
        super().__init__({"advance": In(1), "word": Out(32)})

    def elaborate(self, platform):
        m = Module()
        ring = [Signal(32, init=v, name=f"ring{k}") for k, v in enumerate(self.init)]
        m.d.comb += self.word.eq(xorshift_step(ring[0]))
        m.d.sync += [ring[k].eq(ring[k + 1]) for k in range(len(ring) - 1)]
        with m.If(self.advance):
            m.d.sync += ring[-1].eq(self.word)
        with m.Else():
            m.d.sync += ring[-1].eq(ring[0])
        return m
