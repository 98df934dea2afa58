"""One MAC vocabulary for every verb: ``add_mac_arguments`` / ``mac_from_args`` (ref/cli.py)."""

import argparse

import pytest

from ref import MacConfig, parse_mac, required_rbits
from ref.cli import DEFAULT_MAC, add_mac_arguments, build_parser, mac_from_args


def _cfg(argv, **kw):
    p = argparse.ArgumentParser()
    add_mac_arguments(p, **kw)
    return mac_from_args(p.parse_args(argv))


@pytest.mark.parametrize("argv,want", [
    ([], DEFAULT_MAC),
    (["--mac", "e4m3:fp16:sr_lazy:8"], "e4m3:fp16:sr_lazy:8"),
    (["--in", "e4m3", "--acc", "fp16", "--rounding", "sr_lazy", "--rbits", "8"],
     "e4m3:fp16:sr_lazy:8"),
    (["--rounding", "rn"], "e5m2:e6m5:rn"),
    (["--rounding", "sr_lazy"], "e5m2:e6m5:sr_lazy:4"),   # the default r of an SR rounding
    (["--rounding", "sr_eager", "--chain-length", "1000"],
     f"e5m2:e6m5:sr_eager:{required_rbits(1000)}"),
    (["--in", "e5m2:nosub", "--acc", "e6m5:nosub", "--rbits", "0x3"],
     "e5m2:nosub:e6m5:nosub:sr_eager:3"),
])
def test_spec_and_split_flags_give_the_same_config(argv, want):
    assert _cfg(argv, chain_length=True) == parse_mac(want)


@pytest.mark.parametrize("argv,needle", [
    (["--mac", "e5m2:e6m5:rn", "--rounding", "sr_eager"], "--rounding sr_eager"),
    (["--mac", "e5m2:e6m5:rn", "--in", "e4m3"], "--in e4m3"),
    (["--rounding", "rn", "--rbits", "4"], "does nothing with rounding rn"),
    (["--rounding", "rz", "--chain-length", "64"], "--chain-length 64 does nothing"),
    (["--rbits", "4", "--chain-length", "64"], "not both"),
    (["--rbits", "0"], ">= 1"),
    (["--rbits", "31"], "<= 30"),
    (["--rbits", "four"], "'four'"),
    (["--chain-length", "0"], ">= 1"),
    (["--rounding", "stochastic"], "'stochastic'"),
    (["--in", "e9x"], "e9x"),
    (["--mac", "e5m2:e6m5:sr_eager"], "rbits"),
])
def test_contradictions_and_bad_values_are_one_line(argv, needle):
    with pytest.raises(ValueError) as exc:
        _cfg(argv, chain_length=True)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_verbs_without_a_rounding_keep_formats_and_r():
    cfg = _cfg(["--in", "e4m3", "--rbits", "7"], spec=False, rounding=False)
    assert (cfg.in_fmt.name, cfg.acc_fmt.name, cfg.rbits) == ("E4M3", "E6M5", 7)
    p = argparse.ArgumentParser()
    add_mac_arguments(p, spec=False, rounding=False, rbits=False)
    with pytest.raises(SystemExit):
        p.parse_args(["--rbits", "3"])


def test_one_default_for_every_verb():
    """Every verb that takes a MAC gets the same default from the same parser code."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    with_mac = {name: sp for name, sp in subs.choices.items() if sp.get_default("_mac_default")}
    assert {"mac", "verilog", "build", "run", "board", "synth", "report", "rbits"} <= set(with_mac)
    for name, sp in with_mac.items():
        assert sp.get_default("_mac_default") == DEFAULT_MAC, name
        args = argparse.Namespace(**{a.dest: a.default for a in sp._actions},
                                  _mac_default=DEFAULT_MAC)
        cfg = mac_from_args(args)
        assert isinstance(cfg, MacConfig)
        assert (cfg.in_fmt, cfg.acc_fmt) == (parse_mac(DEFAULT_MAC).in_fmt,
                                             parse_mac(DEFAULT_MAC).acc_fmt), name
