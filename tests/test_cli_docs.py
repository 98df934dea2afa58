"""The generated CLI reference covers every registered verb with its options."""

import argparse

from ref.cli import build_parser
from ref.cli_docs import cli_reference


def test_reference_has_every_verb_and_its_options():
    text = cli_reference()
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert subs.choices, "no verbs registered"
    for name, sub in subs.choices.items():
        assert f"## srmac {name}\n" in text
        for action in sub._actions:
            for opt in action.option_strings:
                assert opt in text, f"{opt} of srmac {name} missing from the reference"
