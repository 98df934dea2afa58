"""The array board RTL (boards/): protocol v2 through the UART, the host driver, the model.

The board top (UART + receiver / sequencer / transmitter + SystolicArray) runs
in Amaranth's simulator behind ``boards.sim.SimTransport``; the host driver's
``matmul`` must equal ``ref.array.ArrayModel.matmul(..., k_tile=KMAX)`` code for
code. About 30 s in all.
"""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable

import ref
from boards import protocol as P
from boards.core import BoardCore, BoardTop
from boards.host import Accelerator
from boards.sim import Fault, FaultyLink, SimTransport
from hwgen.vectors import random_finite
from ref.array import ArrayModel

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")


def make(R=2, C=2, kmax=4, seed=3, interleave=1, pipeline=0):
    return SimTransport(BoardTop(CFG, R, C, seed=seed, kmax=kmax, divisor=4,
                                 interleave=interleave, pipeline=pipeline))


class Raw:
    """Frames with consecutive sequence numbers; replies parsed (None: no reply)."""

    def __init__(self, tr):
        self.tr, self.seq = tr, 0

    def __call__(self, cmd, payload=b"", *, seq=None, edit=None):
        if seq is None:
            self.seq = seq = (self.seq + 1) & 0xFF
        f = bytearray(P.frame(seq, cmd, payload))
        if edit:
            edit(f)
        self.tr.write(bytes(f))
        out = self.tr.drain()
        if not out:
            return None
        rep = P.parse_reply(out)
        assert rep.seq == seq, "a reply carries the sequence number of its frame"
        return rep.status, rep.payload


def codes_c(C0):
    return b"".join(int(x).to_bytes(2, "little") for x in np.asarray(C0).reshape(-1))


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
    assert acc.resends == acc.dropped == acc.reloads == 0


@pytest.mark.parametrize("R,C,L,pipeline", [(1, 2, 2, 1), (1, 2, 4, 1), (2, 1, 4, 0)])
def test_interleaved_board_matches_the_model(R, C, L, pipeline):
    """An R x C board with L chains per PE is an (R*L) x C array to the host: the driver's
    codes equal ``ArrayModel(cfg, R*L, C)`` (tiling, padding, K split over RUNs). With
    R*L > kmax (2x1, L = 4, kmax 3) LOAD_C counts more rows than LOAD_A counts beats (a
    row counter sized for kmax once wrapped and shifted the C0 rows)."""
    rng = np.random.default_rng(L + R)
    M, K, N = R * L + 1, 5, C + 1  # partial block rows and columns
    A = random_finite(CFG.in_fmt, rng, M * K).reshape(M, K)
    B = random_finite(CFG.in_fmt, rng, K * N).reshape(K, N)
    C0 = random_finite(CFG.acc_fmt, rng, M * N).reshape(M, N)
    acc = Accelerator(make(R, C, kmax=3, seed=7, interleave=L, pipeline=pipeline))
    assert (acc.info["rows"], acc.info["cols"]) == (R * L, C)
    got = acc.matmul(A, B, C0)
    want = ArrayModel(CFG, R * L, C, seed=7).matmul(A, B, C0, k_tile=3)
    assert (got == want).all(), f"L={L}: board {got.tolist()} model {want.tolist()}"
    # the same codes as a one-chain board of the tall array would give: a wrong chain
    # order (or generator) shows up as a difference from this model
    assert not (ArrayModel(CFG, R * L, C, seed=8).matmul(A, B, C0, k_tile=3) == got).all()


def test_ident_reply_bytes():
    tr = make()
    tr.write(P.frame(0x42, P.IDENT))
    assert tr.drain() == P.reply(0x42, P.OK, P.ident_payload(CFG, 2, 2, 4, 3))


def test_error_replies_and_recovery():
    raw = Raw(make())
    assert raw(P.RUN) == (P.ERR_STATE, b"")  # RUN before any load
    # unknown command, with a payload that is dropped (it holds a whole valid frame)
    assert raw(0x7F, P.frame(9, P.RUN)) == (P.ERR_COMMAND, b"")
    assert raw(P.LOAD_A, bytes(2 * 5)) == (P.ERR_LENGTH, b"")  # longer than R * KMAX
    assert raw(P.LOAD_C, bytes(3)) == (P.ERR_LENGTH, b"")
    assert raw(P.LOAD_A, bytes(3)) == (P.ERR_LENGTH, b"")  # half a beat: refused at the end
    assert raw(P.LOAD_C, bytes(8), edit=lambda f: f.__setitem__(-1, f[-1] ^ 0x10)) == (
        P.ERR_CHECKSUM, b"")
    # a truncated frame gets no reply; after the silence timeout the board hunts for sync
    assert raw(P.LOAD_C, bytes(8), edit=lambda f: f.__delitem__(slice(6, None))) is None
    assert raw(P.IDENT)[0] == P.OK
    assert raw(P.LOAD_C, codes_c([[1, 2], [3, 4]]), edit=lambda f: f.__setitem__(
        slice(0, 0), b"\x00\x13\x5a")) == (P.OK, b"")  # garbage before a frame is ignored
    assert raw(P.READ_C) == (P.OK, codes_c([[1, 2], [3, 4]]))
    # a damaged LOAD_A invalidates A: LOAD_B and RUN refuse
    assert raw(P.LOAD_A, bytes(4), edit=lambda f: f.__setitem__(5, f[5] ^ 1)) == (
        P.ERR_CHECKSUM, b"")
    assert raw(P.LOAD_B, bytes(4)) == (P.ERR_STATE, b"")
    assert raw(P.RUN) == (P.ERR_STATE, b"")
    assert raw(P.LOAD_A, bytes(4)) == (P.OK, b"")
    assert raw(P.LOAD_B, bytes(6)) == (P.ERR_LENGTH, b"")  # K = 3, A has K = 2


def test_a_repeated_run_is_answered_but_not_run_again():
    """RUN idempotent: the resend of RUN seq s (its reply lost) must not add A @ B twice."""
    rng = np.random.default_rng(1)
    A, B = rng.integers(0, 256, (2, 4)), rng.integers(0, 256, (4, 2))
    C0 = rng.integers(0, 1 << 12, (2, 2))
    raw = Raw(make())
    for cmd, pay in ((P.LOAD_C, codes_c(C0)), (P.LOAD_A, bytes(int(x) for x in A.T.reshape(-1))),
                     (P.LOAD_B, bytes(int(x) for x in B.reshape(-1)))):
        assert raw(cmd, pay) == (P.OK, b"")
    assert raw(P.RUN) == (P.OK, b"")
    assert raw(P.RUN, seq=raw.seq) == (P.OK, b"")  # the resend: same sequence number
    model = ArrayModel(CFG, 2, 2, seed=3)
    once = model.run_tile(A, B, C0)
    assert raw(P.READ_C) == (P.OK, codes_c(once))
    assert raw(P.RUN) == (P.OK, b"")  # a new RUN (new sequence number) does run
    assert raw(P.READ_C) == (P.OK, codes_c(model.run_tile(A, B, once)))


def test_a_damaged_load_c_leaves_the_accumulators_alone():
    """LOAD_C is taken only with a good CRC: a damaged one, or a LOAD_A whose command byte
    turned into 'C' (same length), changes nothing."""
    raw = Raw(make())
    assert raw(P.LOAD_C, codes_c([[5, 6], [7, 8]])) == (P.OK, b"")
    assert raw(P.LOAD_C, codes_c([[9, 9], [9, 9]]), edit=lambda f: f.__setitem__(9, f[9] ^ 4)) == (
        P.ERR_CHECKSUM, b"")
    assert raw(P.LOAD_A, bytes(range(8)), edit=lambda f: f.__setitem__(2, P.LOAD_C)) == (
        P.ERR_CHECKSUM, b"")
    assert raw(P.READ_C) == (P.OK, codes_c([[5, 6], [7, 8]]))


def test_host_resends_a_damaged_frame_and_a_lost_reply():
    """One byte of LOAD_C flipped on the way, then the RUN's reply lost: the host resends
    both; the RUN runs once."""
    tr = make()
    acc = Accelerator(FaultyLink(tr, Fault("bitflip", "to_board", 1, seed=2)))
    acc.load_c(np.arange(4).reshape(2, 2))
    assert acc.resends == 1
    assert (acc.read_c() == np.arange(4).reshape(2, 2)).all()
    lost = FaultyLink(tr, Fault("lost", "to_host", 2))  # LOAD_A, LOAD_B, RUN
    acc.port = lost
    A, B = np.full((2, 3), 0x38), np.full((3, 2), 0x38)  # 1.0 (E5M2)
    acc.run_tile(A, B)
    assert lost.hit and acc.resends == 2
    want = ArrayModel(CFG, 2, 2, seed=3).run_tile(A, B, np.arange(4).reshape(2, 2))
    assert (acc.read_c() == want).all()


def test_board_bad_configuration():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)  # refused cores are never used
        with pytest.raises(ValueError, match="at most 8"):
            BoardCore(ref.parse_mac("fp16:fp32:rn"), 2, 2)
        with pytest.raises(ValueError, match="kmax"):
            BoardCore(CFG, 2, 2, kmax=0)
        with pytest.raises(ValueError, match="divisor"):
            BoardTop(CFG, 2, 2, divisor=2)
        gc.collect()


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
