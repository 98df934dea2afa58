"""``SimTransport``: the host link to a :class:`boards.core.BoardTop` in Amaranth's simulator.

The bytes the host writes are sent bit by bit (8N1) on the top's ``rx`` pin;
the ``tx`` pin is decoded back into bytes. ``read(n)`` runs the simulation
until n bytes have arrived or ``max_cycles`` pass without one (a timeout,
like a serial port's). ``corrupt`` (a function of the byte index) lets a test
damage bytes on the way to the board.
"""

from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

__all__ = ["SimTransport"]

_PERIOD = 1e-6  # simulated clock period (s); only ratios matter


class SimTransport:
    def __init__(self, top, *, max_cycles: int | None = None, corrupt=None):
        self.top = top
        self.d = top.divisor
        self.max_cycles = max_cycles or 40 * self.d * 12
        self.corrupt = corrupt
        self.sent = 0
        self._out = deque()  # bytes to send
        self._in = deque()  # bytes received
        self.cycles = 0
        sim = Simulator(top)
        sim.add_clock(_PERIOD)
        sim.add_testbench(self._drive_rx, background=True)
        sim.add_testbench(self._sample_tx, background=True)
        self.sim = sim

    async def _drive_rx(self, ctx):
        d = self.d
        ctx.set(self.top.rx, 1)
        while True:
            if not self._out:
                await ctx.tick()
                continue
            byte = self._out.popleft()
            for bit in [0] + [(byte >> q) & 1 for q in range(8)] + [1]:
                ctx.set(self.top.rx, bit)
                await ctx.tick().repeat(d)

    async def _sample_tx(self, ctx):
        d = self.d
        while True:
            await ctx.tick()
            if ctx.get(self.top.tx):
                continue
            await ctx.tick().repeat(d // 2)  # middle of the start bit
            byte = 0
            for q in range(8):
                await ctx.tick().repeat(d)
                byte |= ctx.get(self.top.tx) << q
            await ctx.tick().repeat(d)  # stop bit
            self._in.append(byte)

    def _step(self, cycles: int):
        self.cycles += cycles
        self.sim.run_until(self.cycles * _PERIOD)

    # ---- transport interface ----
    def write(self, data: bytes):
        for b in data:
            if self.corrupt is not None:
                b = self.corrupt(self.sent, b) & 0xFF
            self.sent += 1
            self._out.append(b)

    def read(self, n: int) -> bytes:
        out = bytearray()
        idle = 0
        chunk = self.d * 10
        while len(out) < n and idle < self.max_cycles:
            if self._in:
                out.append(self._in.popleft())
                idle = 0
                continue
            self._step(chunk)
            idle += chunk if not self._out else 0
        return bytes(out)

    def flush_input(self):
        """Let the link go quiet (past the board's frame timeout), drop what arrived."""
        while self._out:
            self._step(self.d * 10)
        self._step(self.top.core.timeout + 20 * self.d)
        self._in.clear()
