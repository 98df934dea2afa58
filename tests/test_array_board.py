"""The array board (boards/): framed UART protocol, host driver, simulated transport.

The board top (UART + protocol engine + SystolicArray) runs in Amaranth's
simulator behind ``boards.sim.SimTransport``; the host driver's ``matmul``
must equal ``ref.array.ArrayModel.matmul(..., k_tile=KMAX)`` code for code.
About 20 s in all.
"""

from __future__ import annotations

import numpy as np
import pytest

import ref
from boards import protocol as P
from boards.core import BoardCore, BoardTop, ident_payload
from boards.host import Accelerator, BoardError
from boards.sim import SimTransport
from hwgen.vectors import random_finite
from ref.array import ArrayModel

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")


def make(R=2, C=2, kmax=4, seed=3, corrupt=None):
    top = BoardTop(CFG, R, C, seed=seed, kmax=kmax, divisor=4)
    return SimTransport(top, corrupt=corrupt)


def raw(tr, data, n=None):
    """Write raw bytes, return the reply (status, payload) or None on timeout."""
    tr.write(data)
    hdr = tr.read(4)
    if len(hdr) < 4:
        return None
    body = tr.read((hdr[2] | hdr[3] << 8) + 1)
    assert hdr[0] == P.REPLY_SYNC
    assert (sum(hdr[1:]) + sum(body)) & 0xFF == 0, "reply checksum"
    return hdr[1], body[:-1]


def test_matmul_through_the_board_matches_the_model():
    rng = np.random.default_rng(0)
    M, K, N = 3, 6, 2  # 2 block rows (padded), K split into chunks of KMAX = 4
    A = random_finite(CFG.in_fmt, rng, M * K).reshape(M, K)
    B = random_finite(CFG.in_fmt, rng, K * N).reshape(K, N)
    C0 = random_finite(CFG.acc_fmt, rng, M * N).reshape(M, N)
    acc = Accelerator(make())
    assert acc.info == {"version": P.VERSION, "rows": 2, "cols": 2, "in_width": 8,
                        "acc_width": 12, "rounding": "sr_eager", "rbits": 4, "kmax": 4,
                        "seed": 3}
    got = acc.matmul(A, B, C0)
    want = ArrayModel(CFG, 2, 2, seed=3).matmul(A, B, C0, k_tile=4)
    assert got.shape == (M, N)
    assert (got == want).all(), f"board {got.tolist()} model {want.tolist()}"


def test_ident_reply_bytes():
    tr = make()
    assert raw(tr, P.frame(P.IDENT)) == (P.OK, ident_payload(CFG, 2, 2, 4, 3))


def test_error_replies_and_recovery():
    tr = make()
    # RUN before any load: state error
    assert raw(tr, P.frame(P.RUN)) == (P.ERR_STATE, b"")
    # unknown command, with a payload that is discarded (it contains a sync byte)
    assert raw(tr, P.frame(0x7F, bytes([P.SYNC, 1, 2]))) == (P.ERR_COMMAND, b"")
    # LOAD_A longer than R * KMAX, then LOAD_C of the wrong size
    assert raw(tr, P.frame(P.LOAD_A, bytes(2 * 5))) == (P.ERR_LENGTH, b"")
    assert raw(tr, P.frame(P.LOAD_C, bytes(3))) == (P.ERR_LENGTH, b"")
    # LOAD_A with half a beat: rejected at the end
    assert raw(tr, P.frame(P.LOAD_A, bytes(3))) == (P.ERR_LENGTH, b"")
    # bad checksum
    f = bytearray(P.frame(P.LOAD_C, bytes(8)))
    f[-1] ^= 0x10
    assert raw(tr, bytes(f)) == (P.ERR_CHECKSUM, b"")
    # a truncated frame gets no reply; after the silence timeout the board hunts for sync again
    assert raw(tr, P.frame(P.LOAD_C, bytes(8))[:5]) is None
    tr.flush_input()
    assert raw(tr, P.frame(P.IDENT))[0] == P.OK
    # garbage between frames is ignored
    assert raw(tr, b"\x00\x13" + P.frame(P.LOAD_C, bytes(8))) == (P.OK, b"")
    assert raw(tr, P.frame(P.READ_C)) == (P.OK, bytes(8))
    # a damaged LOAD_A invalidates A: RUN refuses
    f = bytearray(P.frame(P.LOAD_A, bytes(4)))
    f[5] ^= 1
    assert raw(tr, bytes(f)) == (P.ERR_CHECKSUM, b"")
    assert raw(tr, P.frame(P.LOAD_B, bytes(4))) == (P.ERR_STATE, b"")
    assert raw(tr, P.frame(P.RUN)) == (P.ERR_STATE, b"")


def test_host_retries_a_damaged_frame():
    """One byte of LOAD_C's payload is flipped on the way: the host resends and gets OK."""
    hit = {}

    def corrupt(i, b):
        if i == 10 and not hit:  # a payload byte of the first LOAD_C (IDENT took bytes 0-4)
            hit["at"] = i
            return b ^ 0x40
        return b

    acc = Accelerator(make(corrupt=corrupt))
    acc.load_c(np.arange(4).reshape(2, 2))
    assert hit, "the corruption did not happen"
    assert (acc.read_c() == np.arange(4).reshape(2, 2)).all()
    with pytest.raises(BoardError, match="unknown command"):
        acc.command(0x33)
    assert acc.identify()["rows"] == 2  # still in sync afterwards


def test_board_bad_configuration():
    with pytest.raises(ValueError, match="at most 8"):
        BoardCore(ref.parse_mac("fp16:fp32:rn"), 2, 2)
    with pytest.raises(ValueError, match="kmax"):
        BoardCore(CFG, 2, 2, kmax=0)


def test_board_cli_sim(capsys):
    from ref.cli import main

    assert main(["board", "sim", "--array", "1x2", "--shape", "2x3x2", "--kmax", "2"]) == 0
    assert "0 of 4 outputs differ" in capsys.readouterr().out
    assert main(["board", "sim", "--shape", "2x3"]) == 2


@pytest.mark.slow
def test_icebreaker_bitstream_builds(tmp_path):
    """Full iCE40 flow with the YoWASP tools (about 1.5 min): fits and meets timing."""
    import re

    from boards.icebreaker import build

    build(CFG, 2, 2, kmax=256, build_dir=str(tmp_path))
    assert (tmp_path / "srmac_array.bin").stat().st_size > 0
    tim = (tmp_path / "srmac_array.tim").read_text()
    lc = re.search(r"ICESTORM_LC:\s+(\d+)/\s*(\d+)", tim)
    assert int(lc.group(1)) <= int(lc.group(2))
    assert "FAIL" not in tim
