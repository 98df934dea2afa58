"""``BoardCore``: the protocol engine of :mod:`boards.protocol` around a systolic array.

Byte streams in and out (the UART sits outside, see :class:`BoardTop`). Three
components joined by streams, then the array::

    rx -> FrameReceiver --payload, frame--> Sequencer --reply--> ReplyTransmitter -> tx
                                               |  a, b, c_in / c_out
                                          SystolicArray

:class:`boards.framing.FrameReceiver` parses frames and checks their header and
CRC; :class:`boards.sequencer.Sequencer` keeps A, B and the accumulators, runs
tiles and decides the replies; :class:`boards.framing.ReplyTransmitter` frames
them. :class:`boards.model.BoardModel` is the same engine in Python.
Restrictions of this prototype: input codes of at most 8 bits (one byte each),
accumulator codes of at most 16 bits (two bytes each), R and C at most 255.

With ``interleave=L`` the array's PEs run L chains each (:class:`hwgen.array.SystolicArray`):
an R x C array of PEs is an (R*L) x C array to the protocol, the host and
:class:`boards.model.BoardModel` (IDENT reports R*L rows), with the generators of
that taller array, so every protocol-level behaviour and every code stays as it is.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.array import SystolicArray
from ref.config import MacConfig

from . import protocol as P
from .framing import FrameReceiver, ReplyTransmitter
from .sequencer import Sequencer
from .uart import UartRx, UartTx, check_divisor

__all__ = ["BoardCore", "BoardTop", "ident_payload"]

ident_payload = P.ident_payload  # the IDENT reply payload (kept here for older imports)


class BoardCore(wiring.Component):
    """The array board without its UART: ``cfg`` (a :class:`ref.MacConfig`), R x C PEs.

    ``seed``: PE generator seed; ``kmax``: most K per RUN; ``timeout``: clock cycles
    of silence inside a frame before it is dropped; ``pipeline`` and ``interleave``:
    of the PEs (:class:`hwgen.array.SystolicArray`). ``tile_rows`` (R * interleave) is
    the row count the protocol and the host see.

    Members
    -------
    rx : ``In(stream.Signature(8, always_ready=True))``
        Received bytes.
    tx : ``Out(stream.Signature(8))``
        Bytes to send.
    """

    def __new__(cls, cfg, rows, cols, *, seed=0, kmax=256, timeout=100_000, pipeline=0,
                interleave=1):
        # Check before the object exists: a refused core leaves no unused elaboratable.
        cls.validate(cfg, rows, cols, seed=seed, kmax=kmax, timeout=timeout, pipeline=pipeline,
                     interleave=interleave)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, cfg: MacConfig, rows: int, cols: int, *, seed: int = 0, kmax: int = 256,
                 timeout: int = 100_000, pipeline: int = 0, interleave: int = 1):
        self.cfg, self.rows, self.cols, self.seed = cfg, rows, cols, seed
        self.kmax, self.timeout = kmax, timeout
        self.pipeline, self.interleave = pipeline, interleave
        self.array = SystolicArray(cfg, rows, cols, seed=seed, pipeline=pipeline,
                                   interleave=interleave)
        q = self.tile_rows
        limits = {cmd: P.payload_limits(cmd, q, cols, kmax) for cmd in P.COMMANDS}
        self.receiver = FrameReceiver(limits, timeout=timeout)
        self.sequencer = Sequencer(cfg, q, cols, kmax=kmax)
        self.transmitter = ReplyTransmitter(P.ident_payload(cfg, q, cols, kmax, seed), q,
                                            cols, cfg.acc_fmt.width)
        super().__init__({"rx": In(stream.Signature(8, always_ready=True)),
                          "tx": Out(stream.Signature(8))})

    @property
    def tile_rows(self) -> int:
        """Rows of the array as the protocol sees it: R * interleave."""
        return self.rows * self.interleave

    @staticmethod
    def validate(cfg, rows, cols, *, seed=0, kmax=256, timeout=100_000, pipeline=0,
                 interleave=1):
        """ValueError (one line) for a configuration the board cannot be built with."""
        if not isinstance(cfg, MacConfig):
            raise ValueError(f"cfg must be a ref.MacConfig, got {type(cfg).__name__}")
        if cfg.in_fmt.width > 8 or cfg.acc_fmt.width > 16:
            raise ValueError(
                f"the board protocol carries codes of at most 8 (input) and 16 (accumulator) bits, "
                f"got {cfg.in_fmt.width} and {cfg.acc_fmt.width}: pick narrower formats")
        if not isinstance(kmax, int) or not 1 <= kmax <= 4096:
            raise ValueError(f"kmax must be an integer in 1..4096, got {kmax!r}")
        if not isinstance(timeout, int) or timeout < 16:
            raise ValueError(f"timeout must be an integer >= 16 cycles, got {timeout!r}")
        SystolicArray._validate(cfg, rows, cols, seed, pipeline, interleave)
        if rows * interleave > 255 or cols > 255:
            raise ValueError(f"IDENT reports at most 255 rows (R x interleave) and 255 columns, "
                             f"got {rows * interleave}x{cols}")

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = rx = self.receiver
        m.submodules.sequencer = seq = self.sequencer
        m.submodules.transmitter = tx = self.transmitter
        m.submodules.array = arr = self.array
        wiring.connect(m, wiring.flipped(self.rx), rx.rx)
        wiring.connect(m, rx.payload, seq.payload)
        wiring.connect(m, rx.frame, seq.frame)
        wiring.connect(m, seq.reply, tx.reply)
        wiring.connect(m, seq.acc_read, tx.acc_read)
        wiring.connect(m, tx.tx, wiring.flipped(self.tx))
        for name in ("a", "b", "c_in"):
            wiring.connect(m, getattr(seq, name), getattr(arr, name))
        wiring.connect(m, arr.c_out, seq.c_out)
        return m


class BoardTop(wiring.Component):
    """:class:`BoardCore` behind a UART (``divisor`` clock cycles per bit).

    ``timeout``: the frame timeout in clock cycles (default
    :data:`boards.protocol.TIMEOUT_BYTE_TIMES` byte times, ``40 * divisor``).

    Members
    -------
    rx : ``In(1, init=1)``
        UART receive line (idle high).
    tx : ``Out(1, init=1)``
        UART transmit line (idle high).
    """

    def __new__(cls, cfg, rows, cols, *, seed=0, kmax=256, divisor=104, timeout=None,
                pipeline=0, interleave=1):
        cls.validate(cfg, rows, cols, seed=seed, kmax=kmax, divisor=divisor, timeout=timeout,
                     pipeline=pipeline, interleave=interleave)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, cfg: MacConfig, rows: int, cols: int, *, seed: int = 0, kmax: int = 256,
                 divisor: int = 104, timeout: int | None = None, pipeline: int = 0,
                 interleave: int = 1):
        if timeout is None:
            timeout = P.TIMEOUT_BYTE_TIMES * 10 * divisor
        self.core = BoardCore(cfg, rows, cols, seed=seed, kmax=kmax, timeout=timeout,
                              pipeline=pipeline, interleave=interleave)
        self.uart_rx, self.uart_tx = UartRx(divisor), UartTx(divisor)
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    @staticmethod
    def validate(cfg, rows, cols, *, seed=0, kmax=256, divisor=104, timeout=None, pipeline=0,
                 interleave=1):
        """ValueError (one line) for a configuration the board cannot be built with."""
        check_divisor(divisor)
        if timeout is None:
            timeout = P.TIMEOUT_BYTE_TIMES * 10 * divisor
        BoardCore.validate(cfg, rows, cols, seed=seed, kmax=kmax, timeout=timeout,
                           pipeline=pipeline, interleave=interleave)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.uart_rx = urx = self.uart_rx
        m.submodules.uart_tx = utx = self.uart_tx
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.data, core.rx)
        wiring.connect(m, core.tx, utx.data)
        return m
