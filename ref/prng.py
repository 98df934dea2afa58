"""The pseudo-random generator shared by the golden model and the hardware.

One generator per processing element (PE): a 32-bit **xorshift** register
(Marsaglia's xorshift32, shifts 13, 17, 5). It costs 32 flip-flops and a
couple of XOR gates per bit in FPGA logic, steps once per cycle, and is exact
to emulate with int64 arrays on NumPy and PyTorch.

Rules (contract section 4; implemented identically in ``hwgen/``):

* **Seeding.** PE ``(i, j)`` of a run with base seed ``seed`` starts from
  ``seed_state(seed, i, j)``: a 32-bit integer hash of the three numbers,
  forced non-zero (xorshift never leaves 0).
* **Stepping.** Before each MAC the PE performs, the state advances once:
  ``x ^= x << 13; x ^= x >> 17; x ^= x << 5`` (mod 2**32). Idle cycles never
  step it.
* **Bits.** The MAC's random word is the new state. ``R`` is its low ``r`` bits;
  for ``sr_eager``, ``B`` is the next 2 bits (bits ``r`` and ``r+1``). So a MAC
  uses bits ``[rand_bits-1 : 0]`` of the word, ``rand_bits = r`` (lazy) or
  ``r + 2`` (eager), and ``rand_bits <= 32``.

All vectorised functions take an ``ops`` namespace (:mod:`ref.backend`).
"""

from __future__ import annotations

import operator

__all__ = [
    "STATE_BITS",
    "MASK32",
    "seed_state",
    "seed_state_int",
    "step",
    "step_int",
    "Xorshift32",
]

STATE_BITS = 32
MASK32 = (1 << 32) - 1

# Odd 32-bit multipliers of the seed hash (golden-ratio and murmur3-style constants).
_K_SEED = 0x9E3779B1
_K_I = 0x85EBCA77
_K_J = 0xC2B2AE3D
_M1 = 0x7FEB352D
_M2 = 0x846CA68B
_NONZERO = 0x6D2B79F5  # replaces a zero hash


def _mul32(x, c: int):
    """(x * c) mod 2**32 for 0 <= x < 2**32 without int64 overflow (16-bit split)."""
    lo = (x * (c & 0xFFFF)) & MASK32
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & MASK32


def _mix(h):
    h = h ^ (h >> 16)
    h = _mul32(h, _M1)
    h = h ^ (h >> 15)
    h = _mul32(h, _M2)
    return h ^ (h >> 16)


def seed_state(ops, seed: int, i, j):
    """Initial state of PE (i, j) for base seed ``seed`` (int64 arrays i, j broadcast)."""
    s = operator.index(seed) & MASK32
    base = (s * _K_SEED) & MASK32  # a Python int: no overflow
    h = (base + _mul32(ops.asint(i) & MASK32, _K_I) + _mul32(ops.asint(j) & MASK32, _K_J)) & MASK32
    h = _mix(h)
    return ops.where(h == 0, _NONZERO, h)


def seed_state_int(seed: int, i: int = 0, j: int = 0) -> int:
    """Scalar :func:`seed_state` in plain Python integers (used by ``hwgen/``)."""
    h = ((operator.index(seed) & MASK32) * _K_SEED + (operator.index(i) & MASK32) * _K_I
         + (operator.index(j) & MASK32) * _K_J) & MASK32
    h ^= h >> 16
    h = (h * _M1) & MASK32
    h ^= h >> 15
    h = (h * _M2) & MASK32
    h ^= h >> 16
    return h or _NONZERO


def step(x):
    """Advance xorshift32 states (int64 arrays holding 32-bit values) once."""
    x = x ^ ((x << 13) & MASK32)
    x = x ^ (x >> 17)
    return x ^ ((x << 5) & MASK32)


def step_int(x: int) -> int:
    """Scalar :func:`step`."""
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


class Xorshift32:
    """Scalar generator of one PE, for test benches and documentation.

    >>> g = Xorshift32(seed=1, i=0, j=0)
    >>> word = g.next_word()    # the state after one step
    """

    def __init__(self, seed: int = 0, i: int = 0, j: int = 0, *, state: int | None = None):
        self.state = seed_state_int(seed, i, j) if state is None else operator.index(state)
        if not 0 < self.state <= MASK32:
            raise ValueError(f"xorshift32 state must be in 1..2**32-1, got {self.state}")

    def next_word(self) -> int:
        self.state = step_int(self.state)
        return self.state

    def next_bits(self, nbits: int) -> int:
        """The low ``nbits`` bits of the next word (the MAC's random input)."""
        return self.next_word() & ((1 << nbits) - 1)
