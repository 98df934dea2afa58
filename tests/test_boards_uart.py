"""boards.uart: 8N1 receiver and transmitter in Amaranth's simulator."""

from __future__ import annotations

import gc
import warnings

import pytest
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.sim import Simulator

from boards.uart import UartRx, UartTx, check_divisor

D = 4  # clock cycles per bit


def line_bits(byte: int, stop: int = 1) -> list[int]:
    return [0] + [(byte >> q) & 1 for q in range(8)] + [stop]


def receive(frames: list[tuple[int, int]], divisor: int = D) -> list[int]:
    """Drive ``(byte, stop bit)`` frames on UartRx's line; return the bytes it delivers."""
    rx = UartRx(divisor)
    got = []
    sim = Simulator(rx)
    sim.add_clock(1e-6)

    async def drive(ctx):
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(3)
        for byte, stop in frames:
            for bit in line_bits(byte, stop):
                ctx.set(rx.rx, bit)
                await ctx.tick().repeat(divisor)
            ctx.set(rx.rx, 1)
            await ctx.tick().repeat(2 * divisor)

    async def watch(ctx):
        async for _clk, _rst, valid, data in ctx.tick().sample(rx.data.valid, rx.data.payload):
            if valid:
                got.append(data)

    sim.add_testbench(drive)
    sim.add_process(watch)
    sim.run()
    return got


def test_receiver_gets_bytes():
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x13]
    assert receive([(b, 1) for b in data]) == data


def test_receiver_drops_a_byte_with_a_low_stop_bit():
    """A framing error is dropped, not delivered as a wrong byte; the next one is fine."""
    assert receive([(0x41, 1), (0x42, 0), (0x43, 1)]) == [0x41, 0x43]


def test_transmitter_line_and_loopback():
    m = Module()
    m.submodules.tx = tx = UartTx(D)
    m.submodules.rx = rx = UartRx(D)
    m.d.comb += rx.rx.eq(tx.tx)
    sent, line, got = [0x5A, 0x00, 0xC3], [], []
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def send(ctx):
        for byte in sent:
            ctx.set(tx.data.payload, byte)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)
        await ctx.tick().repeat(30 * D)

    async def watch(ctx):
        async for _clk, _rst, level, valid, data in ctx.tick().sample(tx.tx, rx.data.valid, rx.data.payload):
            line.append(level)
            if valid:
                got.append(data)

    sim.add_testbench(send)
    sim.add_process(watch)
    sim.run()
    assert got == sent
    start = line.index(0)  # the first start bit, then D cycles per bit
    assert line[start:start + 10 * D:D] == line_bits(sent[0])


@pytest.mark.parametrize("divisor", [3, 0, 4.0, "8"])
def test_bad_divisor(divisor):
    with pytest.raises(ValueError, match="divisor"):
        check_divisor(divisor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)  # the refused UART is never used
        with pytest.raises(ValueError, match="divisor"):
            UartRx(divisor)
        gc.collect()
