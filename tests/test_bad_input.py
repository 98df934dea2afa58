"""Bad input raises ValueError naming the bad value; the CLI prints one line and exits 2."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ref
from ref import E5M2, E6M5, FloatFormat, MacConfig, parse_format, parse_mac

ROOT = Path(__file__).resolve().parents[1]
LAZY = MacConfig(E5M2, E6M5, "sr_lazy", 4)
EAGER = MacConfig(E5M2, E6M5, "sr_eager", 4)
Z2 = np.zeros((2, 3), dtype=np.int64)
Z32 = np.zeros((3, 2), dtype=np.int64)


def raises_naming(needle, fn, *args, **kw):
    with pytest.raises(ValueError) as exc:
        fn(*args, **kw)
    msg = str(exc.value)
    assert needle in msg, f"message {msg!r} does not name {needle!r}"
    assert "\n" not in msg, f"message is not one line: {msg!r}"


# ---- formats ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,kw,needle",
    [
        ((1, 3), {}, "1"),
        ((0, 3), {}, "0"),
        ((4, -1), {}, "-1"),
        ((5, 0), {}, "man_bits=0"),  # ieee with man_bits 0 has no NaN code
        ((17, 3), {}, "17"),
        ((8, 53), {}, "53"),
        ((16, 50), {}, "e16m50"),
        ((4, 3), {"specials": "ocp"}, "ocp"),
        ((4.5, 3), {}, "4.5"),
    ],
)
def test_impossible_formats(args, kw, needle):
    raises_naming(needle, FloatFormat, *args, **kw)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("float8", "float8"),
        ("e9m", "e9m"),
        ("", "''"),
        ("e4m3:foo", "foo"),
        ("e4m3:bias=x", "bias=x"),
        ("e1m4", "1"),
        ("e5m0", "man_bits=0"),
        ("m3e4", "m3e4"),
    ],
)
def test_unknown_format_names(text, needle):
    raises_naming(needle, parse_format, text)
    raises_naming(needle, ref.decode, [0], text)


# ---- rounding arguments ---------------------------------------------------------


@pytest.mark.parametrize(
    "rounding,kw,needle",
    [
        ("sr", {"rbits": 0}, "rbits=0"),
        ("sr", {"rbits": 31}, "rbits=31"),
        ("sr", {"rbits": -2}, "rbits=-2"),
        ("sr", {}, "rbits"),
        ("sr", {"rbits": 1.5}, "1.5"),
        ("rn", {"rbits": 4}, "rbits=4"),
        ("rz", {"rbits": 2}, "rbits=2"),
        ("up", {}, "'up'"),
        ("sr_lazy", {"rbits": 4}, "'sr_lazy'"),  # MAC modes are not encode modes
    ],
)
def test_encode_rounding_arguments(rounding, kw, needle):
    raises_naming(needle, ref.encode, [1.0], E5M2, rounding, **kw)
    raises_naming(needle, ref.quantize, [1.0], E5M2, rounding, **kw)


def test_nan_into_format_without_nan():
    raises_naming("NaN", ref.encode, [1.0, np.nan], "e4m3:none")


@pytest.mark.parametrize("rand", [[8], [-1]])
def test_encode_rand_out_of_range(rand):
    raises_naming("2**3", ref.encode, [1.0], E5M2, "sr", rbits=3, rand=rand)


def test_encode_rand_error_names_value():
    raises_naming("8", ref.encode, [1.0], E5M2, "sr", rbits=3, rand=[8])


# ---- codes ----------------------------------------------------------------------


@pytest.mark.parametrize("codes,needle", [([256], "256"), ([-1], "-1"), ([0, 1, 300], "300")])
def test_codes_out_of_range(codes, needle):
    raises_naming(needle, ref.decode, codes, E5M2)
    raises_naming(needle, ref.decode, torch.tensor(codes), E5M2)
    raises_naming(needle, ref.mac, [0], codes, [1], LAZY, seed=0)
    raises_naming(needle, ref.mac, [0], [1], codes, LAZY, seed=0)


def test_accumulator_codes_out_of_range():
    raises_naming("4096", ref.mac, [4096], [1], [1], LAZY, seed=0)
    raises_naming("4096", ref.matmul, Z2, Z32, LAZY, C=np.full((2, 2), 4096))
    raises_naming("256", ref.matmul, Z2 + 256, Z32, LAZY)


# ---- shapes -----------------------------------------------------------------------


def test_mac_shape_mismatch():
    raises_naming("(3,)", ref.mac, [0, 0], [1, 2, 3], [1], LAZY, seed=1)
    raises_naming("(2, 2)", ref.mac, np.zeros((2, 2), int), np.zeros(3, int), 0, EAGER, seed=1)


def test_mac_rand_errors():
    raises_naming("2**4", ref.mac, [0], [1], [1], LAZY, rand=[16])
    raises_naming("2**6", ref.mac, [0], [1], [1], EAGER, rand=[64])
    raises_naming("'rn'", ref.mac, [0], [1], [1], MacConfig(E5M2, E6M5, "rn"), rand=[1])
    raises_naming("str", ref.mac, [0], [1], [1], "e5m2:e6m5:rn")


def test_matmul_shape_mismatch():
    raises_naming("4x2", ref.matmul, Z2, np.zeros((4, 2), int), LAZY)
    raises_naming("(3, 3)", ref.matmul, Z2, Z32, LAZY, C=np.zeros((3, 3), int))
    raises_naming("(2, 2, 2)", ref.matmul, Z2, Z32, LAZY, rand=np.zeros((2, 2, 2), int))
    raises_naming("(2, 3)", ref.matmul, Z2, Z32, LAZY, state=np.ones((2, 3), int))
    raises_naming("(3,)", ref.matmul, np.zeros(3, int), Z32, LAZY)
    raises_naming("(2, 3, 1)", ref.matmul, Z2[..., None], Z32, LAZY)
    raises_naming(
        "'rn'", ref.matmul, Z2, Z32, MacConfig(E5M2, E6M5, "rn"), rand=np.zeros((2, 2, 3), int)
    )
    raises_naming("2**6", ref.matmul, Z2, Z32, EAGER, rand=np.full((2, 2, 3), 64))
    raises_naming("(4,)", ref.dot, np.zeros(3, int), np.zeros(4, int), LAZY)


def test_sr_matmul_errors():
    raises_naming("(4, 2)", ref.sr_matmul, torch.ones(2, 3), torch.ones(4, 2), LAZY)
    raises_naming("(2,)", ref.sr_matmul, torch.ones(2, 3), torch.ones(2), LAZY)  # (3,) is valid
    raises_naming("integer", ref.sr_matmul, torch.ones(2, 3, dtype=torch.int64), torch.ones(3, 2),
                  LAZY)
    raises_naming("torch", ref.sr_matmul, np.ones((2, 3)), np.ones((3, 2)), LAZY)
    raises_naming(
        "'sr_lazy'", ref.sr_matmul, torch.ones(2, 3), torch.ones(3, 2), "e5m2:e6m5:sr_lazy"
    )


# ---- MAC specs --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,needle",
    [
        ("e5m2:e6m5:sr_eager:x", "'x'"),
        ("e5m2:sr_eager:4", "e5m2:sr_eager:4"),
        ("e5m2:e6m5:e4m3:rn", "e5m2:e6m5:e4m3:rn"),
        ("e5m2:e6m5:sr_eager", "'sr_eager'"),
        ("e5m2:e6m5:sr_lazy:0", "rbits=0"),
        ("e5m2:e6m5:sr_lazy:31", "rbits=31"),
        ("e5m2:e6m5:rn:4", "rbits=4"),
        ("e5m2:e6m5:round", "'round'"),
        ("e5m2:e1m5:rn", "1"),
        ("", "''"),
        ("e5m2:e6m5:nosub:foo:rn", "'foo'"),
    ],
)
def test_bad_mac_specs(text, needle):
    raises_naming(needle, parse_mac, text)


@pytest.mark.parametrize(
    "kw,needle",
    [
        (dict(rounding="sr_lazy", rbits=0), "rbits=0"),
        (dict(rounding="sr_eager", rbits=31), "rbits=31"),
        (dict(rounding="rz", rbits=5), "rbits=5"),
        (dict(rounding="stochastic"), "'stochastic'"),
    ],
)
def test_bad_mac_config(kw, needle):
    raises_naming(needle, MacConfig, "e5m2", "e6m5", **kw)


def test_required_rbits_bad_n():
    raises_naming("0", ref.required_rbits, 0)
    raises_naming("-5", ref.required_rbits, -5)


# ---- the command line ---------------------------------------------------------------


def _run_cli(argv, capsys):
    from ref.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["rbits", "--n", "0"], "0"),
        (["rbits", "--n", "-3"], "-3"),
        (["quantize", "--fmt", "e9m", "1.0"], "e9m"),
        (["quantize", "--fmt", "e1m4", "1.0"], "1"),
        (["quantize", "--fmt", "e5m2", "--rounding", "sr", "--rbits", "31", "1.0"], "31"),
        (["mac", "--in", "float8", "--a", "1", "--b", "1"], "float8"),
    ],
)
def test_cli_one_line_exit_2(argv, needle, capsys):
    rc, out, err = _run_cli(argv, capsys)
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"srmac {argv[0]}: error:") and needle in lines[0]


@pytest.mark.parametrize(
    "cmd",
    [
        pytest.param(
            [sys.executable, "-m", "ref.cli"], marks=pytest.mark.slow
        ),  # a second start-up: seconds
        [str(Path(sys.executable).with_name("srmac"))],
    ],
)
def test_cli_process_exit_status(cmd):
    if not Path(cmd[0]).exists():
        pytest.skip(f"{cmd[0]} not installed")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        cmd + ["rbits", "--n", "0"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert p.returncode == 2
    assert len(p.stderr.splitlines()) == 1 and "srmac rbits: error:" in p.stderr and "0" in p.stderr
    assert p.stdout == ""
