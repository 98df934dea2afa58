"""``srmac verilog`` and ``srmac regress``: hardware sub-commands.

``srmac verilog --in e5m2 --acc e6m5 --rounding sr_eager --rbits 4 -o build/mac.v``
writes the module and ``build/mac.json`` (the sidecar). ``srmac regress`` runs
the cocotb regression matrix (Icarus) and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

from ref.cli import add_mac_arguments, check_outputs, mac_from_args, parse_int
from ref.outputs import write_text

__all__ = ["register", "build_unit"]


_VERILOG_EPILOG = """\
examples:
  srmac verilog --in e5m2 --acc e6m5 --rounding sr_eager --rbits 4 -o build/mac.v
  srmac verilog --mac e4m3:fp16:sr_lazy:8 --rand prng --seed 7 --pipeline 1 -o build/lazy.v
  srmac verilog --rounding sr_eager --chain-length 4096 -o build/mac.v   # r = 6
  srmac verilog --array 4x4 --mac e5m2:e6m5:sr_eager:4 -o build/array.v
  srmac verilog --mac e5m2:e6m5:sr_eager:4 --interleave 2 --pipeline 1 -o build/mac2.v
  srmac verilog --array 2x3 --interleave 2 --pipeline 1 --mac e5m2:e6m5:rn -o build/a.v
  srmac verilog --rounding rn | less                                     # to stdout

The sidecar (-o X.v writes X.json) lists the ports, latency, random-bit layout
and generator rule; docs/hardware.md describes them. --interleave L runs L
independent chains through an L-stage loop (the chain of an operation is its
issue cycle mod L); an --array of them computes the tiles of an (R*L) x C array.
"""

_REGRESS_EPILOG = """\
examples:
  srmac regress --ops 100000                       # the whole matrix (minutes)
  srmac regress --ops 1000 --configs e5m2_e6m5_rn,e5m2_e6m5_eager4
  srmac regress --list

Each configuration builds in <build-dir>/<name>/; a run without a report names
its sim.log. Exit status 1 when any configuration fails.
"""


def _parser(sub, name, help_, description, epilog):
    return sub.add_parser(name, help=help_, description=textwrap.fill(description, 79),
                          epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)


def register(sub):
    p = _parser(
        sub, "verilog", "generate a MAC (or a systolic array) as Verilog with a JSON sidecar",
        "Generate the SR multiply-accumulate unit of the given MAC as Verilog (Amaranth, "
        "exported with Yosys) and a JSON sidecar describing its ports, latency and random "
        "bits; --array RxC generates an output-stationary systolic array of them instead.",
        _VERILOG_EPILOG,
    )
    add_mac_arguments(p, chain_length=True)
    p.add_argument(
        "--rand",
        choices=("port", "prng"),
        default=None,
        help="SR only: random bits from the rand port or the built-in xorshift32 "
        "(default port; an --array always uses one generator per PE)",
    )
    p.add_argument(
        "--array",
        metavar="RxC",
        default=None,
        help="generate an R x C output-stationary systolic array of MACs instead of one MAC",
    )
    p.add_argument(
        "--seed", metavar="S", default=None,
        help="generator seed, 0..2**32-1, with --rand prng or --array (default 0)"
    )
    p.add_argument(
        "--pipeline", metavar="N", default="0",
        help="register stages between the product and the accumulation loop (default 0: the "
             "shortest latency; srmac synth, the boards and the Fmax figures of "
             "docs/hardware_cost.md use 1)"
    )
    p.add_argument(
        "--datapath",
        choices=("dual", "single"),
        default=None,
        help="accumulation loop: dual (close/far paths; the default where it applies) or single",
    )
    p.add_argument(
        "--interleave", metavar="L", default="1",
        help="chains through an L-stage accumulation loop, 1..5 (default 1; dual datapath)"
    )
    p.add_argument(
        "--name", default=None, help="module name (default derived from the configuration)"
    )
    p.add_argument(
        "-o", "--output", default=None,
        help="output .v file (default: stdout); the sidecar goes beside it as .json"
    )
    p.set_defaults(func=_verilog)

    q = _parser(
        sub, "regress", "run the cocotb/Icarus regression matrix of the generated MACs",
        "Generate every MAC of the regression matrix (hwgen.regress.MATRIX), build it with "
        "Icarus Verilog and run the cocotb bench against the golden model, code for code; "
        "one row per configuration as it finishes, then a summary.",
        _REGRESS_EPILOG,
    )
    q.add_argument(
        "--ops", default="100000", metavar="N",
        help="operations per configuration (default 100000)"
    )
    q.add_argument(
        "--configs",
        default=None,
        help="comma-separated subset of configuration names (default: the whole matrix)",
    )
    q.add_argument(
        "--build-dir", default="build/regress", help="build folder (default build/regress)"
    )
    q.add_argument("--seed", default="1", metavar="S", help="vector seed, >= 0 (default 1)")
    q.add_argument("--list", action="store_true", help="list the configurations and exit")
    q.set_defaults(func=_regress)


def build_unit(cfg, rand="port", seed=0, pipeline=0, datapath=None, interleave=1):
    """Build the :class:`hwgen.mac.MacUnit` of ``cfg`` (ValueError on a bad seed or datapath)."""
    from .mac import MacUnit

    return MacUnit(cfg, rand=rand, seed=parse_int(seed, "--seed", 0, 2**32 - 1),
                   pipeline=pipeline, datapath=datapath, interleave=interleave)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _verilog_options(args):
    """(cfg, seed, pipeline, (verilog path, sidecar path) or None), refusing ignored options."""
    cfg = mac_from_args(args)
    seed = parse_int(args.seed, "--seed", 0, 2**32 - 1)
    pipeline = parse_int(args.pipeline, "--pipeline", 0)
    args.interleave = parse_int(args.interleave, "--interleave", 1, 5)
    if args.name is not None and not _IDENTIFIER.fullmatch(args.name):
        raise ValueError(f"--name {args.name!r} is not a Verilog identifier: use letters, digits "
                         "and _, starting with a letter")
    if args.rand is not None and not cfg.is_sr:
        raise ValueError(f"--rand {args.rand} does nothing with rounding {cfg.rounding}: "
                         "only SR uses random bits")
    if args.array is not None and args.rand == "port":
        raise ValueError("--array uses one built-in generator per PE; drop --rand port")
    if args.array is not None and args.datapath is not None:
        raise ValueError("--datapath applies to one MAC; an --array builds the default one")
    if seed is not None:
        if not cfg.is_sr:
            raise ValueError(f"--seed {seed} does nothing with rounding {cfg.rounding}: "
                             "only SR has a generator")
        if args.array is None and args.rand != "prng":
            raise ValueError(f"--seed {seed} seeds the built-in generator: add --rand prng "
                             "(with the rand port the bits come from outside)")
    paths = None
    if args.output is not None:
        out = Path(args.output)
        side = out.with_suffix(".json")
        if side == out:
            raise ValueError(f"-o {out}: the JSON sidecar would overwrite the Verilog; "
                             "name the Verilog file .v")
        paths, _ = check_outputs([(out, "-o"), (side, "sidecar")])
    return cfg, seed or 0, pipeline, paths


def _verilog(args) -> int:
    cfg, seed, pipeline, paths = _verilog_options(args)  # every check before Amaranth runs
    if args.array is not None:
        from .array_export import export_array, parse_shape

        rows, cols = parse_shape(args.array)
        name, text, meta = export_array(cfg, rows, cols, seed=seed, pipeline=pipeline,
                                        interleave=args.interleave, name=args.name)
        chains = f", {args.interleave} chains per PE" if args.interleave > 1 else ""
        return _write(paths, name, text, meta, f"{rows}x{cols} array{chains}")

    from .export import default_module_name, sidecar, to_verilog

    unit = build_unit(cfg, args.rand or "port", seed, pipeline, args.datapath, args.interleave)
    name = args.name or default_module_name(unit)
    chains = f", {unit.interleave} chains" if unit.interleave > 1 else ""
    return _write(paths, name, to_verilog(unit, name), sidecar(unit, name),
                  f"{unit.datapath} datapath{chains}, latency {unit.latency}")


def _write(paths, name, text, meta, what) -> int:
    """Write the Verilog (stdout when ``paths`` is None) and its JSON sidecar, each atomically."""
    if paths is None:
        sys.stdout.write(text)
        return 0
    out, side = paths
    write_text(out, text)
    write_text(side, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out} ({name}, {what}) and {side}")
    return 0


def _regress(args) -> int:
    from .regress import MATRIX, run_matrix

    if args.list:
        for c in MATRIX:
            print(c.name)
        return 0
    ops = parse_int(args.ops, "--ops", 1, 10**8)
    seed = parse_int(args.seed, "--seed", 0, 2**32 - 2)  # the bench seeds numpy with seed + 1
    names = None
    if args.configs is not None:
        names = [s.strip() for s in args.configs.split(",") if s.strip()]
        if not names:
            raise ValueError(f"--configs {args.configs!r} names no configuration: give names, "
                             "e.g. --configs e5m2_e6m5_rn (`srmac regress --list` shows them)")
        bad = [n for n in names if n not in {c.name for c in MATRIX}]
        if bad:
            raise ValueError(f"unknown configuration {bad[0]!r}; `srmac regress --list` shows them")
    check_outputs(dirs=[(args.build_dir, "--build-dir")])
    head = f"{'configuration':44s} {'ops':>8s} {'mismatches':>10s} {'sim time [s]':>12s}"
    print(head, flush=True)
    failing = []

    def row(r):
        print(f"{r['name']:44s} {r['ops']:8d} {r['mismatches']:10d} {r['seconds']:12.1f}"
              + ("" if r["passed"] and r["mismatches"] == 0 else "  FAIL"), flush=True)
        if not r["passed"] or r["mismatches"] != 0:
            failing.append(r)
            for line in r.get("details", [])[:3]:
                print(f"    {line}", flush=True)

    results = run_matrix(ops, names=names, build_dir=args.build_dir, seed=seed, on_result=row)
    print(f"{len(results)} configurations, {len(failing)} failing")
    return 1 if failing else 0
