"""``BoardModel``: the board's protocol layer in Python, byte for byte as the RTL behaves.

The twin of :class:`boards.core.BoardCore` (receiver, sequencer and reply
transmitter) with :class:`ref.array.ArrayModel` in place of the systolic array:
:meth:`BoardModel.feed` takes one received byte and returns the reply bytes the
board sends in answer (a header error is answered at once, the rest of the
frame follows); :meth:`BoardModel.silence` is a quiet line longer than the
frame timeout. It runs the fault campaign (:mod:`boards.faults`) about a
thousand times faster than the RTL in Amaranth's simulator;
``tests/test_boards_model.py`` checks that both answer every byte stream with
the same bytes.

What it leaves out: time. The RTL drops the bytes that arrive while it runs a
tile (a few dozen clock cycles, less than a byte time in the simulated
configurations) and while a second reply waits for the first to be sent; a host
that waits for each reply, as :class:`boards.host.Accelerator` does, never sends
bytes then.
"""

from __future__ import annotations

import numpy as np

from ref.array import ArrayModel
from ref.config import MacConfig

from . import protocol as P

__all__ = ["BoardModel"]


class BoardModel:
    """The board ``BoardCore(cfg, rows, cols, seed=seed, kmax=kmax, interleave=interleave)``
    fresh from reset. ``rows`` are PE rows; with ``interleave`` L the board is, to the
    protocol, an (R*L) x C array (``self.rows``), as :class:`boards.core.BoardCore` is.
    (The pipeline depth changes only time, which the model leaves out.)"""

    def __init__(self, cfg: MacConfig, rows: int, cols: int, *, seed: int = 0, kmax: int = 256,
                 interleave: int = 1):
        self.array = ArrayModel(cfg, rows, cols, seed, backend="reference", interleave=interleave)
        rows = self.array.rows  # tile rows: PE rows x chains per PE
        self.cfg, self.rows, self.cols, self.kmax, self.seed = cfg, rows, cols, kmax, seed
        self.interleave = interleave
        self.ident = P.ident_payload(cfg, rows, cols, kmax, seed)
        self.mem_a = np.zeros((kmax, rows), dtype=np.int64)
        self.mem_b = np.zeros((kmax, cols), dtype=np.int64)
        self.banks = np.zeros((2, rows, cols), dtype=np.int64)  # accumulators, [cur] is live
        self.cur = 0
        self.a_ok = self.b_ok = False
        self.k_a = 0
        self.last_seq, self.last_run = 0, False
        self.runs = 0  # tiles actually run (a repeated RUN does not count)
        self._rx_state = "IDLE"
        self._wi_mask = (1 << cfg.in_fmt.width) - 1
        self._wa_mask = (1 << cfg.acc_fmt.width) - 1

    # ---- receiver ----
    def silence(self):
        """The line was quiet longer than the frame timeout: a partial frame is dropped."""
        self._rx_state = "IDLE"

    def feed(self, byte: int) -> bytes:
        """One byte from the host; returns the bytes the board sends in answer."""
        st = self._rx_state
        if st == "IDLE":
            if byte == P.SYNC:
                self._crc, self._rx_state = P.CRC_INIT, "SEQ"
            return b""
        if st == "DISCARD":
            self._left -= 1
            if self._left == 0:
                self._rx_state = "IDLE"
            return b""
        self._crc = P.crc16_update(self._crc, byte)
        if st == "SEQ":
            self._seq, self._rx_state = byte, "CMD"
        elif st == "CMD":
            self._cmd, self._rx_state = byte, "LEN_LO"
        elif st == "LEN_LO":
            self._len, self._rx_state = byte, "LEN_HI"
        elif st == "LEN_HI":
            self._len |= byte << 8
            limits = P.payload_limits(self._cmd, self.rows, self.cols, self.kmax)
            if limits is None or not limits[0] <= self._len <= limits[1]:
                self._left, self._rx_state = self._len + P.CRC_BYTES, "DISCARD"
                return self._end(P.ERR_COMMAND if limits is None else P.ERR_LENGTH)
            self._count = 0
            self._rx_state = "PAYLOAD" if self._len else "CRC_HI"
        elif st == "PAYLOAD":
            self._payload_byte(byte, first=self._count == 0)
            self._count += 1
            if self._count == self._len:
                self._rx_state = "CRC_HI"
        elif st == "CRC_HI":
            self._rx_state = "CRC_LO"
        else:  # CRC_LO
            self._rx_state = "IDLE"
            return self._end(P.OK if self._crc == 0 else P.ERR_CHECKSUM)
        return b""

    # ---- sequencer: payload bytes go to storage as they arrive ----
    def _payload_byte(self, byte: int, first: bool):
        cmd = self._cmd
        if first:
            self._lane = self._word = self._half = 0
            if cmd == P.LOAD_A:
                self.a_ok = self.b_ok = False
            elif cmd == P.LOAD_B:
                self.b_ok = False
        if cmd in (P.LOAD_A, P.LOAD_B):
            mem, width = (self.mem_a, self.rows) if cmd == P.LOAD_A else (self.mem_b, self.cols)
            mem[self._word, self._lane] = byte & self._wi_mask
            self._next_lane(width)
        elif cmd == P.LOAD_C:
            if self._half == 0:
                self._lo, self._half = byte, 1
            else:
                code = (self._lo | byte << 8) & self._wa_mask
                self.banks[1 - self.cur, self._word, self._lane] = code
                self._half = 0
                self._next_lane(self.cols)

    def _next_lane(self, width: int):
        if self._lane == width - 1:
            self._lane, self._word = 0, self._word + 1
        else:
            self._lane += 1

    # ---- sequencer: a frame ends (status from the receiver) ----
    def _end(self, status: int) -> bytes:
        seq, cmd = self._seq, self._cmd
        if status != P.OK:
            return P.reply(seq, status)
        payload = b""
        ran = False
        if cmd == P.IDENT:
            payload = self.ident
        elif cmd == P.LOAD_A:
            if self._lane == 0:
                self.a_ok, self.k_a = True, self._word
            else:
                status = P.ERR_LENGTH
        elif cmd == P.LOAD_B:
            if not self.a_ok:
                status = P.ERR_STATE
            elif self._lane == 0 and self._word == self.k_a:
                self.b_ok = True
            else:
                status = P.ERR_LENGTH
        elif cmd == P.LOAD_C:
            self.cur = 1 - self.cur
        elif cmd == P.RUN:
            if self.last_run and seq == self.last_seq:
                ran = True  # a resend of the RUN just run: answered, not run again
            elif self.a_ok and self.b_ok:
                k = self.k_a
                z = self.array.run_tile(self.mem_a[:k].T, self.mem_b[:k], self.banks[self.cur])
                self.banks[self.cur] = z
                self.runs += 1
                ran = True
            else:
                status = P.ERR_STATE
        elif cmd == P.READ_C:
            payload = b"".join(int(c).to_bytes(2, "little")
                               for c in self.banks[self.cur].reshape(-1))
        self.last_seq, self.last_run = seq, ran
        return P.reply(seq, status, payload)
