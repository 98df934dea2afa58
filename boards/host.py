"""Host driver of the array board: ``Accelerator(port).matmul(A, B)``.

``port`` is a transport with ``write(bytes)``, ``read(n) -> bytes`` (fewer
bytes on timeout) and ``flush_input()``; a string opens a serial port with
pyserial (optional dependency), and :class:`boards.sim.SimTransport` runs the
same board top in Amaranth's simulator.

``matmul`` tiles a product as :mod:`ref.array` defines (row-major blocks,
zero padding, K chunks of at most KMAX run back to back; the board keeps the
results in its accumulators, so a chunk after the first needs no LOAD_C), so
its codes equal ``ref.array.ArrayModel(cfg, R, C, seed).matmul(A, B, C0,
k_tile=KMAX)`` for a board fresh from reset.
"""

from __future__ import annotations

import numpy as np

from . import protocol as P

__all__ = ["Accelerator", "BoardError"]


class BoardError(RuntimeError):
    """The board replied with an error status, or the link failed."""


class Accelerator:
    def __init__(self, port, *, retries: int = 2, baud: int = 115200):
        if isinstance(port, str):
            try:
                import serial  # pyserial
            except ImportError:
                raise ValueError(f"opening serial port {port!r} needs pyserial: pip install pyserial") from None
            port = _SerialTransport(serial.Serial(port, baud, timeout=1.0))
        self.port = port
        self.retries = retries
        self.info = self.identify()

    # ---- framing ----
    def _read_reply(self):
        hdr = self.port.read(4)
        if len(hdr) < 4 or hdr[0] != P.REPLY_SYNC:
            raise BoardError(f"no valid reply header (got {hdr.hex() or 'nothing'})")
        n = hdr[2] | hdr[3] << 8
        rest = self.port.read(n + 1)
        if len(rest) < n + 1:
            raise BoardError(f"reply truncated: {len(rest)} of {n + 1} bytes")
        if sum(hdr[1:]) + sum(rest) & 0xFF:
            raise BoardError("reply checksum mismatch")
        return hdr[1], bytes(rest[:n])

    def command(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send one frame, return the reply payload; retries link failures, raises on errors."""
        last = None
        for _ in range(self.retries + 1):
            self.port.write(P.frame(cmd, payload))
            try:
                status, data = self._read_reply()
            except BoardError as exc:  # lost or garbled reply: resynchronise and resend
                last = exc
                self.port.flush_input()
                continue
            if status == P.ERR_CHECKSUM:  # the frame was damaged on the way: resend
                last = BoardError(P.ERRORS[status])
                continue
            if status != P.OK:
                raise BoardError(f"board error {status}: {P.ERRORS.get(status, 'unknown')}")
            return data
        raise BoardError(f"command {chr(cmd)!r} failed after {self.retries + 1} tries: {last}")

    # ---- commands ----
    def identify(self) -> dict:
        d = self.command(P.IDENT)
        if d[:4] != P.IDENT_MAGIC:
            raise BoardError(f"not an srmac array board (IDENT gave {d[:4]!r})")
        rounding = {v: k for k, v in P.ROUNDING_INDEX.items()}[d[9]]
        return {
            "version": d[4], "rows": d[5], "cols": d[6], "in_width": d[7], "acc_width": d[8],
            "rounding": rounding, "rbits": d[10], "kmax": d[11] | d[12] << 8,
            "seed": int.from_bytes(d[13:17], "little"),
        }

    def load_a(self, A):
        A = np.asarray(A, dtype=np.int64)  # (R, K)
        self.command(P.LOAD_A, bytes(int(x) for x in A.T.reshape(-1)))

    def load_b(self, B):
        B = np.asarray(B, dtype=np.int64)  # (K, C)
        self.command(P.LOAD_B, bytes(int(x) for x in B.reshape(-1)))

    def load_c(self, C0):
        C0 = np.asarray(C0, dtype=np.int64).reshape(-1)
        self.command(P.LOAD_C, b"".join(int(x).to_bytes(2, "little") for x in C0))

    def run(self):
        self.command(P.RUN)

    def read_c(self) -> np.ndarray:
        d = self.command(P.READ_C)
        R, C = self.info["rows"], self.info["cols"]
        return np.array([d[2 * q] | d[2 * q + 1] << 8 for q in range(R * C)],
                        dtype=np.int64).reshape(R, C)

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
            self.load_a(At)
            self.load_b(Bt)
            self.run()
        if block is not None:
            out[block] = self.read_c()
        return out[:M, :N]


class _SerialTransport:
    def __init__(self, ser):
        self.ser = ser

    def write(self, data: bytes):
        self.ser.write(data)

    def read(self, n: int) -> bytes:
        return self.ser.read(n)

    def flush_input(self):
        import time

        time.sleep(0.05)
        self.ser.reset_input_buffer()
