"""boards.model.BoardModel against the board RTL: the same bytes out for the same bytes in.

Random traffic, paced as a host paces it (one burst, then the link goes quiet):
valid frames of every command (loads of random lengths, RUNs with new and
repeated sequence numbers, unknown commands, bad lengths), a third of them
damaged by one fault of :data:`boards.sim.FAULTS`, some with garbage around;
and a product through the host driver before and after.
The model runs the long fault campaigns, so this is what makes them count.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import ref
from boards import protocol as P
from boards.core import BoardTop
from boards.host import Accelerator
from boards.model import BoardModel
from boards.sim import FAULTS, Later, ModelTransport, Quiet, SimTransport, damage

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")


SCRIPT = ["LOAD_C", "LOAD_A", "LOAD_B", "RUN", "RUN", "READ_C"]  # what a host sends


def random_frame(rng: random.Random, R: int, C: int, kmax: int, state: dict) -> bytes:
    """A frame a host (or a confused one) might send; ``state`` keeps the last K and seq.

    Mostly the host's order (:data:`SCRIPT`; the second RUN repeats the first's sequence
    number, as a resend does), else any command, unknown ones and bad lengths."""
    state["step"] = (state["step"] + 1) % len(SCRIPT)
    kind = SCRIPT[state["step"]] if rng.random() < 0.7 else rng.choice(SCRIPT + ["IDENT", "odd"])
    if not (kind == "RUN" and rng.random() < 0.5):
        state["seq"] = (state["seq"] + 1) & 0xFF  # else a RUN repeats the last seq
    seq = state["seq"]
    if kind == "LOAD_A":
        state["k"] = rng.randint(1, kmax)
        n = state["k"] * R if rng.random() < 0.9 else rng.randint(R, R * kmax)  # part beats
        return P.frame(seq, P.LOAD_A, bytes(rng.randrange(256) for _ in range(n)))
    if kind == "LOAD_B":
        k = state["k"] if rng.random() < 0.9 else rng.randint(1, kmax)
        return P.frame(seq, P.LOAD_B, bytes(rng.randrange(256) for _ in range(k * C)))
    if kind == "LOAD_C":
        return P.frame(seq, P.LOAD_C, bytes(rng.randrange(256) for _ in range(2 * R * C)))
    if kind == "odd":  # unknown command, or a known one of a bad length
        cmd = rng.choice([0x00, 0x7F, P.SYNC, P.IDENT, P.RUN, P.LOAD_C])
        return P.frame(seq, cmd, bytes(rng.randrange(256) for _ in range(rng.randint(0, 5))))
    return P.frame(seq, {"IDENT": P.IDENT, "RUN": P.RUN, "READ_C": P.READ_C}[kind])


def random_burst(rng: random.Random, R: int, C: int, kmax: int, state: dict) -> list:
    """One frame, damaged a third of the time, sometimes with garbage before it."""
    frame = random_frame(rng, R, C, kmax, state)
    parts = [frame]
    if rng.random() < 0.35:
        kind = rng.choice([k for k, (dirs, _) in FAULTS.items() if "to_board" in dirs])
        parts = damage(kind, frame, rng, sync=P.SYNC)
    if rng.random() < 0.1:
        parts.insert(0, bytes(rng.randrange(256) for _ in range(rng.randint(1, 6))))
    return parts


def random_bursts(seed: int, n: int, R: int, C: int, kmax: int) -> list[list]:
    rng = random.Random(seed)
    state = {"seq": 0, "k": 1, "step": -1}
    return [random_burst(rng, R, C, kmax, state) for _ in range(n)]


def compare(bursts, seed=1, R=2, C=2, kmax=4):
    """Feed the same bursts to the RTL and the model; return the first difference or None."""
    rtl = SimTransport(BoardTop(CFG, R, C, seed=seed, kmax=kmax, divisor=4))
    model = BoardModel(CFG, R, C, seed=seed, kmax=kmax)
    diff = host_product(rtl, model, seed)
    if diff:
        return diff
    for q, parts in enumerate(bursts):
        want = bytearray()
        for part in parts:
            if isinstance(part, Quiet):
                rtl.idle(part.byte_times)
                model.silence()
            elif isinstance(part, bytes):
                rtl.write(part)
                for b in part:
                    want += model.feed(b)
            else:
                assert not isinstance(part, Later)
        model.silence()
        got = rtl.drain()
        if got != bytes(want):
            return f"burst {q}: {[p.hex() if isinstance(p, bytes) else p for p in parts]}: " \
                   f"RTL {got.hex()} model {bytes(want).hex()}"
    return host_product(rtl, model, seed + 1)


def host_product(rtl, model, seed):
    """A product through the host driver on both (from whatever state they are in)."""
    rng = np.random.default_rng(seed)
    M, K, N = (int(x) for x in rng.integers(1, 7, 3))
    A = rng.integers(0, 256, (M, K))
    B = rng.integers(0, 256, (K, N))
    got = Accelerator(rtl).matmul(A, B)
    want = Accelerator(ModelTransport(model)).matmul(A, B)
    return None if (got == want).all() else f"{M}x{K}x{N} product: RTL {got} model {want}"


def test_model_answers_like_the_rtl():
    """About 15 s: 60 bursts on a 2x2 board (KMAX 4), 30 on a 1x3 board (KMAX 2)."""
    assert compare(random_bursts(1, 60, 2, 2, 4)) is None
    assert compare(random_bursts(2, 30, 1, 3, 2), R=1, C=3, kmax=2) is None


SLOW = [(2, 2, 4), (3, 2, 3), (1, 1, 2), (2, 3, 5), (3, 3, 2), (1, 4, 8)]


@pytest.mark.slow
@pytest.mark.parametrize("R, C, kmax", SLOW)
def test_model_answers_like_the_rtl_long(R, C, kmax):
    seed = 10 + SLOW.index((R, C, kmax))
    assert compare(random_bursts(seed, 300, R, C, kmax), seed=seed, R=R, C=C, kmax=kmax) is None


def _tile_frames(seqs):
    rng = random.Random(0)
    loads = [(P.LOAD_C, bytes(rng.randrange(256) for _ in range(8))),
             (P.LOAD_A, bytes(rng.randrange(256) for _ in range(8))),
             (P.LOAD_B, bytes(rng.randrange(256) for _ in range(8)))]
    runs = [(P.RUN, b"")] * (len(seqs) - 4)
    return [[P.frame(s, cmd, pay)] for s, (cmd, pay) in
            zip(seqs, loads + runs + [(P.READ_C, b"")], strict=True)]


def test_compare_sees_a_wrong_model(monkeypatch):
    """The comparison can fail: a model that runs a repeated RUN again differs."""
    frames = _tile_frames([1, 2, 3, 4, 4, 5])  # RUN 4 resent
    assert compare(frames) is None

    def no_repeat(self, status, _end=BoardModel._end):
        self.last_run = False
        return _end(self, status)

    monkeypatch.setattr(BoardModel, "_end", no_repeat)
    assert "burst 5" in compare(frames)


def test_model_runs_the_tile_like_ref_array():
    """LOAD_C, LOAD_A, LOAD_B, RUN, READ_C on the model give ArrayModel.run_tile's codes."""
    rng = np.random.default_rng(4)
    model = BoardModel(CFG, 2, 3, seed=9, kmax=4)
    A = rng.integers(0, 256, (2, 4))
    B = rng.integers(0, 256, (4, 3))
    C0 = rng.integers(0, 1 << 12, (2, 3))
    out = b""
    for seq, (cmd, payload) in enumerate([
            (P.LOAD_C, b"".join(int(x).to_bytes(2, "little") for x in C0.reshape(-1))),
            (P.LOAD_A, bytes(int(x) for x in A.T.reshape(-1))),
            (P.LOAD_B, bytes(int(x) for x in B.reshape(-1))), (P.RUN, b""), (P.READ_C, b"")]):
        out = b"".join(model.feed(b) for b in P.frame(seq, cmd, payload))
    rep = P.parse_reply(out)
    want = ref.array.ArrayModel(CFG, 2, 3, seed=9).run_tile(A, B, C0)
    assert np.frombuffer(rep.payload, "<u2").reshape(2, 3).tolist() == want.tolist()
