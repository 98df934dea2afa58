"""`srmac demo` (ref/demo.py): its files, its table, and the shortcuts it takes.

The demo's speed rests on two shortcuts that must not change any result:
prefix checkpoints (a chain continued through ``C`` and ``state``) and exact
integer reference sums. Both are checked against the plain definitions here.
"""

from __future__ import annotations

import csv
from fractions import Fraction

import numpy as np
import pytest

from ref import MacConfig, decode
from ref import demo as D
from ref.cli import main

try:
    from ref.chain import matmul_reference as reference_matmul
except ImportError:  # older ref.chain
    from ref.chain import matmul as reference_matmul

MODES = ("rn", "rz", "sr_lazy", "sr_eager")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `srmac demo --quick` through the CLI (a few seconds, mostly matplotlib)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "--quick", "--out", str(out)])
    return rc, buf.getvalue(), out


def test_quick_demo_writes_png_and_csv(quick_run):
    rc, text, out = quick_run
    assert rc == 0
    png = (out / "demo.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with open(out / "demo.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["rounding"] for r in rows} == set(MODES)
    assert {int(r["n"]) for r in rows} == set(D.QUICK_NS)
    assert {r["distribution"] for r in rows} == set(D.DISTRIBUTIONS)
    assert len(rows) == len(D.QUICK_NS) * len(D.DISTRIBUTIONS) * len(D.SERIES)
    for r in rows:
        assert 0 <= float(r["median_err"]) <= float(r["p90_err"]) <= float(r["max_err"])
        assert abs(float(r["mean_signed_err"])) <= float(r["mean_err"]) + 1e-15
        if r["series"].endswith("r=req"):
            assert int(r["rbits"]) == max(1, ((int(r["n"]) - 1).bit_length() + 1) // 2)


def test_quick_demo_table_has_the_four_modes(quick_run):
    _, text, out = quick_run
    headers = [line.split() for line in text.splitlines() if line.strip().startswith("n ")]
    assert len(headers) == len(D.DISTRIBUTIONS)
    for h in headers:
        for mode in MODES:
            assert mode in h
    for n in D.QUICK_NS:
        assert any(line.split()[:1] == [str(n)] for line in text.splitlines())
    assert str(out / "demo.png") in text


def test_prefix_checkpoints_equal_separate_chains():
    """A chain continued through C and state gives the codes of a chain run in one go."""
    A, B = D._data(5, 2, 3, 64)
    for cfg in (MacConfig("e5m2", "e6m5", "rn"), MacConfig("e5m2", "e6m5", "sr_eager", 2),
                MacConfig("e5m2", "e6m5", "sr_lazy", 3)):
        got = D._chain_prefix(A, B, cfg, 11, [8, 16, 40, 64], 40, None)
        assert sorted(got) == [8, 16, 40]
        for n, z in got.items():
            want = reference_matmul(A[:, :n], B[:n], cfg, seed=11)
            np.testing.assert_array_equal(z, want)


def test_exact_sums_equal_fractions():
    A, B = D._data(2, 2, 2, 48)
    ex = D._exact_prefix(A, B, [16, 48])
    a, b = decode(A, "e5m2"), decode(B, "e5m2")
    for n, (s, t) in ex.items():
        for i in range(A.shape[0]):
            for j in range(B.shape[1]):
                prods = [Fraction(a[i, k]) * Fraction(b[k, j]) for k in range(n)]
                assert Fraction(s[i, j]) == sum(prods)  # exact in float64 at these sizes
                assert Fraction(t[i, j]) == sum(abs(p) for p in prods)


def test_errors_measure_what_they_say():
    """compute()'s error of one chain equals (computed - exact) / sum|a*b| done by hand."""
    ns, rows, cols = [16, 32], 2, 2
    errs = D.compute(ns, [0], rows, cols, progress=False)
    A, B = D._data(0, rows, cols, 32)
    cfg = MacConfig("e5m2", "e6m5", "sr_lazy", 4)
    z = reference_matmul(A, B, cfg, seed=0)
    a, b = decode(A, "e5m2"), decode(B, "e5m2")
    exact = a @ b  # exact: small dyadic values, see test_exact_sums_equal_fractions
    norm = np.abs(a) @ np.abs(b)
    want = (decode(z, "e6m5") - exact) / norm
    got = errs[("positive", "sr_lazy", 4, 32)]
    np.testing.assert_allclose(got, want[:rows].ravel(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(errs[("zero-mean", "sr_lazy", 4, 32)], want[rows:].ravel(),
                               rtol=0, atol=1e-15)
    # Positive data: every product >= 0, so the normalised error is the relative error.
    assert np.all(a[:rows] >= 0) and np.any(a[rows:] < 0)
