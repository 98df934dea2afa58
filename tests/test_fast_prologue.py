"""ref.fast.prologue: the compiled decoding, flagging and seeding before the tile kernels.

The generator states the kernels seed themselves are compared with
``ref.prng.seed_state`` (NumPy) and ``seed_state_int`` (Python ints), for
seeds below and above 2**32, in parts and transposed; the decoded operands
with ``ref.fast.plan.decode_operand``; and through ``ref.matmul`` (the path
users take) the returned states with ``ref.chain.matmul_reference``'s, on
one and several threads, transposed, with tiles that fall back to the int64
kernel, and in a forked child of a process whose worker pool is running.
"""

from __future__ import annotations

import multiprocessing
import warnings

import numpy as np
import pytest

pytest.importorskip("numba")

import ref  # noqa: E402
from ref import fast, prng  # noqa: E402
from ref.backend import NumpyOps  # noqa: E402
from ref.chain import matmul_reference  # noqa: E402
from ref.codec import unpack  # noqa: E402
from ref.config import MacConfig  # noqa: E402
from ref.fast.plan import decode_operand, decode_table  # noqa: E402
from ref.fast.prologue import prologue, seed_hash  # noqa: E402

M32 = (1 << 32) - 1
SEEDS = [0, 1, 12345, M32, 2**32, 2**32 + 3, 2**40 + 7, 2**63, 2**64 - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_compiled_seed_hash_is_the_prng_rule(seed):
    rng = np.random.default_rng(seed % 1000)
    base, key = prng.seed_words(seed)
    pairs = [(0, 0), (M32, M32), (2**31, 1)] + rng.integers(0, 2**32, size=(40, 2)).tolist()
    for i, j in pairs:
        assert seed_hash(base, key, np.int64(i), np.int64(j)) == prng.seed_state_int(seed, i, j)


def _empty_operands(M, N, K=0):
    return (np.zeros((M, K), np.int64), np.zeros((K, N), np.int64), np.zeros((0, 4), np.int32),
            np.empty((M, K, 4), np.int32), np.empty((0, K, 4, 1), np.int32),
            np.empty(M, np.bool_), np.empty((0, K), np.bool_))


@pytest.mark.parametrize("seed", [7, 2**32 + 5, 2**64 - 1])
@pytest.mark.parametrize("swap", [False, True])
def test_prologue_seeds_every_pe_in_parts(seed, swap):
    """Three parts of a 37 x 300 grid seed exactly seed_state(seed, i, j), or (j, i)."""
    M, N = 37, 300
    G = np.zeros((M, N), np.int64)
    base, key = prng.seed_words(seed)
    for part in range(3):
        prologue(*_empty_operands(M, N), G, base, key, swap, part, 3)
    i, j = np.arange(M).reshape(-1, 1), np.arange(N).reshape(1, -1)
    want = prng.seed_state(NumpyOps(), seed, j.T, i.T).T if swap else \
        prng.seed_state(NumpyOps(), seed, i, j)
    np.testing.assert_array_equal(G, np.broadcast_to(want, (M, N)))


@pytest.mark.parametrize("fmt", ["e5m2", "e4m3:fn", "e3m2:nosub", "fp16"])
def test_prologue_decodes_and_flags(fmt):
    """Parts decode A and B (B cut into column tiles, padded with +0) as decode_operand does,
    and flag A rows / tile rows of B that hold a NaN or an infinity."""
    f = ref.parse_format(fmt)
    rng = np.random.default_rng(5)
    M, K, N, jb = 9, 11, 70, 32
    A = rng.integers(0, f.num_codes, size=(M, K))
    B = rng.integers(0, f.num_codes, size=(K, N))
    A[2] = A[4] = 0  # rows without specials, for the flags' False side
    B[:, 32:64] = 1
    nJ = -(-N // jb)
    Adec = np.zeros((M, K, 4), np.int32)
    Bt = np.zeros((nJ, K, 4, jb), np.int32)
    rowbad = np.zeros(M, np.bool_)
    badk = np.zeros((nJ, K), np.bool_)
    G = np.zeros((0, 0), np.int64)
    for part in range(2):
        prologue(A, np.asfortranarray(B), decode_table(f), Adec, Bt, rowbad, badk, G, 0, 0,
                 False, part, 2)
    np.testing.assert_array_equal(Adec, decode_operand(A, f))
    Bp = np.zeros((K, nJ * jb), np.int64)
    Bp[:, :N] = B
    want = decode_operand(Bp, f).reshape(K, nJ, jb, 4).transpose(1, 0, 3, 2)
    np.testing.assert_array_equal(Bt, want)
    bad_code = _special_codes(f)
    np.testing.assert_array_equal(rowbad, bad_code[A].any(axis=1))
    np.testing.assert_array_equal(badk, bad_code[Bp].reshape(K, nJ, jb).any(axis=2).T)
    assert rowbad.any() and not rowbad[2] and not rowbad[4] and not badk[1].any()


def _special_codes(f):
    """Bool per code of ``f``: NaN or infinity (the reference's unpack)."""
    _, _, _, is_nan, is_inf = unpack(NumpyOps(), np.arange(f.num_codes), f)
    return np.asarray(is_nan | is_inf)


def check_states(A, B, cfg, **kw):
    """ref.matmul's codes and returned generator states equal the reference's."""
    z, g = ref.matmul(A, B, cfg, return_state=True, backend="fast", **kw)
    zr, gr = matmul_reference(A, B, cfg, return_state=True, **kw)
    np.testing.assert_array_equal(z, zr)
    np.testing.assert_array_equal(g, gr)
    return g


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(3, 0, 5), (7, 13, 300), (300, 9, 8)], ids=str)
def test_matmul_states_from_kernel_seeding(seed, shape):
    """Through ref.matmul: K = 0 (the seeds themselves), two column tiles, transposed."""
    rng = np.random.default_rng(seed % 997)
    cfg = MacConfig("e5m2", "e6m5", "sr_eager", 4)
    M, K, N = shape
    A = rng.integers(0, 0x7B, size=(M, K))
    B = rng.integers(0, 0x7B, size=(K, N))
    g = check_states(A, B, cfg, seed=seed)
    assert fast.LAST_RUN["transposed"] == (N < fast.JB and M > N)
    if K == 0:
        want = prng.seed_state(NumpyOps(), seed, np.arange(M)[:, None], np.arange(N)[None, :])
        np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("nthreads", [2, 3])
@pytest.mark.parametrize("spec", ["e5m2:e6m5:sr_eager:4", "e4m3:fp16:sr_lazy:6",
                                  "e5m2:fp32:sr_eager:5"])
def test_kernel_seeding_on_threads_with_fallback_tiles(monkeypatch, nthreads, spec):
    """Several threads; a NaN in an A row and a special code in a B column tile (those tiles
    run in the int64 kernel, from the states the prologue seeded); and a configuration that
    runs wide only (FP32 accumulators)."""
    monkeypatch.setattr(fast, "THREADS", nthreads)
    monkeypatch.setattr(fast, "MIN_PARALLEL_MACS", 0)
    cfg = ref.parse_mac(spec)
    rng = np.random.default_rng(3)
    A = rng.integers(0, 0x38, size=(11, 17)) | (rng.integers(0, 2, size=(11, 17)) << 7)
    B = rng.integers(0, 0x38, size=(17, 600)) | (rng.integers(0, 2, size=(17, 600)) << 7)
    specials = np.flatnonzero(_special_codes(cfg.in_fmt))
    A[3, 4] = specials[0]
    B[5, 400] = specials[-1]
    for seed in (11, 2**32 + 11):
        check_states(A, B, cfg, seed=seed)
    if fast.uses_narrow(cfg):
        assert fast.LAST_RUN["wide_tiles"] > 0 and fast.LAST_RUN["narrow_tiles"] > 0
    else:
        assert fast.LAST_RUN["narrow_tiles"] == 0


def test_wide_input_format_without_table(monkeypatch):
    """Inputs of more than 16 bits are decoded before the prologue (no table); the kernels
    still seed the states, on several threads."""
    monkeypatch.setattr(fast, "THREADS", 2)
    monkeypatch.setattr(fast, "MIN_PARALLEL_MACS", 0)
    cfg = MacConfig("fp32", "fp32", "sr_lazy", 8)
    rng = np.random.default_rng(8)
    A = ref.encode(rng.standard_normal((6, 10)).astype(np.float32), cfg.in_fmt)
    B = ref.encode(rng.standard_normal((10, 270)).astype(np.float32), cfg.in_fmt)
    check_states(np.asarray(A), np.asarray(B), cfg, seed=2**33 + 1)
    check_states(np.asarray(A).T.copy().T, np.asarray(B)[:, ::-1], cfg, seed=4)


def _child_matmul(queue):
    cfg = MacConfig("e5m2", "e6m5", "sr_eager", 4)
    rng = np.random.default_rng(1)
    A = rng.integers(0, 0x7B, size=(40, 30))
    B = rng.integers(0, 0x7B, size=(30, 300))
    z = ref.matmul(A, B, cfg, seed=9)
    queue.put(bool((np.asarray(z) == matmul_reference(A, B, cfg, seed=9)).all()))


def test_forked_child_gets_a_new_pool(monkeypatch):
    """A child forked after the worker threads started (a DataLoader worker) runs on its own
    pool instead of waiting for threads that do not exist in it."""
    monkeypatch.setattr(fast, "THREADS", 2)
    monkeypatch.setattr(fast, "MIN_PARALLEL_MACS", 0)
    rng = np.random.default_rng(2)
    cfg = MacConfig("e5m2", "e6m5", "rn")
    ref.matmul(rng.integers(0, 0x7B, size=(8, 8)), rng.integers(0, 0x7B, size=(8, 300)), cfg)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        child = ctx.Process(target=_child_matmul, args=(queue,))
        child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in ref.matmul (a pool copied from the parent)")
    assert child.exitcode == 0 and queue.get(timeout=5)
