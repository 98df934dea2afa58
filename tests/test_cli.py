"""The golden model's CLI verbs: quantize, mac, rbits (ref/cli_commands.py).

Outputs are parsed and checked against the library (codes compared as
integers), and against independent arithmetic where it is simple (the SR
probability floor(f * 2**r) / 2**r, required_rbits' formula).
"""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ref import MacConfig, decode, encode, mac, parse_format
from ref.cli import main

SRMAC = Path(sys.executable).with_name("srmac")


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def table_rows(text: str, first_header: str):
    """Rows (cells split on 2+ spaces) of the table whose header starts with first_header."""
    import re

    lines = text.splitlines()
    words = first_header.split()
    start = next(i for i, line in enumerate(lines) if line.split()[: len(words)] == words)
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return lines[start], rows


# ---- rbits ---------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 4, 5, 16, 17, 255, 256, 257, 4096, 4097, 10**6])
def test_rbits_prints_ceil_half_log2(capsys, n):
    rc, out, err = run_cli(capsys, "rbits", "--n", str(n))
    assert rc == 0 and err == ""
    expected = max(1, math.ceil(math.log2(n) / 2))  # the rule, in floating point (exact here)
    assert out == f"{expected}\n"


def test_rbits_explain_adds_one_line(capsys):
    rc, out, _ = run_cli(capsys, "rbits", "--n", "4096", "--explain")
    lines = out.splitlines()
    assert rc == 0 and lines[0] == "6" and len(lines) == 2 and "4096" in lines[1]


# ---- quantize ------------------------------------------------------------------

def _quantize_rows(out):
    _, rows = table_rows(out, "value  code")
    return rows


@pytest.mark.parametrize("fmt,rounding", [("e4m3", "rn"), ("e5m2", "rz"), ("fp16", "rn"),
                                          ("e6m5:nosub", "rz"), ("e4m3", "sr")])
def test_quantize_codes_match_encode(capsys, fmt, rounding):
    values = ["1.3", "2.7", "-0.3", "448", "500", "1e-9", "-0.0", "inf", "0x1.8p1"]
    extra = ["--rbits", "3", "--seed", "7"] if rounding == "sr" else []
    rc, out, err = run_cli(capsys, "quantize", "--fmt", fmt, "--rounding", rounding, *extra,
                           "--", *values)
    assert rc == 0, err
    rows = _quantize_rows(out)
    assert [r[0] for r in rows] == values
    f = parse_format(fmt)
    x = np.array([float(v) if "0x" not in v else float.fromhex(v) for v in values])
    kw = dict(rbits=3, seed=7) if rounding == "sr" else {}
    want = encode(x, f, rounding, **kw)
    for (_, hexcode, bits, rounded), c in zip(rows, want.tolist(), strict=True):
        assert int(hexcode, 16) == c
        s, e, m = bits.split("|")
        assert (len(s), len(e), len(m)) == (1, f.exp_bits, f.man_bits)
        assert int(s + e + m, 2) == c
        y = float(decode(c, f))
        assert float(rounded) == y or (math.isnan(y) and rounded == "nan")


def test_quantize_sr_samples_match_exact_probability(capsys):
    rc, out, err = run_cli(capsys, "quantize", "--fmt", "e4m3", "--rounding", "sr", "--rbits", "4",
                           "--samples", "20000", "--seed", "3", "1.3", "2.7", "-0.3")
    assert rc == 0, err
    header, rows = table_rows(out, "value  down")
    assert "P(up) exact" in header
    fmt = parse_format("e4m3")
    for row, x in zip(rows, (1.3, 2.7, -0.3), strict=True):
        p_exact = Fraction(row[4].split(" = ")[0])
        # Independent: enumerate all 16 random words through encode.
        codes = encode(np.full(16, x), fmt, "sr", rbits=4, rand=np.arange(16))
        hi = encode(x, fmt, "rz") + 1  # one code further from zero
        assert p_exact == Fraction(int(np.count_nonzero(codes == hi)), 16)
        # And the formula floor(f * 16) / 16 with f computed here in exact arithmetic.
        ax = abs(Fraction(x))
        ulp = Fraction(2) ** (math.floor(math.log2(ax)) - fmt.man_bits)
        f = ax / ulp - ax // ulp
        assert p_exact == Fraction(math.floor(f * 16), 16)
        sd = math.sqrt(float(p_exact * (1 - p_exact)) / 20000)
        assert abs(float(row[5]) - float(p_exact)) < 5 * sd


# ---- mac -----------------------------------------------------------------------

def _mac_table(out):
    header, rows = table_rows(out, "mode ")
    assert header.split()[:2] == ["mode", "rand"]
    modes, cur = {}, None
    for r in rows:
        if len(r) >= 8:  # first line of a mode: mode, bits, outcome, code, value, P, E, bias
            cur = r[0]
            modes[cur] = {"bits": r[1], "E": r[6], "bias": r[7], "out": []}
            r = r[2:6]
        else:  # continuation line: outcome, code, value, P
            r = r[-4:]
        modes[cur]["out"].append({"code": int(r[1], 16), "value": float(r[2]), "P": r[3]})
    return modes


@pytest.mark.parametrize("argv", [
    ["--z", "16", "--a", "1.75", "--b", "0.3125"],
    ["--z", "-3.5", "--a", "1.5", "--b", "2.5"],          # effective subtraction, close path
    ["--z", "0.0078125", "--a", "-24", "--b", "0.375"],    # product dominates
    ["--z", "1000", "--a", "-0.875", "--b", "0.0625", "--in", "e4m3", "--acc", "fp16"],
])
def test_mac_modes_match_ref(capsys, argv):
    rc, out, err = run_cli(capsys, "mac", "--rbits", "3", *argv)
    assert rc == 0, err
    modes = _mac_table(out)
    assert list(modes) == ["rn", "rz", "sr_lazy", "sr_eager"]
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    cfg0 = MacConfig(opts.get("--in", "e5m2"), opts.get("--acc", "e6m5"), "rn")
    z = int(encode(float(opts["--z"]), cfg0.acc_fmt))
    a = int(encode(float(opts["--a"]), cfg0.in_fmt))
    b = int(encode(float(opts["--b"]), cfg0.in_fmt))
    za, aa, ba = (Fraction(float(opts[k])) for k in ("--z", "--a", "--b"))
    exact = za + aa * ba
    for mode, got in modes.items():
        cfg = cfg0.replace(rounding=mode, rbits=3)
        if cfg.is_sr:
            words = np.arange(1 << cfg.rand_bits)
            codes = mac(np.full(words.shape, z), a, b, cfg, rand=words)
        else:
            codes = np.array([mac(z, a, b, cfg)])
        uniq, counts = np.unique(codes, return_counts=True)
        assert [o["code"] for o in got["out"]] == sorted(uniq.tolist(),
                                                          key=lambda c: decode(c, cfg.acc_fmt))
        total = counts.sum()
        for o in got["out"]:
            n = int(counts[uniq.tolist().index(o["code"])])
            assert o["P"] == ("1" if n == total else f"{n}/{total}")
        mean = sum(Fraction(float(decode(c, cfg.acc_fmt))) * int(n)
                   for c, n in zip(uniq, counts, strict=True)) / int(total)
        assert Fraction(float(got["E"])) == mean
        # Every outcome is one of the two neighbours of the exact sum: the RZ
        # code or the next code away from zero (same sign, magnitude + 1).
        rz = int(mac(z, a, b, cfg.replace(rounding="rz")))
        assert {o["code"] for o in got["out"]} <= {rz, rz + 1}
        if Fraction(float(decode(rz, cfg.acc_fmt))) == exact:
            assert [o["code"] for o in got["out"]] == [rz]


def test_mac_codes_form_and_rand_word(capsys):
    rc, by_value, _ = run_cli(capsys, "mac", "--z", "16", "--a", "1.75", "--b", "0.3125")
    assert rc == 0
    z, a, b = int(encode(16.0, "e6m5")), int(encode(1.75, "e5m2")), int(encode(0.3125, "e5m2"))
    rc, by_code, _ = run_cli(capsys, "mac", "--codes", f"{z:#x},{a},{b:#b}", "--rand", "0x2b")
    assert rc == 0
    assert by_code.startswith(by_value)  # same operands, same table
    _, rows = table_rows(by_code, "mode      word")
    for row in rows:
        mode, word, code = row[0], int(row[1], 16), int(row[-2], 16)
        cfg = MacConfig("e5m2", "e6m5", mode, 4)
        assert word == 0x2B & ((1 << cfg.rand_bits) - 1)
        assert code == int(mac(z, a, b, cfg, rand=word))


# ---- errors and help -------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["quantize", "--fmt", "e9x", "1"],
    ["quantize", "abc"],
    ["quantize", "--rounding", "sr", "1"],
    ["quantize", "--rbits", "3", "1"],
    ["quantize", "--rounding", "sr", "--rbits", "0", "1"],
    ["quantize", "--samples", "5", "1"],
    ["quantize", "--fmt", "e6m5:none", "nan"],
    ["mac", "--a", "1.3", "--b", "1"],
    ["mac", "--codes", "1,2"],
    ["mac", "--codes", "0x1000,1,1"],
    ["mac", "--a", "1"],
    ["mac", "--rbits", "40", "--a", "1", "--b", "1"],
    ["mac", "--codes", "1,2,3", "--a", "1"],
    ["mac", "--rand", "x", "--a", "1", "--b", "1"],
    ["mac", "--acc", "e6m5:nosub:bias=x", "--a", "1", "--b", "1"],
    ["rbits", "--n", "0"],
    ["rbits", "--n", "many"],
    ["demo", "--seeds", "0"],
])
def test_bad_input_one_line_exit_2(capsys, argv):
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"srmac {argv[0]}: error: ")


@pytest.mark.parametrize("verb", ["quantize", "mac", "rbits", "demo"])
def test_help_has_examples(capsys, verb):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "examples:" in out and f"srmac {verb}" in out


def test_installed_entry_point():
    """The console script runs the same code (one subprocess for the file: start-up is slow)."""
    if not SRMAC.exists():
        pytest.skip(f"{SRMAC} not installed (pip install -e .)")
    ok = subprocess.run([str(SRMAC), "rbits", "--n", "4097"], capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0 and ok.stdout == "7\n", ok.stderr


def test_quantize_sr_samples_edge_rows(capsys):
    """Flushed values (nosub) have one outcome; near the top the up neighbour overflows to inf."""
    rc, out, err = run_cli(capsys, "quantize", "--fmt", "e5m2:nosub", "--rounding", "sr",
                           "--rbits", "4", "--samples", "2000", "5e-5", "60000")
    assert rc == 0, err
    _, rows = table_rows(out, "value  down")
    assert rows[0][1] == rows[0][2] == "1 code (0x00)" and rows[0][4] == "-"
    fmt = parse_format("e5m2:nosub")
    assert rows[1][2] == f"inf ({int(encode(np.inf, fmt)):#04x})"
    draws = encode(np.full(2000, 60000.0), fmt, "sr", rbits=4, seed=0)
    assert float(rows[1][5]) == np.count_nonzero(np.isinf(decode(draws, fmt))) / 2000
