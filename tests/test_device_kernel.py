"""The device kernels (ref.fast.device, Triton) give the reference's codes, code for code.

On a machine with a CUDA GPU these tests run the compiled kernels on the GPU.
Without one (CI) they run the *same kernels* in Triton's interpreter
(``TRITON_INTERPRET=1``, set below before the kernels are first imported) on
CPU tensors, where every integer operation is NumPy's exact one: so CI checks
the kernels' arithmetic, tiling, fallback and generator handling without a
GPU. The interpreter is slow (~40 ms per k step of a tile), so shapes are
small; ``make regress`` runs more configurations.

Every comparison is between integer codes (and generator states) of
``ref.fast.device.matmul`` and ``ref.chain.matmul_reference``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
CUDA = torch.cuda.is_available()
if not CUDA:
    # Before Triton is imported: it decorates its own library functions (tl.max ...) for the
    # interpreter or for the compiler at import time.
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton was imported before this module could select its interpreter",
                    allow_module_level=True)
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")

from codes import assert_codes_equal  # noqa: E402

import ref  # noqa: E402
from ref.chain import matmul_reference  # noqa: E402
from ref.config import MacConfig  # noqa: E402
from ref.fast import device  # noqa: E402
from ref.fast.plan import fits_narrow  # noqa: E402

DEV = "cuda" if CUDA else "cpu"
ROOT = Path(__file__).resolve().parents[1]

IN_FMTS = ["e5m2", "e4m3", "e3m2", "e5m2:nosub", "e4m3:nosub", "e2m3:fn", "e3m1:none", "e4m4",
           "fp16", "bf16:nosub", "fp32"]
ACC_FMTS = ["e6m5", "fp16", "bf16", "e6m5:nosub", "e6m5:sat", "e5m4:fn", "e5m4:none:nosub",
            "e4m3:fn:sat", "e8m12", "fp32"]
ROUNDINGS = ["rn", "rz", "sr_lazy", "sr_eager"]


@pytest.fixture(autouse=True)
def small_tiles(monkeypatch):
    """16 x 16 tiles: several tiles per product even at the small shapes used here."""
    monkeypatch.setattr(device, "BLOCK", (16, 16, 2))


def random_codes(rng, fmt, shape, special_rate=0.03):
    """Codes of ``fmt``: mostly finite magnitudes, some codes of any kind (NaN, inf, max)."""
    fmt = ref.parse_format(fmt)
    codes = rng.integers(0, fmt.max_code + 1, size=shape) | (
        rng.integers(0, 2, size=shape) << (fmt.width - 1))
    anything = rng.integers(0, fmt.num_codes, size=shape)
    return np.where(rng.random(shape) < special_rate, anything, codes).astype(np.int64)


def finite_codes(rng, fmt, shape, top=0.8):
    """Codes without NaN / inf, magnitudes up to ``top`` of the largest finite code."""
    fmt = ref.parse_format(fmt)
    hi = max(1, int(fmt.max_code * top))
    return (rng.integers(0, hi + 1, size=shape)
            | (rng.integers(0, 2, size=shape) << (fmt.width - 1))).astype(np.int64)


def on_dev(x):
    return None if x is None else torch.from_numpy(np.ascontiguousarray(x)).to(DEV)


def check(A, B, cfg, C=None, **kw):
    """device kernel == reference, codes and (when returned) generator states; returns the codes."""
    got = device.matmul(on_dev(A), on_dev(B), cfg, on_dev(C), return_state=True,
                        **{k: on_dev(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
    want = matmul_reference(A, B, cfg, C, return_state=True, **kw)
    (gz, gs), (wz, ws) = got, want
    assert gz.device.type == DEV and gz.dtype == torch.int64
    g = gz.cpu().numpy()
    assert_codes_equal(g, wz, cfg.spec(), "device", str(device.LAST_RUN))
    if ws is None:
        assert gs is None
    else:
        np.testing.assert_array_equal(gs.cpu().numpy(), np.asarray(ws))
    return g


def random_cfg(rng) -> MacConfig:
    rounding = ROUNDINGS[rng.integers(len(ROUNDINGS))]
    rbits = int(rng.integers(1, 13)) if rounding.startswith("sr") else None
    return MacConfig(IN_FMTS[rng.integers(len(IN_FMTS))], ACC_FMTS[rng.integers(len(ACC_FMTS))],
                     rounding, rbits)


def test_kernels_run_where_expected():
    """The tests exercise Triton: compiled on a GPU, interpreted (CPU tensors) otherwise."""
    assert device.available(on_dev(np.zeros((1, 1), np.int64)))
    assert device.interpreting() == (not CUDA)


@pytest.mark.parametrize("case", range(10))
def test_random_configs(case):
    """All roundings, subnormals on/off, ieee / fn / none specials, saturation, given C."""
    rng = np.random.default_rng(4000 + case)
    cfg = random_cfg(rng)
    M, K, N = (int(x) for x in rng.integers(1, 20, size=3))
    A = random_codes(rng, cfg.in_fmt, (M, K))
    B = random_codes(rng, cfg.in_fmt, (K, N))
    C = random_codes(rng, cfg.acc_fmt, (M, N)) if case % 2 else None
    check(A, B, cfg, C, seed=int(rng.integers(0, 2**32)))


NARROW_CFGS = [
    "e5m2:e6m5:rn", "e5m2:e6m5:rz", "e5m2:e6m5:sr_lazy:4", "e5m2:e6m5:sr_eager:4",
    "e4m3:fp16:sr_eager:1", "e4m3:fp16:sr_lazy:16",  # r = 16: the widest fp16 window
    "e5m2:e6m5:sr_eager:21",  # the widest e6m5 window
    MacConfig("e5m2:nosub", "e6m5:nosub:sat", "sr_eager", 3),
    MacConfig("e4m3:nosub", "e5m4:fn", "rn"),
    MacConfig("e2m3:fn", "e5m4:none:nosub", "sr_lazy", 5),
    MacConfig("e3m1:none", "e4m3:fn:sat", "rz"),
    MacConfig("e5m2", ref.FloatFormat(6, 5, bias=20), "rn"),
]


@pytest.mark.parametrize("spec", NARROW_CFGS, ids=str)
def test_narrow_kernel(spec):
    """Finite operands over the whole code range (subnormals, cancellation, flushes, signed
    zeros): the int32 kernel finishes most tiles, with the reference's codes and states."""
    cfg = ref.parse_mac(spec) if isinstance(spec, str) else spec
    assert fits_narrow(cfg)
    rng = np.random.default_rng(len(cfg.spec()))
    M, K, N = 18, 10, 20  # four tiles, three of them partial
    A = finite_codes(rng, cfg.in_fmt, (M, K))
    B = finite_codes(rng, cfg.in_fmt, (K, N))
    C = finite_codes(rng, cfg.acc_fmt, (M, N), 0.6)
    check(A, B, cfg, C, seed=17)
    assert device.LAST_RUN["narrow_tiles"] > device.LAST_RUN["wide_tiles"]


WIDE_CFGS = ["e5m2:e6m5:sr_eager:22", "e4m3:fp16:sr_lazy:17", "bf16:fp32:rn",
             "e5m14:e8m12:rz", "e4m3:e6m5:nosub:sr_eager:30", "fp16:fp32:sr_eager:8"]


@pytest.mark.parametrize("spec", WIDE_CFGS)
def test_wide_configs(spec):
    """Windows wider than 31 bits (large r, 15-bit significands, 32-bit codes): int64 kernel."""
    cfg = ref.parse_mac(spec)
    assert not fits_narrow(cfg)
    rng = np.random.default_rng(len(spec))
    A = random_codes(rng, cfg.in_fmt, (5, 9))
    B = random_codes(rng, cfg.in_fmt, (9, 17))
    C = random_codes(rng, cfg.acc_fmt, (5, 17))
    check(A, B, cfg, C, seed=4)
    assert device.LAST_RUN == {"narrow_tiles": 0, "wide_tiles": 2}


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_fallback_tiles(rounding):
    """NaN in an A row, inf in a B column, inf / NaN in C, a chain that overflows: those tiles
    rerun in the int64 kernel from their initial accumulators and generator states."""
    cfg = MacConfig("e5m2", "e6m5", rounding, 3 if rounding.startswith("sr") else None)
    rng = np.random.default_rng(20)
    M, K, N = 32, 6, 48  # 2 x 3 tiles of 16 x 16
    A = finite_codes(rng, "e5m2", (M, K), 0.5)
    B = finite_codes(rng, "e5m2", (K, N), 0.5)
    C = finite_codes(rng, "e6m5", (M, N), 0.5)
    A[1, 5] = 0x7E  # NaN: tiles (0, *)
    B[2, 40] = 0xFC  # -inf: tiles (*, 2)
    C[20, 3] = 0x7E0  # +inf accumulator: tile (1, 0)
    A[25, :] = 0x7B  # 57344: row 25 overflows e6m5 within a few MACs
    B[:, 16:32] = 0x7B  # ... in the columns of tile (1, 1)
    check(A, B, cfg, C, seed=8)
    # (0, 0), (0, 1), (0, 2), (1, 2) specials, (1, 0) inf in C, (1, 1) overflow: all six
    assert device.LAST_RUN == {"narrow_tiles": 0, "wide_tiles": 6}
    C[20, 3] = 0x3C0
    A[25, :] = 0x3C
    A[1, 5] = 0x3C
    check(A, B, cfg, C, seed=8)
    assert device.LAST_RUN == {"narrow_tiles": 4, "wide_tiles": 2}  # column tile 2 (the inf)


@pytest.mark.parametrize("spec", ["e5m2:e6m5:sr_lazy:6", "e4m3:e6m5:sr_eager:6",
                                  "e4m3:fp32:sr_eager:6"])
def test_explicit_rand(spec):
    """Explicit random words (M, N, K) instead of the generators, narrow and wide."""
    cfg = ref.parse_mac(spec)
    rng = np.random.default_rng(6)
    M, K, N = 5, 9, 7
    rand = rng.integers(0, 1 << cfg.rand_bits, size=(M, N, K))
    A = random_codes(rng, cfg.in_fmt, (M, K), 0.0)
    B = random_codes(rng, cfg.in_fmt, (K, N), 0.0)
    check(A, B, cfg, rand=rand)
    zeros = device.matmul(on_dev(A), on_dev(B), cfg, rand=on_dev(np.zeros_like(rand)))
    ones = device.matmul(on_dev(A), on_dev(B), cfg, rand=on_dev(np.full_like(rand, rand.max())))
    assert (zeros != ones).any()  # the words are used


def test_narrow_equals_wide(monkeypatch):
    """The two device kernels agree code for code (NARROW off: the int64 kernel only)."""
    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    rng = np.random.default_rng(21)
    A = finite_codes(rng, cfg.in_fmt, (6, 12))
    B = finite_codes(rng, cfg.in_fmt, (12, 20))
    z1 = check(A, B, cfg, seed=2)
    assert device.LAST_RUN["narrow_tiles"] == 2
    monkeypatch.setattr(device, "NARROW", False)
    z2 = check(A, B, cfg, seed=2)
    assert device.LAST_RUN == {"narrow_tiles": 0, "wide_tiles": 2}
    np.testing.assert_array_equal(z1, z2)


@pytest.mark.parametrize("rounding", ["sr_lazy", "sr_eager"])
def test_state_continuation(rounding):
    """Two passes over k, the second continuing the generators, equal one long chain."""
    cfg = MacConfig("e5m2", "e6m5", rounding, 4)
    rng = np.random.default_rng(5)
    A = finite_codes(rng, cfg.in_fmt, (6, 12))
    B = finite_codes(rng, cfg.in_fmt, (12, 7))
    z1, g1 = device.matmul(on_dev(A[:, :5]), on_dev(B[:5]), cfg, seed=9, return_state=True)
    z2, g2 = device.matmul(on_dev(A[:, 5:]), on_dev(B[5:]), cfg, C=z1, state=g1,
                           return_state=True)
    zw, gw = matmul_reference(A, B, cfg, seed=9, return_state=True)
    np.testing.assert_array_equal(z2.cpu().numpy(), zw)
    np.testing.assert_array_equal(g2.cpu().numpy(), gw)


def test_every_input_pair_one_mac(monkeypatch):
    """K = 1: every E5M2 (a, b) pair once (specials included), random C and words."""
    monkeypatch.setattr(device, "BLOCK", (64, 64, 4))
    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    rng = np.random.default_rng(7)
    A = np.arange(256, dtype=np.int64).reshape(256, 1)
    B = np.arange(256, dtype=np.int64).reshape(1, 256)
    C = random_codes(rng, cfg.acc_fmt, (256, 256), special_rate=0.01)
    rand = rng.integers(0, 1 << cfg.rand_bits, size=(256, 256, 1))
    check(A, B, cfg, C, rand=rand)


@pytest.mark.parametrize("shape", [(0, 3, 4), (3, 0, 4), (1, 1, 1), (1, 23, 1), (17, 1, 33)])
def test_shapes(shape):
    rng = np.random.default_rng(sum(shape))
    M, K, N = shape
    cfg = MacConfig("e4m3", "fp16", "sr_eager", 3)
    check(random_codes(rng, cfg.in_fmt, (M, K)), random_codes(rng, cfg.in_fmt, (K, N)), cfg,
          random_codes(rng, cfg.acc_fmt, (M, N)), seed=5)


def test_dispatch_sends_cuda_tensors_to_the_kernel():
    """ref.matmul / ref.sr_matmul on CUDA tensors run the device kernels (GPU only)."""
    if not CUDA:
        pytest.skip("needs a CUDA GPU (the interpreter runs CPU tensors, which ref.matmul "
                    "sends to the CPU kernels)")
    from ref import dispatch

    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    A = on_dev(np.full((40, 30), 0x3C))
    assert dispatch.choose(A, A.T) == "device"
    device.LAST_RUN.update(narrow_tiles=-1)
    ref.matmul(A, A.T.contiguous(), cfg)
    assert device.LAST_RUN["narrow_tiles"] > 0
    X = torch.randn(33, 20, device=DEV)
    out = ref.sr_matmul(X, X.T, cfg, seed=1)
    want = ref.decode(matmul_reference(ref.encode(X.cpu(), cfg.in_fmt),
                                       ref.encode(X.T.cpu(), cfg.in_fmt), cfg, seed=1),
                      cfg.acc_fmt).to(X.dtype)
    assert torch.equal(out.cpu(), want)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("spec", ["e5m2:e6m5:rn", "e5m2:e6m5:sr_eager:4", "e4m3:fp16:sr_lazy:8",
                                  "bf16:fp32:sr_eager:8", "e5m2:e6m5:nosub:sat:rz"])
def test_cuda_larger_shapes(spec, monkeypatch):
    """On a GPU: the default tile shapes, several hundred tiles, K in the hundreds."""
    monkeypatch.setattr(device, "BLOCK", None)
    cfg = ref.parse_mac(spec)
    rng = np.random.default_rng(9)
    A = random_codes(rng, cfg.in_fmt, (300, 257), 0.001)
    B = random_codes(rng, cfg.in_fmt, (257, 190), 0.001)
    check(A, B, cfg, seed=3)


# ---- compiled mode without a GPU: Triton compiles the kernels for an H100/H200 target -----

_COMPILE = textwrap.dedent("""
    import sys
    import ref
    from ref.fast.triton_compile import compile_kernel, kernels_for
    for spec in sys.argv[1:]:
        cfg = ref.parse_mac(spec)
        for kernel in kernels_for(cfg):
            k = compile_kernel(cfg, kernel)
            assert k.asm["cubin"] and "clz" in k.asm["ptx"], (spec, kernel)
            print(spec, kernel, "ok")
""")


def _compile_for_sm90(specs):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    res = subprocess.run([sys.executable, "-c", _COMPILE, *specs], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_kernels_compile_for_the_gpu():
    """The compiled (not interpreted) kernels go through Triton's whole pipeline to an sm_90
    cubin: constexpr specialisation, types and the native bit count, without a GPU."""
    out = _compile_for_sm90(["e5m2:e6m5:sr_eager:4", "e4m3:fp16:rn", "bf16:fp32:sr_lazy:8"])
    assert out.count(" ok") == 5


@pytest.mark.slow
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_kernels_compile_every_rounding_and_format(rounding):
    specs = [f"{a}:{b}:{rounding}" + (":5" if rounding.startswith("sr") else "")
             for a, b in [("e5m2:nosub", "e6m5:nosub:sat"), ("e4m3", "e5m4:fn"),
                          ("e3m1:none", "e5m4:none:nosub"), ("fp16", "fp32")]]
    out = _compile_for_sm90(specs)
    assert out.count(" ok") == 7


@pytest.mark.slow
@pytest.mark.parametrize("case", range(30))
def test_random_configs_more(case):
    """More configurations, wider r, bigger shapes (make regress)."""
    rng = np.random.default_rng(5000 + case)
    cfg = random_cfg(rng)
    if cfg.is_sr:
        cfg = cfg.replace(rbits=int(rng.integers(1, 23)))
    M, K, N = (int(x) for x in rng.integers(1, 40, size=3))
    A = random_codes(rng, cfg.in_fmt, (M, K), 0.01)
    B = random_codes(rng, cfg.in_fmt, (K, N), 0.01)
    C = random_codes(rng, cfg.acc_fmt, (M, N), 0.01)
    check(A, B, cfg, C, seed=case)
