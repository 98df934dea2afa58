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
    for seed in [0, 1, 12345, M32, 2**32, 2**40 + 7, 2**64 - 1]:
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


# ---- seeds: the hardware rule below 2**32, no aliasing up to 2**64 - 1 ----------


def old_rule_seed_state(seed: int, i: int, j: int) -> int:
    """The seeding rule the generated Verilog and the boards were built with (seed < 2**32).

    Written out from docs/design.md 7.2 with NumPy uint32 wrap-around
    arithmetic, independently of ref.prng: the hash, the avalanche mix, the
    zero replacement.
    """
    u = np.uint32
    with np.errstate(over="ignore"):
        h = u(seed) * u(0x9E3779B1) + u(i) * u(0x85EBCA77) + u(j) * u(0xC2B2AE3D)
        h ^= h >> u(16)
        h *= u(0x7FEB352D)
        h ^= h >> u(15)
        h *= u(0x846CA68B)
        h ^= h >> u(16)
    return int(h) or 0x6D2B79F5


def test_seeds_below_2_32_keep_the_hardware_rule():
    rng = np.random.default_rng(11)
    seeds = [0, 1, 3, 12345, 2**31, M32] + rng.integers(0, 2**32, 200).tolist()
    for seed in seeds:
        for i, j in [(0, 0), (1, 0), (0, 1), (7, 5), (127, 255)]:
            assert prng.seed_state_int(seed, i, j) == old_rule_seed_state(seed, i, j), (seed, i, j)
    # The numbers docs/design.md quotes.
    assert prng.seed_state_int(0) == 0x6D2B79F5 and prng.seed_state_int(1) == 0x6D523710
    ii, jj = np.arange(16).reshape(-1, 1), np.arange(16).reshape(1, -1)
    grid = np.broadcast_to(prng.seed_state(NumpyOps(), 77, ii, jj), (16, 16))
    assert grid.tolist() == [[old_rule_seed_state(77, a, b) for b in range(16)] for a in range(16)]


@pytest.mark.parametrize("low", [0, 3, M32])
def test_seeds_above_2_32_do_not_alias_their_low_word(low):
    """2**32 * k + low (k = 1, 2, 2**32 - 1) differs from seed low, and from each other,
    at every PE of a 32 x 32 grid (the extra mix round is a bijection keyed by k)."""
    ops = NumpyOps()
    ii, jj = np.arange(32).reshape(-1, 1), np.arange(32).reshape(1, -1)
    grids = [np.broadcast_to(prng.seed_state(ops, (k << 32) | low, ii, jj), (32, 32))
             for k in (0, 1, 2, M32)]
    for a in range(len(grids)):
        for b in range(a):
            assert not (grids[a] == grids[b]).any(), (a, b)
    assert (np.concatenate(grids) > 0).all()


def test_seed_2_32_plus_3_gives_another_stream():
    """The case of issue 17: seed=2**32+3 used to give the stream of seed=3."""
    import ref

    cfg = ref.parse_mac("e5m2:e6m5:sr_lazy:4")
    A = np.full((4, 64), 0x3D)  # 1.25: products 1.5625 need rounding in every MAC
    B = np.full((64, 4), 0x3D)
    assert not np.array_equal(ref.matmul(A, B, cfg, seed=3), ref.matmul(A, B, cfg, seed=2**32 + 3))
    big = ref.matmul(A, B, cfg, seed=2**64 - 1, backend="reference")
    assert np.array_equal(big, ref.matmul(A, B, cfg, seed=2**64 - 1))


@pytest.mark.parametrize("seed,needle", [(-1, "-1"), (2**64, str(2**64)), (True, "bool"),
                                         (1.0, "1.0"), ("3", "'3'"), (None, "None")])
def test_bad_seeds_refused(seed, needle):
    import ref

    cfg = ref.parse_mac("e5m2:e6m5:sr_lazy:4")
    calls = [
        lambda: prng.seed_state_int(seed),
        lambda: prng.Xorshift32(seed),
        lambda: ref.matmul(np.zeros((2, 2), int), np.zeros((2, 2), int), cfg, seed=seed),
        lambda: ref.encode([1.1], "e5m2", "sr", rbits=3, seed=seed),
        lambda: ref.mac([0], [1], [1], cfg, seed=seed),
    ]
    for call in calls[:3] if seed is None else calls:  # seed=None: a fresh seed in encode / mac
        with pytest.raises(ValueError) as exc:
            call()
        assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_numpy_integer_seeds_accepted():
    assert prng.seed_state_int(np.uint64(2**64 - 1)) == prng.seed_state_int(2**64 - 1)
    assert prng.seed_state_int(np.int32(5)) == prng.seed_state_int(5)


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


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_seed_state_of_scalars_and_mixed_shapes(backend):
    """Scalar i and j, one scalar and one vector, large and negative indices (reduced mod
    2**32): the scalar rule, and no overflow warning from a wrapping NumPy multiply."""
    import warnings

    ops = NumpyOps() if backend == "numpy" else TorchOps()
    as_list = (lambda x: np.asarray(x).tolist()) if backend == "numpy" else (lambda x: x.tolist())
    big = [0, 1, 2**31 - 1, 2**31, M32 - 1, M32]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in [0, 5, M32, 2**32 + 1, 2**64 - 1]:
            for i in big + [-1, -(2**31)]:
                assert as_list(prng.seed_state(ops, seed, i, M32)) == \
                    prng.seed_state_int(seed, i, M32)
            got = prng.seed_state(ops, seed, ops.asint(big), M32 - 2)
            assert as_list(got) == [prng.seed_state_int(seed, i, M32 - 2) for i in big]
            got = prng.seed_state(ops, seed, 2**31 + 3, ops.asint(big))
            assert as_list(got) == [prng.seed_state_int(seed, 2**31 + 3, j) for j in big]


def test_seed_hash_is_the_rule_and_never_zero():
    """seed_hash on seed_words is seed_state_int; a zero hash becomes 0x6D2B79F5."""
    assert prng.seed_hash(0, 0, 0, 0) == 0x6D2B79F5  # mix(0) = 0
    for seed, i, j in [(1, 2, 3), (2**40 + 9, 7, M32), (2**64 - 1, M32, 0)]:
        assert prng.seed_hash(*prng.seed_words(seed), i, j) == prng.seed_state_int(seed, i, j)
