"""Protocol v2 between a host and the array board: one definition for the RTL and the host.

Frame (host -> board) and reply (board -> host), bytes::

    0xA5  SEQ  CMD     LEN_LO  LEN_HI  PAYLOAD[LEN]  CRC_HI  CRC_LO
    0x5A  SEQ  STATUS  LEN_LO  LEN_HI  PAYLOAD[LEN]  CRC_HI  CRC_LO

``CRC`` is CRC-16/CCITT-FALSE (:func:`crc16`: polynomial 0x1021, initial value
0xFFFF, no reflection) of every byte from ``SEQ`` to the end of the payload, sent
high byte first, so the CRC run over ``SEQ`` .. ``CRC_LO`` is 0 (what the board and
the host check). It detects every error of up to 3 bits, every burst of up to 16
bits, swapped bytes and compensating byte pairs (which passed the 8-bit sum of v1).

``SEQ`` is chosen by the host, one more (mod 256) for every new command, the same
for a resend; a reply carries the ``SEQ`` of the frame it answers. Every frame gets
exactly one reply, except one whose first byte is lost or that is cut short.

Commands (payload -> reply payload); :func:`payload_limits` gives the lengths the
board accepts in a header:

* ``IDENT`` 'I': none -> :data:`IDENT_LENGTH` bytes, :func:`ident_payload`
  (:data:`IDENT_MAGIC`, :data:`VERSION`, R, C, widths, rounding, r, KMAX, seed);
* ``LOAD_A`` 'A': K*R bytes, beat by beat (for k: for i: A[i, k]), 1 <= K <= KMAX
  -> none; invalidates A and B from its first payload byte;
* ``LOAD_B`` 'B': K*C bytes (for k: for j: B[k, j]), K of the valid A -> none;
  invalidates B from its first payload byte;
* ``LOAD_C`` 'C': R*C accumulator codes, 2 bytes LE each, row-major -> none; the
  board keeps the codes aside and takes them only when the CRC is good;
* ``RUN`` 'R': none -> none; runs one tile ``C <- C + A @ B`` on the array, the
  results replace the accumulators (so RUN again with new A, B continues the chains);
* ``READ_C`` 'D': none -> the R*C accumulator codes (2 bytes LE each, row-major).

Status: :data:`OK`, else an error with no payload: :data:`ERR_CHECKSUM` (CRC),
:data:`ERR_COMMAND` (unknown command), :data:`ERR_LENGTH` (length outside
:func:`payload_limits`, a LOAD_A of part of a beat, a LOAD_B whose K is not A's),
:data:`ERR_STATE` (RUN without valid A and B, LOAD_B without a valid A).

Execution and idempotence: the board executes a frame only when its CRC is good.
The board keeps the sequence number and status of the last frame it executed. A
RUN that repeats the sequence number of the RUN just executed is answered with the
stored status and is *not* run again: a resend after a lost reply never adds
A @ B twice. The other commands are idempotent (a resent load writes the same bytes
again, a read reads unchanged state), so the board executes them again and the
reply equals the first one.

Board recovery: an error found in the header (unknown command, length outside
:func:`payload_limits`) is replied at once and the rest of the frame (LEN + 2
bytes) is dropped. Inside a frame, a silence of :data:`TIMEOUT_BYTE_TIMES`
byte times drops the partial frame. Bytes outside a frame other than 0xA5 are
ignored, and so is every byte that arrives while the board runs a tile.

Host recovery (:class:`boards.host.Accelerator`): a reply with another ``SEQ``
(late, duplicated) is dropped; a reply that is cut, garbled (CRC), too long, or
has the wrong payload length, no reply at all, and the statuses ERR_CHECKSUM,
ERR_COMMAND and ERR_LENGTH (the host only sends well-formed frames, so they mean
the frame was damaged on the way) make the host wait for the link to go quiet,
drop its input and resend the frame with the same ``SEQ``. ERR_STATE makes it
load A and B again and rerun the tile.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SYNC", "REPLY_SYNC", "IDENT", "LOAD_A", "LOAD_B", "LOAD_C", "RUN", "READ_C", "COMMANDS",
    "OK", "ERR_CHECKSUM", "ERR_COMMAND", "ERR_LENGTH", "ERR_STATE", "ERRORS",
    "IDENT_MAGIC", "VERSION", "IDENT_LENGTH", "ROUNDING_INDEX", "HEADER_BYTES", "CRC_BYTES",
    "TIMEOUT_BYTE_TIMES", "CRC_INIT", "CRC_POLY", "crc16", "crc16_update", "crc16_matrix",
    "frame", "reply", "Reply", "parse_reply", "payload_limits", "reply_length",
    "ident_payload", "parse_ident", "V1_IDENT_FRAME", "is_v1_ident_reply",
]

SYNC = 0xA5
REPLY_SYNC = 0x5A

IDENT = ord("I")
LOAD_A = ord("A")
LOAD_B = ord("B")
LOAD_C = ord("C")
RUN = ord("R")
READ_C = ord("D")
COMMANDS = {IDENT: "IDENT", LOAD_A: "LOAD_A", LOAD_B: "LOAD_B", LOAD_C: "LOAD_C", RUN: "RUN",
            READ_C: "READ_C"}

OK = 0
ERR_CHECKSUM = 1
ERR_COMMAND = 2
ERR_LENGTH = 3
ERR_STATE = 4
ERRORS = {
    ERR_CHECKSUM: "CRC mismatch",
    ERR_COMMAND: "unknown command",
    ERR_LENGTH: "bad payload length",
    ERR_STATE: "A/B not loaded (or K mismatch)",
}

IDENT_MAGIC = b"SRMA"
VERSION = 2
#: IDENT reply payload: magic (4), version, R, C, in width, acc width, rounding, r,
#: KMAX (2 bytes LE), seed (4 bytes LE).
IDENT_LENGTH = 17
ROUNDING_INDEX = {"rn": 0, "rz": 1, "sr_lazy": 2, "sr_eager": 3}

#: SYNC, SEQ, CMD/STATUS, LEN_LO, LEN_HI
HEADER_BYTES = 5
CRC_BYTES = 2
#: Silence inside a frame, in byte times (10 bit times), after which the board drops it
#: (``BoardTop`` default: ``40 * divisor`` clock cycles).
TIMEOUT_BYTE_TIMES = 4

CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def crc16_update(crc: int, byte: int) -> int:
    """CRC-16/CCITT-FALSE register after one more byte (MSB first, polynomial 0x1021)."""
    crc ^= (byte & 0xFF) << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else crc << 1
    return crc & 0xFFFF


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for b in data:
        crc = crc16_update(crc, b)
    return crc


def crc16_matrix() -> list[tuple[int, int]]:
    """:func:`crc16_update` as a linear map over GF(2): for each bit o of the new register,
    ``(crc_mask, byte_mask)`` such that bit o = parity(crc & crc_mask) ^ parity(byte & byte_mask).

    The board's CRC (:mod:`boards.framing`) is this XOR network, so host and RTL share
    one definition. (The update has no constant term: it is linear in crc and byte.)
    """
    cols_crc = [crc16_update(1 << i, 0) for i in range(16)]
    cols_byte = [crc16_update(0, 1 << i) for i in range(8)]
    return [(sum(1 << i for i in range(16) if cols_crc[i] >> o & 1),
             sum(1 << i for i in range(8) if cols_byte[i] >> o & 1)) for o in range(16)]


def _pack(sync: int, seq: int, code: int, payload: bytes) -> bytes:
    n = len(payload)
    if n > 0xFFFF:
        raise ValueError(f"payload of {n} bytes is too long: at most 65535")
    if not 0 <= seq <= 0xFF or not 0 <= code <= 0xFF:
        raise ValueError(f"sequence number and command/status are bytes, got {seq!r}, {code!r}")
    body = bytes([seq, code, n & 0xFF, n >> 8]) + bytes(payload)
    return bytes([sync]) + body + crc16(body).to_bytes(2, "big")


def frame(seq: int, cmd: int, payload: bytes = b"") -> bytes:
    """A complete host -> board frame."""
    return _pack(SYNC, seq, cmd, payload)


def reply(seq: int, status: int, payload: bytes = b"") -> bytes:
    """A complete board -> host reply."""
    return _pack(REPLY_SYNC, seq, status, payload)


@dataclass(frozen=True)
class Reply:
    seq: int
    status: int
    payload: bytes


def parse_reply(data: bytes) -> Reply:
    """The :class:`Reply` in ``data`` (exactly one reply); ValueError naming what is wrong."""
    if len(data) < HEADER_BYTES + CRC_BYTES or data[0] != REPLY_SYNC:
        raise ValueError(f"not a reply: {bytes(data[:8]).hex()}")
    n = data[3] | data[4] << 8
    if len(data) != HEADER_BYTES + n + CRC_BYTES:
        raise ValueError(f"reply of {len(data)} bytes, its header says {HEADER_BYTES + n + CRC_BYTES}")
    if crc16(data[1:]) != 0:
        raise ValueError("reply CRC mismatch")
    return Reply(data[1], data[2], bytes(data[HEADER_BYTES:HEADER_BYTES + n]))


def payload_limits(cmd: int, rows: int, cols: int, kmax: int) -> tuple[int, int] | None:
    """``(least, most)`` payload bytes the board accepts in the header of ``cmd``; None for
    an unknown command. Finer checks (whole beats, K of LOAD_B) come after the CRC."""
    return {IDENT: (0, 0), RUN: (0, 0), READ_C: (0, 0), LOAD_A: (rows, rows * kmax),
            LOAD_B: (cols, cols * kmax), LOAD_C: (2 * rows * cols, 2 * rows * cols)}.get(cmd)


def reply_length(cmd: int, rows: int, cols: int) -> int:
    """Payload bytes of the OK reply to ``cmd``."""
    return {IDENT: IDENT_LENGTH, READ_C: 2 * rows * cols}.get(cmd, 0)


def ident_payload(cfg, rows: int, cols: int, kmax: int, seed: int) -> bytes:
    """The IDENT reply payload of a board with MAC ``cfg`` (a :class:`ref.MacConfig`)."""
    return (IDENT_MAGIC + bytes([VERSION, rows, cols, cfg.in_fmt.width, cfg.acc_fmt.width,
                                 ROUNDING_INDEX[str(cfg.rounding)], cfg.rbits or 0])
            + kmax.to_bytes(2, "little") + seed.to_bytes(4, "little"))


def parse_ident(data: bytes) -> dict:
    """The fields of an IDENT payload; ValueError (one line) for another device or version."""
    if data[:4] != IDENT_MAGIC:
        raise ValueError(f"not an srmac array board (IDENT gave {bytes(data[:4])!r})")
    version = data[4] if len(data) > 4 else None
    if version != VERSION:
        raise ValueError(f"the board speaks srmac protocol v{version}, this host v{VERSION}: "
                         "build and flash the bitstream of this srmac (srmac build, srmac flash)")
    if len(data) != IDENT_LENGTH:
        raise ValueError(f"IDENT payload of {len(data)} bytes, protocol v{VERSION} has "
                         f"{IDENT_LENGTH}")
    names = {v: k for k, v in ROUNDING_INDEX.items()}
    if data[9] not in names:
        raise ValueError(f"IDENT gave an unknown rounding index {data[9]}")
    return {"version": data[4], "rows": data[5], "cols": data[6], "in_width": data[7],
            "acc_width": data[8], "rounding": names[data[9]], "rbits": data[10],
            "kmax": data[11] | data[12] << 8, "seed": int.from_bytes(data[13:17], "little")}


#: The IDENT frame of protocol v1 (``A5 'I' 00 00 CHK``, 8-bit sum), sent only to
#: recognise a board built by an older srmac.
V1_IDENT_FRAME = bytes([SYNC, IDENT, 0, 0, (-IDENT) & 0xFF])


def is_v1_ident_reply(data: bytes) -> bool:
    """Whether ``data`` starts with a protocol v1 IDENT reply (``5A 00 LEN payload CHK``)."""
    if len(data) < 9 or data[0] != REPLY_SYNC or data[1] != OK:
        return False
    n = data[2] | data[3] << 8
    body = data[1:4 + n + 1]
    return (len(body) == n + 4 and sum(body) & 0xFF == 0 and data[4:8] == IDENT_MAGIC
            and data[8] == 1)
