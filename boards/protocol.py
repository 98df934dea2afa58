"""The framed UART protocol between a host and the array board (both sides import this).

Frame (host -> board), bytes::

    0xA5  CMD  LEN_LO  LEN_HI  PAYLOAD[LEN]  CHK

Reply (board -> host)::

    0x5A  STATUS  LEN_LO  LEN_HI  PAYLOAD[LEN]  CHK

``CHK`` makes the 8-bit sum of every byte after the sync byte (CMD or STATUS,
both LEN bytes, the payload and CHK) zero. Every frame gets exactly one reply.

Commands (payload -> reply payload):

* ``IDENT`` 'I': none -> :data:`IDENT_MAGIC`, version, R, C, in width, acc
  width, rounding index (rn rz sr_lazy sr_eager), rbits, KMAX (2 bytes LE),
  seed (4 bytes LE);
* ``LOAD_A`` 'A': K*R bytes, beat by beat (for k: for i: A[i, k]), 1 <= K <= KMAX
  -> none; invalidates B;
* ``LOAD_B`` 'B': K*C bytes (for k: for j: B[k, j]), K of the last LOAD_A -> none;
* ``LOAD_C`` 'C': R*C accumulator codes, 2 bytes LE each, row-major -> none;
* ``RUN`` 'R': none -> none; runs one tile ``C <- C + A @ B`` on the array,
  the results replace the C registers (so RUN again with new A, B continues
  the chains: K chunks need no read-back);
* ``READ_C`` 'D': none -> the R*C accumulator codes (2 bytes LE each, row-major).

Status: 0 OK, else an error (no payload): :data:`ERR_CHECKSUM`,
:data:`ERR_COMMAND`, :data:`ERR_LENGTH`, :data:`ERR_STATE` (RUN without valid A
and B, or LOAD_B before LOAD_A). A LOAD_A or LOAD_B whose checksum fails leaves its
buffer marked invalid (RUN then answers ERR_STATE); a failed LOAD_C leaves the
accumulators undefined: resend it.

Recovery: an error found in the header (unknown command, bad length, LOAD_B
before LOAD_A) is replied at once and the rest of the frame (LEN + 1 bytes)
is discarded. Inside a frame, a silence of ``BoardCore.timeout`` clock
cycles drops the partial frame and the board hunts for 0xA5 again. Bytes
outside a frame other than 0xA5 are ignored. The host driver resends a
frame answered ERR_CHECKSUM, and after a lost or garbled reply it waits for
that silence, drops its input and resends.
"""

from __future__ import annotations

__all__ = [
    "SYNC", "REPLY_SYNC", "IDENT", "LOAD_A", "LOAD_B", "LOAD_C", "RUN", "READ_C",
    "OK", "ERR_CHECKSUM", "ERR_COMMAND", "ERR_LENGTH", "ERR_STATE", "ERRORS",
    "IDENT_MAGIC", "VERSION", "ROUNDING_INDEX", "checksum", "frame",
]

SYNC = 0xA5
REPLY_SYNC = 0x5A

IDENT = ord("I")
LOAD_A = ord("A")
LOAD_B = ord("B")
LOAD_C = ord("C")
RUN = ord("R")
READ_C = ord("D")

OK = 0
ERR_CHECKSUM = 1
ERR_COMMAND = 2
ERR_LENGTH = 3
ERR_STATE = 4
ERRORS = {
    ERR_CHECKSUM: "checksum mismatch",
    ERR_COMMAND: "unknown command",
    ERR_LENGTH: "bad payload length",
    ERR_STATE: "A/B not loaded (or K mismatch)",
}

IDENT_MAGIC = b"SRMA"
VERSION = 1
ROUNDING_INDEX = {"rn": 0, "rz": 1, "sr_lazy": 2, "sr_eager": 3}


def checksum(body: bytes) -> int:
    """The CHK byte for ``body`` = CMD/STATUS, LEN_LO, LEN_HI, payload."""
    return (-sum(body)) & 0xFF


def frame(cmd: int, payload: bytes = b"", sync: int = SYNC) -> bytes:
    """A complete frame (or reply, with ``sync=REPLY_SYNC``)."""
    n = len(payload)
    if n > 0xFFFF:
        raise ValueError(f"payload of {n} bytes is too long: at most 65535")
    body = bytes([cmd, n & 0xFF, n >> 8]) + bytes(payload)
    return bytes([sync]) + body + bytes([checksum(body)])
