"""Property test (hypothesis): the fast path and the reference agree code for code.

Random configurations (input and accumulator formats with random widths,
biases, subnormals, specials and saturation; every rounding; random r),
random shapes (K = 0 included), random operands with NaN / inf / zero codes,
a given or default C, and the three sources of random words (base seed up to
2**64 - 1, explicit words, carried generator states): ``ref.fast.matmul``
must return the codes (and the generator states) of
``ref.chain.matmul_reference``, the readable specification. The example
count is bounded so the test stays in ``make test``; ``make regress`` runs
more examples.
"""

from __future__ import annotations

import numpy as np
import pytest
from codes import assert_codes_equal
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ref import FloatFormat, MacConfig
from ref.chain import matmul_reference
from ref.formats import MAX_BIAS

fast = pytest.importorskip("ref.fast")
pytest.importorskip("numba")

SHORT = settings(max_examples=200, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
LONG = settings(max_examples=1500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@st.composite
def formats(draw, max_exp, max_man):
    exp_bits = draw(st.integers(2, max_exp))
    specials = draw(st.sampled_from(["ieee", "fn", "none"]))
    man_bits = draw(st.integers(1 if specials == "ieee" else 0, max_man))
    default = (1 << (exp_bits - 1)) - 1
    bias = draw(st.one_of(st.none(), st.integers(default - 12, default + 12),
                          st.integers(-MAX_BIAS, MAX_BIAS)))
    return FloatFormat(exp_bits, man_bits, bias=bias, subnormals=draw(st.booleans()),
                       specials=specials, saturate=draw(st.booleans()))


@st.composite
def configs(draw):
    in_fmt = draw(formats(8, 10))
    acc_fmt = draw(formats(10, 24))
    rounding = draw(st.sampled_from(["rn", "rz", "sr_lazy", "sr_eager"]))
    rbits = None
    if rounding.startswith("sr"):
        rbits = draw(st.integers(1, min(30, 56 - acc_fmt.precision)))
    try:
        return MacConfig(in_fmt, acc_fmt, rounding, rbits)
    except ValueError:  # e.g. biases too far apart for the accumulator's mantissa
        assume(False)


def codes(rng, fmt, shape):
    """Codes of every kind: mostly finite, some of any kind (NaN, inf, max), some zeros."""
    finite = rng.integers(0, fmt.max_code + 1, size=shape) | (
        rng.integers(0, 2, size=shape) << (fmt.width - 1))
    anything = rng.integers(0, fmt.num_codes, size=shape)
    pick = rng.random(shape)
    out = np.where(pick < 0.05, anything, finite)
    return np.where(pick > 0.93, rng.integers(0, 2, size=shape) << (fmt.width - 1), out)


def agree(cfg, M, K, N, with_c, source, seed):
    rng = np.random.default_rng(seed % 2**63)
    A = codes(rng, cfg.in_fmt, (M, K))
    B = codes(rng, cfg.in_fmt, (K, N))
    kw = {"seed": seed, "return_state": True}
    if with_c:
        kw["C"] = codes(rng, cfg.acc_fmt, (M, N))
    if cfg.is_sr and source == "rand":
        kw["rand"] = rng.integers(0, 1 << cfg.rand_bits, size=(M, N, K))
    elif cfg.is_sr and source == "state":
        kw["state"] = rng.integers(1, 2**32, size=(M, N))
    got, got_state = fast.matmul(A, B, cfg, **kw)
    want, want_state = matmul_reference(A, B, cfg, **kw)
    assert_codes_equal(got, want, f"{cfg.spec()} {M}x{K}x{N} {source}")
    if want_state is None:
        assert got_state is None
    else:
        assert np.array_equal(got_state, want_state)


CASE = dict(cfg=configs(), M=st.integers(1, 6), K=st.integers(0, 12), N=st.integers(1, 6),
            with_c=st.booleans(), source=st.sampled_from(["seed", "rand", "state"]),
            seed=st.integers(0, 2**64 - 1))


@SHORT
@given(**CASE)
def test_fast_equals_reference(cfg, M, K, N, with_c, source, seed):
    agree(cfg, M, K, N, with_c, source, seed)


@pytest.mark.slow
@LONG
@given(**CASE)
def test_fast_equals_reference_many(cfg, M, K, N, with_c, source, seed):
    agree(cfg, M, K, N, with_c, source, seed)


def test_the_property_catches_a_wrong_kernel(monkeypatch):
    """The comparison can fail: a fast path that truncates where it should round to nearest."""
    from ref.fast import layout

    real_params = fast.params

    def rz_instead_of_rn(cfg):
        P = real_params(cfg)
        P[layout.P_MODE] = layout.RZ if P[layout.P_MODE] == layout.RN else P[layout.P_MODE]
        return P

    monkeypatch.setattr(fast, "params", rz_instead_of_rn)
    with pytest.raises(AssertionError, match="codes differ"):
        agree(MacConfig("e5m2", "e6m5", "rn"), 6, 12, 6, True, "seed", 5)
