"""The per-PE xorshift32 generator (ref.prng, contract section 4).

The reference recurrence here is written independently with NumPy uint32
arithmetic (wrap-around shifts), the textbook form of Marsaglia's xorshift32
with shifts (13, 17, 5). The period is proven from the GF(2) matrix of one
step: it is invertible (so 0 is never reached from a non-zero state) and has
multiplicative order exactly 2**32 - 1 (a single cycle through every non-zero
state).
"""

import numpy as np
import pytest

from ref import prng
from ref.backend import NumpyOps, TorchOps

M32 = (1 << 32) - 1


def textbook_xorshift32(y: np.uint32, n: int) -> list[int]:
    """n outputs of Marsaglia's xor32: y ^= y<<13; y ^= y>>17; y ^= y<<5 (uint32 wrap-around)."""
    y = np.uint32(y)
    out = []
    for _ in range(n):
        y ^= np.uint32(y << np.uint32(13))
        y ^= np.uint32(y >> np.uint32(17))
        y ^= np.uint32(y << np.uint32(5))
        out.append(int(y))
    return out


def test_first_outputs_of_state_1_match_textbook():
    ref_words = textbook_xorshift32(np.uint32(1), 10)
    g = prng.Xorshift32(state=1)
    assert [g.next_word() for _ in range(10)] == ref_words
    # By hand: 1 -> 1 ^ (1<<13) = 0x2001; >>17 adds nothing; ^ (0x2001<<5) = 0x42021.
    assert ref_words[0] == 0x42021


def test_marsaglia_paper_seed():
    # Marsaglia (2003) seeds xor32 with y = 2463534242; compare 1000 steps.
    y = 2463534242
    g = prng.Xorshift32(state=y)
    assert [g.next_word() for _ in range(1000)] == textbook_xorshift32(np.uint32(y), 1000)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_vectorised_step_equals_scalar(backend):
    rng = np.random.default_rng(3)
    x = rng.integers(1, 2**32, 5000, dtype=np.int64)
    x = np.concatenate([x, [1, M32, 1 << 31, 0x80000001]])
    ops = NumpyOps() if backend == "numpy" else TorchOps()
    v = ops.asint(x)
    scalar = list(x)
    for _ in range(20):
        v = prng.step(v)
        scalar = [prng.step_int(int(s)) for s in scalar]
        got = np.asarray(v if backend == "numpy" else v.numpy())
        assert got.tolist() == scalar
        assert got.min() > 0 and got.max() <= M32


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_vectorised_seed_state_equals_scalar(backend):
    ops = NumpyOps() if backend == "numpy" else TorchOps()
    i = np.arange(40).reshape(40, 1)
    j = np.arange(33).reshape(1, 33)
    for seed in [0, 1, 12345, M32, -1, 2**40 + 7]:
        s = prng.seed_state(ops, seed, ops.asint(i), ops.asint(j))
        s = np.broadcast_to(np.asarray(s if backend == "numpy" else s.numpy()), (40, 33))
        expect = [[prng.seed_state_int(seed, a, b) for b in range(33)] for a in range(40)]
        assert s.tolist() == expect


def test_xorshift32_class_matches_seed_and_step():
    for seed, i, j in [(0, 0, 0), (7, 3, 5), (99, 127, 0), (2**31, 1, 1)]:
        g = prng.Xorshift32(seed, i, j)
        s = prng.seed_state_int(seed, i, j)
        assert g.state == s
        for _ in range(5):
            s = prng.step_int(s)
            assert g.next_word() == s
        h = prng.Xorshift32(seed, i, j)
        h.next_word()
        assert (
            prng.Xorshift32(seed, i, j).next_bits(6)
            == prng.step_int(prng.seed_state_int(seed, i, j)) & 63
        )


def test_seed_states_never_zero_and_distinct_per_pe():
    ops = NumpyOps()
    i = np.arange(128).reshape(128, 1)
    j = np.arange(128).reshape(1, 128)
    for seed in [0, 1, 42, M32]:
        s = np.broadcast_to(prng.seed_state(ops, seed, i, j), (128, 128))
        assert s.min() > 0 and s.max() <= M32
        # Different PEs start in different states, so their streams are disjoint
        # windows of the one 2**32-1 cycle (distinct first words too).
        assert np.unique(s).size == s.size
        w = prng.step(s)
        assert np.unique(w).size == w.size
        # ... and the low bits that feed R are not all equal either.
        assert np.unique(w & 0xF).size == 16


def test_different_seeds_give_different_states():
    st = [prng.seed_state_int(seed, 2, 3) for seed in range(2000)]
    assert len(set(st)) == len(st)


def test_zero_state_rejected():
    with pytest.raises(ValueError, match="got 0"):
        prng.Xorshift32(state=0)
    with pytest.raises(ValueError, match=str(1 << 32)):
        prng.Xorshift32(state=1 << 32)


# ---- period structure, proven over GF(2) -------------------------------------


def _step_matrix():
    """Columns: images of the 32 basis vectors under one step (the map is GF(2)-linear)."""
    return [prng.step_int(1 << b) for b in range(32)]


def _apply(cols, x):
    y = 0
    b = 0
    while x:
        if x & 1:
            y ^= cols[b]
        x >>= 1
        b += 1
    return y


def _compose(a, b):
    """Matrix of a(b(x))."""
    return [_apply(a, c) for c in b]


def _power(cols, n):
    result = [1 << b for b in range(32)]
    base = cols
    while n:
        if n & 1:
            result = _compose(base, result)
        base = _compose(base, base)
        n >>= 1
    return result


def test_step_is_linear():
    rng = np.random.default_rng(5)
    for x, y in rng.integers(0, 2**32, (200, 2)).tolist():
        assert prng.step_int(x ^ y) == prng.step_int(x) ^ prng.step_int(y)
    assert prng.step_int(0) == 0  # so 0 is a fixed point: it must be unreachable


def test_full_period_2_32_minus_1():
    cols = _step_matrix()
    identity = [1 << b for b in range(32)]
    n = M32  # 2**32 - 1 = 3 * 5 * 17 * 257 * 65537
    primes = [3, 5, 17, 257, 65537]
    assert 3 * 5 * 17 * 257 * 65537 == n
    assert _power(cols, n) == identity
    for q in primes:
        assert _power(cols, n // q) != identity
    # Order exactly 2**32-1 for the matrix means every non-zero state lies on
    # one cycle of that length (the characteristic polynomial is primitive),
    # so the state never returns to 0 and never repeats early.
    g = prng.Xorshift32(state=1)
    seen = {1}
    for _ in range(100000):
        w = g.next_word()
        assert w != 0 and w not in seen
        seen.add(w)
