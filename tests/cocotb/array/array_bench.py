"""cocotb bench for a generated ``SystolicArray`` (driven by hwgen.array_regress).

Environment: SRMAC_MAC (MAC spec), SRMAC_ROWS, SRMAC_COLS, SRMAC_SEED (PE
generator seed), SRMAC_PIPELINE, SRMAC_INTERLEAVE (chains per PE, L: a tile has
ROWS * L rows, chain l of PE (i, j) being tile row i*L + l), SRMAC_WORK (products ``MxKxN/k_tile`` joined
by ``;``, k_tile 0 = whole K), SRMAC_VSEED (data seed), SRMAC_STALL
(probability that each stream is idle on a cycle: a, b, c_in valid and c_out
ready, independently), SRMAC_REPORT (JSON report path).

Each product ``C0 + A @ B`` is tiled as ``ref.array.ArrayModel.tiles`` says
(row-major blocks, zero padding, K chunks); a chunk after the first preloads
the array's own previous results (read back from c_out, as a host would).
The results are compared code for code with ``ArrayModel.matmul`` (one model
for the whole run, so the generator states continue across products).

One driver per cycle: inputs written after the falling edge, handshakes
sampled at ReadOnly before the rising edge that performs them.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

import ref
from hwgen.vectors import random_finite
from ref.array import ArrayModel

MAX_REPORTED = 10


def _work(text):
    out = []
    for item in text.split(";"):
        shape, _, kt = item.partition("/")
        M, K, N = (int(x) for x in shape.split("x"))
        out.append((M, K, N, int(kt or 0) or None))
    return out


def _pack(vals, w):
    word = 0
    for q, v in enumerate(vals):
        word |= int(v) << (q * w)
    return word


@cocotb.test()
async def array_regression(dut):
    cfg = ref.parse_mac(os.environ["SRMAC_MAC"])
    L = int(os.environ.get("SRMAC_INTERLEAVE", "1"))
    # R: the rows of a tile (PE rows x chains per PE); tile row q is chain q mod L of PE row q div L
    R, C = int(os.environ["SRMAC_ROWS"]) * L, int(os.environ["SRMAC_COLS"])
    seed = int(os.environ.get("SRMAC_SEED", "0"))
    stall = float(os.environ.get("SRMAC_STALL", "0"))
    work = _work(os.environ["SRMAC_WORK"])
    rng = np.random.default_rng(int(os.environ.get("SRMAC_VSEED", "1")))
    wi, wa = cfg.in_fmt.width, cfg.acc_fmt.width
    mask_a = (1 << wa) - 1

    # ---- stimulus and expectations ----
    t0 = time.time()
    products, tiles = [], []  # tiles: (A_t, B_t, C0_t or None)
    # The readable reference loop: no JIT start-up inside the simulator's Python.
    expect_model = ArrayModel(cfg, R, C, seed, backend="reference")
    tiler = ArrayModel(cfg, R, C, seed)
    for M, K, N, kt in work:
        A = random_finite(cfg.in_fmt, rng, M * K).reshape(M, K)
        B = random_finite(cfg.in_fmt, rng, K * N).reshape(K, N)
        C0 = random_finite(cfg.acc_fmt, rng, M * N).reshape(M, N)
        want = expect_model.matmul(A, B, C0, k_tile=kt)
        blocks = []
        for ti, tj, _k0, At, Bt, Ct in tiler.tiles(A, B, C0, kt):
            blocks.append((ti, tj))
            tiles.append((At, Bt, Ct))
        products.append((M, N, want, blocks))
    t_vec = time.time() - t0

    a_beats, b_beats = [], []
    for At, Bt, _ in tiles:
        K = At.shape[1]
        for k in range(K):
            a_beats.append(_pack(At[:, k], wi) | (int(k == K - 1) << (R * wi)))
            b_beats.append(_pack(Bt[k], wi))

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    h = {n: getattr(dut, n) for n in (
        "a__valid", "a__ready", "a__payload", "b__valid", "b__ready", "b__payload",
        "c_in__valid", "c_in__ready", "c_in__payload", "c_out__valid", "c_out__ready",
        "c_out__payload")}
    dut.rst.value = 1
    for n in ("a__valid", "b__valid", "c_in__valid", "c_out__ready", "a__payload", "b__payload",
              "c_in__payload"):
        h[n].value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    # ---- one loop drives all four streams ----
    t1 = time.time()
    out_rows = []  # result words in order (-1: X/Z bits)
    unresolved = []
    ia = ib = 0
    c_tile, c_row = 0, 0  # next c_in beat: tile, row
    n_rows = R * len(tiles)
    cycles = 0
    limit = 20 * (len(a_beats) + n_rows * 4) + 1000
    go = (rng.random((limit, 4)) >= stall).tolist()
    c_words = None
    while len(out_rows) < n_rows:
        if cycles >= limit:
            break
        g = go[cycles]
        va = ia < len(a_beats) and g[0]
        vb = ib < len(b_beats) and g[1]
        # c_in for tile t: its C0, or (k chunk > 0) the results of tile t-1 once read back.
        vc = False
        if c_tile < len(tiles) and g[2]:
            Ct = tiles[c_tile][2]
            if Ct is not None:
                vc = True
                c_words = Ct
            elif len(out_rows) >= R * c_tile:
                prev = out_rows[R * (c_tile - 1) : R * c_tile]
                c_words = [[(w >> (q * wa)) & mask_a for q in range(C)] for w in prev]
                vc = True
        h["a__valid"].value = int(va)
        h["b__valid"].value = int(vb)
        h["c_in__valid"].value = int(vc)
        h["c_out__ready"].value = int(g[3])
        if va:
            h["a__payload"].value = a_beats[ia]
        if vb:
            h["b__payload"].value = b_beats[ib]
        if vc:
            h["c_in__payload"].value = _pack(c_words[c_row], wa)
        await ReadOnly()
        ta = va and h["a__ready"].value == 1
        tb = vb and h["b__ready"].value == 1
        tc = vc and h["c_in__ready"].value == 1
        to = g[3] and h["c_out__valid"].value == 1
        if to:
            v = h["c_out__payload"].value
            if v.is_resolvable:
                out_rows.append(v.to_unsigned())
            else:  # X or Z in a result: a mismatch, reported with the raw bits
                unresolved.append(f"result row {len(out_rows)} at cycle {cycles}: {v}")
                out_rows.append(-1)
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycles += 1
        ia += ta
        ib += tb
        if tc:
            c_row += 1
            if c_row == R:
                c_row, c_tile = 0, c_tile + 1
    t_sim = time.time() - t1

    # ---- compare ----
    lines, mism = [], 0
    count_ok = len(out_rows) == n_rows
    if not count_ok:
        lines.append(f"got {len(out_rows)} of {n_rows} result rows in {cycles} cycles")
    t = 0
    last_bad = 0
    for p, (M, N, want, blocks) in enumerate(products):
        got = np.zeros((-(-M // R) * R, -(-N // C) * C), dtype=np.int64)
        for ti, tj in blocks:
            words = out_rows[t * R : (t + 1) * R]
            # only the last K chunk of a block counts (the blocks list repeats per chunk)
            for i, w in enumerate(words):
                if i == R - 1 and not (w >> (C * wa)) & 1:
                    last_bad += 1
                for j in range(C):
                    got[ti * R + i, tj * C + j] = (w >> (j * wa)) & mask_a
            t += 1
        got = got[:M, :N]
        for m, n in np.argwhere(got != want):
            mism += 1
            if len(lines) < MAX_REPORTED:
                pe = f"PE ({m % R // L},{n % C})" + (f" chain {m % R % L}" if L > 1 else "")
                lines.append(
                    f"product {p} ({M}x{N}) C[{m},{n}] on {pe}: "
                    f"expected={int(want[m, n]):#x} actual={int(got[m, n]):#x}"
                )
    lines[:0] = unresolved[:MAX_REPORTED]
    mism += len(unresolved)
    if last_bad:
        lines.append(f"{last_bad} result tiles without c_out.last on the final row")
    macs = sum(R * C * At.shape[1] for At, _, _ in tiles)
    report = {
        "mac": cfg.spec(),
        "rows": R // L,
        "cols": C,
        "interleave": L,
        "tiles": len(tiles),
        "macs": macs,
        "cycles": cycles,
        "mismatches": mism + last_bad + (0 if count_ok else 1),
        "count_ok": count_ok,
        "vector_seconds": t_vec,
        "sim_seconds": t_sim,
        "details": lines,
    }
    path = os.environ.get("SRMAC_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
    assert count_ok, lines[0]
    assert report["mismatches"] == 0, "\n".join(lines)
