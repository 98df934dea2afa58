"""``Sequencer``: the board's storage and command execution (:mod:`boards.protocol`).

Between :class:`boards.framing.FrameReceiver` and
:class:`boards.framing.ReplyTransmitter`, in front of a
:class:`hwgen.array.SystolicArray`. Storage, all in block RAM:

* A and B: ``kmax`` beats of R (C) input codes, one lane per code, written lane
  by lane as the payload arrives;
* the accumulators: two banks of R rows of C codes. The *live* bank feeds RUN,
  takes its results and is read by READ_C; LOAD_C writes the other bank and
  makes it the live one only when the frame's CRC is good, so a damaged LOAD_C
  (or another frame mistaken for one) never touches the accumulators.

A RUN runs one tile: the live accumulators row by row into ``c_in``, the K beats
of A and B into ``a`` and ``b``, the results from ``c_out`` back into the live bank.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.array import a_layout, b_layout, c_in_layout, c_out_layout
from ref.config import MacConfig

from . import protocol as P
from .framing import FRAME_END, PAYLOAD_BYTE, REPLY_REQUEST, ReplyKind, acc_addr_width, acc_address

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """Executes frames: loads into storage, RUN through the array, replies.

    Takes payload bytes and frame ends only when idle (``frame.ready``), which the
    receiver guarantees for every byte of a frame. Keeps the sequence number of the
    last executed frame and whether it was a RUN that ran: a RUN that repeats it is
    answered OK and not run again (:mod:`boards.protocol`, idempotence).

    Members
    -------
    payload : ``In(stream.Signature(PAYLOAD_BYTE, always_ready=True))``
        Payload bytes from the receiver.
    frame : ``In(stream.Signature(FRAME_END))``
        Frame ends from the receiver; ready only when idle.
    reply : ``Out(stream.Signature(REPLY_REQUEST))``
        One reply request per frame end, to the transmitter.
    acc_read : ``Out(memory.ReadPort.Signature(...))``
        A read port of the accumulator memory, for the transmitter.
    a, b, c_in : ``Out(stream.Signature(...))``
        To the array (layouts of :mod:`hwgen.array`).
    c_out : ``In(stream.Signature(...))``
        From the array.
    """

    def __init__(self, cfg: MacConfig, rows: int, cols: int, *, kmax: int):
        self.cfg, self.rows, self.cols, self.kmax = cfg, rows, cols, kmax
        wa = cfg.acc_fmt.width
        super().__init__({
            "payload": In(stream.Signature(PAYLOAD_BYTE, always_ready=True)),
            "frame": In(stream.Signature(FRAME_END)),
            "reply": Out(stream.Signature(REPLY_REQUEST)),
            "acc_read": Out(memory.ReadPort.Signature(addr_width=acc_addr_width(rows),
                                                      shape=cols * wa)),
            "a": Out(stream.Signature(a_layout(cfg, rows))),
            "b": Out(stream.Signature(b_layout(cfg, cols))),
            "c_in": Out(stream.Signature(c_in_layout(cfg, cols))),
            "c_out": In(stream.Signature(c_out_layout(cfg, cols))),
        })

    def elaborate(self, platform):
        m = Module()
        R, C, kmax = self.rows, self.cols, self.kmax
        wi, wa = self.cfg.in_fmt.width, self.cfg.acc_fmt.width
        m.submodules.mem_a = mem_a = memory.Memory(shape=R * wi, depth=kmax, init=[])
        m.submodules.mem_b = mem_b = memory.Memory(shape=C * wi, depth=kmax, init=[])
        # block RAM even when tiny: flip-flops would cost more logic cells than v1's registers
        m.submodules.mem_c = mem_c = memory.Memory(shape=C * wa, depth=1 << acc_addr_width(R), init=[],
                                                   attrs={"ram_style": "block"})
        a_wr, a_rd = mem_a.write_port(granularity=wi), mem_a.read_port()
        b_wr, b_rd = mem_b.write_port(granularity=wi), mem_b.read_port()
        c_wr, c_rd = mem_c.write_port(granularity=wa), mem_c.read_port()
        # One read port, shared: the tile (RUN_PRIME, RUN_C) waits until the transmitter is
        # idle (reply.ready), so it never reads while a reply is being sent.
        run_reads = Signal()
        run_addr = Signal.like(c_rd.addr)
        m.d.comb += [c_rd.addr.eq(Mux(run_reads, run_addr, self.acc_read.addr)),
                     self.acc_read.data.eq(c_rd.data)]

        a_ok, b_ok = Signal(), Signal()
        k_a = Signal(range(kmax + 1))  # K of the valid A
        live = Signal()  # the live accumulator bank
        last_seq, last_run = Signal(8), Signal()
        seq = Signal(8)  # of the frame being executed
        status, kind = Signal(3), Signal(ReplyKind)  # its reply
        m.d.comb += [self.reply.payload.seq.eq(seq), self.reply.payload.status.eq(status),
                     self.reply.payload.kind.eq(kind), self.reply.payload.bank.eq(live)]

        # ---- payload bytes into storage (while idle) ----
        p = self.payload.payload
        # word: the beat of LOAD_A / LOAD_B (up to kmax) or the row of LOAD_C (up to R)
        lane, word = Signal(range(max(R, C))), Signal(range(max(kmax, R) + 1))
        half, lo = Signal(), Signal(8)
        lane_now = Mux(p.first, 0, lane)
        word_now = Mux(p.first, 0, word)
        half_now = Mux(p.first, 0, half)
        take = Signal()  # a payload byte is taken this cycle

        def next_lane(width):
            with m.If(lane_now == width - 1):
                m.d.sync += [lane.eq(0), word.eq(word_now + 1)]
            with m.Else():
                m.d.sync += [lane.eq(lane_now + 1), word.eq(word_now)]

        def lane_enables(n):
            return Cat(*[lane_now == i for i in range(n)])

        with m.If(take):
            with m.Switch(p.cmd):
                with m.Case(P.LOAD_A):
                    m.d.comb += [a_wr.addr.eq(word_now), a_wr.data.eq(p.data[:wi].replicate(R)),
                                 a_wr.en.eq(lane_enables(R))]
                    next_lane(R)
                    with m.If(p.first):
                        m.d.sync += [a_ok.eq(0), b_ok.eq(0)]
                with m.Case(P.LOAD_B):
                    m.d.comb += [b_wr.addr.eq(word_now), b_wr.data.eq(p.data[:wi].replicate(C)),
                                 b_wr.en.eq(lane_enables(C))]
                    next_lane(C)
                    with m.If(p.first):
                        m.d.sync += b_ok.eq(0)
                with m.Case(P.LOAD_C):  # into the other bank, 2 bytes LE per code
                    with m.If(half_now == 0):
                        m.d.sync += [lo.eq(p.data), half.eq(1), lane.eq(lane_now),
                                     word.eq(word_now)]
                    with m.Else():
                        m.d.comb += [c_wr.addr.eq(acc_address(word_now, ~live, R)),
                                     c_wr.data.eq(Cat(lo, p.data)[:wa].replicate(C)),
                                     c_wr.en.eq(lane_enables(C))]
                        m.d.sync += half.eq(0)
                        next_lane(C)

        # ---- the tile: accumulators, A and B from storage; results back ----
        row = Signal(range(R))
        kread = Signal(range(kmax + 1))
        c_next = self.c_in.valid & self.c_in.ready
        ab_next = self.a.valid & self.a.ready
        m.d.comb += [
            run_addr.eq(acc_address(Mux(c_next, row + 1, row), live, R)),
            a_rd.addr.eq(Mux(ab_next, kread + 1, kread)),
            b_rd.addr.eq(Mux(ab_next, kread + 1, kread)),
            self.c_in.payload.data.as_value().eq(c_rd.data),
            self.a.payload.data.as_value().eq(a_rd.data),
            self.a.payload.last.eq(kread + 1 == k_a),
            self.b.payload.data.as_value().eq(b_rd.data),
        ]

        def answer(code, what=ReplyKind.NONE):
            m.d.sync += [status.eq(code), kind.eq(what)]
            m.next = "REPLY"

        f = self.frame.payload
        with m.FSM(init="IDLE") as fsm:
            with m.State("IDLE"):  # takes payload bytes; executes a frame at its end
                m.d.comb += [self.frame.ready.eq(1), take.eq(self.payload.valid)]
                with m.If(self.frame.valid):
                    m.d.sync += seq.eq(f.seq)
                    with m.If(f.status != P.OK):  # refused by the receiver: nothing executed
                        answer(f.status)
                    with m.Else():
                        m.d.sync += [last_seq.eq(f.seq), last_run.eq(0)]
                        with m.Switch(f.cmd):
                            with m.Case(P.IDENT):
                                answer(P.OK, ReplyKind.IDENT)
                            with m.Case(P.LOAD_A):
                                with m.If(lane == 0):  # whole beats
                                    m.d.sync += [a_ok.eq(1), k_a.eq(word)]
                                    answer(P.OK)
                                with m.Else():
                                    answer(P.ERR_LENGTH)
                            with m.Case(P.LOAD_B):
                                with m.If(~a_ok):
                                    answer(P.ERR_STATE)
                                with m.Elif((lane == 0) & (word == k_a)):
                                    m.d.sync += b_ok.eq(1)
                                    answer(P.OK)
                                with m.Else():
                                    answer(P.ERR_LENGTH)
                            with m.Case(P.LOAD_C):
                                m.d.sync += live.eq(~live)
                                answer(P.OK)
                            with m.Case(P.RUN):
                                with m.If(last_run & (f.seq == last_seq)):
                                    m.d.sync += last_run.eq(1)  # a resend: not run again
                                    answer(P.OK)
                                with m.Elif(a_ok & b_ok):
                                    m.d.sync += [row.eq(0), kread.eq(0)]
                                    m.next = "RUN_PRIME"
                                with m.Else():
                                    answer(P.ERR_STATE)
                            with m.Case(P.READ_C):
                                answer(P.OK, ReplyKind.ACCS)
            with m.State("RUN_PRIME"):  # the read ports fetch row 0 and beat 0
                with m.If(self.reply.ready):  # the transmitter is done with the read port
                    m.next = "RUN_C"
            with m.State("RUN_C"):
                m.d.comb += self.c_in.valid.eq(1)
                with m.If(self.c_in.ready):
                    m.d.sync += row.eq(Mux(row == R - 1, 0, row + 1))
                    with m.If(row == R - 1):
                        m.next = "RUN_AB"
            with m.State("RUN_AB"):
                m.d.comb += [self.a.valid.eq(1), self.b.valid.eq(1)]
                with m.If(ab_next):
                    m.d.sync += kread.eq(kread + 1)
                    with m.If(kread + 1 == k_a):
                        m.next = "RUN_OUT"
            with m.State("RUN_OUT"):
                m.d.comb += self.c_out.ready.eq(1)
                with m.If(self.c_out.valid):
                    m.d.comb += [c_wr.addr.eq(acc_address(row, live, R)),
                                 c_wr.data.eq(self.c_out.payload.data.as_value()),
                                 c_wr.en.eq(Const(-1, C))]
                    m.d.sync += row.eq(Mux(row == R - 1, 0, row + 1))
                    with m.If(self.c_out.payload.last):
                        m.d.sync += last_run.eq(1)
                        answer(P.OK)
            with m.State("REPLY"):
                m.d.comb += self.reply.valid.eq(1)
                with m.If(self.reply.ready):
                    m.next = "IDLE"
        m.d.comb += run_reads.eq((fsm.ongoing("RUN_PRIME") & self.reply.ready) |
                                 fsm.ongoing("RUN_C"))
        return m
