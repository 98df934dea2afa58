"""The ``srmac`` command line: one entry point, sub-commands registered by each package.

Each sub-command lives in the package it belongs to, in a module with a
``register(subparsers)`` function that adds its parser and sets
``func=<callable(args) -> int>`` as the parser default. Modules are listed in
``COMMAND_MODULES`` and imported only when present, so a light command does
not pay for importing Amaranth or torch.

Errors: a ``ValueError`` (or :class:`CliError`) raised by a command prints one
line ``srmac <verb>: error: <message>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "CliError", "COMMAND_MODULES"]

#: Modules that register sub-commands, in help order.
COMMAND_MODULES = [
    "ref.cli_commands",
    "hwgen.cli",
    "hwgen.synth_cli",
    "hwgen.formal",
    "sim.cli",
    "sim.adaqat_cli",
    "boards.cli",
    "boards.report_cli",
]


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="srmac",
        description=(
            "srmac: bit-exact stochastic-rounding (SR) multiply-accumulate toolkit. "
            "Golden model, Verilog generators, FPGA prototype and training simulator."
        ),
        epilog="Run `srmac <command> --help` for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
                continue  # this package has no commands (yet)
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError) as exc:
        print(f"srmac {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"srmac {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
