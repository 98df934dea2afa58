"""Simulated links to the array board, and fault injection on them, both ways.

Transports (what :class:`boards.host.Accelerator` talks to): ``write(bytes)``,
``read(n)`` (fewer bytes on timeout), ``flush_input()`` (wait until the link is
quiet, drop what arrived) and ``idle(byte_times)`` (the host's line stays quiet):

* :class:`SimTransport`: the :class:`boards.core.BoardTop` RTL in Amaranth's
  simulator, bit by bit on its UART pins;
* :class:`ModelTransport`: :class:`boards.model.BoardModel`, the same protocol
  engine in Python (about a thousand times faster), for long fault campaigns.

:class:`FaultyLink` wraps either and damages one frame (host -> board) or one
reply (board -> host) as a :class:`Fault` says: the classes of :data:`FAULTS`
(bit flips, dropped, duplicated and inserted bytes, truncation, garbage, stray
sync bytes, swapped bytes, compensating +k/-k pairs, a stalled link, lost, late,
duplicated and stale replies, payloads one byte short or long). Both transports
stop a run that goes on too long with :class:`LinkHang`, so a hang is counted,
not waited for.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from amaranth.sim import Simulator

from . import protocol as P

__all__ = ["SimTransport", "ModelTransport", "FaultyLink", "Fault", "FAULTS", "LinkHang",
           "damage", "Later", "Quiet", "HOST_TIMEOUT_BYTE_TIMES", "STALL_BYTE_TIMES"]

_PERIOD = 1e-6  # simulated clock period (s); only ratios matter
#: How long the host waits for a byte before it gives up (byte times; a serial port's timeout).
HOST_TIMEOUT_BYTE_TIMES = 12
#: A stalled link: quiet for this many byte times (three times the board's frame timeout).
STALL_BYTE_TIMES = 3 * P.TIMEOUT_BYTE_TIMES


class LinkHang(Exception):
    """The simulated run went on far longer than it should (a hang, stopped)."""


class SimTransport:
    """The host side of a UART link to ``top`` (a :class:`boards.core.BoardTop`) in simulation.

    The bytes the host writes are sent bit by bit (8N1) on the top's ``rx`` pin; the
    ``tx`` pin is decoded back into bytes. ``read(n)`` runs the simulation until n bytes
    have arrived or :data:`HOST_TIMEOUT_BYTE_TIMES` pass without one. ``budget_cycles``:
    raise :class:`LinkHang` once the simulation has run that long (None: no limit).
    """

    def __init__(self, top, *, max_cycles: int | None = None, budget_cycles: int | None = None):
        self.top = top
        self.d = top.divisor
        self.byte_cycles = 10 * self.d
        self.max_cycles = max_cycles or HOST_TIMEOUT_BYTE_TIMES * self.byte_cycles
        self.budget_cycles = budget_cycles
        self._out = deque()  # bytes to send (an int) or quiet cycles (a 1-tuple)
        self._in = deque()  # bytes received
        self.received = 0
        self.cycles = 0
        sim = Simulator(top)
        sim.add_clock(_PERIOD)
        sim.add_testbench(self._drive_rx, background=True)
        sim.add_testbench(self._sample_tx, background=True)
        self.sim = sim

    async def _drive_rx(self, ctx):
        d = self.d
        ctx.set(self.top.rx, 1)
        while True:
            if not self._out:
                await ctx.tick()
                continue
            item = self._out.popleft()
            if isinstance(item, tuple):
                await ctx.tick().repeat(item[0])
                continue
            for bit in [0] + [(item >> q) & 1 for q in range(8)] + [1]:
                ctx.set(self.top.rx, bit)
                await ctx.tick().repeat(d)

    async def _sample_tx(self, ctx):
        d = self.d
        while True:
            await ctx.tick()
            if ctx.get(self.top.tx):
                continue
            await ctx.tick().repeat(d // 2)  # middle of the start bit
            byte = 0
            for q in range(8):
                await ctx.tick().repeat(d)
                byte |= ctx.get(self.top.tx) << q
            await ctx.tick().repeat(d)  # stop bit
            self._in.append(byte)
            self.received += 1

    def _step(self, cycles: int):
        self.cycles += cycles
        if self.budget_cycles is not None and self.cycles > self.budget_cycles:
            raise LinkHang(f"still running after {self.cycles} clock cycles")
        self.sim.run_until(self.cycles * _PERIOD)

    # ---- transport interface ----
    def write(self, data: bytes):
        self._out.extend(data)

    def idle(self, byte_times: int):
        """The host's line stays quiet for ``byte_times`` after what was written so far."""
        self._out.append((byte_times * self.byte_cycles,))

    def read(self, n: int) -> bytes:
        out = bytearray()
        idle = 0
        chunk = self.byte_cycles
        while len(out) < n and idle < self.max_cycles:
            if self._in:
                out.append(self._in.popleft())
                idle = 0
                continue
            self._step(chunk)
            idle += chunk if not self._out else 0
        return bytes(out)

    def drain(self) -> bytes:
        """Send what is queued, wait until nothing arrives for longer than the board's frame
        timeout; return (and forget) what arrived."""
        while self._out:
            self._step(self.byte_cycles)
        quiet = self.top.core.timeout + 2 * self.byte_cycles
        while True:
            before = self.received
            self._step(quiet)
            if self.received == before:
                break
        out = bytes(self._in)
        self._in.clear()
        return out

    def flush_input(self):
        """Wait until the link is quiet, drop what arrived."""
        self.drain()


class ModelTransport:
    """The host side of a link to a :class:`boards.model.BoardModel`.

    Replies appear as soon as the byte that triggers them is written. A ``read`` that
    cannot be served in full is a host timeout: the line was quiet long enough for the
    board to drop a partial frame. ``budget``: raise :class:`LinkHang` after that many
    byte times of traffic and waiting (None: no limit).
    """

    def __init__(self, board, *, budget: int | None = None):
        self.board = board
        self.budget = budget
        self.time = 0  # byte times
        self._in = bytearray()

    def _spend(self, byte_times: int):
        self.time += byte_times
        if self.budget is not None and self.time > self.budget:
            raise LinkHang(f"still running after {self.time} byte times")

    def write(self, data: bytes):
        self._spend(len(data))
        for b in data:
            self._in += self.board.feed(b)

    def idle(self, byte_times: int):
        self._spend(byte_times)
        if byte_times >= P.TIMEOUT_BYTE_TIMES:
            self.board.silence()

    def read(self, n: int) -> bytes:
        out = bytes(self._in[:n])
        del self._in[:n]
        self._spend(len(out))
        if len(out) < n:  # the host waited its timeout
            self.idle(HOST_TIMEOUT_BYTE_TIMES)
        return out

    def flush_input(self):
        self.idle(2 * P.TIMEOUT_BYTE_TIMES)
        self._in.clear()


# ---- faults -------------------------------------------------------------------------------

#: fault class -> (directions it applies to, what it does)
FAULTS = {
    "bitflip": (("to_board", "to_host"), "one bit of one byte flipped"),
    "drop": (("to_board", "to_host"), "one byte lost"),
    "duplicate": (("to_board", "to_host"), "one byte received twice"),
    "insert": (("to_board", "to_host"), "one random byte inserted"),
    "truncate": (("to_board", "to_host"), "the rest lost after a random byte"),
    "lost": (("to_board", "to_host"), "the whole frame or reply lost"),
    "garbage": (("to_board", "to_host"), "1-8 random bytes before it"),
    "stray_sync": (("to_board", "to_host"), "a sync byte inserted before or inside it"),
    "swap": (("to_board", "to_host"), "two adjacent different bytes swapped"),
    "compensate": (("to_board", "to_host"), "+k on one byte, -k on another (sum unchanged)"),
    "stall": (("to_board", "to_host"),
              "the link stops in the middle for 3 frame timeouts (to the host: past its "
              "timeout, the rest comes after it gave up)"),
    "repeat": (("to_board",), "the whole frame received twice"),
    "late": (("to_host",), "the reply arrives after the host gave up waiting"),
    "duplicate_reply": (("to_host",), "the reply received twice"),
    "stale": (("to_host",), "a copy of the previous reply arrives before it"),
    "short_payload": (("to_host",), "a well-formed reply one payload byte short"),
    "long_payload": (("to_host",), "a well-formed reply one payload byte long"),
}


@dataclass(frozen=True)
class Fault:
    """Damage ``kind`` (a key of :data:`FAULTS`) done to frame (``to_board``) or reply
    (``to_host``) number ``index`` (0: the first, IDENT's); ``seed`` picks the byte, bit ..."""

    kind: str
    direction: str
    index: int
    seed: int = 0

    def __post_init__(self):
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r}: choose one of {', '.join(FAULTS)}")
        if self.direction not in FAULTS[self.kind][0]:
            raise ValueError(f"fault {self.kind!r} does not apply {self.direction}")


@dataclass(frozen=True)
class Later:
    """Bytes that arrive only after the host has given up waiting (after its next flush)."""
    data: bytes


@dataclass(frozen=True)
class Quiet:
    byte_times: int


def damage(kind: str, unit: bytes, rng: random.Random, *, sync: int) -> list:
    """``unit`` (one frame or reply) damaged by ``kind``: a list of bytes objects,
    :class:`Quiet` gaps and :class:`Later` parts, in the order they reach the other side.
    (``late``, ``duplicate_reply`` and ``stale`` are done by :class:`FaultyLink`.)"""
    b = bytearray(unit)
    n = len(b)
    if kind == "bitflip":
        b[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif kind == "drop":
        del b[rng.randrange(n)]
    elif kind == "duplicate":
        i = rng.randrange(n)
        b.insert(i, b[i])
    elif kind == "insert":
        b.insert(rng.randrange(n + 1), rng.randrange(256))
    elif kind == "truncate":
        del b[rng.randrange(1, n):]
    elif kind == "lost":
        return []
    elif kind == "garbage":
        b[:0] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif kind == "stray_sync":
        b.insert(rng.randrange(n), sync)
    elif kind == "swap":
        pairs = [i for i in range(n - 1) if b[i] != b[i + 1]] or list(range(n - 1))
        i = rng.choice(pairs)
        b[i], b[i + 1] = b[i + 1], b[i]
    elif kind == "compensate":
        i, j = sorted(rng.sample(range(1, n), 2))  # after the sync byte
        k = rng.randrange(1, 256)
        b[i], b[j] = (b[i] + k) & 0xFF, (b[j] - k) & 0xFF
    elif kind == "stall":
        i = rng.randrange(1, n)
        gap = Later(bytes(b[i:])) if sync == P.REPLY_SYNC else Quiet(STALL_BYTE_TIMES)
        rest = [] if sync == P.REPLY_SYNC else [bytes(b[i:])]
        return [bytes(b[:i]), gap, *rest]
    elif kind == "repeat":
        return [bytes(b), bytes(b)]
    elif kind in ("short_payload", "long_payload"):
        rep = P.parse_reply(bytes(unit))
        extra = bytes([rng.randrange(256)])
        payload = rep.payload[:-1] if kind == "short_payload" else rep.payload + extra
        return [P.reply(rep.seq, rep.status, payload)]
    else:
        raise ValueError(f"fault {kind!r} is not a byte-level damage")
    return [bytes(b)]


class FaultyLink:
    """A transport that passes ``inner``'s traffic through, damaging one unit as ``fault`` says.

    Replies are taken from ``inner`` whole (the board sends well-formed replies), so a
    reply fault hits exactly reply number ``fault.index``. After the run, ``hit`` tells
    which frame or reply was damaged (None: the run ended before it).
    """

    def __init__(self, inner, fault: Fault | None = None):
        self.inner, self.fault = inner, fault
        self.frames = self.replies = 0
        self.hit: str | None = None
        self._rng = random.Random(fault.seed if fault else 0)
        self._buf = bytearray()  # what the host can read now
        self._later = bytearray()  # what arrives after the host gives up waiting
        self._previous = b""

    def _targets(self, direction: str, count: int) -> bool:
        f = self.fault
        return f is not None and f.direction == direction and f.index == count

    def _deliver(self, parts, to_host: bool):
        for part in parts:
            if isinstance(part, Quiet):
                self.inner.idle(part.byte_times)
            elif isinstance(part, Later):
                self._later += part.data
            elif to_host:
                self._buf += part
            else:
                self.inner.write(part)

    def write(self, data: bytes):
        if self._targets("to_board", self.frames):
            self.hit = f"frame {self.frames} ({P.COMMANDS.get(data[2], '?') if len(data) > 2 else '?'})"
            self._deliver(damage(self.fault.kind, data, self._rng, sync=P.SYNC), to_host=False)
        else:
            self.inner.write(data)
        self.frames += 1

    def idle(self, byte_times: int):
        self.inner.idle(byte_times)

    def _pull(self) -> bool:
        """Move the board's next reply into the host's input (damaged if it is the target)."""
        head = self.inner.read(P.HEADER_BYTES)
        if len(head) < P.HEADER_BYTES or head[0] != P.REPLY_SYNC:
            self._buf += head
            return bool(head)
        rep = head + self.inner.read((head[3] | head[4] << 8) + P.CRC_BYTES)
        if self._targets("to_host", self.replies):
            kind = self.fault.kind
            self.hit = f"reply {self.replies} (status {rep[2]}, {len(rep) - 7} payload bytes)"
            if kind == "late":
                self._later += rep
            elif kind == "duplicate_reply":
                self._buf += rep + rep
            elif kind == "stale":
                self._buf += self._previous + rep
            else:
                self._deliver(damage(kind, rep, self._rng, sync=P.REPLY_SYNC), to_host=True)
        else:
            self._buf += rep
        self._previous = rep
        self.replies += 1
        return True

    def read(self, n: int) -> bytes:
        while len(self._buf) < n and self._pull():
            pass
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def flush_input(self):
        self.inner.flush_input()
        self._buf[:] = self._later
        self._later.clear()
