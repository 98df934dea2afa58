"""`srmac --help`, every verb's `--help` and `srmac --version` (issue 16 item 4)."""

from __future__ import annotations

import argparse
import re

import pytest

from ref.cli import build_parser, main

PARSER = build_parser()
VERBS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_sixteen_verbs():
    assert len(VERBS) == 16, sorted(VERBS)  # 15 + `prove` (issue 11)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_has_description_and_a_runnable_example(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    usage, _, rest = out.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert len(description.split()) >= 12, f"srmac {verb}: no description"
    assert "\nexamples:\n" in out, f"srmac {verb}: no examples"
    examples = [ln.strip() for ln in out.split("\nexamples:\n", 1)[1].splitlines()
                if ln.strip().startswith(f"srmac {verb}") or "-m ref.cli " + verb in ln]
    assert examples, f"srmac {verb}: no example of this verb"
    for ex in examples:  # each example parses (options exist, values are choices)
        cmd = re.sub(r"\s+#.*$", "", ex)
        cmd = cmd.split(" | ")[0].split(" -m ref.cli ", 1)[-1]
        argv = cmd.split()[1:] if cmd.startswith("srmac ") else cmd.split()
        PARSER.parse_args(argv)
    assert max(len(ln) for ln in out.splitlines()) <= 120, "help lines too long"


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in VERBS:
        assert f"    {verb}" in out


def test_version(capsys):
    from importlib.metadata import PackageNotFoundError, version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    try:
        assert out == f"srmac {version('srmac')}\n"
    except PackageNotFoundError:
        assert out.startswith("srmac ")
