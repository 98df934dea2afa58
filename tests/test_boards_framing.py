"""boards.framing: the CRC network, FrameReceiver and ReplyTransmitter, each on its own."""

from __future__ import annotations

import random

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.sim import Simulator

import ref
from boards import protocol as P
from boards.framing import (
    REPLY_REQUEST,
    FrameReceiver,
    ReplyKind,
    ReplyTransmitter,
    acc_addr_width,
    crc16_next,
)

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")
LIMITS = {cmd: P.payload_limits(cmd, 2, 2, 4) for cmd in P.COMMANDS}


def test_crc16_next_gates_equal_the_protocol():
    crc, byte = Signal(16), Signal(8)
    out = Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc, byte))
    rng = random.Random(1)
    cases = [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(300)]
    cases += [(1 << i, 0) for i in range(16)] + [(0, 1 << i) for i in range(8)]
    bad = []
    sim = Simulator(m)

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            if ctx.get(out) != P.crc16_update(c, b):
                bad.append((c, b))

    sim.add_testbench(bench)
    sim.run()
    assert not bad


def run_receiver(chunks, *, ready_from: int = 0, timeout: int = 40):
    """Feed ``chunks`` (bytes, or an int: that many quiet cycles), 10 cycles per byte.
    Returns the events in order: ("byte", data, cmd, first) and ("end", seq, cmd, status).
    ``frame.ready`` is low before cycle ``ready_from``."""
    rx = FrameReceiver(LIMITS, timeout=timeout)
    events = []
    sim = Simulator(rx)
    sim.add_clock(1e-6)

    async def drive(ctx):
        cycle = 0
        for chunk in chunks:
            if isinstance(chunk, int):
                await ctx.tick().repeat(chunk)
                cycle += chunk
                continue
            for b in chunk:
                ctx.set(rx.rx.payload, b)
                ctx.set(rx.rx.valid, 1)
                ctx.set(rx.frame.ready, int(cycle >= ready_from))
                await ctx.tick()
                ctx.set(rx.rx.valid, 0)
                ctx.set(rx.frame.ready, 1)
                await ctx.tick().repeat(9)
                cycle += 10
        await ctx.tick().repeat(20)

    async def watch(ctx):
        async for _c, _r, pv, p, fv, f in ctx.tick().sample(rx.payload.valid, rx.payload.payload,
                                                            rx.frame.valid, rx.frame.payload):
            if pv:
                events.append(("byte", p.data, p.cmd, p.first))
            if fv:
                events.append(("end", f.seq, f.cmd, f.status))

    sim.add_testbench(drive)
    sim.add_process(watch)
    sim.run()
    return events


def test_receiver_passes_payload_and_checks_the_crc():
    good = P.frame(9, P.LOAD_C, bytes(range(8)))
    bad = bytearray(good)
    bad[7] ^= 0x20
    ev = run_receiver([good, bytes(bad)])
    payload = [("byte", b, P.LOAD_C, int(i == 0)) for i, b in enumerate(range(8))]
    assert ev[:9] == payload + [("end", 9, P.LOAD_C, P.OK)]
    assert ev[-1] == ("end", 9, P.LOAD_C, P.ERR_CHECKSUM)


def test_receiver_refuses_a_header_at_once_and_drops_the_rest():
    """Unknown command: ended right after LEN, the payload (with a whole valid frame in it)
    is dropped; then a good frame is taken again."""
    inner = P.frame(3, P.RUN)
    ev = run_receiver([P.frame(4, 0x7F, inner), P.frame(5, P.LOAD_A, bytes(20)),
                       P.frame(6, P.RUN)])
    assert ev == [("end", 4, 0x7F, P.ERR_COMMAND), ("end", 5, P.LOAD_A, P.ERR_LENGTH),
                  ("end", 6, P.RUN, P.OK)]


def test_receiver_drops_a_stalled_frame():
    """A silence longer than the timeout inside a frame: no event, the next frame is fine."""
    f = P.frame(7, P.LOAD_C, bytes(8))
    assert run_receiver([f[:6], 100, P.frame(8, P.IDENT)]) == [
        ("byte", 0, P.LOAD_C, 1), ("end", 8, P.IDENT, P.OK)]  # the first payload byte got in
    # a shorter pause is no silence
    assert run_receiver([f[:6], 20, f[6:]])[-1] == ("end", 7, P.LOAD_C, P.OK)


def test_receiver_ignores_a_sync_byte_while_the_sequencer_is_busy():
    f = P.frame(1, P.IDENT)
    assert run_receiver([f, P.frame(2, P.IDENT)], ready_from=len(f) * 10) == [
        ("end", 2, P.IDENT, P.OK)]


class _TxBench(wiring.Component):
    """A ReplyTransmitter reading an accumulator memory with known contents."""

    def __init__(self, rows, cols, words):
        self.tx = ReplyTransmitter(P.ident_payload(CFG, rows, cols, 4, 0), rows, cols, 12)
        self.words = words
        super().__init__({"reply": wiring.In(stream.Signature(REPLY_REQUEST)),
                          "out": wiring.Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = self.tx
        m.submodules.mem = mem = memory.Memory(shape=len(tx.acc_read.data),
                                               depth=1 << len(tx.acc_read.addr), init=self.words)
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(tx.acc_read.addr), tx.acc_read.data.eq(rd.data)]
        wiring.connect(m, wiring.flipped(self.reply), tx.reply)
        wiring.connect(m, tx.tx, wiring.flipped(self.out))
        return m


def transmit(rows, cols, words, requests):
    bench = _TxBench(rows, cols, words)
    got = bytearray()
    sim = Simulator(bench)
    sim.add_clock(1e-6)

    async def drive(ctx):
        for seq, status, kind, bank in requests:
            ctx.set(bench.reply.payload, {"seq": seq, "status": status, "kind": kind,
                                          "bank": bank})
            ctx.set(bench.reply.valid, 1)
            await ctx.tick().until(bench.reply.ready)
            ctx.set(bench.reply.valid, 0)
        await ctx.tick().until(bench.reply.ready)  # the last one is out
        await ctx.tick().repeat(5)

    async def consume(ctx):  # a slow consumer: ready now and then
        rng = random.Random(0)
        while True:
            ctx.set(bench.out.ready, rng.random() < 0.4)
            await ctx.tick()

    async def watch(ctx):
        async for _c, _r, v, r, b in ctx.tick().sample(bench.out.valid, bench.out.ready,
                                                       bench.out.payload):
            if v and r:
                got.append(b)

    sim.add_testbench(drive)
    sim.add_testbench(consume, background=True)
    sim.add_process(watch)
    sim.run()
    return bytes(got)


def test_transmitter_frames_replies_like_the_protocol():
    R, C = 2, 3
    rng = random.Random(5)
    banks = [[[rng.randrange(1 << 12) for _ in range(C)] for _ in range(R)] for _ in range(2)]
    rw = acc_addr_width(R) - 1  # row bits, then the bank bit
    words = [0] * (2 << rw)
    for bank in range(2):
        for i in range(R):
            words[i | bank << rw] = sum(c << 12 * j for j, c in enumerate(banks[bank][i]))
    got = transmit(R, C, words, [(7, P.OK, ReplyKind.ACCS, 1), (8, P.ERR_STATE, ReplyKind.NONE, 0),
                                 (9, P.OK, ReplyKind.IDENT, 0)])
    accs = b"".join(c.to_bytes(2, "little") for row in banks[1] for c in row)
    want = (P.reply(7, P.OK, accs) + P.reply(8, P.ERR_STATE)
            + P.reply(9, P.OK, P.ident_payload(CFG, R, C, 4, 0)))
    assert got == want
