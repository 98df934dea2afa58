"""SystolicArray in Amaranth's simulator and the ref.array golden model.

Tiles are driven through the streams with random stalls on every stream
(a, b and c_in valid gaps, c_out ready gaps) and compared code for code with
``ref.array.ArrayModel`` (whose generator states continue across tiles).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

import ref
from hwgen.array import SystolicArray, tile_cycles
from hwgen.vectors import random_finite
from ref.array import ArrayModel, array_matmul, initial_states, tile_order


def _pack(vals, w):
    out = 0
    for q, v in enumerate(vals):
        out |= int(v) << (q * w)
    return out


def _unpack(word, w, n):
    return [(word >> (q * w)) & ((1 << w) - 1) for q in range(n)]


def run_tiles(dut, tiles, *, p_stall=0.0, seed=0, max_cycles=200_000, stats=None):
    """Drive ``tiles`` = [(A_t, B_t, C0_t)] through the streams; return the result tiles.

    Each stream's driver (or the c_out consumer) is idle with probability
    ``p_stall`` on every cycle, independently. ``stats["cycles"]``: clock
    cycles until the last result row transferred (inclusive).
    """
    cfg, R, C = dut.cfg, getattr(dut, "tile_rows", dut.rows), dut.cols
    wi, wa = cfg.in_fmt.width, cfg.acc_fmt.width
    rng = np.random.default_rng(seed)
    a_beats, b_beats, c_beats = [], [], []
    for A, B, C0 in tiles:
        K = A.shape[1]
        c_beats += [_pack(C0[i], wa) for i in range(R)]
        for k in range(K):
            a_beats.append(_pack(A[:, k], wi) | (int(k == K - 1) << (R * wi)))
            b_beats.append(_pack(B[k], wi))
    rows_out = []
    n_rows = R * len(tiles)

    async def tb(ctx):
        ia = ib = ic = 0
        for n in range(max_cycles):
            if len(rows_out) == n_rows:
                if stats is not None:
                    stats["cycles"] = n
                return
            go = [bool(x) for x in rng.random(4) >= p_stall]
            va = bool(ia < len(a_beats) and go[0])
            vb = bool(ib < len(b_beats) and go[1])
            vc = bool(ic < len(c_beats) and go[2])
            ctx.set(dut.a.valid, va)
            ctx.set(dut.b.valid, vb)
            ctx.set(dut.c_in.valid, vc)
            ctx.set(dut.c_out.ready, bool(go[3]))
            if va:
                ctx.set(dut.a.payload.as_value(), a_beats[ia])
            if vb:
                ctx.set(dut.b.payload.as_value(), b_beats[ib])
            if vc:
                ctx.set(dut.c_in.payload.as_value(), c_beats[ic])
            # Sample the handshakes before the edge (ready is combinational).
            ta = va and ctx.get(dut.a.ready)
            tb_ = vb and ctx.get(dut.b.ready)
            tc = vc and ctx.get(dut.c_in.ready)
            to = go[3] and ctx.get(dut.c_out.valid)
            out_word = ctx.get(dut.c_out.payload.as_value()) if to else None
            await ctx.tick()
            ia += ta
            ib += tb_
            ic += tc
            if to:
                rows_out.append(out_word)
        raise AssertionError(f"timeout: {len(rows_out)} of {n_rows} result rows")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    res = []
    for t in range(len(tiles)):
        words = rows_out[t * R : (t + 1) * R]
        lasts = [(w >> (C * wa)) & 1 for w in words]
        assert lasts == [0] * (R - 1) + [1], f"tile {t}: c_out.last pattern {lasts}"
        res.append(np.array([_unpack(w, wa, C) for w in words], dtype=np.int64))
    return res


def random_tiles(cfg, R, C, Ks, rng):
    return [
        (
            random_finite(cfg.in_fmt, rng, R * K).reshape(R, K),
            random_finite(cfg.in_fmt, rng, K * C).reshape(K, C),
            random_finite(cfg.acc_fmt, rng, R * C).reshape(R, C),
        )
        for K in Ks
    ]


def check(got, want, what):
    for t, (g, w) in enumerate(zip(got, want, strict=True)):
        bad = np.argwhere(g != w)
        assert bad.size == 0, (
            f"{what}: tile {t}: {len(bad)} mismatches, first at PE {tuple(bad[0])}: "
            f"expected {int(w[tuple(bad[0])]):#x} got {int(g[tuple(bad[0])]):#x}"
        )


@pytest.mark.parametrize(
    "spec,R,C,pipeline,p_stall",
    [
        ("e5m2:e6m5:sr_eager:4", 2, 3, 0, 0.3),
        ("e4m3:fp16:sr_lazy:6", 3, 1, 1, 0.2),
        ("e5m2:e6m5:rn", 1, 1, 0, 0.5),
    ],
)
def test_array_tiles_match_model(spec, R, C, pipeline, p_stall):
    cfg = ref.parse_mac(spec)
    rng = np.random.default_rng(R * 10 + C)
    tiles = random_tiles(cfg, R, C, [1, 7, 30], rng)
    dut = SystolicArray(cfg, R, C, seed=9, pipeline=pipeline)
    got = run_tiles(dut, tiles, p_stall=p_stall, seed=R + C)
    model = ArrayModel(cfg, R, C, seed=9)
    check(got, [model.run_tile(*t) for t in tiles], spec)


def test_results_do_not_depend_on_stalls():
    """Same tiles with and without stalls give the same codes; a different seed does not."""
    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:2")
    tiles = random_tiles(cfg, 2, 2, [20, 20], np.random.default_rng(3))
    g0 = run_tiles(SystolicArray(cfg, 2, 2, seed=4), tiles, p_stall=0.0)
    g1 = run_tiles(SystolicArray(cfg, 2, 2, seed=4), tiles, p_stall=0.6, seed=5)
    check(g1, g0, "stalled vs unstalled")
    g2 = run_tiles(SystolicArray(cfg, 2, 2, seed=5), tiles, p_stall=0.0)
    assert any((a != b).any() for a, b in zip(g0, g2, strict=True)), "seed has no effect"


def test_tile_cycles_without_stalls():
    cfg = ref.parse_mac("e5m2:e6m5:rn")
    R, C, K = 2, 3, 5
    dut = SystolicArray(cfg, R, C)
    tiles = random_tiles(cfg, R, C, [K, K], np.random.default_rng(0))
    stats = {}
    got = run_tiles(dut, tiles, stats=stats)
    check(got, [ArrayModel(cfg, R, C).run_tile(*t) for t in tiles], "two tiles")
    assert stats["cycles"] == 2 * tile_cycles(R, C, K) == 2 * (R + K + (R + C - 1) + R)


# ---- golden model (ref.array) ----

def test_model_tile_is_matmul_with_continuing_states():
    cfg = ref.parse_mac("e5m2:e6m5:sr_lazy:3")
    rng = np.random.default_rng(1)
    A = random_finite(cfg.in_fmt, rng, 2 * 9).reshape(2, 9)
    B = random_finite(cfg.in_fmt, rng, 9 * 3).reshape(9, 3)
    arr = ArrayModel(cfg, 2, 3, seed=6)
    z1 = arr.run_tile(A, B)
    z2 = arr.run_tile(A, B)
    # The first tile is ref.matmul with the array seeding; the second continues the states.
    assert (z1 == ref.matmul(A, B, cfg, seed=6)).all()
    z_full, st = ref.matmul(A, B, cfg, seed=6, return_state=True)
    assert (z2 == ref.matmul(A, B, cfg, state=st)).all()
    assert (initial_states(2, 3, 6) == np.array(
        [[ref.seed_state_int(6, i, j) for j in range(3)] for i in range(2)])).all()


def test_model_tiling_maps_outputs_to_pes_in_row_major_order():
    """A 5x4 result on a 2x3 array: blocks row-major, padded edges, PE (m mod R, n mod C)."""
    cfg = ref.parse_mac("e5m2:e6m5:sr_eager:4")
    rng = np.random.default_rng(2)
    M, K, N, R, C = 5, 11, 4, 2, 3
    A = random_finite(cfg.in_fmt, rng, M * K).reshape(M, K)
    B = random_finite(cfg.in_fmt, rng, K * N).reshape(K, N)
    C0 = random_finite(cfg.acc_fmt, rng, M * N).reshape(M, N)
    got = array_matmul(A, B, cfg, R, C, C0, seed=3)
    # Independent construction: per PE, walk its outputs in block order with one generator.
    assert tile_order(M, N, R, C) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    want = np.zeros((M, N), dtype=np.int64)
    for i in range(R):
        for j in range(C):
            g = ref.Xorshift32(3, i, j)
            for ti, tj in tile_order(M, N, R, C):
                m, n = ti * R + i, tj * C + j
                a = A[m] if m < M else np.zeros(K, dtype=np.int64)
                b = B[:, n] if n < N else np.zeros(K, dtype=np.int64)
                z = int(C0[m, n]) if m < M and n < N else 0
                words = [g.next_bits(cfg.rand_bits) for _ in range(K)]
                z = int(ref.dot(a, b, cfg, z, rand=np.array(words)))
                if m < M and n < N:
                    want[m, n] = z
    assert (got == want).all()
    # Splitting K into chunks changes nothing (chunks of a block are consecutive).
    assert (array_matmul(A, B, cfg, R, C, C0, seed=3, k_tile=4) == got).all()
    # Padded PEs step too: PE (1, 2) only ever sees padding in blocks (0, 1), (1, 1), (2, *),
    # yet its generator has stepped K times in each of the 6 blocks.
    z, st = array_matmul(A, B, cfg, R, C, C0, seed=3, return_state=True)
    g = ref.Xorshift32(3, 1, 2)
    for _ in range(K * len(tile_order(M, N, R, C))):
        g.next_word()
    assert int(st[1, 2]) == g.state


def test_model_bad_input():
    cfg = ref.parse_mac("e5m2:e6m5:rn")
    with pytest.raises(ValueError, match="rows"):
        ArrayModel(cfg, 0, 2)
    with pytest.raises(ValueError, match="shape"):
        ArrayModel(cfg, 2, 2).run_tile(np.zeros((3, 4), int), np.zeros((4, 2), int))
    with pytest.raises(ValueError, match="k_tile"):
        array_matmul(np.zeros((2, 4), int), np.zeros((4, 2), int), cfg, 2, 2, k_tile=0)
    with pytest.raises(ValueError, match="cols"):
        SystolicArray(cfg, 2, 0)
    with pytest.raises(ValueError, match="seed"):
        SystolicArray(cfg, 2, 2, seed=-1)


# ---- Verilog export ----

def test_export_array_ports_and_sidecar():
    import re

    from hwgen.array_export import export_array, parse_shape

    cfg = ref.parse_mac("e5m2:e6m5:sr_lazy:3")
    assert parse_shape("2x3") == (2, 3) and parse_shape(" 4X1 ") == (4, 1)
    with pytest.raises(ValueError, match="ROWSxCOLS"):
        parse_shape("2*3")
    name, text, side = export_array(cfg, 2, 3, seed=5)
    assert name == "srmac_e5m2_e6m5_sr_lazy_r3_array2x3"
    header = re.search(rf"module {name}\(([^)]*)\);", text).group(1)
    ports = {p.strip() for p in header.split(",")}
    assert ports == {p["name"] for p in side["ports"]}
    widths = {p["name"]: p["width"] for p in side["ports"]}
    assert widths["a__payload"] == 2 * 8 + 1 and widths["c_out__payload"] == 3 * 12 + 1
    for p in side["ports"]:
        if p["width"] > 1:
            assert re.search(rf"(input|output) \[{p['width'] - 1}:0\] {p['name']};", text), p
    assert side["generator_rule"]["initial_states"] == [
        [ref.seed_state_int(5, i, j) for j in range(3)] for i in range(2)]
    assert "src =" not in text
    _, t1, rn = export_array(ref.parse_mac("e5m2:e6m5:rn"), 1, 1)
    assert export_array(ref.parse_mac("e5m2:e6m5:rn"), 1, 1)[1] == t1  # deterministic
    assert rn["generator_rule"] is None and rn["rand_source"] == "none"
