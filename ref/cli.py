"""The ``srmac`` command line: one entry point, sub-commands registered by each package.

Each sub-command lives in the package it belongs to, in a module with a
``register(subparsers)`` function that adds its parser and sets
``func=<callable(args) -> int>`` as the parser default. Modules are listed in
``COMMAND_MODULES`` and imported only when present, so a light command does
not pay for importing Amaranth or torch.

This module also holds what every verb shares:

* the MAC vocabulary, :func:`add_mac_arguments` and :func:`mac_from_args`:
  ``--mac SPEC`` or the split flags ``--in/--acc/--rounding/--rbits``
  (``--chain-length N`` where it applies), one set of defaults
  (:data:`DEFAULT_MAC`), contradictory combinations refused;
* number parsing with one-line errors (:func:`parse_int`, :func:`parse_value`)
  and the plain-text :func:`table`.

Errors: a ``ValueError`` (or :class:`CliError`) raised by a command prints one
line ``srmac <verb>: error: <message>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .config import MAX_RBITS, MacConfig, Rounding, parse_mac, required_rbits

__all__ = [
    "main", "build_parser", "CliError", "COMMAND_MODULES", "DEFAULT_MAC", "add_mac_arguments",
    "mac_from_args", "mac_options_given", "parse_int", "parse_value", "table",
]

#: Modules that register sub-commands, in help order.
COMMAND_MODULES = [
    "ref.cli_commands",
    "hwgen.cli",
    "hwgen.synth_cli",
    "sim.cli",
    "sim.adaqat_cli",
    "boards.cli",
    "boards.report_cli",
]

#: The MAC every verb uses when none is given: E5M2 x E5M2 -> E6M5, eager SR, r = 4.
DEFAULT_MAC = "e5m2:e6m5:sr_eager:4"


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# ---- numbers ----------------------------------------------------------------------------

def parse_value(text: str, what: str = "value") -> float:
    """A real number from the command line: decimal, hex float (``0x1.8p1``), inf or nan."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        if "0x" not in s.lower():  # fromhex would read "abc" as 0xabc
            raise ValueError(s)
        return float.fromhex(s)
    except (ValueError, OverflowError):
        raise ValueError(
            f"cannot read {what} {text!r}: expected a decimal number (1.3, -2e-3), "
            "a hex float (0x1.8p1), inf or nan"
        ) from None


def parse_int(text, what: str, lo: int | None = None, hi: int | None = None) -> int | None:
    """An integer from the command line (decimal, ``0x`` hex, ``0b`` binary), range-checked.

    ``None`` stays ``None`` (an option that was not given).
    """
    if text is None or isinstance(text, int):
        value = text
    else:
        try:
            value = int(str(text).strip().replace("_", ""), 0)
        except ValueError:
            raise ValueError(
                f"cannot read {what} {text!r}: expected an integer "
                "(decimal, 0x.. hex or 0b.. binary)"
            ) from None
    if value is not None:
        if lo is not None and value < lo:
            raise ValueError(f"{what} must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise ValueError(f"{what} must be <= {hi}, got {value}")
    return value


def table(headers, rows, indent: str = "") -> str:
    """Left-aligned plain-text table; columns separated by two spaces."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(indent + line for line in lines)


# ---- the MAC vocabulary -------------------------------------------------------------------

_SPLIT_FLAGS = (("in_fmt", "--in"), ("acc_fmt", "--acc"), ("rounding", "--rounding"),
                ("rbits", "--rbits"), ("chain_length", "--chain-length"))


def add_mac_arguments(parser, *, default: str = DEFAULT_MAC, spec: bool = True,
                      rounding: bool = True, rbits: bool = True, chain_length: bool = False):
    """Add the MAC options to ``parser``; :func:`mac_from_args` reads them back.

    ``--mac SPEC`` (``in:acc:rounding[:r]``, see :func:`ref.parse_mac`) or the
    split flags ``--in FMT --acc FMT --rounding MODE --rbits R``, each
    defaulting to its part of ``default``. ``spec``, ``rounding``, ``rbits``
    and ``chain_length`` say which of ``--mac``, ``--rounding``, ``--rbits``
    and ``--chain-length N`` (r = required_rbits(N)) the verb offers: a verb
    that shows or sweeps every rounding has no ``--rounding``, one that sweeps
    r has no ``--rbits``. Values stay strings here, so a bad one is a
    one-line error from :func:`mac_from_args`. Returns the argument group.
    """
    d = parse_mac(default)
    r_default = d.rbits or 4
    g = parser.add_argument_group(
        "MAC", "the multiply-accumulate unit"
        + (": --mac SPEC, or the split flags (not both)" if spec else "")
        + f"; default {d.spec() if (rounding and rbits) else d.in_fmt.spec() + ':' + d.acc_fmt.spec()}")
    if spec:
        g.add_argument("--mac", metavar="SPEC",
                       help="the whole MAC as in:acc:rounding[:r], e.g. e4m3:fp16:sr_lazy:8 or "
                            "e5m2:nosub:e6m5:rn")
    g.add_argument("--in", dest="in_fmt", metavar="FMT",
                   help=f"input (multiplier) format: e5m2, e4m3, fp16, bf16, e<E>m<M>, with options "
                        f"like e5m2:nosub (default {d.in_fmt.spec()})")
    g.add_argument("--acc", dest="acc_fmt", metavar="FMT",
                   help=f"accumulator format (default {d.acc_fmt.spec()})")
    if rounding:
        g.add_argument("--rounding", metavar="MODE",
                       help=f"{', '.join(m.value for m in Rounding)} (default {d.rounding.value})")
    if rbits:
        g.add_argument("--rbits", metavar="R",
                       help=f"random bits r of an SR rounding, 1..{MAX_RBITS} (default {r_default}; "
                            "refused with rn / rz)")
    if chain_length:
        g.add_argument("--chain-length", metavar="N",
                       help="SR only: r = required_rbits(N) = ceil(log2(N)/2) for chains of "
                            "length N (instead of --rbits)")
    parser.set_defaults(_mac_default=d.spec())
    return g


def mac_from_args(args) -> MacConfig:
    """The :class:`ref.MacConfig` of the options added by :func:`add_mac_arguments`.

    Raises ``ValueError`` (one line) for a bad value and for combinations that
    would silently ignore an option: ``--mac`` with a split flag, ``--rbits``
    or ``--chain-length`` with rn / rz, ``--rbits`` with ``--chain-length``.
    A verb without ``--rounding`` gets the default rounding (it then uses the
    formats and r of the result).
    """
    default = parse_mac(getattr(args, "_mac_default", DEFAULT_MAC))
    given = [(flag, getattr(args, dest)) for dest, flag in _SPLIT_FLAGS
             if getattr(args, dest, None) is not None]
    spec = getattr(args, "mac", None)
    if spec is not None:
        if given:
            flag, value = given[0]
            raise ValueError(f"--mac {spec} and {flag} {value} both describe the MAC: give "
                             "either --mac SPEC or the split flags --in/--acc/--rounding/--rbits")
        return parse_mac(spec)
    opts = dict(given)
    mode = Rounding.parse(opts["--rounding"]) if "--rounding" in opts else default.rounding
    r = parse_int(opts.get("--rbits"), "--rbits", 1, MAX_RBITS)
    n = parse_int(opts.get("--chain-length"), "--chain-length", 1)
    if not mode.is_sr:
        for flag in ("--rbits", "--chain-length"):
            if flag in opts:
                raise ValueError(f"{flag} {opts[flag]} does nothing with rounding {mode.value}: "
                                 "drop it, or choose --rounding sr_lazy or sr_eager")
    elif r is not None and n is not None:
        raise ValueError(f"give either --rbits {r} or --chain-length {n}, not both "
                         f"(--chain-length {n} means --rbits {required_rbits(n)})")
    elif r is None:
        r = required_rbits(n) if n is not None else (default.rbits or 4)
    return MacConfig(opts.get("--in", default.in_fmt), opts.get("--acc", default.acc_fmt), mode,
                     r if mode.is_sr else None)


def mac_options_given(args) -> list[str]:
    """The MAC flags given on the command line (``--mac`` and the split flags), in order."""
    flags = [flag for dest, flag in (("mac", "--mac"), *_SPLIT_FLAGS)
             if getattr(args, dest, None) is not None]
    return flags


# ---- entry point ------------------------------------------------------------------------

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
