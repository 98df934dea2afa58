"""The board's framing hardware: ``FrameReceiver`` and ``ReplyTransmitter`` (:mod:`boards.protocol`).

Both run the protocol's CRC-16 one byte per clock cycle through :func:`crc16_next`,
the XOR network of :func:`boards.protocol.crc16_matrix` (so the RTL and the host
share one definition of the CRC). :class:`boards.sequencer.Sequencer` sits
between them; :class:`boards.core.BoardCore` joins the three with streams:

* :data:`PAYLOAD_BYTE` (receiver -> sequencer): each payload byte of a frame whose
  header is valid, with its command and a ``first`` flag;
* :data:`FRAME_END` (receiver -> sequencer): one per frame, at its end (status OK or
  ERR_CHECKSUM) or as soon as its header is refused (ERR_COMMAND, ERR_LENGTH);
* :data:`REPLY_REQUEST` (sequencer -> transmitter): the reply to send.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol as P

__all__ = ["crc16_next", "ReplyKind", "PAYLOAD_BYTE", "FRAME_END", "REPLY_REQUEST",
           "FrameReceiver", "ReplyTransmitter", "acc_addr_width", "acc_address"]


def crc16_next(crc, byte):
    """The CRC register after ``byte``: :func:`boards.protocol.crc16_update` in gates."""
    bits = []
    for crc_mask, byte_mask in P.crc16_matrix():
        terms = [crc[i] for i in range(16) if crc_mask >> i & 1]
        terms += [byte[i] for i in range(8) if byte_mask >> i & 1]
        bits.append(reduce(xor, terms))
    return Cat(*bits)


class ReplyKind(enum.Enum, shape=2):
    """What a reply's payload is."""
    NONE = 0
    IDENT = 1  # the IDENT bytes
    ACCS = 2  # the accumulators, 2 bytes LE each, row-major


PAYLOAD_BYTE = data.StructLayout({"data": 8, "cmd": 8, "first": 1})
FRAME_END = data.StructLayout({"seq": 8, "cmd": 8, "status": 3})
REPLY_REQUEST = data.StructLayout({"seq": 8, "status": 3, "kind": ReplyKind, "bank": 1})


def acc_addr_width(rows: int) -> int:
    """Address bits of the accumulator memory: the row, then the bank (two banks of rows)."""
    return max(1, (rows - 1).bit_length()) + 1


def acc_address(row, bank, rows: int):
    """The accumulator memory address of ``row`` (any width, even 0 bits) in ``bank``."""
    rw = acc_addr_width(rows) - 1
    return Cat(Cat(row, Const(0, rw))[:rw], bank)


class FrameReceiver(wiring.Component):
    """Parses frames from a byte stream; checks the header and the CRC.

    ``limits``: ``{command: (least, most payload bytes)}`` (:func:`boards.protocol.payload_limits`);
    ``timeout``: clock cycles of silence inside a frame before it is dropped.

    A frame starts (at a 0xA5 byte) only while ``frame.ready`` is high, i.e. while
    the sequencer is idle; bytes that arrive while it is busy are dropped. Within a
    frame the sequencer is therefore always idle: it takes every payload byte and
    the frame's end at once.

    Members
    -------
    rx : ``In(stream.Signature(8, always_ready=True))``
        Received bytes (from the UART: no back-pressure).
    payload : ``Out(stream.Signature(PAYLOAD_BYTE, always_ready=True))``
        The payload bytes of a frame whose header was accepted, as they arrive.
    frame : ``Out(stream.Signature(FRAME_END))``
        One transfer per frame: sequence number, command and status.
    """

    def __init__(self, limits: dict[int, tuple[int, int]], *, timeout: int):
        self.limits, self.timeout = dict(limits), timeout
        super().__init__({
            "rx": In(stream.Signature(8, always_ready=True)),
            "payload": Out(stream.Signature(PAYLOAD_BYTE, always_ready=True)),
            "frame": Out(stream.Signature(FRAME_END)),
        })

    def elaborate(self, platform):
        m = Module()
        byte, got = self.rx.payload, self.rx.valid
        crc = Signal(16)
        crc_in = crc16_next(crc, byte)
        length = Signal(16)
        count = Signal(16)  # payload bytes received; in DISCARD: bytes left to drop
        end = self.frame.payload
        silence = Signal(range(self.timeout + 1))
        timed_out = Signal()

        new_len = Cat(length[:8], byte)
        known = Signal()
        len_ok = Signal()
        with m.Switch(end.cmd):
            for cmd, (lo, hi) in self.limits.items():
                with m.Case(cmd):
                    m.d.comb += [known.eq(1), len_ok.eq((new_len >= lo) & (new_len <= hi))]

        m.d.comb += [self.payload.payload.data.eq(byte), self.payload.payload.cmd.eq(end.cmd),
                     self.payload.payload.first.eq(count == 0)]

        def header_byte(field, next_state):
            with m.If(timed_out):
                m.next = "IDLE"
            with m.Elif(got):
                m.d.sync += crc.eq(crc_in)
                if field is not None:
                    m.d.sync += field.eq(byte)
                m.next = next_state

        with m.FSM(init="IDLE") as fsm:
            with m.State("IDLE"):
                with m.If(got & (byte == P.SYNC) & self.frame.ready):
                    m.d.sync += crc.eq(P.CRC_INIT)
                    m.next = "SEQ"
            with m.State("SEQ"):
                header_byte(end.seq, "CMD")
            with m.State("CMD"):
                header_byte(end.cmd, "LEN_LO")
            with m.State("LEN_LO"):
                header_byte(length[:8], "LEN_HI")
            with m.State("LEN_HI"):
                with m.If(timed_out):
                    m.next = "IDLE"
                with m.Elif(got):
                    m.d.sync += [length.eq(new_len), crc.eq(crc_in), count.eq(0)]
                    with m.If(~known | ~len_ok):  # refused now; the rest (LEN + 2 bytes) dropped
                        m.d.sync += [end.status.eq(Mux(known, P.ERR_LENGTH, P.ERR_COMMAND)),
                                     count.eq(new_len + P.CRC_BYTES)]
                        m.next = "END"
                    with m.Elif(new_len == 0):
                        m.next = "CRC_HI"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += self.payload.valid.eq(got & ~timed_out)
                with m.If(timed_out):
                    m.next = "IDLE"
                with m.Elif(got):
                    m.d.sync += [count.eq(count + 1), crc.eq(crc_in)]
                    with m.If(count + 1 == length):
                        m.next = "CRC_HI"
            with m.State("CRC_HI"):
                header_byte(None, "CRC_LO")
            with m.State("CRC_LO"):
                with m.If(timed_out):
                    m.next = "IDLE"
                with m.Elif(got):
                    m.d.sync += [end.status.eq(Mux(crc_in == 0, P.OK, P.ERR_CHECKSUM)),
                                 count.eq(0)]
                    m.next = "END"
            with m.State("END"):
                m.d.comb += self.frame.valid.eq(1)
                with m.If(self.frame.ready):
                    with m.If(count == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DISCARD"
            with m.State("DISCARD"):
                with m.If(timed_out):
                    m.next = "IDLE"
                with m.Elif(got):
                    m.d.sync += count.eq(count - 1)
                    with m.If(count == 1):
                        m.next = "IDLE"

        in_frame = ~fsm.ongoing("IDLE") & ~fsm.ongoing("END")
        m.d.comb += timed_out.eq(in_frame & (silence == self.timeout))
        with m.If(got | ~in_frame):
            m.d.sync += silence.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += silence.eq(silence + 1)
        return m


class ReplyTransmitter(wiring.Component):
    """Sends replies: sync, SEQ, status, length, payload, CRC.

    ``ident``: the IDENT payload (a ROM); ``rows``, ``cols``, ``acc_width``: the
    accumulator memory read through ``acc_read`` (row ``r`` of bank ``b`` at
    address ``r | b << (addr_width - 1)``, lane j = accumulator (r, j)).

    Members
    -------
    reply : ``In(stream.Signature(REPLY_REQUEST))``
        The reply to send; taken when the previous one is out.
    acc_read : ``In(memory.ReadPort.Signature(...))``
        A synchronous read port of the accumulator memory (this side drives the address).
    tx : ``Out(stream.Signature(8))``
        Bytes to the UART.
    """

    #: Cycles between a payload byte's (row, byte) moving on and the byte being sendable.
    FETCH_CYCLES = 3

    def __init__(self, ident: bytes, rows: int, cols: int, acc_width: int):
        self.ident, self.rows, self.cols, self.acc_width = bytes(ident), rows, cols, acc_width
        super().__init__({
            "reply": In(stream.Signature(REPLY_REQUEST)),
            "acc_read": In(memory.ReadPort.Signature(addr_width=acc_addr_width(rows),
                                                     shape=cols * acc_width)),
            "tx": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        R, C, wa = self.rows, self.cols, self.acc_width
        req = Signal(REPLY_REQUEST)
        crc = Signal(16)
        out = self.tx.payload
        sent = self.tx.valid & self.tx.ready
        length = Signal(16)
        with m.Switch(req.kind):
            with m.Case(ReplyKind.IDENT):
                m.d.comb += length.eq(len(self.ident))
            with m.Case(ReplyKind.ACCS):
                m.d.comb += length.eq(2 * R * C)
        pos = Signal(range(max(len(self.ident), 2 * R * C) + 1))  # payload byte index
        row = Signal(range(R))
        rb = Signal(range(2 * C))  # byte within the row
        row_done = sent & (rb == 2 * C - 1)
        # A payload byte is sent from a register, FETCH_CYCLES after (row, rb) moved on: the
        # address, the block RAM's read, its data registered, the byte selected and registered
        # (the read data through the byte multiplexer into the UART was the board's longest
        # path). A byte takes 10 UART bit times to go, so the wait costs nothing.
        m.d.comb += self.acc_read.addr.eq(acc_address(row, req.bank, R))
        row_q = Signal(C * wa)
        m.d.sync += row_q.eq(self.acc_read.data)
        lanes = [row_q[j * wa:(j + 1) * wa] for j in range(C)]
        row_bytes = Array(b for lane in lanes for b in (lane[:8], Cat(lane[8:], Const(0, 16))[:8]))
        ident = Array(Const(b, 8) for b in self.ident)
        payload_byte = Signal(8)
        m.d.sync += payload_byte.eq(Mux(req.kind == ReplyKind.IDENT, ident[pos], row_bytes[rb]))
        wait = Signal(range(self.FETCH_CYCLES))

        # The CRC takes each sent byte one cycle later, from a register: a payload byte comes
        # from the accumulator block RAM's read data through the byte multiplexer, and the
        # CRC network behind that was the board's longest path (ECP5, 6x6: 14.4 ns).
        crc_byte, crc_pending = Signal(8), Signal()
        crc_now = Signal(16)  # the CRC of every byte sent so far
        m.d.comb += crc_now.eq(Mux(crc_pending, crc16_next(crc, crc_byte), crc))
        m.d.sync += [crc.eq(crc_now), crc_byte.eq(out), crc_pending.eq(0)]

        def send(value, next_state, *, add_crc=True):
            m.d.comb += [self.tx.valid.eq(1), out.eq(value)]
            with m.If(sent):
                if add_crc:
                    m.d.sync += crc_pending.eq(1)
                m.next = next_state

        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                m.d.comb += self.reply.ready.eq(1)
                with m.If(self.reply.valid):
                    m.d.sync += [req.eq(self.reply.payload), crc.eq(P.CRC_INIT), pos.eq(0),
                                 row.eq(0), rb.eq(0)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                send(P.REPLY_SYNC, "SEQ", add_crc=False)
            with m.State("SEQ"):
                send(req.seq, "STATUS")
            with m.State("STATUS"):
                send(req.status, "LEN_LO")
            with m.State("LEN_LO"):
                send(length[:8], "LEN_HI")
            with m.State("LEN_HI"):
                send(length[8:], "FETCH")
                with m.If(sent):
                    m.d.sync += wait.eq(self.FETCH_CYCLES - 1)
                    with m.If(length == 0):
                        m.next = "CRC_HI"
            with m.State("FETCH"):  # the byte at (pos, row, rb) on its way into payload_byte
                with m.If(wait == 0):
                    m.next = "PAYLOAD"
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)
            with m.State("PAYLOAD"):
                send(payload_byte, "FETCH")
                with m.If(sent):
                    m.d.sync += [pos.eq(pos + 1), wait.eq(self.FETCH_CYCLES - 1)]
                    with m.If(row_done):
                        m.d.sync += [rb.eq(0), row.eq(row + 1)]
                    with m.Else():
                        m.d.sync += rb.eq(rb + 1)
                    with m.If(pos + 1 == length):
                        m.next = "CRC_HI"
            with m.State("CRC_HI"):
                send(crc_now[8:], "CRC_LO", add_crc=False)
            with m.State("CRC_LO"):
                send(crc_now[:8], "IDLE", add_crc=False)
        return m
