"""The per-PE xorshift32 generator in hardware, identical to :mod:`ref.prng`."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.prng import seed_state_int

__all__ = ["Xorshift32Gen", "xorshift_step"]


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
