"""cocotb bench for a generated ``MacUnit`` (driven by hwgen.regress through cocotb_tools.runner).

Configuration from the environment: SRMAC_MAC (MAC spec), SRMAC_RAND (port|prng),
SRMAC_SEED (generator seed), SRMAC_PIPELINE, SRMAC_OPS, SRMAC_VSEED (vector seed),
SRMAC_IDLE (fraction of idle cycles), SRMAC_INTERLEAVE (chains L: cycle t after reset
belongs to chain t mod L, each chain its own stream), SRMAC_REPORT (JSON report path).

One operation per clock: inputs are driven after each falling edge, outputs are
sampled at the falling edge (settled after the rising edge). Results are checked
in order at out_valid, code for code against the golden model (hwgen.vectors).
With the built-in generator, a second phase resets the MAC and runs one chain
from reset, compared with ``ref.dot(..., seed=SRMAC_SEED)`` prefix by prefix (interleaved:
one chain per generator, the rows of ``ref.matmul(..., seed=SRMAC_SEED)``).
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

import ref
from hwgen.vectors import make_interleaved_stream, make_stream

MAX_REPORTED = 10


def _env():
    return dict(
        cfg=ref.parse_mac(os.environ["SRMAC_MAC"]),
        rand_mode=os.environ.get("SRMAC_RAND", "port"),
        seed=int(os.environ.get("SRMAC_SEED", "0")),
        pipeline=int(os.environ.get("SRMAC_PIPELINE", "0")),
        ops=int(os.environ.get("SRMAC_OPS", "10000")),
        vseed=int(os.environ.get("SRMAC_VSEED", "1")),
        idle=float(os.environ.get("SRMAC_IDLE", "0")),
        interleave=int(os.environ.get("SRMAC_INTERLEAVE", "1")),
        report=os.environ.get("SRMAC_REPORT"),
    )


def _fmt(code, fmt):
    return f"{int(code):#x} ({float(ref.decode(int(code), fmt))!r})"


async def _reset(dut):
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_first.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _run(dut, valid, first, a, b, c, rand, drive_rand):
    """Drive the cycles; return the acc codes seen at out_valid, in order."""
    got = []
    # Plain Python ints and cached handles: the per-cycle cost is what limits the bench.
    cols = [x.tolist() for x in (valid, first, a, b, c, rand)]
    h_valid, h_first, h_a, h_b, h_c = dut.in_valid, dut.in_first, dut.a, dut.b, dut.c
    h_rand = dut.rand if drive_rand else None
    h_ov, h_acc = dut.out_valid, dut.acc
    fall = FallingEdge(dut.clk)
    for v, f, x, y, z, r in zip(*cols, strict=True):
        h_valid.value = v
        h_first.value = f
        h_a.value = x
        h_b.value = y
        h_c.value = z
        if h_rand is not None:
            h_rand.value = r
        await fall
        if h_ov.value:
            got.append(h_acc.value.to_unsigned())
    h_valid.value = 0
    for _ in range(8):  # drain the pipeline
        await fall
        if h_ov.value:
            got.append(h_acc.value.to_unsigned())
    return got


@cocotb.test()
async def mac_regression(dut):
    e = _env()
    cfg = e["cfg"]
    t0 = time.time()
    L = e["interleave"]
    opts = dict(seed=e["vseed"], rand_mode=e["rand_mode"], prng_seed=e["seed"], idle=e["idle"])
    st = (make_stream(cfg, e["ops"], **opts) if L == 1
          else make_interleaved_stream(cfg, e["ops"], L, **opts))
    t_vec = time.time() - t0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    drive_rand = e["rand_mode"] == "port" and cfg.rand_bits > 0
    await _reset(dut)
    t1 = time.time()
    got = _run(dut, st.valid, st.first, st.a, st.b, st.c, st.rand, drive_rand)
    got = await got
    v = st.valid == 1
    exp = st.expected[v]
    mism = []
    for k in range(min(len(got), len(exp))):
        if got[k] != exp[k]:
            mism.append(k)
    ok_count = len(got) == len(exp)
    lines = []
    idx = np.nonzero(v)[0]
    for k in mism[:MAX_REPORTED]:
        i = idx[k]
        lines.append(
            f"op {k}: z={_fmt(st.z_in[i], cfg.acc_fmt)} a={_fmt(st.a[i], cfg.in_fmt)} "
            f"b={_fmt(st.b[i], cfg.in_fmt)} rand={int(st.rand[i]):#x} first={int(st.first[i])} "
            f"expected={_fmt(exp[k], cfg.acc_fmt)} actual={_fmt(got[k], cfg.acc_fmt)}"
        )

    # Phase 2 (built-in generator): reset reseeds it; one chain per generator, from reset,
    # vs ref.dot(seed=...) (L = 1) or the rows of ref.matmul(seed=...) (chain l = PE (l, 0)).
    chain_ops = 0
    if e["rand_mode"] == "prng" and cfg.rand_bits:
        rng = np.random.default_rng(e["vseed"] + 1)
        K = 48
        from hwgen.vectors import random_finite

        ca = random_finite(cfg.in_fmt, rng, L * K).reshape(L, K)
        cb = random_finite(cfg.in_fmt, rng, K)
        c0 = random_finite(cfg.acc_fmt, rng, L)
        await _reset(dut)
        first = np.zeros(L * K, dtype=np.int64)
        first[:L] = 1
        g2 = await _run(
            dut,
            np.ones(L * K, dtype=np.int64),
            first,
            ca.T.reshape(-1),  # cycle k*L + l: chain l, step k
            np.repeat(cb, L),
            np.tile(c0, K),
            np.zeros(L * K, dtype=np.int64),
            False,
        )
        chain_ops = L * K
        for k in range(K):
            want = ref.matmul(ca[:, : k + 1], cb[: k + 1, None], cfg, c0[:, None],
                              seed=e["seed"], backend="reference")[:, 0]
            for lane in range(L):
                n = k * L + lane
                if n >= len(g2) or g2[n] != int(want[lane]):
                    act = g2[n] if n < len(g2) else None
                    mism.append(-1 - n)
                    if len(lines) < MAX_REPORTED:
                        lines.append(
                            f"seeded chain {lane} op {k}: a={_fmt(ca[lane, k], cfg.in_fmt)} "
                            f"b={_fmt(cb[k], cfg.in_fmt)} "
                            f"expected={_fmt(want[lane], cfg.acc_fmt)} actual="
                            f"{'missing' if act is None else _fmt(act, cfg.acc_fmt)}"
                        )
    t_sim = time.time() - t1
    report = {
        "mac": cfg.spec(),
        "rand": e["rand_mode"],
        "interleave": L,
        "ops": int(v.sum()) + chain_ops,
        "results": len(got),
        "mismatches": len(mism) + (0 if ok_count else 1),
        "count_ok": ok_count,
        "vector_seconds": t_vec,
        "sim_seconds": t_sim,
        "details": lines,
    }
    if e["report"]:
        with open(e["report"], "w") as f:
            json.dump(report, f, indent=1)
    assert ok_count, f"expected {len(exp)} results at out_valid, got {len(got)}"
    assert not mism, f"{len(mism)} mismatches for {cfg.spec()}:\n" + "\n".join(lines)
