"""MAC chains (contract section 4): matmul / dot against an explicit loop of ``ref.mac``.

The loop here is the contract written out: output (i, j) is the chain
``z <- mac(z, A[i,k], B[k,j])`` for k = 0..K-1, and its k-th MAC takes the
low ``cfg.rand_bits`` bits of the k-th word of ``Xorshift32(seed, i, j)``.
"""

import inspect

import numpy as np
import pytest
import torch

import ref
from ref import E4M3, E5M2, E6M5, FP16, MacConfig
from ref.prng import Xorshift32

CONFIGS = [
    MacConfig(E5M2, E6M5, "rn"),
    MacConfig(E5M2, E6M5, "rz"),
    MacConfig(E5M2, E6M5, "sr_lazy", 3),
    MacConfig(E5M2, E6M5, "sr_eager", 3),
    MacConfig(E4M3, FP16, "sr_eager", 8),
    MacConfig("e5m2:nosub", "e6m5:nosub:sat", "sr_lazy", 2),
    MacConfig(E4M3, "e5m4:fn", "sr_eager", 1),
]
IDS = [c.spec() for c in CONFIGS]

# matmul's implementations: the default entry point and, where ref has one,
# the readable reference path.
BACKENDS = [None]
if "backend" in inspect.signature(ref.matmul).parameters:
    BACKENDS = ["auto", "reference"]


def _matmul(*args, backend=None, **kw):
    if backend is not None:
        kw["backend"] = backend
    return ref.matmul(*args, **kw)


def operand_codes(fmt, shape, rng, spread=4.0):
    """Mostly 'realistic' finite codes (normal values around 1), some random codes of any kind."""
    x = rng.normal(0.0, 1.0, shape) * np.exp2(rng.uniform(-spread, spread, shape))
    codes = ref.encode(x, fmt, "rn")
    wild = rng.integers(0, fmt.num_codes, shape)
    return np.where(rng.random(shape) < 0.1, wild, codes)


def loop_matmul(A, B, cfg, C, seed):
    M, K = A.shape
    N = B.shape[1]
    out = np.zeros((M, N), dtype=np.int64)
    for i in range(M):
        for j in range(N):
            g = Xorshift32(seed, i, j)
            z = np.int64(C[i, j])
            for k in range(K):
                if cfg.is_sr:
                    z = ref.mac(z, A[i, k], B[k, j], cfg, rand=g.next_bits(cfg.rand_bits))
                else:
                    z = ref.mac(z, A[i, k], B[k, j], cfg)
            out[i, j] = z
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_matmul_equals_loop_of_mac(cfg, backend):
    rng = np.random.default_rng(len(cfg.spec()))
    M, K, N = 3, 7, 4
    A = operand_codes(cfg.in_fmt, (M, K), rng)
    B = operand_codes(cfg.in_fmt, (K, N), rng)
    C = ref.encode(rng.normal(0, 4, (M, N)), cfg.acc_fmt, "rn")
    seed = 1234
    got = _matmul(A, B, cfg, C, seed=seed, backend=backend)
    assert np.array_equal(got, loop_matmul(A, B, cfg, C, seed))


@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul_with_explicit_rand_equals_seeded(backend):
    cfg = MacConfig(E5M2, E6M5, "sr_eager", 4)
    rng = np.random.default_rng(11)
    M, K, N = 4, 9, 3
    A = operand_codes(E5M2, (M, K), rng)
    B = operand_codes(E5M2, (K, N), rng)
    words = np.zeros((M, N, K), dtype=np.int64)
    for i in range(M):
        for j in range(N):
            g = Xorshift32(77, i, j)
            words[i, j] = [g.next_bits(cfg.rand_bits) for _ in range(K)]
    a = _matmul(A, B, cfg, seed=77, backend=backend)
    b = _matmul(A, B, cfg, rand=words, backend=backend)
    assert np.array_equal(a, b)
    # Another seed changes some result (the test can fail if the seed is ignored).
    c = _matmul(A, B, cfg, seed=78, backend=backend)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", CONFIGS[2:5], ids=IDS[2:5])
def test_tiles_with_state_continue_the_chain(cfg, backend):
    rng = np.random.default_rng(5)
    M, K, N = 3, 12, 5
    A = operand_codes(cfg.in_fmt, (M, K), rng)
    B = operand_codes(cfg.in_fmt, (K, N), rng)
    whole, st_whole = _matmul(A, B, cfg, seed=9, return_state=True, backend=backend)
    z, st = None, None
    for k0, k1 in [(0, 5), (5, 6), (6, 12)]:
        kw = {"seed": 9} if st is None else {"state": st}
        z, st = _matmul(A[:, k0:k1], B[k0:k1], cfg, z, return_state=True, backend=backend, **kw)
    assert np.array_equal(z, whole)
    assert np.array_equal(st, st_whole)
    # The returned state is the seed state stepped K times.
    for i, j in [(0, 0), (2, 4), (1, 3)]:
        g = Xorshift32(9, i, j)
        for _ in range(K):
            g.next_word()
        assert st[i, j] == g.state


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", CONFIGS[:4], ids=IDS[:4])
def test_k_zero_returns_c(cfg, backend):
    rng = np.random.default_rng(1)
    C = rng.integers(0, cfg.acc_fmt.num_codes, (3, 2))
    A = np.zeros((3, 0), dtype=np.int64)
    B = np.zeros((0, 2), dtype=np.int64)
    assert np.array_equal(_matmul(A, B, cfg, C, backend=backend), C)
    out = _matmul(A, B, cfg, backend=backend)
    assert out.shape == (3, 2) and (out == 0).all()  # +0 codes
    if cfg.is_sr:
        _, st = _matmul(A, B, cfg, C, seed=4, return_state=True, backend=backend)
        assert st[2, 1] == Xorshift32(4, 2, 1).state  # never stepped


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_dot_equals_1xK_matmul(cfg):
    rng = np.random.default_rng(2)
    K = 15
    a = operand_codes(cfg.in_fmt, (K,), rng)
    b = operand_codes(cfg.in_fmt, (K,), rng)
    z0 = ref.encode(3.0, cfg.acc_fmt)
    d = ref.dot(a, b, cfg, z0, seed=21)
    m = ref.matmul(a.reshape(1, K), b.reshape(K, 1), cfg, np.full((1, 1), z0), seed=21)
    assert np.ndim(d) == 0 and int(d) == int(m[0, 0])
    assert int(d) == int(
        loop_matmul(a.reshape(1, K), b.reshape(K, 1), cfg, np.full((1, 1), z0), 21)[0, 0]
    )
    if cfg.is_sr:
        g = Xorshift32(21, 0, 0)
        words = np.array([g.next_bits(cfg.rand_bits) for _ in range(K)])
        assert int(ref.dot(a, b, cfg, z0, rand=words)) == int(d)


def test_chain_is_sequential_not_a_sum():
    """Order matters: the chain rounds after every MAC (1 + 8 terms 2**-7, E5M2 -> E6M5)."""
    cfg = MacConfig(E5M2, E6M5, "rn")
    one = int(ref.encode(1.0, E5M2))
    tiny = int(ref.encode(2.0**-7, E5M2))
    # 1 first: each +2**-7 is a quarter ulp of E6M5 at 1 (ulp 2**-5) and rounds away.
    a = np.array([one] + [tiny] * 8)
    b = np.full(9, one)
    assert ref.decode(ref.dot(a, b, cfg), E6M5) == 1.0
    # Tiny terms first: they add exactly to 2**-4, then 1 + 2**-4 is exact.
    assert ref.decode(ref.dot(a[::-1].copy(), b, cfg), E6M5) == 1.0 + 2**-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend):
    cfg = MacConfig(E5M2, E6M5, "sr_lazy", 5)
    rng = np.random.default_rng(3)
    big_a = operand_codes(E5M2, (8, 14), rng)
    big_b = operand_codes(E5M2, (10, 12), rng)
    A = big_a[::2, 1::2]  # (4, 7), strided
    B = big_b[:7, ::3].T.T  # (7, 4), strided
    Bt = np.ascontiguousarray(big_b[:7, ::3].T).T  # Fortran-ordered view
    C = ref.encode(rng.normal(size=(6, 4)), E6M5)[::-1][1:5]
    expect = _matmul(
        np.ascontiguousarray(A),
        np.ascontiguousarray(B),
        cfg,
        np.ascontiguousarray(C),
        seed=3,
        backend=backend,
    )
    assert not A.flags.c_contiguous and not Bt.flags.c_contiguous
    assert np.array_equal(_matmul(A, B, cfg, C, seed=3, backend=backend), expect)
    assert np.array_equal(_matmul(A, Bt, cfg, C, seed=3, backend=backend), expect)
    tA = torch.from_numpy(big_a)[::2, 1::2]
    tB = torch.from_numpy(np.ascontiguousarray(big_b[:7, ::3].T)).t()
    assert not tA.is_contiguous() and not tB.is_contiguous()
    got = _matmul(tA, tB, cfg, torch.from_numpy(np.ascontiguousarray(C)), seed=3, backend=backend)
    assert isinstance(got, torch.Tensor) and np.array_equal(got.numpy(), expect)
    # Elementwise mac on strided operands.
    z = C.T
    r = ref.mac(z, A[:4, :4].T, B[:4, :4], cfg, seed=8)
    assert np.array_equal(
        r,
        ref.mac(
            np.ascontiguousarray(z),
            np.ascontiguousarray(A[:4, :4].T),
            np.ascontiguousarray(B[:4, :4]),
            cfg,
            seed=8,
        ),
    )


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_matmul_equals_loop_of_mac_larger(cfg):
    rng = np.random.default_rng(99)
    M, K, N = 6, 40, 5
    A = operand_codes(cfg.in_fmt, (M, K), rng)
    B = operand_codes(cfg.in_fmt, (K, N), rng)
    C = ref.encode(rng.normal(0, 4, (M, N)), cfg.acc_fmt, "rn")
    assert np.array_equal(ref.matmul(A, B, cfg, C, seed=5), loop_matmul(A, B, cfg, C, 5))
