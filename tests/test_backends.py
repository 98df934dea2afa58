"""NumPy and PyTorch (CPU, and CUDA when present) give the same codes.

The same inputs go through ``ref`` as NumPy arrays and as torch tensors on each
device; results must be torch int64 on that device and equal code for code.
"""

import zlib

import numpy as np
import pytest
import torch

import ref
from ref import BF16, E4M3, E5M2, E6M5, FP16, FloatFormat, MacConfig

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]

FORMATS = [
    E5M2,
    E4M3,
    E6M5,
    FP16,
    BF16,
    FloatFormat(3, 1, subnormals=False, specials="none"),
    FloatFormat(4, 2, specials="fn"),
]

MAC_CONFIGS = [
    (E5M2, E6M5),
    (E4M3, FP16),
    ("e5m2:nosub", "e6m5:nosub:sat"),
    (E4M3, "e5m4:fn"),
    (E5M2, BF16),
]
MODES = [
    ("rn", None),
    ("rz", None),
    ("sr_lazy", 4),
    ("sr_eager", 4),
    ("sr_eager", 1),
    ("sr_lazy", 13),
]


def to_np(t, device):
    assert isinstance(t, torch.Tensor), type(t)
    assert t.device.type == device and t.dtype == torch.int64
    return t.cpu().numpy()


def values(fmt, n, rng):
    """float64 values over the format's whole range, with ties, specials and zeros."""
    codes = rng.integers(0, fmt.num_codes, n)
    v = ref.decode(codes, fmt)
    scale = np.exp2(rng.integers(-3, 4, n).astype(float)) * rng.uniform(0.5, 1.5, n)
    x = np.where(rng.random(n) < 0.5, v, v * scale)
    x[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, fmt.max_value * 1.2]
    if not fmt.has_nan:
        x[4] = 1.0
    return x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_encode_agrees(fmt, device):
    rng = np.random.default_rng(fmt.width)
    x = values(fmt, 20000, rng)
    tx = torch.from_numpy(x).to(device)
    for rounding, kw in [
        ("rn", {}),
        ("rz", {}),
        ("sr", {"rbits": 3, "seed": 17}),
        ("sr", {"rbits": 11, "seed": 5}),
    ]:
        a = ref.encode(x, fmt, rounding, **kw)
        b = to_np(ref.encode(tx, fmt, rounding, **kw), device)
        assert np.array_equal(a, b), (rounding, kw)
    # explicit rand, broadcast
    R = rng.integers(0, 8, x.shape)
    a = ref.encode(x, fmt, "sr", rbits=3, rand=R)
    assert np.array_equal(
        a, to_np(ref.encode(tx, fmt, "sr", rbits=3, rand=torch.from_numpy(R).to(device)), device)
    )


DECODE_DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


@pytest.mark.parametrize("device", DECODE_DEVICES)
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_decode_agrees(fmt, device):
    """Same float64 values, NaN at the same places, signed zeros kept."""
    rng = np.random.default_rng(fmt.width)
    codes = np.arange(fmt.num_codes) if fmt.width <= 16 else rng.integers(0, fmt.num_codes, 50000)
    d1 = ref.decode(codes, fmt)
    d2 = ref.decode(torch.from_numpy(codes).to(device), fmt)
    assert d2.dtype == torch.float64 and d2.device.type == device
    d2 = d2.cpu().numpy()
    assert np.array_equal(np.isnan(d1), np.isnan(d2))
    fin = ~np.isnan(d1)
    assert np.array_equal(d1[fin], d2[fin])
    assert np.array_equal(np.signbit(d1[fin]), np.signbit(d2[fin]))


@pytest.mark.parametrize("device", DEVICES)
def test_quantize_agrees(device):
    rng = np.random.default_rng(0)
    x = values(E4M3, 5000, rng)
    for dtype in (torch.float32, torch.float64):
        tx = torch.from_numpy(x).to(dtype)
        q_np = ref.quantize(tx.numpy().astype(np.float64), E4M3, "sr", rbits=5, seed=3)
        q_t = ref.quantize(tx.to(device), E4M3, "sr", rbits=5, seed=3)
        assert q_t.device.type == device and q_t.dtype == dtype  # E4M3 values fit float32
        q_t = q_t.cpu().double().numpy()
        assert np.array_equal(np.isnan(q_np), np.isnan(q_t))
        fin = ~np.isnan(q_np)
        assert np.array_equal(q_np[fin], q_t[fin])


def mac_operands(cfg, n, rng):
    a = rng.integers(0, cfg.in_fmt.num_codes, n)
    b = rng.integers(0, cfg.in_fmt.num_codes, n)
    # z near -a*b half of the time: cancellations (close path) and carries
    with np.errstate(invalid="ignore", over="ignore"):
        p = ref.decode(a, cfg.in_fmt) * ref.decode(b, cfg.in_fmt)  # inf * 0 -> NaN: fine
        zv = -p * rng.choice([0.5, 1.0, 2.0, -1.0], n) * rng.uniform(0.9, 1.1, n)
    zv = np.where(np.isfinite(zv), zv, 1.0)
    z = np.where(
        rng.random(n) < 0.5,
        ref.encode(zv, cfg.acc_fmt, "rz"),
        rng.integers(0, cfg.acc_fmt.num_codes, n),
    )
    return z, a, b


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode,r", MODES)
@pytest.mark.parametrize("fmts", MAC_CONFIGS, ids=lambda f: ":".join(map(str, f)))
def test_mac_agrees(fmts, mode, r, device):
    cfg = MacConfig(*fmts, mode, r)
    rng = np.random.default_rng(zlib.crc32(cfg.spec().encode()))
    z, a, b = mac_operands(cfg, 20000, rng)
    t = [torch.from_numpy(v).to(device) for v in (z, a, b)]
    if cfg.is_sr:
        words = rng.integers(0, 1 << cfg.rand_bits, z.shape)
        got = to_np(ref.mac(*t, cfg, rand=torch.from_numpy(words).to(device)), device)
        assert np.array_equal(ref.mac(z, a, b, cfg, rand=words), got)
        # numpy rand with torch operands, and seed-driven words
        assert np.array_equal(
            ref.mac(z, a, b, cfg, rand=words), to_np(ref.mac(*t, cfg, rand=words), device)
        )
        assert np.array_equal(
            ref.mac(z, a, b, cfg, seed=99), to_np(ref.mac(*t, cfg, seed=99), device)
        )
    else:
        assert np.array_equal(ref.mac(z, a, b, cfg), to_np(ref.mac(*t, cfg), device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode,r", MODES[:4])
@pytest.mark.parametrize("fmts", MAC_CONFIGS[:3], ids=lambda f: ":".join(map(str, f)))
def test_matmul_agrees(fmts, mode, r, device):
    cfg = MacConfig(*fmts, mode, r)
    rng = np.random.default_rng(7)
    M, K, N = 5, 24, 6
    x = rng.normal(size=(M, K)) * np.exp2(rng.integers(-4, 5, (M, K)))
    y = rng.normal(size=(K, N)) * np.exp2(rng.integers(-4, 5, (K, N)))
    A = ref.encode(x, cfg.in_fmt)
    B = ref.encode(y, cfg.in_fmt)
    C = ref.encode(rng.normal(size=(M, N)), cfg.acc_fmt)
    tA, tB, tC = (torch.from_numpy(v).to(device) for v in (A, B, C))
    expect, st = ref.matmul(A, B, cfg, C, seed=42, return_state=True)
    got, tst = ref.matmul(tA, tB, cfg, tC, seed=42, return_state=True)
    assert np.array_equal(expect, to_np(got, device))
    if cfg.is_sr:
        assert np.array_equal(st, to_np(tst, device))
        words = rng.integers(0, 1 << cfg.rand_bits, (M, N, K))
        e2 = ref.matmul(A, B, cfg, C, rand=words)
        assert np.array_equal(
            e2, to_np(ref.matmul(tA, tB, cfg, tC, rand=torch.from_numpy(words).to(device)), device)
        )
        # continuing from a state works on both backends alike
        e3 = ref.matmul(A, B, cfg, C, state=st)
        assert np.array_equal(
            e3, to_np(ref.matmul(tA, tB, cfg, tC, state=torch.from_numpy(st).to(device)), device)
        )
    d = ref.dot(A[0], B[:, 0], cfg, C[0, 0], seed=1)
    td = ref.dot(tA[0], tB[:, 0], cfg, tC[0, 0], seed=1)
    assert isinstance(td, torch.Tensor) and int(td) == int(d)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode,r", MODES)
def test_mac_agrees_exhaustive_e5m2_operands(mode, r, device):
    """All 2**16 (a, b) pairs of E5M2 against 16 accumulator values, one random word each."""
    cfg = MacConfig(E5M2, E6M5, mode, r)
    a, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    a = np.repeat(a.ravel(), 16)
    b = np.repeat(b.ravel(), 16)
    z = np.tile(
        ref.encode(
            np.array(
                [
                    0,
                    -0.0,
                    1,
                    -1,
                    3.5,
                    -3.5,
                    1e-9,
                    -1e-9,
                    2**20,
                    -(2**20),
                    0.3,
                    -0.3,
                    57344,
                    -57344,
                    1e-3,
                    -7.75,
                ]
            ),
            E6M5,
        ),
        65536,
    )
    kw = (
        {"rand": np.random.default_rng(1).integers(0, 1 << cfg.rand_bits, z.shape)}
        if cfg.is_sr
        else {}
    )
    tkw = {k: torch.from_numpy(v).to(device) for k, v in kw.items()}
    t = [torch.from_numpy(v).to(device) for v in (z, a, b)]
    assert np.array_equal(ref.mac(z, a, b, cfg, **kw), to_np(ref.mac(*t, cfg, **tkw), device))
