"""The fast emulated GEMM (ref.fast) gives the reference's codes, code for code.

Every comparison is between integer codes of ``ref.fast.matmul`` (or the
default ``ref.matmul``) and ``ref.chain.matmul_reference`` (the readable
specification) on the same arguments: random configurations (all roundings,
formats with and without subnormals, fn / none specials, saturation), odd and
empty shapes, non-contiguous inputs, given C, generator-state continuation,
explicit random words, NumPy and torch inputs. The CUDA cases run only where
a GPU is present.
"""

from __future__ import annotations

import numpy as np
import pytest
from codes import assert_codes_equal

import ref
from ref import fast
from ref.chain import dot_reference, matmul_reference
from ref.config import MacConfig

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

IN_FMTS = ["e5m2", "e4m3", "e3m2", "e5m2:nosub", "e4m3:nosub", "e2m3:fn", "e3m1:none", "e4m4",
           "fp16", "bf16:nosub", "fp32"]
ACC_FMTS = ["e6m5", "fp16", "bf16", "e6m5:nosub", "e6m5:sat", "e5m4:fn", "e5m4:none:nosub",
            "e4m3:fn:sat", "e8m12", "fp32"]
ROUNDINGS = ["rn", "rz", "sr_lazy", "sr_eager"]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_cfg(rng) -> MacConfig:
    rounding = ROUNDINGS[rng.integers(len(ROUNDINGS))]
    rbits = int(rng.integers(1, 13)) if rounding.startswith("sr") else None
    return MacConfig(IN_FMTS[rng.integers(len(IN_FMTS))], ACC_FMTS[rng.integers(len(ACC_FMTS))],
                     rounding, rbits)


def random_codes(rng, fmt, shape, special_rate=0.03):
    """Codes of ``fmt``: mostly finite magnitudes below max, some NaN / inf / max / zero codes."""
    fmt = ref.parse_format(fmt)
    codes = rng.integers(0, fmt.max_code + 1, size=shape) | (
        rng.integers(0, 2, size=shape) << (fmt.width - 1))
    specials = rng.integers(0, fmt.num_codes, size=shape)  # anything, NaN and inf included
    pick = rng.random(shape) < special_rate
    return np.where(pick, specials, codes).astype(np.int64)


def check(A, B, cfg, **kw):
    """fast == reference (codes, and generator states when returned). The compiled path for
    where the arrays live: ``ref.fast`` on the CPU, ``ref.fast.device`` on a GPU."""
    got = ref.matmul(A, B, cfg, backend="fast", **kw)
    want = matmul_reference(A, B, cfg, **kw)
    if kw.get("return_state"):
        got, gs = got
        want, ws = want
        if ws is None:
            assert gs is None
        else:
            np.testing.assert_array_equal(np.asarray(gs.cpu() if hasattr(gs, "cpu") else gs),
                                          np.asarray(ws.cpu() if hasattr(ws, "cpu") else ws))
    assert type(got) is type(want)
    assert tuple(got.shape) == tuple(want.shape)
    assert_codes_equal(got.cpu() if hasattr(got, "cpu") else got,
                       want.cpu() if hasattr(want, "cpu") else want, cfg.spec())
    return got


@pytest.mark.parametrize("case", range(24))
def test_random_configs_and_shapes(case):
    rng = np.random.default_rng(1000 + case)
    cfg = random_cfg(rng)
    M, K, N = (int(x) for x in rng.integers(1, 12, size=3))
    A = random_codes(rng, cfg.in_fmt, (M, K))
    B = random_codes(rng, cfg.in_fmt, (K, N))
    C = random_codes(rng, cfg.acc_fmt, (M, N)) if case % 2 else None
    check(A, B, cfg, C=C, seed=int(rng.integers(0, 2**32)))


@pytest.mark.parametrize("spec", [
    "fp32", "bf16:fp32:sr_eager:8", "fp16:fp32:rz", "e5m2:e5m2:rn", "e4m3:e4m3:sr_lazy:2",
    "e4m3:e6m5:nosub:sr_eager:30", "e5m2:e6m5:sr_lazy:1",
    MacConfig("e5m2", ref.FloatFormat(4, 0, specials="fn"), "sr_eager", 3),
    MacConfig("e5m2", ref.FloatFormat(3, 0, specials="none", subnormals=False), "rn"),
    MacConfig("e4m3", ref.FloatFormat(6, 5, bias=20, saturate=True), "sr_lazy", 5),
    MacConfig(ref.FloatFormat(5, 2, bias=-3), ref.FloatFormat(7, 5, bias=90), "sr_eager", 4),
    MacConfig(ref.FloatFormat(5, 2, bias=1 << 29), "e6m5", "rn")])  # the largest bias (ref.formats.MAX_BIAS)
def test_named_configs(spec):
    """Wide inputs, accumulators narrower than the product, 0-bit mantissas, odd bias, extreme r."""
    cfg = ref.parse_mac(spec)
    rng = np.random.default_rng(len(cfg.spec()))
    A = random_codes(rng, cfg.in_fmt, (9, 17))
    B = random_codes(rng, cfg.in_fmt, (17, 10))
    C = random_codes(rng, cfg.acc_fmt, (9, 10))
    check(A, B, cfg, C=C, seed=21, return_state=True)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("fmts", [("e5m2", "e6m5"), ("e4m3", "fp16"),
                                  ("e5m2:nosub", "e6m5:nosub:sat")])
def test_every_input_pair_one_mac(fmts, rounding):
    """K = 1: every (a, b) input-code pair once, against random accumulators and random words."""
    rng = np.random.default_rng(7)
    cfg = MacConfig(fmts[0], fmts[1], rounding, 4 if rounding.startswith("sr") else None)
    n = cfg.in_fmt.num_codes
    A = np.arange(n, dtype=np.int64).reshape(n, 1)
    B = np.arange(n, dtype=np.int64).reshape(1, n)
    C = random_codes(rng, cfg.acc_fmt, (n, n), special_rate=0.01)
    rand = rng.integers(0, 1 << cfg.rand_bits, size=(n, n, 1)) if cfg.is_sr else None
    check(A, B, cfg, C=C, rand=rand)


@pytest.mark.parametrize("shape", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0), (1, 1, 1),
                                   (1, 37, 1), (5, 1, 7), (3, 9, 131), (41, 47, 43)])
@pytest.mark.parametrize("rounding", ["rn", "sr_eager"])
def test_shapes(shape, rounding):
    """Empty, K = 1, odd, wider than a tile (131 > JB), and big enough for several threads."""
    rng = np.random.default_rng(sum(shape))
    M, K, N = shape
    cfg = MacConfig("e5m2", "e6m5", rounding, 3 if rounding != "rn" else None)
    A = random_codes(rng, cfg.in_fmt, (M, K))
    B = random_codes(rng, cfg.in_fmt, (K, N))
    C = random_codes(rng, cfg.acc_fmt, (M, N))
    check(A, B, cfg, C=C, seed=5, return_state=True)


@pytest.mark.parametrize("nthreads", [1, 3])
def test_thread_counts(monkeypatch, nthreads):
    """Uneven tile ranges over 3 threads (and 1) give the reference codes and states."""
    monkeypatch.setattr(fast, "THREADS", nthreads)
    monkeypatch.setattr(fast, "MIN_PARALLEL_MACS", 0)
    rng = np.random.default_rng(12)
    cfg = MacConfig("e4m3", "bf16", "sr_lazy", 7)
    A = random_codes(rng, cfg.in_fmt, (5, 6))
    B = random_codes(rng, cfg.in_fmt, (6, 300))  # 3 column tiles per row, 15 tiles
    check(A, B, cfg, seed=13, return_state=True)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(3)
    cfg = MacConfig("e4m3", "fp16", "sr_lazy", 5)
    A = random_codes(rng, cfg.in_fmt, (13, 22))[:, ::2]  # strided columns
    B = random_codes(rng, cfg.in_fmt, (9, 11)).T  # transposed: (11, 9)
    C = random_codes(rng, cfg.acc_fmt, (9, 13)).T[::-1]  # reversed rows of a transpose
    assert not A.flags.c_contiguous and not B.flags.c_contiguous
    check(A, B, cfg, C=C, seed=11)
    check(torch.from_numpy(A), torch.from_numpy(B), cfg, C=torch.from_numpy(C.copy()), seed=11)


def test_scalar_C_broadcasts():
    rng = np.random.default_rng(4)
    cfg = MacConfig("e5m2", "e6m5", "rz")
    check(random_codes(rng, "e5m2", (4, 6)), random_codes(rng, "e5m2", (6, 5)), cfg,
          C=np.int64(0x41))


@pytest.mark.parametrize("rounding", ["sr_lazy", "sr_eager"])
def test_state_continuation_equals_one_chain(rounding):
    """Two tiles over k, the second continuing the generators, equal one long chain."""
    rng = np.random.default_rng(5)
    cfg = MacConfig("e5m2", "e6m5", rounding, 4)
    A = random_codes(rng, cfg.in_fmt, (6, 20))
    B = random_codes(rng, cfg.in_fmt, (20, 7))
    z1, g1 = fast.matmul(A[:, :8], B[:8], cfg, seed=9, return_state=True)
    z2, g2 = fast.matmul(A[:, 8:], B[8:], cfg, C=z1, state=g1, return_state=True)
    check(A[:, 8:], B[8:], cfg, C=z1, state=g1, return_state=True)
    zw, gw = matmul_reference(A, B, cfg, seed=9, return_state=True)
    np.testing.assert_array_equal(z2, zw)
    np.testing.assert_array_equal(g2, gw)


@pytest.mark.parametrize("rounding", ["sr_lazy", "sr_eager"])
def test_explicit_rand(rounding):
    rng = np.random.default_rng(6)
    cfg = MacConfig("e4m3", "e6m5", rounding, 6)
    M, K, N = 5, 9, 7
    rand = rng.integers(0, 1 << cfg.rand_bits, size=(M, N, K))
    A = random_codes(rng, cfg.in_fmt, (M, K))
    B = random_codes(rng, cfg.in_fmt, (K, N))
    check(A, B, cfg, rand=rand)
    check(A, B, cfg, rand=rand[:, ::-1, :])  # non-contiguous words
    check(torch.from_numpy(A), torch.from_numpy(B), cfg, rand=torch.from_numpy(rand))


def test_seed_changes_sr_result_and_rand_is_used():
    """Guards against a fast path that ignores its random bits."""
    rng = np.random.default_rng(8)
    cfg = MacConfig("e5m2", "e6m5", "sr_eager", 2)
    A = random_codes(rng, cfg.in_fmt, (16, 32), special_rate=0)
    B = random_codes(rng, cfg.in_fmt, (32, 16), special_rate=0)
    a = fast.matmul(A, B, cfg, seed=1)
    b = fast.matmul(A, B, cfg, seed=2)
    assert (a != b).any()
    zeros = fast.matmul(A, B, cfg, rand=np.zeros((16, 16, 32), np.int64))
    ones = fast.matmul(A, B, cfg, rand=np.full((16, 16, 32), (1 << cfg.rand_bits) - 1))
    assert (zeros != ones).any()


def test_default_matmul_and_dot_dispatch():
    rng = np.random.default_rng(9)
    cfg = MacConfig("e5m2", "e6m5", "sr_eager", 4)
    A = random_codes(rng, cfg.in_fmt, (3, 10))
    B = random_codes(rng, cfg.in_fmt, (10, 4))
    np.testing.assert_array_equal(ref.matmul(A, B, cfg, seed=3),
                                  matmul_reference(A, B, cfg, seed=3))
    np.testing.assert_array_equal(ref.matmul(A, B, cfg, seed=3, backend="fast"),
                                  ref.matmul(A, B, cfg, seed=3, backend="reference"))
    a, b = A[0], B[:, 0]
    z = np.int64(0x3C1)
    assert int(ref.dot(a, b, cfg, z, seed=4)) == int(dot_reference(a, b, cfg, z, seed=4))
    with pytest.raises(ValueError, match="backend"):
        ref.matmul(A, B, cfg, backend="gpu")


def test_errors_are_the_reference_errors():
    cfg = MacConfig("e5m2", "e6m5", "rn")
    with pytest.raises(ValueError, match="shape mismatch"):
        fast.matmul(np.zeros((2, 3), np.int64), np.zeros((4, 2), np.int64), cfg)
    with pytest.raises(ValueError, match="out of range"):
        fast.matmul(np.full((2, 2), 256), np.zeros((2, 2), np.int64), cfg)
    with pytest.raises(ValueError, match="rand given"):
        fast.matmul(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), cfg,
                    rand=np.zeros((1, 1, 1), np.int64))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_inputs(device):
    rng = np.random.default_rng(10)
    cfg = MacConfig("e4m3", "fp16", "sr_eager", 4)
    A = torch.from_numpy(random_codes(rng, cfg.in_fmt, (7, 12))).to(device)
    B = torch.from_numpy(random_codes(rng, cfg.in_fmt, (12, 9))).to(device)
    C = torch.from_numpy(random_codes(rng, cfg.acc_fmt, (7, 9))).to(device)
    got = check(A, B, cfg, C=C, seed=2, return_state=True)
    assert got.device.type == device and got.dtype == torch.int64


@pytest.mark.parametrize("device", DEVICES)
def test_sr_matmul_uses_the_same_codes(device):
    """The float entry point equals decode(reference matmul(encode(A), encode(B)))."""
    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(6, 10, generator=g).to(device)
    Y = torch.randn(10, 5, generator=g).to(device)
    out = ref.sr_matmul(X, Y, cfg, seed=3)
    codes = matmul_reference(ref.encode(X, cfg.in_fmt), ref.encode(Y, cfg.in_fmt), cfg, seed=3)
    want = ref.decode(codes, cfg.acc_fmt).to(X.dtype)
    assert torch.equal(torch.nan_to_num(out, nan=7.0), torch.nan_to_num(want, nan=7.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", range(6))
def test_cuda_random_configs(case):
    rng = np.random.default_rng(2000 + case)
    cfg = random_cfg(rng)
    M, K, N = (int(x) for x in rng.integers(1, 40, size=3))
    A = torch.from_numpy(random_codes(rng, cfg.in_fmt, (M, K))).cuda()
    B = torch.from_numpy(random_codes(rng, cfg.in_fmt, (K, N))).cuda()
    got = ref.matmul(A, B, cfg, seed=case, backend="fast")
    want = matmul_reference(A.cpu(), B.cpu(), cfg, seed=case)
    assert got.device.type == "cuda"
    assert torch.equal(got.cpu(), want)


@pytest.mark.slow
@pytest.mark.parametrize("case", range(40))
def test_random_configs_large(case):
    """More configurations, wider r, bigger shapes (make regress)."""
    rng = np.random.default_rng(3000 + case)
    cfg = random_cfg(rng)
    if cfg.is_sr:
        cfg = cfg.replace(rbits=int(rng.integers(1, 21)))
    M, K, N = (int(x) for x in rng.integers(1, 150, size=3))
    A = random_codes(rng, cfg.in_fmt, (M, K), special_rate=0.002)
    B = random_codes(rng, cfg.in_fmt, (K, N), special_rate=0.002)
    C = random_codes(rng, cfg.acc_fmt, (M, N), special_rate=0.002)
    check(A, B, cfg, C=C, seed=case, return_state=True)


# ---- the int32 kernel (ref.fast.narrow) and its fallback to the int64 kernel ----------

NARROW_CFGS = [
    "e5m2:e6m5:rn", "e5m2:e6m5:rz", "e5m2:e6m5:sr_lazy:4", "e5m2:e6m5:sr_eager:4",
    "e4m3:fp16:rn", "e4m3:fp16:sr_eager:1", "e4m3:fp16:sr_lazy:16",  # r = 16: the widest fp16 window
    "e5m2:e6m5:sr_eager:21",  # man + r + 3 = TOP: the widest e6m5 window
    MacConfig("e5m2:nosub", "e6m5:nosub:sat", "sr_eager", 3),
    MacConfig("e4m3:nosub", "e5m4:fn", "rn"),
    MacConfig("e2m3:fn", "e5m4:none:nosub", "sr_lazy", 5),
    MacConfig("e3m1:none", "e4m3:fn:sat", "rz"),
    MacConfig("e4m4", "e8m12", "sr_eager", 7),
    MacConfig("e5m2", ref.FloatFormat(6, 5, bias=20), "rn"),
]
WIDE_CFGS = ["e5m2:e6m5:sr_eager:22", "e4m3:fp16:sr_lazy:17", "bf16:fp32:rn", "e5m14:e8m12:rz",
             "e4m3:fp32:sr_eager:4"]


def finite_codes(rng, fmt, shape, top=1.0):
    """Codes of ``fmt`` without NaN / inf, magnitudes up to ``top`` of the largest finite code."""
    fmt = ref.parse_format(fmt)
    hi = max(1, int(fmt.max_code * top))
    return (rng.integers(0, hi + 1, size=shape)
            | (rng.integers(0, 2, size=shape) << (fmt.width - 1))).astype(np.int64)


@pytest.mark.parametrize("spec", NARROW_CFGS, ids=str)
def test_narrow_path_is_taken_and_exact(spec):
    """Finite operands over the whole code range (subnormals, cancellation, flushes, signed
    zeros): the int32 kernel finishes most tiles and gives the reference codes and states."""
    cfg = ref.parse_mac(spec) if isinstance(spec, str) else spec
    from ref.fast.plan import fits_narrow

    assert fits_narrow(cfg) and fast.uses_narrow(cfg)
    rng = np.random.default_rng(len(cfg.spec()))
    M, K, N = 12, 40, 300  # two column tiles, the second one partial
    A = finite_codes(rng, cfg.in_fmt, (M, K), 0.8)
    B = finite_codes(rng, cfg.in_fmt, (K, N), 0.8)
    C = finite_codes(rng, cfg.acc_fmt, (M, N), 0.6)
    check(A, B, cfg, C=C, seed=17, return_state=True)
    assert fast.LAST_RUN["narrow_tiles"] > fast.LAST_RUN["wide_tiles"]
    if cfg.is_sr:
        rand = rng.integers(0, 1 << cfg.rand_bits, size=(M, N, K))
        check(A, B, cfg, rand=rand[:, ::-1, :])
        assert fast.LAST_RUN["narrow_tiles"] > 0


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("acc", ["e6m5:nosub", "e6m5"])
def test_narrow_tiny_values_flush_and_signed_zeros(acc, rounding):
    """Products straddling 2**emin (flush to zero without subnormals, the subnormal grid with
    them), and many +-0 operands and accumulators (the sign of exact zero sums)."""
    cfg = MacConfig("e5m2", acc, rounding, 2 if rounding.startswith("sr") else None)
    rng = np.random.default_rng(22)
    M, K, N = 16, 6, 40  # M < N: not transposed
    pool = np.array([0x00, 0x80, 0x00, 0x80, 0x01, 0x81, 0x04, 0x86, 0x0B, 0x8C, 0x0F, 0x90],
                    np.int64)
    A = pool[rng.integers(0, pool.size, size=(M, K))]  # +-0, subnormals, values up to 2**-11
    B = pool[rng.integers(0, pool.size, size=(K, N))]
    C = np.where(rng.random((M, N)) < 0.5, 0x800, 0x000).astype(np.int64)  # -0 or +0
    got = check(A, B, cfg, C=C, seed=23)
    # 40 columns, 16 rows: no transposition, one tile per row
    assert fast.LAST_RUN == {"narrow_tiles": M, "wide_tiles": 0, "transposed": False}
    assert (got == 0x800).any() and (got == 0).any()  # both zero signs occur


@pytest.mark.parametrize("spec", WIDE_CFGS)
def test_wide_configs_skip_the_narrow_kernel(spec):
    """Windows wider than 31 bits (large r, 15-bit input significands, 32-bit codes): int64 only."""
    cfg = ref.parse_mac(spec)
    assert not fast.uses_narrow(cfg)
    rng = np.random.default_rng(len(spec))
    A = finite_codes(rng, cfg.in_fmt, (5, 30), 0.8)
    B = finite_codes(rng, cfg.in_fmt, (30, 7), 0.8)
    check(A, B, cfg, seed=4, return_state=True)
    assert fast.LAST_RUN == {"narrow_tiles": 0, "wide_tiles": 5, "transposed": False}


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_narrow_tiles_fall_back(rounding):
    """NaN in an A row, inf in a B column tile, NaN / inf in C, and a chain that overflows:
    those tiles rerun in the int64 kernel from their initial accumulators and states."""
    cfg = MacConfig("e5m2", "e6m5", rounding, 3 if rounding.startswith("sr") else None)
    rng = np.random.default_rng(20)
    M, K, N = 8, 24, 600  # 3 column tiles per row: 24 tiles
    A = finite_codes(rng, "e5m2", (M, K), 0.5)
    B = finite_codes(rng, "e5m2", (K, N), 0.5)
    C = finite_codes(rng, "e6m5", (M, N), 0.5)
    A[1, 5] = 0x7E  # NaN: row 1
    B[7, 300] = 0xFC  # -inf: column tile 1
    C[3, 10] = 0x7E0  # +inf accumulator: tile (3, 0)
    C[4, 599] = 0xFFF  # NaN accumulator: tile (4, 2)
    A[6, :] = 0x7B  # 57344: row 6 overflows e6m5 within a few MACs (largest finite ~ 8.5e9)
    B[:, :256] = 0x7B
    check(A, B, cfg, C=C, seed=8, return_state=cfg.is_sr)
    # row 1, column tile 1, tiles (3, 0), (4, 2), (6, 0): 3 + 7 + 1 + 1 + 1 = 13 wide tiles
    assert fast.LAST_RUN == {"narrow_tiles": 11, "wide_tiles": 13, "transposed": False}


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_top_binade_runs_wide(rounding):
    """A chain whose result reaches the accumulator's top binade may overflow there: its tile
    runs in the int64 kernel (which owns the overflow rules), overflowing or not."""
    cfg = MacConfig("e5m2", "e6m5", rounding, 3 if rounding.startswith("sr") else None)
    rng = np.random.default_rng(24)
    A = finite_codes(rng, "e5m2", (4, 5), 0.5)
    B = finite_codes(rng, "e5m2", (5, 300), 0.5)
    C = finite_codes(rng, "e6m5", (4, 300), 0.5)
    C[1, 3] = 0x7C0  # 2**31: the top binade of E6M5, finite
    C[2, 299] = 0x7DF  # the largest finite value: the chain may overflow
    check(A, B, cfg, C=C, seed=6)
    assert fast.LAST_RUN == {"narrow_tiles": 6, "wide_tiles": 2, "transposed": False}


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_few_columns_run_transposed(rounding):
    """Many rows, few columns (a convolution's GEMM): the kernels run C^T = B^T A^T, with each
    PE's generator state, explicit words and initial accumulator moved along: same codes."""
    cfg = MacConfig("e5m2", "e6m5", rounding, 3 if rounding.startswith("sr") else None)
    rng = np.random.default_rng(23)
    M, K, N = 300, 9, 8
    A = random_codes(rng, cfg.in_fmt, (M, K), special_rate=0.01)
    B = random_codes(rng, cfg.in_fmt, (K, N), special_rate=0.01)
    C = random_codes(rng, cfg.acc_fmt, (M, N), special_rate=0.01)
    check(A, B, cfg, C=C, seed=3, return_state=True)
    assert fast.LAST_RUN["transposed"] and fast.LAST_RUN["narrow_tiles"] > 0
    if cfg.is_sr:
        rand = rng.integers(0, 1 << cfg.rand_bits, size=(M, N, K))
        check(A, B, cfg, C=C, rand=rand)
        state = rng.integers(1, 2**32, size=(M, N))
        check(A, B, cfg, C=C, state=state, return_state=True)
        check(torch.from_numpy(A), torch.from_numpy(B), cfg, C=torch.from_numpy(C),
              state=torch.from_numpy(state), return_state=True)


def test_narrow_equals_wide_kernel(monkeypatch):
    """The two kernels agree code for code on mixed data (NARROW off: the int64 kernel only)."""
    rng = np.random.default_rng(21)
    for spec in ["e5m2:e6m5:sr_eager:4", "e4m3:fp16:rn"]:
        cfg = ref.parse_mac(spec)
        A = random_codes(rng, cfg.in_fmt, (6, 50), special_rate=0.002)
        B = finite_codes(rng, cfg.in_fmt, (50, 260), 0.8)  # below the top binade
        C = random_codes(rng, cfg.acc_fmt, (6, 260), special_rate=0.002)
        z1, g1 = fast.matmul(A, B, cfg, C=C, seed=2, return_state=True)
        assert fast.LAST_RUN["narrow_tiles"] > 0
        monkeypatch.setattr(fast, "NARROW", False)
        z2, g2 = fast.matmul(A, B, cfg, C=C, seed=2, return_state=True)
        monkeypatch.setattr(fast, "NARROW", True)
        assert fast.LAST_RUN["narrow_tiles"] == 0
        np.testing.assert_array_equal(z1, z2)
        if g1 is not None:
            np.testing.assert_array_equal(g1, g2)
