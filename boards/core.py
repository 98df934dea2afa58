"""``BoardCore``: the protocol engine of :mod:`boards.protocol` around a systolic array.

Byte streams in and out (the UART sits outside, see :class:`BoardTop`). Storage:
A and B beats in two memories of ``kmax`` words (one beat per word: R or C
input codes), the R x C accumulator registers (C0 before RUN, results after).
The payload is written into storage as it arrives; the checksum at the end
decides whether the buffer is marked valid. Restrictions of this prototype:
input codes of at most 8 bits (one byte each), accumulator codes of at most
16 bits (two bytes each).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwgen.array import SystolicArray
from ref.config import MacConfig

from . import protocol as P
from .uart import UartRx, UartTx

__all__ = ["BoardCore", "BoardTop", "ident_payload"]


def ident_payload(cfg: MacConfig, rows: int, cols: int, kmax: int, seed: int) -> bytes:
    """The IDENT reply payload (:mod:`boards.protocol`)."""
    return (P.IDENT_MAGIC + bytes([P.VERSION, rows, cols, cfg.in_fmt.width, cfg.acc_fmt.width,
                                   P.ROUNDING_INDEX[cfg.rounding], cfg.rbits or 0])
            + kmax.to_bytes(2, "little") + seed.to_bytes(4, "little"))


class BoardCore(wiring.Component):
    """Ports: ``rx`` In(byte stream; always ready), ``tx`` Out(byte stream).

    ``timeout``: clock cycles of silence inside a frame before it is dropped.
    """

    def __init__(self, cfg: MacConfig, rows: int, cols: int, *, seed: int = 0, kmax: int = 256,
                 timeout: int = 100_000):
        try:
            self._validate(cfg, rows, cols, kmax, timeout)
        except ValueError:
            self._MustUse__silence = True  # a rejected core is never elaborated: no warning
            raise
        self.array = SystolicArray(cfg, rows, cols, seed=seed)
        self.cfg, self.rows, self.cols, self.seed = cfg, rows, cols, seed
        self.kmax, self.timeout = kmax, timeout
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8))})

    @staticmethod
    def _validate(cfg, rows, cols, kmax, timeout):
        if not isinstance(cfg, MacConfig):
            raise ValueError(f"cfg must be a ref.MacConfig, got {type(cfg).__name__}")
        if cfg.in_fmt.width > 8 or cfg.acc_fmt.width > 16:
            raise ValueError(
                f"the board protocol carries codes of at most 8 (input) and 16 (accumulator) bits, "
                f"got {cfg.in_fmt.width} and {cfg.acc_fmt.width}: pick narrower formats")
        if not isinstance(kmax, int) or not 1 <= kmax <= 4096:
            raise ValueError(f"kmax must be an integer in 1..4096, got {kmax!r}")
        if rows > 255 or cols > 255:
            raise ValueError(f"rows and cols must be <= 255 for IDENT, got {rows}x{cols}")
        if not isinstance(timeout, int) or timeout < 16:
            raise ValueError(f"timeout must be an integer >= 16 cycles, got {timeout!r}")

    def elaborate(self, platform):
        m = Module()
        cfg, R, C, kmax = self.cfg, self.rows, self.cols, self.kmax
        wi, wa = cfg.in_fmt.width, cfg.acc_fmt.width
        m.submodules.array = arr = self.array
        m.submodules.mem_a = mem_a = Memory(shape=R * wi, depth=kmax, init=[])
        m.submodules.mem_b = mem_b = Memory(shape=C * wi, depth=kmax, init=[])
        wa_port, ra_port = mem_a.write_port(), mem_a.read_port()
        wb_port, rb_port = mem_b.write_port(), mem_b.read_port()
        accs = [Signal(wa, name=f"acc_{q}") for q in range(R * C)]  # row-major
        acc_arr = Array(accs)

        # ---------------- receiver ----------------
        IDLE, CMD, LEN0, LEN1, PAY, DISCARD, EXEC, RUNC, RUNAB, RUNOUT, WAIT_TX = range(11)
        st = Signal(range(11), init=IDLE)
        cmd = Signal(8)
        length = Signal(16)
        count = Signal(17)  # payload bytes received (DISCARD: bytes left to drop)
        csum = Signal(8)
        silence = Signal(range(self.timeout + 1))
        lane = Signal(range(max(R, C, 2) + 1))
        kcnt = Signal(range(kmax + 2))
        k_a = Signal(range(kmax + 1))  # K of the loaded A
        a_ok, b_ok = Signal(), Signal()
        beat = Array(Signal(wi, name=f"beat_{q}") for q in range(max(R, C)))
        lo_byte = Signal(8)
        byte = self.rx.payload
        got = self.rx.valid
        m.d.comb += self.rx.ready.eq(1)

        # Transmitter request: it runs beside the receiver (an error reply goes out while
        # the rest of the bad frame is still being discarded).
        tx_go = Signal()
        tx_busy = Signal()
        status = Signal(8)
        rlen = Signal(16)
        tx_ident = Signal()  # payload source: IDENT bytes, else the accumulators

        m.d.sync += tx_go.eq(0)  # a pulse: reply() below overrides this default

        def reply(code, n=0, ident=0):
            return [tx_go.eq(1), status.eq(code), rlen.eq(n), tx_ident.eq(ident)]

        in_frame = (st == CMD) | (st == LEN0) | (st == LEN1) | (st == PAY) | (st == DISCARD)
        timed_out = in_frame & (silence == self.timeout)
        with m.If(got | ~in_frame):
            m.d.sync += silence.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += silence.eq(silence + 1)

        payload_bytes = Signal(17)
        with m.Switch(cmd):
            with m.Case(P.LOAD_B):
                m.d.comb += payload_bytes.eq(k_a * C)
            with m.Case(P.LOAD_C):
                m.d.comb += payload_bytes.eq(R * C * 2)
            with m.Default():
                m.d.comb += payload_bytes.eq(0)
        known = (cmd == P.IDENT) | (cmd == P.LOAD_A) | (cmd == P.LOAD_B) | (cmd == P.LOAD_C) | (
            cmd == P.RUN) | (cmd == P.READ_C)
        # LOAD_A: 1..kmax whole beats (whole beats checked at the end: lane == 0)
        len_ok = Mux(cmd == P.LOAD_A, (length != 0) & (length <= R * kmax),
                     length == payload_bytes)

        m.d.comb += [wa_port.en.eq(0), wb_port.en.eq(0)]
        m.d.comb += [wa_port.addr.eq(kcnt), wb_port.addr.eq(kcnt),
                     wa_port.data.eq(Cat(*[beat[i] for i in range(R - 1)], byte[:wi])),
                     wb_port.data.eq(Cat(*[beat[j] for j in range(C - 1)], byte[:wi]))]

        # array streams, idle unless a RUN state drives them
        run_row = Signal(range(R + 1))
        kread = Signal(range(kmax + 1))
        m.d.comb += [arr.c_in.valid.eq(0), arr.a.valid.eq(0), arr.b.valid.eq(0),
                     arr.c_out.ready.eq(0)]
        for j in range(C):
            m.d.comb += arr.c_in.payload.data[j].eq(acc_arr[run_row * C + j])
        # synchronous reads: present the address of the next cycle's beat
        adv = arr.a.valid & arr.a.ready
        m.d.comb += [ra_port.addr.eq(Mux(adv, kread + 1, kread)),
                     rb_port.addr.eq(Mux(adv, kread + 1, kread))]
        m.d.comb += [arr.a.payload.data.as_value().eq(ra_port.data),
                     arr.a.payload.last.eq(kread + 1 == k_a),
                     arr.b.payload.data.as_value().eq(rb_port.data)]

        with m.If(timed_out):
            m.d.sync += st.eq(IDLE)  # a truncated frame: hunt for the next sync byte
        with m.Else():
            with m.Switch(st):
                with m.Case(IDLE):
                    with m.If(got & (byte == P.SYNC)):
                        m.d.sync += [st.eq(CMD), csum.eq(0)]
                with m.Case(CMD):
                    with m.If(got):
                        m.d.sync += [cmd.eq(byte), csum.eq(byte), st.eq(LEN0)]
                with m.Case(LEN0):
                    with m.If(got):
                        m.d.sync += [length[:8].eq(byte), csum.eq(csum + byte), st.eq(LEN1)]
                with m.Case(LEN1):
                    with m.If(got):
                        m.d.sync += [length[8:].eq(byte), csum.eq(csum + byte), count.eq(0),
                                     lane.eq(0), kcnt.eq(0), st.eq(PAY)]
                        # a load invalidates its buffer (A also B, whose K depends on it)
                        with m.If(cmd == P.LOAD_A):
                            m.d.sync += [a_ok.eq(0), b_ok.eq(0)]
                        with m.If(cmd == P.LOAD_B):
                            m.d.sync += b_ok.eq(0)
                with m.Case(PAY):
                    # errors known from the header: reply now, drop the rest (payload + CHK)
                    with m.If(~known | ((cmd == P.LOAD_B) & ~a_ok) | ~len_ok):
                        m.d.sync += [st.eq(DISCARD), count.eq(length + 1)]
                        with m.If(~known):
                            m.d.sync += reply(P.ERR_COMMAND)
                        with m.Elif((cmd == P.LOAD_B) & ~a_ok):
                            m.d.sync += reply(P.ERR_STATE)
                        with m.Else():
                            m.d.sync += reply(P.ERR_LENGTH)
                    with m.Elif(got & (count == length)):  # the CHK byte
                        with m.If((csum + byte)[:8] != 0):
                            m.d.sync += [st.eq(WAIT_TX)] + reply(P.ERR_CHECKSUM)
                        with m.Else():
                            m.d.sync += st.eq(EXEC)
                    with m.Elif(got):
                        m.d.sync += [csum.eq(csum + byte), count.eq(count + 1)]
                        with m.Switch(cmd):
                            with m.Case(P.LOAD_A):
                                with m.If(lane == R - 1):
                                    m.d.comb += wa_port.en.eq(1)
                                    m.d.sync += [lane.eq(0), kcnt.eq(kcnt + 1)]
                                with m.Else():
                                    m.d.sync += [beat[lane].eq(byte[:wi]), lane.eq(lane + 1)]
                            with m.Case(P.LOAD_B):
                                with m.If(lane == C - 1):
                                    m.d.comb += wb_port.en.eq(1)
                                    m.d.sync += [lane.eq(0), kcnt.eq(kcnt + 1)]
                                with m.Else():
                                    m.d.sync += [beat[lane].eq(byte[:wi]), lane.eq(lane + 1)]
                            with m.Case(P.LOAD_C):
                                with m.If(count[0] == 0):
                                    m.d.sync += lo_byte.eq(byte)
                                with m.Else():
                                    m.d.sync += acc_arr[count[1:]].eq(Cat(lo_byte, byte)[:wa])
                with m.Case(DISCARD):
                    with m.If(count == 0):
                        m.d.sync += st.eq(IDLE)
                    with m.Elif(got):
                        m.d.sync += count.eq(count - 1)
                with m.Case(EXEC):
                    with m.If(~tx_busy):
                        with m.Switch(cmd):
                            with m.Case(P.IDENT):
                                m.d.sync += [st.eq(WAIT_TX)] + reply(P.OK, len(self._ident()), 1)
                            with m.Case(P.LOAD_A):
                                with m.If(lane == 0):  # a whole number of beats
                                    m.d.sync += [a_ok.eq(1), k_a.eq(kcnt), st.eq(WAIT_TX)]
                                    m.d.sync += reply(P.OK)
                                with m.Else():
                                    m.d.sync += [st.eq(WAIT_TX)] + reply(P.ERR_LENGTH)
                            with m.Case(P.LOAD_B):
                                m.d.sync += [b_ok.eq(1), st.eq(WAIT_TX)] + reply(P.OK)
                            with m.Case(P.LOAD_C):
                                m.d.sync += [st.eq(WAIT_TX)] + reply(P.OK)
                            with m.Case(P.RUN):
                                with m.If(a_ok & b_ok):
                                    m.d.sync += [st.eq(RUNC), run_row.eq(0), kread.eq(0)]
                                with m.Else():
                                    m.d.sync += [st.eq(WAIT_TX)] + reply(P.ERR_STATE)
                            with m.Case(P.READ_C):
                                m.d.sync += [st.eq(WAIT_TX)] + reply(P.OK, 2 * R * C)
                with m.Case(RUNC):  # initial accumulators row by row (primes the read ports)
                    m.d.comb += arr.c_in.valid.eq(1)
                    with m.If(arr.c_in.ready):
                        with m.If(run_row == R - 1):
                            m.d.sync += [run_row.eq(0), st.eq(RUNAB)]
                        with m.Else():
                            m.d.sync += run_row.eq(run_row + 1)
                with m.Case(RUNAB):
                    m.d.comb += [arr.a.valid.eq(1), arr.b.valid.eq(1)]
                    with m.If(adv):
                        m.d.sync += kread.eq(kread + 1)
                        with m.If(kread + 1 == k_a):
                            m.d.sync += st.eq(RUNOUT)
                with m.Case(RUNOUT):
                    m.d.comb += arr.c_out.ready.eq(1)
                    with m.If(arr.c_out.valid):
                        for i in range(R):
                            with m.If(run_row == i):
                                m.d.sync += [accs[i * C + j].eq(arr.c_out.payload.data[j])
                                             for j in range(C)]
                        with m.If(arr.c_out.payload.last):
                            m.d.sync += [run_row.eq(0), st.eq(WAIT_TX)] + reply(P.OK)
                        with m.Else():
                            m.d.sync += run_row.eq(run_row + 1)
                with m.Case(WAIT_TX):
                    with m.If(~tx_busy & ~tx_go):
                        m.d.sync += st.eq(IDLE)

        # ---------------- transmitter ----------------
        # bytes: sync, status, len lo, len hi, payload[rlen], chk
        tpos = Signal(17)
        tsum = Signal(8)
        with m.If(tx_go):
            m.d.sync += [tx_busy.eq(1), tpos.eq(0), tsum.eq(0)]
        ident = Array(Const(b, 8) for b in self._ident())
        acc_bytes = []
        for q in range(R * C):
            acc_bytes += [accs[q][:8], (accs[q] >> 8)[:8]]
        acc_bytes_arr = Array(acc_bytes)
        pay_idx = (tpos - 4)[:16]
        pay_byte = Mux(tx_ident, ident[pay_idx], acc_bytes_arr[pay_idx])
        tbyte = Signal(8)
        with m.If(tpos == 0):
            m.d.comb += tbyte.eq(P.REPLY_SYNC)
        with m.Elif(tpos == 1):
            m.d.comb += tbyte.eq(status)
        with m.Elif(tpos == 2):
            m.d.comb += tbyte.eq(rlen[:8])
        with m.Elif(tpos == 3):
            m.d.comb += tbyte.eq(rlen[8:])
        with m.Elif(tpos < rlen + 4):
            m.d.comb += tbyte.eq(pay_byte)
        with m.Else():
            m.d.comb += tbyte.eq(-tsum)
        m.d.comb += [self.tx.payload.eq(tbyte), self.tx.valid.eq(tx_busy)]
        with m.If(tx_busy & self.tx.ready):
            with m.If(tpos == rlen + 4):
                m.d.sync += tx_busy.eq(0)
            with m.Else():
                m.d.sync += tpos.eq(tpos + 1)
                with m.If(tpos != 0):
                    m.d.sync += tsum.eq(tsum + tbyte)
        return m

    def _ident(self) -> bytes:
        return ident_payload(self.cfg, self.rows, self.cols, self.kmax, self.seed)


class BoardTop(wiring.Component):
    """:class:`BoardCore` behind a UART: ports ``rx`` In(1), ``tx`` Out(1) (idle high)."""

    def __init__(self, cfg: MacConfig, rows: int, cols: int, *, seed: int = 0, kmax: int = 256,
                 divisor: int = 104, timeout: int | None = None):
        self.uart_rx, self.uart_tx = UartRx(divisor), UartTx(divisor)  # checks divisor first
        try:
            self.core = BoardCore(cfg, rows, cols, seed=seed, kmax=kmax,
                                  timeout=timeout if timeout is not None else 40 * divisor)
        except ValueError:
            for u in (self.uart_rx, self.uart_tx, self):
                u._MustUse__silence = True
            raise
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.uart_rx = urx = self.uart_rx
        m.submodules.uart_tx = utx = self.uart_tx
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.data, core.rx)
        wiring.connect(m, core.tx, utx.data)
        return m
