"""Generate the CLI reference (Markdown) from the ``srmac`` argument parsers.

``python -m ref.cli_docs > reference.md`` writes one section per verb with its
``--help`` text, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import sys

from .cli import DEFAULT_MAC, build_parser

__all__ = ["cli_reference"]


def cli_reference() -> str:
    parser = build_parser()
    out = [
        "# CLI reference",
        "",
        "Generated from the code by `python -m ref.cli_docs` (run by `make docs`).",
        "Every verb exits with status 2 and one line on stderr on bad input.",
        "A verb that takes a MAC accepts `--mac SPEC` or the split flags",
        "`--in/--acc/--rounding/--rbits` (not both); the default is "
        f"`{DEFAULT_MAC}`.",
        "",
        "```",
        parser.format_help().rstrip(),
        "```",
    ]
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        out += ["", f"## srmac {name}", "", "```", sub.format_help().rstrip(), "```"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(cli_reference())
