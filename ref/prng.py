"""The pseudo-random generator shared by the golden model and the hardware.

One generator per processing element (PE): a 32-bit **xorshift** register
(Marsaglia's xorshift32, shifts 13, 17, 5). It costs 32 flip-flops and a
couple of XOR gates per bit in FPGA logic, steps once per cycle, and is exact
to emulate with int64 arrays on NumPy and PyTorch.

Rules (contract section 4; implemented identically in ``hwgen/``):

* **Seeding.** PE ``(i, j)`` of a run with base seed ``seed`` starts from
  ``seed_state(seed, i, j)``: a 32-bit integer hash of the three numbers,
  forced non-zero (xorshift never leaves 0). A seed is any integer in
  ``0 .. 2**64 - 1`` (:func:`check_seed`); below ``2**32`` the rule is the one
  the hardware was built with; the high word of a larger seed goes through
  one more round of the mix, so ``2**32 + s`` never reproduces seed ``s``.
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
    "MAX_SEED",
    "check_seed",
    "check_states",
    "seed_state",
    "seed_state_int",
    "seed_words",
    "seed_hash",
    "step",
    "step_int",
    "Xorshift32",
]

STATE_BITS = 32
MASK32 = (1 << 32) - 1
#: Seeds are integers in 0 .. MAX_SEED.
MAX_SEED = (1 << 64) - 1

# Odd 32-bit multipliers of the seed hash (golden-ratio and murmur3-style constants).
_K_SEED = 0x9E3779B1
_K_I = 0x85EBCA77
_K_J = 0xC2B2AE3D
_M1 = 0x7FEB352D
_M2 = 0x846CA68B
_NONZERO = 0x6D2B79F5  # replaces a zero hash


def _mix(h):
    """The 32-bit avalanche mix (a bijection of 32-bit words, 0 -> 0).

    Plain operators only, so one definition serves Python ints, int64 NumPy /
    torch arrays (a product of two 32-bit values wraps modulo 2**64, which
    keeps its low 32 bits exact) and the compiled kernels (``ref.fast`` binds
    it to numba).
    """
    h = h ^ (h >> 16)
    h = (h * _M1) & MASK32
    h = h ^ (h >> 15)
    h = (h * _M2) & MASK32
    return h ^ (h >> 16)


def seed_hash(base, key, i, j):
    """The seeding rule on the seed's words (:func:`seed_words`) and ``i``, ``j`` in 0..2**32-1.

    Plain operators only, like :func:`_mix`: Python ints, int64 arrays (``i``,
    ``j`` broadcast; not NumPy scalars, whose wrapping multiply warns) and
    numba (:mod:`ref.fast.prologue` compiles this source). A zero hash becomes
    ``0x6D2B79F5`` (xorshift never leaves 0).
    """
    h = _mix((base + i * _K_I + j * _K_J) & MASK32)
    if key:
        h = _mix(h ^ key)
    return h + (h == 0) * _NONZERO


def check_seed(seed) -> int:
    """``seed`` as a Python int in ``0 .. 2**64 - 1``; ValueError (one line) otherwise.

    Bools, floats and negative numbers are refused rather than reduced, so two
    different seeds never silently share a stream.
    """
    if isinstance(seed, bool) or type(seed).__name__ in ("bool", "bool_"):
        raise ValueError(f"seed must be an integer in 0..2**64-1, got the bool {seed!r}")
    try:
        s = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed must be an integer in 0..2**64-1, got {seed!r}") from None
    if not 0 <= s <= MAX_SEED:
        raise ValueError(f"seed {s} is out of range: seeds are integers in 0..2**64-1")
    return s


def seed_words(seed) -> tuple[int, int]:
    """``(base, key)``: the seed's low word times ``K_SEED`` mod 2**32, and the mix of its
    high word (0 below 2**32); checked by :func:`check_seed`. :func:`seed_hash` takes them."""
    s = check_seed(seed)
    hi = s >> 32
    return ((s & MASK32) * _K_SEED) & MASK32, (_mix(hi) if hi else 0)


def seed_state(ops, seed: int, i, j):
    """Initial state of PE (i, j) for base seed ``seed`` (int64 arrays i, j broadcast).

    ``h = mix((lo * K_SEED + i * K_I + j * K_J) mod 2**32)`` with ``lo`` the
    seed's low 32 bits; for a seed of ``2**32`` or more, ``h = mix(h ^
    mix(hi))`` with ``hi`` its high 32 bits; a zero ``h`` becomes
    ``0x6D2B79F5``. ``i`` and ``j`` are reduced mod ``2**32``.
    """
    base, key = seed_words(seed)  # Python ints: no overflow
    i, j = ops.asint(i) & MASK32, ops.asint(j) & MASK32
    if not (len(i.shape) or len(j.shape)):  # NumPy scalars would warn on the wrapping multiply
        return ops.asint(seed_hash(base, key, int(i), int(j)))
    i, j = (x if len(x.shape) else ops.reshape(x, (1,)) for x in (i, j))
    return seed_hash(base, key, i, j)


def seed_state_int(seed: int, i: int = 0, j: int = 0) -> int:
    """Scalar :func:`seed_state` in plain Python integers (used by ``hwgen/``)."""
    base, key = seed_words(seed)
    return seed_hash(base, key, operator.index(i) & MASK32, operator.index(j) & MASK32)


def check_states(ops, state, shape, what: str = "state"):
    """Generator states as an int64 array of ``shape``: integers in ``1 .. 2**32 - 1``.

    A zero state is refused: xorshift maps 0 to 0, so every random word would
    be 0 (a biased rounding with no error).
    """
    from .checks import integer_array

    st = integer_array(ops, state, what)
    if tuple(st.shape) != tuple(shape):
        raise ValueError(f"{what} must have shape {tuple(shape)}, got {tuple(st.shape)}")
    n = st.numel() if hasattr(st, "numel") else st.size
    if n:
        lo, hi = int(st.min()), int(st.max())
        if lo <= 0 or hi > MASK32:
            bad = lo if lo <= 0 else hi
            why = " (xorshift never leaves 0)" if bad == 0 else ""
            raise ValueError(
                f"{what} holds {bad}: xorshift32 states are integers in 1..2**32-1{why}; "
                "pass states returned by return_state=True, or a seed"
            )
    return st


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
        if isinstance(state, bool):
            raise ValueError(f"xorshift32 state must be an integer in 1..2**32-1, got the bool {state!r}")
        self.state = seed_state_int(seed, i, j) if state is None else operator.index(state)
        if not 0 < self.state <= MASK32:
            raise ValueError(f"xorshift32 state must be in 1..2**32-1, got {self.state}")

    def next_word(self) -> int:
        self.state = step_int(self.state)
        return self.state

    def next_bits(self, nbits: int) -> int:
        """The low ``nbits`` bits of the next word (the MAC's random input)."""
        return self.next_word() & ((1 << nbits) - 1)
