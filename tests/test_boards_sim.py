"""boards.sim: the damage each fault class does, FaultyLink's targeting, the hang watchdog."""

from __future__ import annotations

import random

import pytest

import ref
from boards import protocol as P
from boards.model import BoardModel
from boards.sim import FAULTS, Fault, FaultyLink, Later, LinkHang, ModelTransport, Quiet, damage

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")
FRAME = P.frame(0x21, P.LOAD_C, bytes([1, 2, 3, 4, 5, 6, 7, 8]))
REPLY = P.reply(0x21, P.OK, bytes([9, 8, 7, 6]))


def bits_differ(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("seed", range(5))
def test_byte_damage(seed):
    d = {k: damage(k, FRAME, random.Random(seed), sync=P.SYNC)
         for k, (dirs, _) in FAULTS.items() if "to_board" in dirs}
    one = {k: v[0] for k, v in d.items() if len(v) == 1}
    assert bits_differ(one["bitflip"], FRAME) == 1
    assert len(one["drop"]) == len(FRAME) - 1
    assert len(one["duplicate"]) == len(FRAME) + 1 and any(
        one["duplicate"] == FRAME[:i] + FRAME[i:i + 1] + FRAME[i:] for i in range(len(FRAME)))
    assert len(one["insert"]) == len(FRAME) + 1
    assert FRAME.startswith(one["truncate"]) and 1 <= len(one["truncate"]) < len(FRAME)
    assert d["lost"] == []
    assert one["garbage"].endswith(FRAME) and 1 <= len(one["garbage"]) - len(FRAME) <= 8
    assert one["stray_sync"].count(P.SYNC) == FRAME.count(P.SYNC) + 1
    assert sorted(one["swap"]) == sorted(FRAME) and bits_differ(one["swap"], FRAME) > 0
    comp = one["compensate"]
    assert sum(comp) % 256 == sum(FRAME) % 256 and comp != FRAME  # invisible to a byte sum
    first, gap, rest = d["stall"]
    assert isinstance(gap, Quiet) and first + rest == FRAME
    assert d["repeat"] == [FRAME, FRAME]


def test_reply_damage():
    rng = random.Random(1)
    first, later = damage("stall", REPLY, rng, sync=P.REPLY_SYNC)
    assert isinstance(later, Later) and first + later.data == REPLY
    (short,) = damage("short_payload", REPLY, rng, sync=P.REPLY_SYNC)
    (long,) = damage("long_payload", REPLY, rng, sync=P.REPLY_SYNC)
    assert P.parse_reply(short).payload == bytes([9, 8, 7])  # well formed, one byte short
    assert P.parse_reply(long).payload[:4] == bytes([9, 8, 7, 6]) and len(long) == len(REPLY) + 1
    assert damage("stray_sync", REPLY, rng, sync=P.REPLY_SYNC)[0].count(P.REPLY_SYNC) == 2


def test_fault_names_are_checked():
    with pytest.raises(ValueError, match="unknown fault 'flip'"):
        Fault("flip", "to_board", 0)
    with pytest.raises(ValueError, match="does not apply to_board"):
        Fault("late", "to_board", 0)
    with pytest.raises(ValueError, match="not a byte-level"):
        damage("late", REPLY, random.Random(0), sync=P.REPLY_SYNC)


def test_faulty_link_damages_only_its_target():
    model = BoardModel(CFG, 2, 2, kmax=4)
    link = FaultyLink(ModelTransport(model), Fault("bitflip", "to_host", 1, seed=4))
    for seq in (1, 2, 3):
        link.write(P.frame(seq, P.IDENT))
    ident = P.ident_payload(CFG, 2, 2, 4, 0)
    assert link.read(24) == P.reply(1, P.OK, ident)
    assert bits_differ(link.read(24), P.reply(2, P.OK, ident)) == 1
    assert link.read(24) == P.reply(3, P.OK, ident)
    assert link.hit == "reply 1 (status 0, 17 payload bytes)"


def test_a_late_reply_comes_after_the_host_gives_up():
    link = FaultyLink(ModelTransport(BoardModel(CFG, 1, 1, kmax=2)), Fault("late", "to_host", 0))
    link.write(P.frame(1, P.RUN))
    assert link.read(7) == b""  # the host times out
    link.flush_input()
    assert P.parse_reply(link.read(7)) == P.Reply(1, P.ERR_STATE, b"")


def test_watchdog_stops_a_run_that_goes_on():
    tr = ModelTransport(BoardModel(CFG, 1, 1, kmax=2), budget=100)
    with pytest.raises(LinkHang, match="byte times"):
        for _ in range(100):
            tr.read(1)  # a host that never stops waiting
