"""boards.host.Accelerator: every recovery path of protocol v2, against the Python board.

The board is :class:`boards.model.BoardModel` (checked against the RTL in
tests/test_boards_model.py) behind :class:`boards.sim.ModelTransport`; faults
come from :class:`boards.sim.FaultyLink`. Each test names the path it proves.
"""

from __future__ import annotations

import numpy as np
import pytest

import ref
from boards import protocol as P
from boards.host import Accelerator, BoardError, ProtocolMismatch
from boards.model import BoardModel
from boards.sim import Fault, FaultyLink, ModelTransport
from ref.array import ArrayModel

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")
RNG = np.random.default_rng(7)
A = RNG.integers(0, 256, (3, 6))  # 2 block rows, K in 2 chunks of KMAX = 4
B = RNG.integers(0, 256, (6, 2))
C0 = RNG.integers(0, 1 << 12, (3, 2))
WANT = ArrayModel(CFG, 2, 2, seed=5).matmul(A, B, C0, k_tile=4)
# IDENT, then per block: LOAD_C, (LOAD_A, LOAD_B, RUN) x 2, READ_C
PLAN = [P.IDENT] + 2 * [P.LOAD_C, P.LOAD_A, P.LOAD_B, P.RUN, P.LOAD_A, P.LOAD_B, P.RUN, P.READ_C]


def board():
    return BoardModel(CFG, 2, 2, seed=5, kmax=4)


def product(fault=None, model=None):
    model = model or board()
    link = FaultyLink(ModelTransport(model), fault)
    acc = Accelerator(link)
    got = acc.matmul(A, B, C0)
    return acc, link, model, got


def test_fault_free_product():
    acc, link, model, got = product()
    assert (got == WANT).all()
    assert link.frames == link.replies == len(PLAN)
    assert (acc.resends, acc.dropped, acc.reloads, model.runs) == (0, 0, 0, 4)


@pytest.mark.parametrize("kind", ["lost", "late", "bitflip", "truncate", "stall"])
def test_a_run_whose_reply_is_lost_or_damaged_runs_once(kind):
    """The bug of protocol v1: the resent RUN ran twice (C += A @ B twice)."""
    acc, link, model, got = product(Fault(kind, "to_host", PLAN.index(P.RUN), seed=3))
    assert link.hit and acc.resends >= 1
    assert model.runs == 4
    assert (got == WANT).all()


def test_late_and_duplicate_replies_are_dropped_by_sequence_number():
    """A duplicated READ_C reply of block 1 must not be taken as block 2's result."""
    first_read = PLAN.index(P.READ_C)
    acc, link, _, got = product(Fault("duplicate_reply", "to_host", first_read))
    assert acc.dropped == 1 and acc.resends == 0
    assert (got == WANT).all()
    acc, _, _, got = product(Fault("stale", "to_host", first_read + 1))
    assert acc.dropped == 1 and (got == WANT).all()


@pytest.mark.parametrize("edit, what", [
    (lambda f: f.__setitem__(2, f[2] ^ 0x10), "a flipped command byte"),
    (lambda f: f.__setitem__(3, f[3] ^ 0x40), "a flipped length byte"),
    (lambda f: f.__setitem__(slice(0, 0), bytes([P.SYNC])), "a stray sync byte"),
])
def test_header_errors_are_resent(edit, what):
    """v1 gave up with BoardError on ERR_COMMAND / ERR_LENGTH; v2 resends."""
    model = board()

    class Edit(FaultyLink):
        def write(self, data):
            if self.frames == PLAN.index(P.LOAD_C):
                data = bytearray(data)
                edit(data)
            super().write(bytes(data))

    acc = Accelerator(Edit(ModelTransport(model)))
    assert (acc.matmul(A, B, C0) == WANT).all(), what
    assert acc.resends == 1, what


@pytest.mark.parametrize("kind", ["short_payload", "long_payload"])
def test_read_c_checks_the_payload_length(kind):
    acc, _, _, got = product(Fault(kind, "to_host", PLAN.index(P.READ_C)))
    assert acc.resends == 1 and (got == WANT).all()


def test_a_lost_a_is_loaded_again():
    """Junk that looks like a LOAD_A header (A invalid from its first payload byte) just
    before a RUN: the RUN answers ERR_STATE, the host loads A and B again."""
    model = board()

    class Junk(FaultyLink):
        def write(self, data):
            if self.frames == PLAN.index(P.RUN):
                self.inner.write(bytes([P.SYNC, 0x99, P.LOAD_A, 2, 0, 0x00]))
                self.inner.idle(3 * P.TIMEOUT_BYTE_TIMES)
            super().write(data)

    acc = Accelerator(Junk(ModelTransport(model)))
    assert (acc.matmul(A, B, C0) == WANT).all()
    assert acc.reloads == 1 and model.runs == 4


class _Silent:
    def write(self, data):
        pass

    def read(self, n):
        return b""

    def flush_input(self):
        pass


def test_a_dead_link_is_one_line():
    with pytest.raises(BoardError) as exc:
        Accelerator(_Silent(), retries=2)
    assert str(exc.value) == "IDENT failed after 3 tries: no reply"


class _V1Board(_Silent):
    """A board built by an older srmac: answers only the v1 IDENT frame."""

    def __init__(self):
        self.out = b""

    def write(self, data):
        if data == P.V1_IDENT_FRAME:
            body = bytes([0, 17, 0]) + b"SRMA\x01" + bytes(12)
            self.out = bytes([P.REPLY_SYNC]) + body + bytes([(-sum(body)) & 0xFF])

    def read(self, n):
        out, self.out = self.out[:n], self.out[n:]
        return out


def test_a_v1_board_is_refused_with_one_line():
    with pytest.raises(ProtocolMismatch) as exc:
        Accelerator(_V1Board())
    msg = str(exc.value)
    assert "protocol v1, this host v2" in msg and "srmac flash" in msg and "\n" not in msg


def test_another_version_is_refused_with_one_line():
    class V3(ModelTransport):
        def write(self, data):
            super().write(data)
            if data[2] == P.IDENT:  # rewrite the reply as a v3 board's
                rep = P.parse_reply(bytes(self._in))
                self._in[:] = P.reply(rep.seq, P.OK, b"SRMA\x03" + bytes(30))

    with pytest.raises(ProtocolMismatch, match="protocol v3, this host v2"):
        Accelerator(V3(board()))


def test_bad_inputs_are_refused_before_sending():
    acc = Accelerator(ModelTransport(board()))
    with pytest.raises(ValueError, match="KMAX = 4"):
        acc.load_a(np.zeros((2, 5), np.int64))
    with pytest.raises(ValueError, match="0..255"):
        acc.load_a(np.full((2, 2), 256))
    with pytest.raises(ValueError, match="integer codes"):
        acc.load_c(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        acc.load_b(np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError, match="shape mismatch"):
        acc.matmul(np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64))


def test_serial_flush_reads_until_quiet_and_keeps_the_timeout():
    from boards.host import _SerialTransport

    class FakeSerial:
        timeout = 1.0

        def __init__(self):
            self.chunks = [b"\x5a" * 10, b"\x00" * 3]  # still arriving, then quiet
            self.timeouts = []

        def read(self, n):
            self.timeouts.append(self.timeout)
            return self.chunks.pop(0) if self.chunks else b""

    ser = FakeSerial()
    _SerialTransport(ser).flush_input()
    assert ser.chunks == [] and ser.timeouts == [0.05] * 3 and ser.timeout == 1.0
