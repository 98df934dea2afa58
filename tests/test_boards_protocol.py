"""boards.protocol: CRC-16/CCITT, frames and replies, lengths, IDENT, the v1 probe."""

from __future__ import annotations

import itertools
import random

import pytest

import ref
from boards import protocol as P

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")


def test_crc16_check_value_and_residue():
    assert P.crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE catalogue check value
    assert P.crc16(b"") == 0xFFFF
    f = P.frame(7, P.LOAD_C, bytes(range(8)))
    assert P.crc16(f[1:]) == 0  # the CRC appended high byte first leaves residue 0
    assert P.crc16(f[1:-1] + bytes([f[-1] ^ 1])) != 0


def test_crc16_matrix_is_the_update():
    """The XOR network the RTL builds equals crc16_update on random and unit inputs."""
    mat = P.crc16_matrix()
    rng = random.Random(0)
    cases = [(1 << i, 0) for i in range(16)] + [(0, 1 << i) for i in range(8)]
    cases += [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(500)]
    for crc, byte in cases:
        got = sum((bin(crc & cm).count("1") + bin(byte & bm).count("1")) % 2 << o
                  for o, (cm, bm) in enumerate(mat))
        assert got == P.crc16_update(crc, byte), (crc, byte)


def test_frame_and_reply_layout():
    f = P.frame(0x12, P.LOAD_A, b"\x01\x02\x03")
    assert f[:5] == bytes([P.SYNC, 0x12, P.LOAD_A, 3, 0]) and f[5:8] == b"\x01\x02\x03"
    assert int.from_bytes(f[8:], "big") == P.crc16(f[1:8]) and len(f) == 10
    r = P.reply(0x34, P.ERR_STATE)
    assert r[:5] == bytes([P.REPLY_SYNC, 0x34, P.ERR_STATE, 0, 0]) and len(r) == 7
    assert P.parse_reply(P.reply(9, P.OK, b"abc")) == P.Reply(9, P.OK, b"abc")
    with pytest.raises(ValueError, match="too long"):
        P.frame(0, P.LOAD_A, bytes(70_000))
    with pytest.raises(ValueError, match="bytes"):
        P.frame(256, P.RUN)


@pytest.mark.parametrize("damage, match", [
    (lambda r: r[:-1], "header says"),
    (lambda r: r + b"\x00", "header says"),
    (lambda r: bytes([0xA5]) + r[1:], "not a reply"),
    (lambda r: r[:3] + bytes([r[3] ^ 4]) + r[4:], "CRC|header says"),
    (lambda r: r[:6] + bytes([r[6] ^ 0x80]) + r[7:], "CRC"),
])
def test_parse_reply_refuses_damage(damage, match):
    with pytest.raises(ValueError, match=match):
        P.parse_reply(damage(P.reply(5, P.OK, b"\x10\x20\x30")))


def test_crc_catches_what_the_8_bit_sum_missed():
    """Swapped bytes and +k/-k pairs keep the byte sum (v1 passed them); the CRC fails them."""
    f = bytearray(P.frame(3, P.LOAD_C, bytes([1, 2, 3, 4, 5, 6, 7, 8])))
    swapped = f[:6] + bytes([f[7], f[6]]) + f[8:]
    pair = bytearray(f)
    pair[6] = (pair[6] + 37) & 0xFF
    pair[9] = (pair[9] - 37) & 0xFF
    for bad in (swapped, pair):
        assert sum(bad[1:]) & 0xFF == sum(f[1:]) & 0xFF  # invisible to the sum
        assert P.crc16(bytes(bad[1:])) != 0


def test_crc_catches_every_one_and_two_bit_error_of_a_frame():
    f = P.frame(0x41, P.LOAD_A, bytes([0x11, 0xA5, 0x5A, 0xFF]))
    nbits = 8 * (len(f) - 1)
    for i, j in itertools.combinations_with_replacement(range(nbits), 2):
        bad = bytearray(f[1:])
        bad[i // 8] ^= 1 << i % 8
        if j != i:
            bad[j // 8] ^= 1 << j % 8
        assert P.crc16(bytes(bad)) != 0, (i, j)


def test_payload_limits_and_reply_lengths():
    assert P.payload_limits(P.LOAD_A, 2, 3, 4) == (2, 8)
    assert P.payload_limits(P.LOAD_B, 2, 3, 4) == (3, 12)
    assert P.payload_limits(P.LOAD_C, 2, 3, 4) == (12, 12)
    assert P.payload_limits(P.RUN, 2, 3, 4) == (0, 0)
    assert P.payload_limits(0x7F, 2, 3, 4) is None
    assert P.reply_length(P.READ_C, 2, 3) == 12
    assert P.reply_length(P.IDENT, 2, 3) == P.IDENT_LENGTH
    assert P.reply_length(P.RUN, 2, 3) == 0


def test_ident_round_trip():
    d = P.ident_payload(CFG, 2, 3, 256, 0xDEADBEEF)
    assert len(d) == P.IDENT_LENGTH and d[:5] == b"SRMA\x02"
    assert P.parse_ident(d) == {"version": 2, "rows": 2, "cols": 3, "in_width": 8,
                                "acc_width": 12, "rounding": "sr_eager", "rbits": 4,
                                "kmax": 256, "seed": 0xDEADBEEF}


@pytest.mark.parametrize("payload, match", [
    (b"XXXX\x02" + bytes(12), "not an srmac array board"),
    (b"SRMA\x01" + bytes(12), "protocol v1, this host v2"),
    (b"SRMA\x03" + bytes(20), "protocol v3, this host v2"),
    (b"SRMA\x02" + bytes(11), "17"),
    (b"SRMA\x02" + bytes(4) + b"\x09" + bytes(7), "rounding"),
])
def test_parse_ident_refusals_are_one_line(payload, match):
    with pytest.raises(ValueError, match=match) as exc:
        P.parse_ident(payload)
    assert "\n" not in str(exc.value)


def test_v1_probe():
    assert P.V1_IDENT_FRAME == bytes([0xA5, ord("I"), 0, 0, 0xB7])
    body = bytes([0, 17, 0]) + b"SRMA\x01" + bytes(12)
    v1_reply = bytes([0x5A]) + body + bytes([(-sum(body)) & 0xFF])
    assert P.is_v1_ident_reply(v1_reply)
    assert not P.is_v1_ident_reply(v1_reply[:-1] + bytes([v1_reply[-1] ^ 1]))  # bad sum
    assert not P.is_v1_ident_reply(P.reply(0, P.OK, P.ident_payload(CFG, 1, 1, 4, 0)))
