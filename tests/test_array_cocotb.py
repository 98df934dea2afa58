"""cocotb + Icarus: the generated array's Verilog against ref.array, code for code.

Random products (M, N up to about twice the array, K up to 1024, some split
into K chunks that preload the previous results) tiled onto the array, with
random stalls on every stream (a, b, c_in valid and c_out ready). Default
configurations take about 10-15 s each; the larger arrays are marked slow.
Interleaved arrays (``interleave`` L) are checked as the (R*L) x C arrays they
compute (``ref.array.ArrayModel(cfg, R*L, C, seed)``).
"""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.array_regress import ArrayRegressConfig, run_array_config
from hwgen.regress import simulator_missing_reason


def random_work(R, C, n, seed, kmax=1024):
    """n random products (M, K, N, k_tile); the first has K = kmax."""
    rng = np.random.default_rng(seed)
    work = []
    for q in range(n):
        K = kmax if q == 0 else int(rng.integers(1, kmax + 1))
        kt = None if rng.random() < 0.5 else int(rng.integers(1, K + 1))
        work.append((int(rng.integers(1, 2 * R + 2)), K, int(rng.integers(1, 2 * C + 2)), kt))
    return tuple(work)


def small_work(R, C, seed):
    """Several blocks with short K (tiling and padding), plus one K = 1024 tile."""
    rng = np.random.default_rng(seed)
    work = [(R, 1024, C, None)]
    for _ in range(3):
        K = int(rng.integers(1, 48))
        work.append((int(rng.integers(1, 2 * R + 2)), K, int(rng.integers(1, 2 * C + 2)),
                     int(rng.integers(1, K + 1))))
    return tuple(work)


DEFAULT = [
    ArrayRegressConfig("e5m2_e6m5_eager4_2x3", "e5m2:e6m5:sr_eager:4", 2, 3,
                       small_work(2, 3, 1), seed=3, stall=0.3),
    ArrayRegressConfig("e4m3_fp16_lazy8_3x2_p1", "e4m3:fp16:sr_lazy:8", 3, 2,
                       small_work(3, 2, 2), seed=11, pipeline=1, stall=0.2),
    ArrayRegressConfig("e5m2_e6m5_rn_1x1", "e5m2:e6m5:rn", 1, 1, small_work(1, 1, 3),
                       stall=0.5),
    ArrayRegressConfig("e5m2_e6m5_eager4_2x2_x2_p1", "e5m2:e6m5:sr_eager:4", 2, 2,
                       small_work(4, 2, 7), seed=5, pipeline=1, stall=0.3, interleave=2),
    # four chains per PE, small: an 8 x 1 tile array, K up to 96
    ArrayRegressConfig("e5m2_e6m5_eager4_2x1_x4_p1", "e5m2:e6m5:sr_eager:4", 2, 1,
                       random_work(8, 1, 4, 11, kmax=96), seed=6, pipeline=1, stall=0.3,
                       interleave=4),
]

SLOW = [
    ArrayRegressConfig("e5m2nosub_e6m5nosub_eager4_4x4", "e5m2:nosub:e6m5:nosub:sr_eager:4",
                       4, 4, random_work(4, 4, 6, 4), seed=5, stall=0.25),
    ArrayRegressConfig("e4m3_bf16_eager8_3x5_p2", "e4m3:bf16:sr_eager:8", 3, 5,
                       random_work(3, 5, 6, 5), seed=7, pipeline=2, stall=0.1),
    ArrayRegressConfig("e5m2_fp16_lazy1_1x4", "e5m2:fp16:sr_lazy:1", 1, 4,
                       random_work(1, 4, 8, 6), seed=1, stall=0.4),
    ArrayRegressConfig("e5m2_e6m5_lazy4_3x2_x4_p1", "e5m2:e6m5:sr_lazy:4", 3, 2,
                       random_work(12, 2, 5, 8), seed=9, pipeline=1, stall=0.3, interleave=4),
    ArrayRegressConfig("e4m3_bf16_eager8_2x3_x3_p2", "e4m3:bf16:sr_eager:8", 2, 3,
                       random_work(6, 3, 5, 9), seed=2, pipeline=2, stall=0.2, interleave=3),
    ArrayRegressConfig("e5m2nosub_e6m5nosub_rn_1x1_x2", "e5m2:nosub:e6m5:nosub:rn", 1, 1,
                       random_work(2, 1, 6, 10), seed=4, stall=0.5, interleave=2),
]


def _check(rc, tmp_path):
    why = simulator_missing_reason()
    if why:
        pytest.skip(why)
    res = run_array_config(rc, tmp_path)
    details = "\n".join(res.get("details", []))
    assert res["mismatches"] == 0, f"{rc.name}: {res['mismatches']} mismatches\n{details}"
    assert res["passed"], f"{rc.name}: simulation failed\n{details}"
    assert res["macs"] >= sum(K for _, K, _, _ in rc.work) * rc.rows * rc.interleave * rc.cols


@pytest.mark.parametrize("rc", DEFAULT, ids=[c.name for c in DEFAULT])
def test_array_cocotb(rc, tmp_path):
    _check(rc, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("rc", SLOW, ids=[c.name for c in SLOW])
def test_array_cocotb_slow(rc, tmp_path):
    _check(rc, tmp_path)


def test_array_bench_reports_a_mismatch(tmp_path):
    """Hardware built with rz, bench expecting rn: the bench must fail and name the PE."""
    if simulator_missing_reason():
        pytest.skip(simulator_missing_reason())
    rc = ArrayRegressConfig("neg_rz_vs_rn", "e5m2:e6m5:rn", 2, 2, ((3, 40, 3, None),),
                            hw_mac="e5m2:e6m5:rz", stall=0.2)
    res = run_array_config(rc, tmp_path)
    assert res["mismatches"] > 0 and not res["passed"]
    assert "expected=" in res["details"][0] and "on PE (" in res["details"][0]


def test_array_bench_catches_a_wrong_seed(tmp_path):
    """Hardware generators seeded differently from the model: SR results must differ."""
    if simulator_missing_reason():
        pytest.skip(simulator_missing_reason())
    rc = ArrayRegressConfig("neg_seed", "e5m2:e6m5:sr_eager:2", 1, 2, ((1, 64, 2, None),),
                            seed=1)
    good = run_array_config(rc, tmp_path)
    assert good["passed"], good["details"]
    bad = run_array_config(ArrayRegressConfig(**{**rc.__dict__, "name": "neg_seed_bad",
                                                  "hw_seed": 2}), tmp_path)
    assert bad["mismatches"] > 0 and not bad["passed"]
