"""The "how many random bits" analysis (ref/analysis.py): exact sums, knee vs formula, SR bias."""

from __future__ import annotations

import argparse
import csv
from fractions import Fraction

import numpy as np
import pytest

from ref import E5M2, E6M5, FP16, MacConfig, decode, encode, matmul, required_rbits
from ref.analysis import (
    FULL_R,
    SweepSpec,
    add_sweep_arguments,
    chain_prefix,
    exact_fraction,
    exact_prefix,
    knee,
    make_data,
    run_sweep,
    sr_bias_exact,
    sweep,
)

# ---- exactness of the reference sums and of the prefix trick ------------------------------

@pytest.mark.parametrize("dist", ["uniform", "zeromean", "dot", "dotzm"])
def test_exact_prefix_is_exact(dist):
    A, B = make_data(dist, E5M2, 3, 4, 64, seed=7)
    ex = exact_prefix(A, B, E5M2, [16, 64])
    for n in (16, 64):
        s, l1 = ex[n]
        for i in range(3):
            for j in range(4):
                f = exact_fraction(A[i, :n], B[:n, j], E5M2)
                # the int64 sum times 2**-32 is below 2**53 ulps: float64 holds it exactly
                assert Fraction(float(s[i, j])) == f
                assert Fraction(float(l1[i, j])) == sum(
                    abs(Fraction(float(x))) for x in (
                        exact_fraction(A[i, k:k + 1], B[k:k + 1, j], E5M2) for k in range(n)))


def test_exact_prefix_refuses_overflow():
    big = encode(np.full((1, 4), 57344.0), E5M2)  # (57344 * 2**16)**2 * 4 > 2**62
    with pytest.raises(ValueError, match="overflow"):
        exact_prefix(big, big.T.copy(), E5M2, [4])


def test_chain_prefix_equals_separate_chains():
    # continuing from (C, state) at each checkpoint = one chain of length n, code for code
    A, B = make_data("dot", E5M2, 2, 3, 64, seed=3)
    cfg = MacConfig(E5M2, E6M5, "sr_eager", 3)
    got = chain_prefix(A, B, cfg, 5, [16, 32, 64])
    for n in (16, 32, 64):
        np.testing.assert_array_equal(got[n], matmul(A[:, :n], B[:n], cfg, seed=5))


# ---- knee definition ------------------------------------------------------------------------

def test_knee_definition():
    full = 1.0
    assert knee({1: 3.0, 2: 1.5, 3: 1.08, 4: 1.02, 5: 0.99}, full) == 3
    # a lucky dip below the threshold does not end the curve early
    assert knee({1: 3.0, 2: 1.05, 3: 1.3, 4: 1.02, 5: 1.0}, full) == 4
    assert knee({1: 3.0, 2: 2.0}, full) is None
    assert knee({1: 1.0, 2: 1.0}, full) == 1
    assert knee({1: 1.2, 2: 1.15}, full, tol=0.2) == 1


# ---- the measured knee reproduces ceil(log2(n) / 2) ------------------------------------------

@pytest.fixture(scope="module")
def small_sweep():
    # Positive data (where the bias of truncating SR accumulates): summation and dot product,
    # n = 32 .. 512, 2048 chains per cell; ~2-4 s on 2 cores with the compiled ref.matmul.
    # n stays below 2**(2p) = 4096 for the E6M5 accumulator (p = 6): beyond it the full-SR
    # error saturates and the knee grows like log2(n), not log2(n)/2 (docs/rbits.md).
    # Seeds 1..6 all give knee - formula in {-1, 0, +1} here.
    spec = SweepSpec(E5M2, E6M5, tuple(2**k for k in range(5, 10)), rmax=9, runs=2048,
                     dists=("uniform", "dot"), seed=11, modes=("rn", "sr_lazy", "sr_eager"))
    return sweep(spec)


def test_knee_within_one_bit_of_formula(small_sweep):
    assert len(small_sweep.knees) == 2 * 5 * 2
    for k in small_sweep.knees:
        assert k["formula"] == required_rbits(k["n"])
        assert k["knee"] is not None, k
        assert abs(k["knee"] - k["formula"]) <= 1, k


def test_knee_grows_with_n(small_sweep):
    # the rule's content: 4x longer chains need about one more bit
    for dist in ("uniform", "dot"):
        for m in ("sr_lazy", "sr_eager"):
            ks = {k["n"]: k["knee"] for k in small_sweep.knees if k["dist"] == dist and k["rounding"] == m}
            assert ks[512] - ks[32] >= 2, (dist, m, ks)
            assert all(ks[4 * n] >= ks[n] for n in (32, 64, 128)), (dist, m, ks)


def test_few_bits_are_biased_and_full_sr_beats_rn(small_sweep):
    idx = {(c["dist"], c["n"], c["rounding"], c["rbits"]): c for c in small_sweep.rows}
    for dist in ("uniform", "dot"):
        c1, cf = idx[(dist, 512, "sr_lazy", 1)], idx[(dist, 512, "sr_lazy", FULL_R)]
        # SR_{p,r} rounds toward zero on average: with 1 bit the sum of positive data comes out low
        assert c1["bias"] < -10 * c1["bias_se"]
        assert abs(cf["bias"]) < 4 * cf["bias_se"] + 1e-3
        assert cf["mean_err"] < 0.25 * idx[(dist, 512, "rn", "")]["mean_err"]


# ---- bias of one SR rounding, exactly (enumerating every random word) -------------------------

def _bias_data(count=600, seed=5):
    # FP16 inputs (22-bit products) into E6M5: the fraction f of z + a*b below the kept bits
    # has ~16 bits, fine enough that truncating it to r bits costs E[f - trunc_r(f)] ~ 2**-r / 2.
    rng = np.random.default_rng(seed)
    z = encode(rng.uniform(1.0, 2.0, count), E6M5)
    a = encode(rng.uniform(0.0, 0.25, count), FP16)
    b = encode(rng.uniform(0.0, 1.0, count), FP16)
    return z, a, b


@pytest.mark.parametrize("mode", ["sr_lazy", "sr_eager"])
def test_sr_bias_halves_with_each_bit(mode):
    z, a, b = _bias_data()
    means = {}
    for r in range(1, 9):
        bias = sr_bias_exact(z, a, b, MacConfig(FP16, E6M5, mode, r))
        # contract: toward zero (positive sums: never above the exact value) and below 2**-r ulp
        assert np.all(bias <= 0) and np.all(bias > -(2.0**-r)), (r, bias.min())
        means[r] = -bias.mean()
    for r in range(1, 8):
        assert 1.7 < means[r] / means[r + 1] < 2.3, (r, means)
    scaled = [means[r] * 2**r for r in means]  # bias * 2**r ~ E[frac(f * 2**r)] ~ 1/2
    assert 0.4 < min(scaled) and max(scaled) < 0.6, scaled


def test_sr_bias_exact_matches_formula():
    # lazy SR: E[result] = x - ulp * (f - floor(f * 2**r) / 2**r), exactly
    z, a, b = _bias_data(count=40, seed=9)
    r = 3
    bias = sr_bias_exact(z, a, b, MacConfig(FP16, E6M5, "sr_lazy", r))
    for i in range(len(z)):
        x = Fraction(float(decode(z[i], E6M5))) + Fraction(float(decode(a[i], FP16))) * Fraction(
            float(decode(b[i], FP16)))
        e = x.numerator.bit_length() - x.denominator.bit_length()
        e = e if Fraction(2) ** e <= x else e - 1
        units = x / Fraction(2) ** (e - E6M5.man_bits)
        f = units - (units.numerator // units.denominator)
        want = -(f - Fraction((f * 2**r).numerator // (f * 2**r).denominator, 2**r))
        assert bias[i] == float(want)


def test_sr_bias_exact_rejects_rn():
    z, a, b = _bias_data(count=2)
    with pytest.raises(ValueError, match="SR rounding"):
        sr_bias_exact(z, a, b, MacConfig(FP16, E6M5, "rn"))


# ---- run_sweep through argparse -----------------------------------------------------------------

def _parser():
    p = argparse.ArgumentParser()
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--n")
    add_sweep_arguments(p, group)
    return p


def test_run_sweep_quick(tmp_path, capsys):
    args = _parser().parse_args(["--sweep", "--quick", "--runs", "256", "--out", str(tmp_path)])
    assert run_sweep(args) == 0
    text = capsys.readouterr().out
    assert "ceil(log2 n/2)" in text and "E5M2 x E5M2 -> E6M5" in text
    rows = list(csv.DictReader((tmp_path / "rbits.csv").open()))
    # uniform only, n = 16..256 (5), rn + rz + 2 x (8 + full)
    assert len(rows) == 5 * (2 + 2 * 9)
    assert {r["rounding"] for r in rows} == {"rn", "rz", "sr_lazy", "sr_eager"}
    knees = list(csv.DictReader((tmp_path / "rbits_knee.csv").open()))
    assert [int(k["formula"]) for k in knees if k["rounding"] == "sr_lazy"] == [2, 3, 3, 4, 4]
    assert (tmp_path / "rbits_uniform.png").stat().st_size > 1000


def test_run_sweep_other_formats(tmp_path, capsys):
    args = _parser().parse_args(["--sweep", "--in", "e4m3", "--acc", "fp16", "--n-min", "16",
                                 "--n-max", "32", "--rmax", "3", "--runs", "128", "--dist", "dotzm",
                                 "--seed", "3", "--tol", "0.2", "--out", str(tmp_path)])
    assert run_sweep(args) == 0
    assert "E4M3 x E4M3 -> FP16" in capsys.readouterr().out
    assert (tmp_path / "rbits_dotzm.png").exists()


@pytest.mark.parametrize("argv, msg", [
    (["--n-min", "24"], "power of two"),
    (["--n-min", "64", "--n-max", "32"], "larger than"),
    (["--dist", "gauss"], "gauss"),
    (["--rmax", "0"], "--rmax"),
    (["--runs", "x"], "--runs"),
    (["--acc", "e9z"], "e9z"),
    (["--tol", "-1"], "--tol"),
])
def test_run_sweep_bad_input(tmp_path, argv, msg):
    args = _parser().parse_args(["--sweep", "--out", str(tmp_path)] + argv)
    with pytest.raises(ValueError, match=msg):
        run_sweep(args)
