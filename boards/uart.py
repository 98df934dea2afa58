"""8N1 UART receiver and transmitter with byte streams (``amaranth.lib.stream``).

``divisor`` = clock cycles per bit (e.g. 12 MHz / 115200 baud = 104; the
simulated transport uses a small one). The receiver has no back-pressure: its
stream is ``always_ready`` and ``valid`` pulses for one cycle per byte.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "check_divisor"]


def check_divisor(divisor):
    """ValueError unless ``divisor`` is a usable number of clock cycles per bit."""
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"UART divisor must be an integer >= 4 clock cycles per bit, got {divisor!r}")


class UartRx(wiring.Component):
    """8N1 receiver: samples each bit in its middle; a byte whose stop bit is low is dropped
    and the receiver waits for the line to go high before it looks for the next start bit.

    Members
    -------
    rx : ``In(1, init=1)``
        The line (idle high).
    data : ``Out(stream.Signature(8, always_ready=True))``
        Received bytes, one ``valid`` cycle each.
    """

    def __init__(self, divisor: int):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8, always_ready=True))})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        sync1, line = Signal(init=1), Signal(init=1)  # two-flop synchroniser
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]
        timer = Signal(range(d + d // 2 + 1))
        bits = Signal(range(10))
        shreg = Signal(8)
        busy = Signal()
        broken = Signal()  # after a low stop bit: wait for the line to go idle (high)
        m.d.sync += self.data.valid.eq(0)
        with m.If(~busy):
            with m.If(line):
                m.d.sync += broken.eq(0)
            with m.Elif(~broken):  # start bit: sample the data bits in their middles
                m.d.sync += [busy.eq(1), timer.eq(d + d // 2 - 1), bits.eq(0)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(bits < 8):
            m.d.sync += [shreg.eq(Cat(shreg[1:], line)), bits.eq(bits + 1), timer.eq(d - 1)]
        with m.Else():  # stop bit sample: deliver if high, else a framing error: dropped
            m.d.sync += [busy.eq(0), broken.eq(~line)]
            with m.If(line):
                m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
        return m


class UartTx(wiring.Component):
    """8N1 transmitter.

    Members
    -------
    data : ``In(stream.Signature(8))``
        Bytes to send; ``ready`` while the line is idle.
    tx : ``Out(1, init=1)``
        The line (idle high).
    """

    def __init__(self, divisor: int):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        shreg = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        m.d.comb += [self.tx.eq(shreg[0]), self.data.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.data.valid):
                m.d.sync += [shreg.eq(Cat(0, self.data.payload, 1)), bits.eq(10),
                             timer.eq(d - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), bits.eq(bits - 1), timer.eq(d - 1)]
        return m
