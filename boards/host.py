"""Host driver of the array board: ``Accelerator(port).matmul(A, B)``.

``port`` is a transport with ``write(bytes)``, ``read(n) -> bytes`` (fewer
bytes on timeout) and ``flush_input()`` (wait until the link is quiet, then drop
what arrived); a string opens a serial port with pyserial (optional
dependency). :class:`boards.sim.SimTransport` runs the board top in Amaranth's
simulator, :class:`boards.sim.ModelTransport` its Python twin.

``matmul`` tiles a product as :mod:`ref.array` defines (row-major blocks,
zero padding, K chunks of at most KMAX run back to back; the board keeps the
results in its accumulators, so a chunk after the first needs no LOAD_C), so
its codes equal ``ref.array.ArrayModel(cfg, R, C, seed).matmul(A, B, C0,
k_tile=KMAX)`` for a board fresh from reset.

Link recovery (protocol v2, :mod:`boards.protocol`): every command carries a new
sequence number; replies with another one are dropped; a lost, cut, garbled
(CRC) or wrongly sized reply, and the statuses that say the frame was damaged on
the way, make the driver wait for a quiet link and resend the same frame (the
board runs a resent RUN only once). A RUN or LOAD_B refused with ERR_STATE (A
or B lost to a damaged frame) loads A and B again. Anything still failing after
``retries`` resends raises :class:`BoardError`; no path returns unchecked codes.
"""

from __future__ import annotations

import numpy as np

from . import protocol as P

__all__ = ["Accelerator", "BoardError", "StateError", "ProtocolMismatch"]


class BoardError(RuntimeError):
    """The board replied with an error status, or the link failed."""


class StateError(BoardError):
    """ERR_STATE: A or B was not valid on the board (lost to a damaged frame)."""


class ProtocolMismatch(BoardError):
    """The board speaks another protocol version (or is not an srmac board)."""


class _LinkFault(Exception):
    """A lost, cut or garbled reply, or a status that means the frame was damaged."""


#: Statuses that mean the frame was damaged on the way (the host sends only valid frames).
_RESEND = (P.ERR_CHECKSUM, P.ERR_COMMAND, P.ERR_LENGTH)


class Accelerator:
    """The array board behind ``port``; checks the protocol version with IDENT at once.

    ``retries``: resends of one frame (and reloads of one tile) before giving up.
    Counters: ``resends`` (frames sent again), ``dropped`` (replies with another
    sequence number), ``reloads`` (tiles whose A and B were loaded again).
    """

    def __init__(self, port, *, retries: int = 4, baud: int = 115200):
        if isinstance(port, str):
            try:
                import serial  # pyserial
            except ImportError:
                raise ValueError(f"opening serial port {port!r} needs pyserial: pip install pyserial") from None
            port = _SerialTransport(serial.Serial(port, baud, timeout=1.0))
        self.port = port
        self.retries = retries
        self.resends = self.dropped = self.reloads = 0
        self._seq = 0
        self.info = {"rows": 0, "cols": 0}
        self.info = self.identify()

    # ---- framing ----
    def _read_reply(self, most: int) -> P.Reply:
        """The next reply on the link (bytes before its sync byte are skipped)."""
        hunted = 0
        while True:
            b = self.port.read(1)
            if not b:
                raise _LinkFault("no reply" if not hunted else f"no reply ({hunted} stray bytes)")
            if b[0] == P.REPLY_SYNC:
                break
            hunted += 1
        head = self.port.read(P.HEADER_BYTES - 1)
        if len(head) < P.HEADER_BYTES - 1:
            raise _LinkFault("reply cut in its header")
        n = head[2] | head[3] << 8
        if n > most:
            raise _LinkFault(f"reply announces {n} payload bytes, at most {most} expected")
        rest = self.port.read(n + P.CRC_BYTES)
        if len(rest) < n + P.CRC_BYTES:
            raise _LinkFault(f"reply cut: {len(rest)} of {n + P.CRC_BYTES} bytes after the header")
        if P.crc16(head + rest) != 0:
            raise _LinkFault("reply CRC mismatch")
        return P.Reply(head[0], head[1], bytes(rest[:n]))

    def _exchange(self, frame: bytes, seq: int, length: int | None) -> bytes:
        """Send ``frame`` once; the payload of its OK reply (``length`` bytes, None: any)."""
        self.port.write(frame)
        # the longest reply the board sends (IDENT of any version, READ_C): a longer header is
        # garbled; a stale reply is read whole and dropped by its sequence number
        most = max(255, P.reply_length(P.READ_C, self.info["rows"], self.info["cols"]))
        while True:
            rep = self._read_reply(most)
            if rep.seq != seq:  # late or duplicated: the answer to an earlier frame
                self.dropped += 1
                continue
            if rep.status in _RESEND:
                raise _LinkFault(P.ERRORS[rep.status])
            if rep.status == P.ERR_STATE:
                raise StateError(f"board error {rep.status}: {P.ERRORS[rep.status]}")
            if rep.status != P.OK:
                raise BoardError(f"board replied with unknown status {rep.status}")
            want = length
            if length is None and rep.payload[:5] == P.IDENT_MAGIC + bytes([P.VERSION]):
                want = P.IDENT_LENGTH  # an IDENT of this version has this version's length
            if want is not None and len(rep.payload) != want:
                raise _LinkFault(f"reply payload of {len(rep.payload)} bytes, {want} expected")
            return rep.payload

    def command(self, cmd: int, payload: bytes = b"", *, length: int | None = 0) -> bytes:
        """Send one command, return its reply payload (``length`` bytes; None: any, at most an
        IDENT's); resends after link faults, raises :class:`BoardError` when it cannot."""
        self._seq = (self._seq + 1) & 0xFF
        frame = P.frame(self._seq, cmd, payload)
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.resends += 1
                self.port.flush_input()
            try:
                return self._exchange(frame, self._seq, length)
            except _LinkFault as exc:
                last = exc
        name = P.COMMANDS.get(cmd, f"0x{cmd:02x}")
        raise BoardError(f"{name} failed after {self.retries + 1} tries: {last}")

    # ---- commands ----
    def identify(self) -> dict:
        """IDENT: the board's shape, formats, rounding, KMAX and PE seed; refuses another
        protocol version with one line."""
        try:
            d = self.command(P.IDENT, length=None)
        except BoardError:
            if self._speaks_v1():
                raise ProtocolMismatch(
                    f"the board speaks srmac protocol v1, this host v{P.VERSION}: build and flash "
                    "the bitstream of this srmac (srmac build, srmac flash)") from None
            raise
        try:
            return P.parse_ident(d)
        except ValueError as exc:
            raise ProtocolMismatch(str(exc)) from None

    def _speaks_v1(self) -> bool:
        """Whether a protocol v1 board answers a v1 IDENT frame."""
        self.port.flush_input()
        self.port.write(P.V1_IDENT_FRAME)
        got = self.port.read(4 + P.IDENT_LENGTH + 1)
        self.port.flush_input()
        return P.is_v1_ident_reply(got)

    def _codes(self, X, shape, width, what) -> np.ndarray:
        X = np.asarray(X)
        if X.shape != shape or not np.issubdtype(X.dtype, np.integer):
            raise ValueError(f"{what} must be integer codes of shape {shape}, got {X.dtype} "
                             f"{X.shape}")
        if X.size and (X.min() < 0 or X.max() >= 1 << width):
            raise ValueError(f"{what} codes must be in 0..{(1 << width) - 1}")
        return X.astype(np.int64)

    def load_a(self, A):
        """LOAD_A: A (R x K) input codes, 1 <= K <= KMAX."""
        A = np.asarray(A)
        K = A.shape[1] if A.ndim == 2 else 0
        if not 1 <= K <= self.info["kmax"]:
            raise ValueError(f"A must be {self.info['rows']} x K with 1 <= K <= KMAX = "
                             f"{self.info['kmax']}, got shape {A.shape}")
        A = self._codes(A, (self.info["rows"], K), self.info["in_width"], "A")
        self.command(P.LOAD_A, bytes(int(x) for x in A.T.reshape(-1)))

    def load_b(self, B):
        """LOAD_B: B (K x C) input codes, K of the last LOAD_A."""
        B = np.asarray(B)
        K = B.shape[0] if B.ndim == 2 else 0
        B = self._codes(B, (K, self.info["cols"]), self.info["in_width"], "B")
        self.command(P.LOAD_B, bytes(int(x) for x in B.reshape(-1)))

    def load_c(self, C0):
        """LOAD_C: the R x C accumulator codes."""
        C0 = self._codes(C0, (self.info["rows"], self.info["cols"]), self.info["acc_width"], "C")
        self.command(P.LOAD_C, b"".join(int(x).to_bytes(2, "little") for x in C0.reshape(-1)))

    def run(self):
        """RUN: one tile, C <- C + A @ B (raises :class:`StateError` without valid A and B)."""
        self.command(P.RUN)

    def read_c(self) -> np.ndarray:
        """READ_C: the R x C accumulator codes."""
        R, C = self.info["rows"], self.info["cols"]
        d = self.command(P.READ_C, length=P.reply_length(P.READ_C, R, C))
        codes = np.frombuffer(d, dtype="<u2").astype(np.int64).reshape(R, C)
        if codes.max(initial=0) >= 1 << self.info["acc_width"]:
            raise BoardError(f"READ_C gave a code wider than {self.info['acc_width']} bits")
        return codes

    def run_tile(self, A, B):
        """LOAD_A, LOAD_B, RUN; loads A and B again when the board lost them (ERR_STATE)."""
        for attempt in range(self.retries + 1):
            try:
                self.load_a(A)
                self.load_b(B)
                self.run()
                return
            except StateError:
                if attempt == self.retries:
                    raise
                self.reloads += 1

    def matmul(self, A, B, C=None) -> np.ndarray:
        """``C + A @ B`` on codes (M x K, K x N), tiled as :mod:`ref.array` defines."""
        from ref.array import tile_plan

        A = np.asarray(A, dtype=np.int64)
        B = np.asarray(B, dtype=np.int64)
        if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0] or A.shape[1] < 1:
            raise ValueError(f"shape mismatch: A is {A.shape} and B is {B.shape}")
        R, Cc, kmax = self.info["rows"], self.info["cols"], self.info["kmax"]
        M, N = A.shape[0], B.shape[1]
        out = np.zeros((-(-M // R) * R, -(-N // Cc) * Cc), dtype=np.int64)
        block = None
        for ti, tj, _k0, At, Bt, Ct in tile_plan(A, B, C, R, Cc, kmax):
            if Ct is not None:  # a new output block: read the last one, preload this one
                if block is not None:
                    out[block] = self.read_c()
                block = (slice(ti * R, ti * R + R), slice(tj * Cc, tj * Cc + Cc))
                self.load_c(Ct)
            self.run_tile(At, Bt)
        if block is not None:
            out[block] = self.read_c()
        return out[:M, :N]


class _SerialTransport:
    """A pyserial port as a transport (``read`` returns fewer bytes after its timeout)."""

    def __init__(self, ser):
        self.ser = ser

    def write(self, data: bytes):
        self.ser.write(data)

    def read(self, n: int) -> bytes:
        return self.ser.read(n)

    def flush_input(self):
        """Read until the line has been quiet for 50 ms (far past the board's frame timeout
        of 4 byte times), drop it all."""
        timeout, self.ser.timeout = self.ser.timeout, 0.05
        try:
            while self.ser.read(4096):
                pass
        finally:
            self.ser.timeout = timeout
