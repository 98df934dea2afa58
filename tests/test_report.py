"""``srmac report``: the size search, build parsing, caching and the written table/plot.

Synthesis is replaced by fake probes and fake build folders (no tool runs; a few
seconds in all). The real sweep is ``srmac report`` itself (docs/scaling.md).
"""

import csv
import json

import pytest

import boards.report as R
from boards.report import Point, search_largest, shapes
from hwgen.synth import ToolError
from ref.cli import main


def linear_probe(avail, base=900, per_pe=700, calls=None):
    """A device of ``avail`` logic cells; a design costs base + per_pe * PEs."""

    def probe(rows, cols):
        if calls is not None:
            calls.append((rows, cols))
        lc = base + per_pe * rows * cols
        if lc > avail:
            return Point("fake", "e5m2:e6m5:rn", rows, cols, "too big")
        return Point("fake", "e5m2:e6m5:rn", rows, cols, "fits", lc, avail, fmax_mhz=10.0)

    return probe


def test_shapes_are_near_square_and_grow():
    s = shapes(30)
    assert s[:5] == [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3)]
    assert s[-1] == (5, 6) and all(r <= c <= r + 1 for r, c in s)
    pes = [r * c for r, c in s]
    assert pes == sorted(pes) and len(set(pes)) == len(pes)


@pytest.mark.parametrize("avail", [1_700, 5_280, 12_000, 24_288, 83_640, 400_000])
@pytest.mark.parametrize("start", [0, 2, 8])
def test_search_finds_the_largest_fit_in_few_builds(avail, start):
    calls = []
    best, up, points = search_largest(linear_probe(avail, calls=calls), shapes(), start=start)
    cand = shapes()
    # brute force: the last candidate that fits
    want = max(i for i, (r, c) in enumerate(cand) if 900 + 700 * r * c <= avail)
    assert (best.rows, best.cols) == cand[want]
    assert (up.rows, up.cols) == cand[want + 1] and not up.fits
    assert len(calls) == len(set(calls)) <= 6  # guided bisection: no shape built twice
    assert [(p.rows, p.cols) for p in points] == calls


def test_search_follows_the_scarcest_resource():
    """An ECP5-25F-like device: logic cells to spare, but one DSP block per PE (+2) of 28."""
    calls = []

    def probe(rows, cols):
        calls.append((rows, cols))
        n = rows * cols
        fits = n + 2 <= 28
        return Point("fake", "s", rows, cols, "fits" if fits else "too big",
                     *((1000 + 800 * n, 24288, 0, 0, 0, n + 2, 28) if fits else ()))

    best, up, _ = search_largest(probe, shapes(), start=4)
    assert (best.rows, best.cols, up.rows, up.cols) == (5, 5, 5, 6)
    assert len(calls) <= 4


def test_search_when_nothing_fits_or_everything_fits():
    best, up, points = search_largest(linear_probe(1_000), shapes(), start=4)
    assert best is None and (up.rows, up.cols) == (1, 1) and not up.fits
    best, up, _ = search_largest(linear_probe(10**9), shapes(20), start=0)
    assert (best.rows, best.cols) == shapes(20)[-1] and up is None


def test_search_ends_at_a_size_not_built():
    def probe(rows, cols):
        n = rows * cols
        status = "fits" if n <= 4 else "not built"
        return Point("fake", "s", rows, cols, status, *((100 * n, 5280) if n <= 4 else ()))

    best, up, points = search_largest(probe, shapes(), start=2)
    assert (best.rows, best.cols) == (2, 2) and up.status == "not built"
    assert [p.status for p in points] == ["fits", "not built"]


def test_search_stops_after_max_builds():
    calls = []
    best, up, points = search_largest(linear_probe(83_640, calls=calls), shapes(), start=0,
                                      max_builds=2)
    assert len(calls) == 2 and best is not None and best.fits
    with pytest.raises(ValueError, match="no array sizes"):
        search_largest(linear_probe(1), [])


# ---- parsing a build folder -------------------------------------------------------------------

def _fake_build(d, family="ecp5", fmax=(31.5, 120.0), lc=(8411, 24288)):
    d.mkdir(parents=True, exist_ok=True)
    names = {"ecp5": ("TRELLIS_COMB", "DP16KD", "MULT18X18D", "TRELLIS_FF"),
             "ice40": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "SB_IO")}[family]
    report = {
        "utilization": {names[0]: {"used": lc[0], "available": lc[1]},
                        names[1]: {"used": 2, "available": 56},
                        names[2]: {"used": 11, "available": 28},
                        names[3]: {"used": 1042, "available": 24288}},
        "fmax": {"core_clk": {"achieved": fmax[0], "constraint": 50.0},
                 "clk25_0__io": {"achieved": fmax[1], "constraint": 25.0}},
        "critical_paths": [],
    }
    (d / "report.json").write_text(json.dumps(report))
    cells = {"LUT4": 10, "TRELLIS_FF": 1042} if family == "ecp5" else {"SB_LUT4": 10,
                                                                        "SB_DFF": 77}
    (d / "stat.json").write_text(json.dumps({"design": {"num_cells_by_type": cells}}))
    (d / "srmac_array.tim").write_text("Info: done\n")


def test_parse_build_reads_nextpnr_and_yosys(tmp_path):
    _fake_build(tmp_path / "e")
    p = R.parse_build(tmp_path / "e", "ecp5", "ulx3s-25f", "e5m2:e6m5:rn", 3, 3, 0, 12.0)
    assert p.fits and (p.logic_cells, p.logic_cells_available) == (8411, 24288)
    assert (p.ffs, p.bram, p.bram_available, p.dsp, p.dsp_available) == (1042, 2, 56, 11, 28)
    assert p.fmax_mhz == 31.5  # the slower clock: the array's, not the oscillator's
    assert p.peak_gmacs == pytest.approx(9 * 31.5e6 / 1e9)
    _fake_build(tmp_path / "i", family="ice40", lc=(5000, 5280))
    q = R.parse_build(tmp_path / "i", "ice40", "icebreaker", "x", 2, 2, 0, 1.0)
    assert q.ffs == 77 and q.logic_cells == 5000  # iCE40: flip-flops from yosys


def test_parse_build_failures(tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    (d / "srmac_array.tim").write_text(
        "Info: Packing\nERROR: Unable to place cell 'x', no BELs remaining to implement cell "
        "type 'TRELLIS_COMB'\n")
    p = R.parse_build(d, "ecp5", "b", "s", 9, 9, 1, 30.0)
    assert p.status == "too big" and not p.fits and "no BELs" in p.message
    t = R.parse_build(tmp_path, "ecp5", "b", "s", 9, 9, None, 3600.0)
    assert t.status == "timeout" and not t.fits
    y = tmp_path / "yosys"
    y.mkdir()
    (y / "flow.log").write_text("ERROR: syntax error in srmac_array.il\n")
    with pytest.raises(ToolError, match="before place and route.*syntax error"):
        R.parse_build(y, "ecp5", "b", "s", 1, 1, 1, 2.0)


UTIL_LOG = """Info: Device utilisation:
Info: \t         ICESTORM_LC:    5570/   5280   105%
Info: \t        ICESTORM_RAM:       4/     30    13%
"""


def test_overfull_design_is_stopped_early(tmp_path):
    assert R.overfull(UTIL_LOG) == "ICESTORM_LC 5570/5280"
    assert R.overfull(UTIL_LOG.replace("5570", "5000")) == ""
    # a flow that prints an over-full utilisation, then would place for a long time
    (tmp_path / "build_srmac_array.sh").write_text(
        f"cat > srmac_array.tim <<'EOF'\n{UTIL_LOG}EOF\nsleep 60\n")
    code, seconds = R._run_script(tmp_path, timeout=100)
    assert code == "ICESTORM_LC 5570/5280" and seconds < 20
    p = R.parse_build(tmp_path, "ice40", "icebreaker", "s", 3, 3, code, seconds)
    assert p.status == "too big" and p.message == "over-full: ICESTORM_LC 5570/5280"
    # a flow that runs past the timeout
    (tmp_path / "srmac_array.tim").unlink()
    (tmp_path / "build_srmac_array.sh").write_text("sleep 60\n")
    assert R._run_script(tmp_path, timeout=1)[0] is None


def test_board_probe_builds_once_then_reuses_the_cache(tmp_path, monkeypatch):
    import ref

    runs = []

    def fake_run(build_dir, timeout):
        runs.append(build_dir)
        assert (build_dir / "build_srmac_array.sh").exists()  # the real plan was written
        _fake_build(build_dir, family="ice40", lc=(3000, 5280), fmax=(8.0, 50.0))
        return 0, 5.0

    monkeypatch.setattr(R, "_run_script", fake_run)
    cfg = ref.parse_mac("e5m2:e6m5:rn")
    probe = R.board_probe("icebreaker", cfg, tmp_path, kmax=16)
    p1 = probe(1, 1)
    p2 = R.board_probe("icebreaker", cfg, tmp_path, kmax=16)(1, 1)
    assert len(runs) == 1 and p1 == p2 and p1.fmax_mhz == 8.0
    assert runs[0] == tmp_path / "icebreaker" / "e5m2_e6m5_rn" / "L2-p1-lut" / "1x1"
    assert p1.interleave == 2 and p1.pipeline == 1
    assert R.board_probe("icebreaker", cfg, tmp_path, kmax=16, build=False)(1, 1) == p1
    missing = R.board_probe("icebreaker", cfg, tmp_path, kmax=16, build=False)(2, 2)
    assert missing.status == "not built" and not missing.fits and len(runs) == 1
    R.board_probe("icebreaker", cfg, tmp_path, kmax=32)(1, 1)  # another design: rebuilt
    R.board_probe("icebreaker", cfg, tmp_path, kmax=16, force=True)(1, 1)
    assert len(runs) == 3
    other = R.Design(pipeline=1, interleave=3)  # another array design: its own folder
    p3 = R.board_probe("icebreaker", cfg, tmp_path, kmax=16, design=other)(1, 1)
    assert len(runs) == 4 and runs[-1].parent.name == "L3-p1-lut" and p3.interleave == 3
    assert R.cached_points(tmp_path, "icebreaker", cfg, kmax=16, design=other) == [p3]
    # the cache, read back: the kmax=16 design only
    assert R.cached_points(tmp_path, "icebreaker", cfg, kmax=16) == [p1]
    assert R.cached_points(tmp_path, "icebreaker", ref.parse_mac("e5m2:e6m5:rz")) == []


# ---- the command ------------------------------------------------------------------------------

def test_report_cli_writes_table_csv_and_plot(tmp_path, monkeypatch, capsys):
    def fake_board_probe(board, cfg, results, **kw):
        avail = {"icebreaker": 5_280, "ulx3s-25f": 24_288}[board]
        per = {"rn": 600, "sr_eager": 800}[cfg.rounding]

        def probe(r, c):
            lc = 1000 + per * r * c
            if lc > avail:
                return Point(board, cfg.spec(), r, c, "too big")
            return Point(board, cfg.spec(), r, c, "fits", lc, avail, ffs=50 * r * c,
                         fmax_mhz=7.5 if board == "icebreaker" else 25.0)

        return probe

    monkeypatch.setattr(R, "board_probe", fake_board_probe)
    out = tmp_path / "scaling"
    png = tmp_path / "scaling.png"
    assert main(["report", "--boards", "icebreaker,ulx3s-25f", "--roundings", "rn,sr_eager",
                 "--results", str(tmp_path / "cache"), "--out", str(out), "--plot", str(png),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(open(f"{out}.csv")))
    got = {(r["board"], r["spec"]): (r["rows"], r["cols"], r["peak_gmacs"]) for r in rows}
    # icebreaker rn: 1000 + 600 * 6 = 4600 fits, 2x3 -> 3x3 (6400) does not
    assert got[("icebreaker", "e5m2:e6m5:rn")] == ("2", "3", str(6 * 7.5e6 / 1e9))
    # ulx3s-25f sr_eager: 1000 + 800 * 25 = 21000 fits, 5x6 (25000) does not
    assert got[("ulx3s-25f", "e5m2:e6m5:sr_eager:4")][:2] == ("5", "5")
    assert len(rows) == 4
    md = open(f"{out}.md").read()
    assert "| icebreaker | e5m2:e6m5:rn | 2x3 | 1 | 6 | 4600 / 5280 (87 %) |" in md
    assert "| 45 M | 3x3: too big |" in md  # 6 PEs x 7.5 MHz
    assert "Reproduce: `srmac report --boards icebreaker,ulx3s-25f" in md and md in text
    points = list(csv.DictReader(open(f"{out}_points.csv")))
    assert {p["status"] for p in points} == {"fits", "too big"}
    assert png.stat().st_size > 10_000


def test_report_cli_explicit_sizes(tmp_path, monkeypatch, capsys):
    built = []

    def fake_board_probe(board, cfg, results, **kw):
        def probe(r, c):
            built.append((r, c))
            return Point(board, cfg.spec(), r, c, "fits" if r * c <= 2 else "too big",
                         100 * r * c, 5280, fmax_mhz=9.0)

        return probe

    monkeypatch.setattr(R, "board_probe", fake_board_probe)
    assert main(["report", "--quick", "--sizes", "1x1,1x2,2x2", "--out", str(tmp_path / "q"),
                 "--results", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert built == [(1, 1), (1, 2), (2, 2)]
    assert "| icebreaker | e5m2:e6m5:rn | 1x2 |" in capsys.readouterr().out


def test_report_design_defaults_follow_the_formats(tmp_path, monkeypatch, capsys):
    """Without --interleave the report builds what `srmac build` builds: two chains per PE
    where the dual datapath applies (E5M2 -> E6M5), one where it does not (E4M3 -> E6M5)."""
    designs = {}

    def fake_board_probe(board, cfg, results, **kw):
        designs[cfg.in_fmt.name] = kw["design"]
        return lambda r, c: Point(board, cfg.spec(), r, c, "too big")

    monkeypatch.setattr(R, "board_probe", fake_board_probe)
    for fmt in ("e5m2", "e4m3"):
        assert main(["report", "--quick", "--in", fmt, "--acc", "e6m5", "--no-progress",
                     "--out", str(tmp_path / fmt), "--results", str(tmp_path / "cache")]) == 0
    assert (designs["E5M2"].interleave, designs["E4M3"].interleave) == (2, 1)
    assert designs["E5M2"].pipeline == designs["E4M3"].pipeline == 1
    assert "--interleave" not in capsys.readouterr().out  # the defaults: not in the command


@pytest.mark.parametrize("argv, expect", [
    (["--boards", "nosuch"], "unknown board 'nosuch'"),
    (["--roundings", "rn,sr"], "unknown rounding 'sr'"),
    (["--sizes", "2by2"], "'2by2' not understood"),
    (["--start", "2x5"], "--start 2x5"),
    (["--force", "--no-build"], "pick one"),
])
def test_report_cli_bad_input_is_one_line(tmp_path, capsys, argv, expect):
    assert main(["report", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("srmac report: error: ") and err.count("\n") == 1
    assert expect in err


@pytest.mark.slow
def test_report_quick_runs_the_real_flow(tmp_path, capsys):
    """`srmac report --quick`: one real iCEBreaker build (1x1 RN, about 1.5 min), cached."""
    args = ["report", "--quick", "--kmax", "16", "--results", str(tmp_path / "r"), "--out",
            str(tmp_path / "q"), "--no-progress"]
    assert main(args) == 0
    row = next(csv.DictReader(open(tmp_path / "q.csv")))
    assert (row["board"], row["rows"], row["cols"]) == ("icebreaker", "1", "1")
    assert 0 < int(row["logic_cells"]) <= 5280 and float(row["fmax_mhz"]) > 1.0
    first = (tmp_path / "q_points.csv").read_text()
    assert main(args) == 0  # the rerun parses the cached build
    assert (tmp_path / "q_points.csv").read_text() == first
