"""The README, as a newcomer reads it: its Python runs, its commands parse, its figures are current.

* The Python snippet is executed as written.
* Every ``srmac ...`` command quoted in the README is accepted by the parser
  (options that exist, values of the right kind); the cheap golden-model ones
  also run and exit 0.
* "Measured so far": every ratio quoted appears on the page the bullet links,
  and the configuration counts are those of the test suites that measure them.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ref.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def test_python_snippet_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "no Python snippet in the README"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip()


def _commands():
    """Every `srmac ...` command in inline code, with `[...]` optional parts dropped."""
    cmds = []
    for text in re.findall(r"`(srmac [^`]+)`", README):
        if "..." in text or "<" in text:
            continue  # an elided or templated command (`srmac synth ...`)
        text = re.sub(r"\s*\[[^\]]*\]", "", text)
        cmds.append(shlex.split(text)[1:])
    return cmds


COMMANDS = _commands()
CHEAP = {"quantize", "mac", "rbits"}


def test_readme_quotes_commands():
    assert len(COMMANDS) >= 15 and {c[0] for c in COMMANDS} >= {"quantize", "verilog", "build"}


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a)[:60])
def test_readme_command_parses(argv, capsys):
    parser = build_parser()
    if argv[0].startswith("-"):  # srmac --version
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        assert exc.value.code == 0
        return
    args = parser.parse_args(argv)  # SystemExit (2) on an unknown option or a bad choice
    assert args.func is not None
    if argv[0] == "train":  # and the options together are accepted (no contradiction)
        from sim.cli import train_options

        train_options(args).validate()
    if argv[0] in CHEAP and "--sweep" not in argv:
        assert main(argv) == 0, capsys.readouterr().err


def _bullets():
    text = _section("Measured so far")
    return [b for b in re.split(r"\n- ", text)[1:]]


def test_measured_ratios_are_those_of_the_linked_page():
    checked = 0
    for bullet in _bullets():
        pages = re.findall(r"\]\((docs/[^)]+\.md)\)", bullet)
        ratios = re.findall(r"1/\d+(?: - 1/\d+)?", " ".join(bullet.split()))
        for ratio in ratios:
            assert pages, f"ratio {ratio} quoted without its source page"
            texts = [" ".join((ROOT / p).read_text().split()) for p in pages]
            assert any(ratio in t for t in texts), f"{ratio} is not on {pages}: update the README"
            checked += 1
    assert checked >= 2


def test_measured_clock_rates_are_those_of_the_linked_page():
    """Every ``N MHz`` and ``N vs M MHz`` of a bullet stands on the page it links."""
    checked = 0
    for bullet in _bullets():
        pages = re.findall(r"\]\((docs/[^)]+\.md)\)", bullet)
        texts = " ".join(" ".join((ROOT / p).read_text().split()) for p in pages)
        for rate in re.findall(r"(\d+(?:\.\d+)?)(?= MHz| vs \d+(?:\.\d+)? MHz)",
                              " ".join(bullet.split())):
            assert pages, f"{rate} MHz quoted without its source page"
            assert rate in texts, f"{rate} MHz is not on {pages}: update the README"
            checked += 1
    assert checked >= 4


def test_measured_rbits_claims_are_on_the_rbits_page():
    page = " ".join((ROOT / "docs" / "rbits.md").read_text().split())
    bullet = " ".join(next(b for b in _bullets() if "docs/rbits.md" in b).split())
    n = re.search(r"up to n = (\d+)", bullet).group(1)
    assert f"n <= {n}: the formula holds within one bit" in page
    more = re.search(r"needs (\d+-\d+) more bits", bullet).group(1)
    assert f"the knee is {more} bits above the formula" in page


def test_measured_configuration_counts_are_the_suites():
    import test_mac_exact

    from hwgen.regress import MATRIX

    bullet = " ".join(next(b for b in _bullets() if "Bit-exactness" in b).split())
    oracle, verilog = (int(n) for n in re.findall(r"in (\d+) configurations", bullet)[:1]
                       + re.findall(r"on (\d+) configurations", bullet)[:1])
    assert oracle == len(test_mac_exact.CONFIGS)
    assert verilog == len(MATRIX)
