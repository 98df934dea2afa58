"""RN encoding equals torch's own casts, code for code (contract sections 1-2).

Which torch cast rounds directly? On CPU, torch 2.13 converts a float64 tensor
to float16 / bfloat16 / float8 *through float32*, i.e. it rounds twice: e.g.
``1 + 2**-11 + 2**-40`` (just above the FP16 midpoint) becomes the tie
``1 + 2**-11`` in float32 and then 1.0 by ties-to-even, while the correctly
rounded FP16 value is ``1 + 2**-10``. The float32 -> target cast rounds once.
So the bit-exact comparison uses float32 sources (values read exactly by
``ref.encode``), and float64 sources only where they are float32 values
(the first rounding is then exact). ``test_torch_float64_double_rounds``
documents the difference on CPU.
"""

import numpy as np
import pytest
import torch

import ref
from ref import BF16, E4M3, E5M2, FP16, FloatFormat


def _torch_e4m3_saturates() -> bool:
    """torch 2.13 saturates float8_e4m3fn casts (1000 -> 448); older torch gives NaN."""
    return torch.tensor([1000.0]).to(torch.float8_e4m3fn).float().item() == 448.0


# ref's E4M3 (fn + saturate) matches torch 2.13; with an older torch whose cast
# overflows to NaN, compare against the equally valid non-saturating fn format.
TORCH_E4M3 = E4M3 if _torch_e4m3_saturates() else FloatFormat(4, 3, specials="fn")

CASES = [
    (E5M2, torch.float8_e5m2, torch.uint8),
    (TORCH_E4M3, torch.float8_e4m3fn, torch.uint8),
    (FP16, torch.float16, torch.int16),
    (BF16, torch.bfloat16, torch.int16),
]
IDS = [c[0].name for c in CASES]

# Random float32 bit patterns include signalling NaNs: NumPy warns when it converts them.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")


def _f32_neighbours(v):
    """float32 values one float32 ulp below and above ``v`` (float32 array)."""
    return np.nextafter(v, np.float32(-np.inf)), np.nextafter(v, np.float32(np.inf))


def sample_values(fmt, n_random=60000, seed=0):
    """float32 test values for ``fmt``: >= 10**5 of them, every class of the contract.

    * every finite value of ``fmt`` and every midpoint between neighbours
      (exact ties), each with its float32 neighbours on both sides;
    * random values with exponents from below the subnormal range to beyond
      the overflow threshold, with random float32 significands;
    * the overflow region: max, max + ulp/2 (the IEEE threshold) +- 1 float32 ulp,
      up to 4 * max, and the float32 extremes;
    * +-0, +-inf, NaN, and random float32 bit patterns.
    """
    rng = np.random.default_rng(seed)
    codes = np.arange(fmt.num_codes // 2)
    vals = ref.decode(codes, fmt)
    vals = vals[np.isfinite(vals)]
    vals.sort()
    mids = (vals[:-1] + vals[1:]) / 2  # exact: one more bit of precision
    # The midpoint between max and the next grid value (max + ulp), the overflow tie.
    ulp_top = 2.0 ** (fmt.emax - fmt.man_bits)
    mids = np.append(mids, fmt.max_value + ulp_top / 2)
    grid = np.concatenate([vals, mids]).astype(np.float32)
    assert np.array_equal(grid.astype(np.float64), np.concatenate([vals, mids])), (
        "grid not exact in float32"
    )
    lo, hi = _f32_neighbours(grid)

    e_lo = fmt.emin - fmt.man_bits - 3
    e_hi = fmt.emax + 3
    e = rng.integers(e_lo, e_hi, n_random)
    m = rng.uniform(1.0, 2.0, n_random)
    with np.errstate(over="ignore"):
        rnd = np.ldexp(m, e).astype(np.float32)  # BF16: beyond float32 range -> inf

    top = np.float32(fmt.max_value)
    fmax = np.finfo(np.float32).max
    over = np.linspace(fmt.max_value, min(4 * fmt.max_value, float(fmax)), 2000).astype(np.float32)
    specials = np.array(
        [
            0.0,
            np.inf,
            np.nan,
            fmax,
            np.finfo(np.float32).smallest_subnormal,
            np.finfo(np.float32).tiny,
            top,
        ],
        dtype=np.float32,
    )
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)

    pos = np.concatenate([grid, lo, hi, rnd, over, specials, np.abs(bits)])
    pos = pos[~np.isnan(pos)]  # NaN added once below, with both signs
    out = np.concatenate([pos, -pos, np.array([np.nan, -np.nan], dtype=np.float32), bits])
    return out


def _torch_codes(x32, dtype, view, width):
    t = torch.from_numpy(x32).to(dtype).view(view).to(torch.int64)
    return (t & ((1 << width) - 1)).numpy()


def _compare(fmt, x, ref_codes, torch_codes):
    ref_nan = np.isnan(ref.decode(ref_codes, fmt))
    torch_nan = np.isnan(ref.decode(torch_codes, fmt))
    assert np.array_equal(ref_nan, torch_nan), (
        f"NaN class differs at x={x[ref_nan != torch_nan][:5]!r}"
    )
    ok = ref_nan | (ref_codes == torch_codes)
    if not ok.all():
        bad = np.flatnonzero(~ok)[:8]
        raise AssertionError(
            f"{fmt.name}: {(~ok).sum()} mismatches, e.g. "
            + ", ".join(f"x={x[i]!r}: ref {ref_codes[i]:#x} torch {torch_codes[i]:#x}" for i in bad)
        )


@pytest.mark.parametrize("fmt,dtype,view", CASES, ids=IDS)
def test_rn_matches_torch_cast_from_float32(fmt, dtype, view):
    x = sample_values(fmt)
    assert x.size >= 10**5
    # Coverage of the classes the comparison is meant to exercise.
    ax = np.abs(x[np.isfinite(x)]).astype(np.float64)
    assert (ax == 0).any() and np.isinf(x).any() and np.isnan(x).any()
    assert ((ax > 0) & (ax < fmt.min_normal)).sum() > 100  # subnormals of fmt
    assert (ax > fmt.max_value).sum() > 1000  # overflow region
    ref_codes = ref.encode(x.astype(np.float64), fmt, "rn")
    _compare(fmt, x, ref_codes, _torch_codes(x, dtype, view, fmt.width))


@pytest.mark.parametrize("fmt,dtype,view", CASES, ids=IDS)
def test_rn_matches_torch_on_every_exact_tie(fmt, dtype, view):
    """Ties go to the even code: compare exactly at every midpoint, and check the rule itself."""
    vals = ref.decode(np.arange(fmt.num_codes // 2), fmt)
    vals = np.sort(vals[np.isfinite(vals)])
    mids = (vals[:-1] + vals[1:]) / 2
    mids = np.concatenate([mids, -mids])
    codes = ref.encode(mids, fmt, "rn")
    _compare(fmt, mids, codes, _torch_codes(mids.astype(np.float32), dtype, view, fmt.width))
    finite = np.isfinite(ref.decode(codes, fmt))
    assert (codes[finite] & 1 == 0).all()  # even mantissa LSB wins every tie


@pytest.mark.parametrize("fmt,dtype,view", CASES, ids=IDS)
def test_rn_matches_torch_from_float64_float32_values(fmt, dtype, view):
    x32 = sample_values(fmt, n_random=5000, seed=1)
    x64 = x32.astype(np.float64)
    t = torch.from_numpy(x64).to(dtype).view(view).to(torch.int64)
    t = (t & ((1 << fmt.width) - 1)).numpy()
    _compare(fmt, x32, ref.encode(x64, fmt, "rn"), t)
    # torch tensors in -> torch codes out, equal to the NumPy path
    tc = ref.encode(torch.from_numpy(x64), fmt, "rn")
    assert isinstance(tc, torch.Tensor) and np.array_equal(tc.numpy(), ref.encode(x64, fmt, "rn"))


def test_torch_float64_double_rounds():
    """Documents why float32 is the source dtype: ref rounds float64 once, torch (CPU) twice."""
    x = np.array([1 + 2**-11 + 2**-40], dtype=np.float64)  # just above an FP16 tie
    # Single rounding: above the midpoint -> round up to 1 + 2**-10 (code 0x3C01).
    assert ref.encode(x, FP16, "rn")[0] == 0x3C01
    via32 = torch.from_numpy(x).float().to(torch.float16).view(torch.int16).item()
    assert via32 == 0x3C00  # the float32 tie rounded to even
    direct = torch.from_numpy(x).to(torch.float16).view(torch.int16).item()
    assert direct in (0x3C00, 0x3C01)  # 0x3C00 on CPU (torch 2.13): double rounding


@pytest.mark.skipif(
    not _torch_e4m3_saturates(), reason="this torch's e4m3fn cast does not saturate"
)
def test_e4m3_saturates_like_torch():
    x = np.array([448.0, 464.0, 464.0001, 480.0, 1e6, np.inf, -np.inf, -500.0], dtype=np.float32)
    codes = ref.encode(x.astype(np.float64), E4M3, "rn")
    # 464 is the tie between 448 and 480 (not representable): even -> 448; beyond: saturate.
    assert list(ref.decode(codes, E4M3)) == [448, 448, 448, 448, 448, 448, -448, -448]
    _compare(E4M3, x, codes, _torch_codes(x, torch.float8_e4m3fn, torch.uint8, 8))


def test_e5m2_overflow_threshold():
    # max 57344, ulp 8192: max + ulp/2 = 61440 overflows (tie to the even "65536"),
    # just below does not.
    below = np.nextafter(np.float32(61440), np.float32(0))
    x = np.array([below, 61440.0, 1e9], dtype=np.float32)
    codes = ref.encode(x.astype(np.float64), E5M2, "rn")
    assert list(codes) == [0x7B, 0x7C, 0x7C]
    _compare(E5M2, x, codes, _torch_codes(x, torch.float8_e5m2, torch.uint8, 8))


@pytest.mark.slow
@pytest.mark.parametrize("fmt,dtype,view", CASES[2:], ids=IDS[2:])
def test_rn_matches_torch_all_float32_exponents(fmt, dtype, view):
    """Slow sweep: 4 million random float32 bit patterns."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**32, 4_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    _compare(
        fmt, x, ref.encode(x.astype(np.float64), fmt, "rn"), _torch_codes(x, dtype, view, fmt.width)
    )


@pytest.mark.parametrize("fmt", [c[0] for c in CASES] + [E4M3], ids=IDS + ["E4M3"])
def test_encode_fast_cast_path_equals_exact_path(fmt):
    """``ref.encode`` of a float32 tensor with RN takes torch's cast: same codes as the contract's steps."""
    from ref.codec import _torch_cast_dtype

    x = sample_values(fmt, n_random=20000, seed=3)
    fast = ref.encode(torch.from_numpy(x), fmt, "rn")
    exact = ref.encode(x.astype(np.float64), fmt, "rn")  # NumPy: always the exact steps
    assert isinstance(fast, torch.Tensor) and fast.dtype == torch.int64
    assert _torch_cast_dtype(fmt) is not None or fmt == E4M3
    assert np.array_equal(fast.numpy(), exact)  # NaN included: canonical code


def test_encode_fast_cast_path_only_where_it_is_exact():
    from ref.codec import _torch_cast_dtype

    # Formats that differ from the torch dtype in any rule take the exact steps.
    for fmt in (FloatFormat(5, 2, subnormals=False), FloatFormat(5, 2, saturate=True),
                FloatFormat(6, 5), FloatFormat(4, 3, specials="fn")):
        assert _torch_cast_dtype(fmt) is None
    # A value where double rounding through float32 would differ: float64 sources
    # must not take the cast.
    x = torch.tensor([1 + 2**-11 + 2**-40], dtype=torch.float64)
    assert ref.encode(x, FP16, "rn").item() == 0x3C01
