"""The per-PE xorshift32 generators in hardware, identical to :mod:`ref.prng`.

:class:`Xorshift32Gen` is one generator; :class:`Xorshift32Ring` holds one generator per
chain of an interleaved PE (:class:`hwgen.mac.MacUnit` with ``interleave=L``), in a ring
that turns every cycle with the chains of the loop.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.prng import seed_state_int, step_int

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
    generator of chain ``(t - offset) mod L`` is at the head: ``word`` is its state after
    one more step (the random word of an operation of that chain issued now) and
    ``advance`` commits it. Idle cycles turn the ring without stepping, so each chain's
    stream depends only on its own MACs, as :class:`Xorshift32Gen`'s does.

    A chain steps at most once per turn of the ring, so the ring holds each chain's
    *next word* and spreads the following step over its stages: ``x ^= x << 13`` as the
    word leaves the head (when it was used), the rest (``x ^= x >> 17; x ^= x << 5``)
    one stage later. So ``word`` is a register and every ring register is fed by a
    little logic (no register-only copies). Needs at least two chains.

    Ports: ``advance`` In(1), ``word`` Out(32).
    """

    def __init__(self, seed: int, pes, offset: int = 0):
        self.seed, self.pes = seed, [tuple(p) for p in pes]
        n = len(self.pes)
        if n < 2:
            raise ValueError("a generator ring needs at least two chains (use Xorshift32Gen)")
        # ring slot k holds, at reset, the first word of the chain that reaches the head at k
        self.init = [step_int(seed_state_int(seed, *self.pes[(k - offset) % n])) for k in range(n)]
        super().__init__({"advance": In(1), "word": Out(32)})

    def elaborate(self, platform):
        m = Module()
        n = len(self.init)
        ring = [Signal(32, init=v, name=f"ring{k}") for k, v in enumerate(self.init)]
        stepped = Signal(name="ring_stepped")  # ring[n-1] holds a half-stepped word
        head = ring[0]
        m.d.comb += self.word.eq(head)
        first_half = (head ^ (head << 13))[:32]
        m.d.sync += [ring[n - 1].eq(Mux(self.advance, first_half, head)),
                     stepped.eq(self.advance)]
        x = ring[n - 1]
        x = x ^ (x >> 17)
        second_half = (x ^ (x << 5))[:32]
        m.d.sync += ring[n - 2].eq(Mux(stepped, second_half, ring[n - 1]))
        m.d.sync += [ring[k].eq(ring[k + 1]) for k in range(n - 2)]
        return m
