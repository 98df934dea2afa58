"""``srmac verilog`` and ``srmac regress``: hardware sub-commands.

``srmac verilog --in e5m2 --acc e6m5 --rounding sr_eager --rbits 4 -o build/mac.v``
writes the module and ``build/mac.json`` (the sidecar). ``srmac regress`` runs
the cocotb regression matrix (Icarus) and prints a summary table.
"""

from __future__ import annotations

import json
import os
import sys

from ref.cli import add_mac_arguments, mac_from_args, parse_int
from ref.outputs import check_writable_dir

__all__ = ["register", "build_unit"]


def register(sub):
    p = sub.add_parser("verilog", help="generate a MAC as Verilog with a JSON sidecar")
    add_mac_arguments(p, chain_length=True)
    p.add_argument(
        "--rand",
        choices=("port", "prng"),
        default=None,
        help="random bits from the rand port or the built-in xorshift32 "
        "(default port; an --array always uses one generator per PE)",
    )
    p.add_argument(
        "--array",
        metavar="RxC",
        default=None,
        help="generate an R x C output-stationary systolic array of MACs instead of one MAC",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="generator seed with --rand prng (default 0)"
    )
    p.add_argument(
        "--pipeline", type=int, default=0, help="register stages before the accumulation loop"
    )
    p.add_argument(
        "--name", default=None, help="module name (default derived from the configuration)"
    )
    p.add_argument(
        "-o", "--output", default=None, help="output .v file (default: stdout; sidecar next to it)"
    )
    p.set_defaults(func=_verilog)

    q = sub.add_parser(
        "regress", help="run the cocotb/Icarus regression matrix of the generated MACs"
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


def build_unit(cfg, rand="port", seed=0, pipeline=0):
    """Validate the CLI-level options and build the :class:`hwgen.mac.MacUnit` of ``cfg``."""
    from .mac import MacUnit

    _check_seed(seed)
    return MacUnit(cfg, rand=rand, seed=seed, pipeline=pipeline)


def _check_seed(seed):
    if seed < 0 or seed >= 1 << 32:
        raise ValueError(f"--seed {seed} out of range: use 0..2**32-1")


def _verilog(args) -> int:
    if args.array is not None:
        from .array_export import export_array, parse_shape

        if args.rand == "port":
            raise ValueError("--array uses one built-in generator per PE; drop --rand port")
        rows, cols = parse_shape(args.array)
        cfg = mac_from_args(args)
        _check_seed(args.seed)
        name, text, meta = export_array(
            cfg, rows, cols, seed=args.seed, pipeline=args.pipeline, name=args.name
        )
        return _write(args.output, name, text, meta, f"{rows}x{cols} array")

    from .export import default_module_name, sidecar, to_verilog

    unit = build_unit(mac_from_args(args), args.rand or "port", args.seed, args.pipeline)
    name = args.name or default_module_name(unit)
    return _write(args.output, name, to_verilog(unit, name), sidecar(unit, name),
                  f"latency {unit.latency}")


def _write(out, name, text, meta, what) -> int:
    """Write the Verilog (stdout when ``out`` is None) and its JSON sidecar beside it."""
    if out is None:
        sys.stdout.write(text)
        return 0
    d = os.path.dirname(out)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    side = os.path.splitext(out)[0] + ".json"
    with open(side, "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
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
    check_writable_dir(args.build_dir, "--build-dir")
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
