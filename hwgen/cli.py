"""``srmac verilog`` and ``srmac regress``: hardware sub-commands.

``srmac verilog --in e5m2 --acc e6m5 --rounding sr_eager --rbits 4 -o build/mac.v``
writes the module and ``build/mac.json`` (the sidecar). ``srmac regress`` runs
the cocotb regression matrix (Icarus) and prints a summary table.
"""

from __future__ import annotations

import json
import os
import sys

__all__ = ["register", "build_unit"]


def register(sub):
    p = sub.add_parser("verilog", help="generate a MAC as Verilog with a JSON sidecar")
    p.add_argument(
        "--in",
        dest="in_fmt",
        default="e5m2",
        help="input format (default e5m2; e.g. e4m3, e5m2:nosub)",
    )
    p.add_argument(
        "--acc", default="e6m5", help="accumulator format (default e6m5; e.g. fp16, bf16:nosub)"
    )
    p.add_argument("--rounding", default="rn", help="rn, rz, sr_lazy or sr_eager (default rn)")
    p.add_argument("--rbits", type=int, default=None, help="random bits r for SR")
    p.add_argument(
        "--chain-length",
        type=int,
        default=None,
        help="derive r = required_rbits(N) for chains of length N (SR only)",
    )
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
        "--datapath",
        choices=("dual", "single"),
        default=None,
        help="accumulation loop: dual (close/far paths; the default where it applies) or single",
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
        "--ops", type=int, default=100_000, help="operations per configuration (default 100000)"
    )
    q.add_argument(
        "--configs",
        default=None,
        help="comma-separated subset of configuration names (default: the whole matrix)",
    )
    q.add_argument(
        "--build-dir", default="build/regress", help="build folder (default build/regress)"
    )
    q.add_argument("--seed", type=int, default=1, help="vector seed (default 1)")
    q.add_argument("--list", action="store_true", help="list the configurations and exit")
    q.set_defaults(func=_regress)


def build_config(in_fmt, acc, rounding, rbits=None, chain_length=None, seed=0):
    """Validate CLI-level options and return the :class:`ref.MacConfig`."""
    from ref.config import SR_ROUNDINGS, MacConfig, required_rbits

    if chain_length is not None:
        if rounding not in SR_ROUNDINGS:
            raise ValueError(f"--chain-length only applies to SR roundings, not {rounding!r}")
        if rbits is not None:
            raise ValueError("give either --rbits or --chain-length, not both")
        rbits = required_rbits(chain_length)
    if rounding in SR_ROUNDINGS and rbits in (None, 0):
        raise ValueError(f"rounding {rounding!r} needs --rbits r >= 1 (or --chain-length N)")
    cfg = MacConfig(in_fmt, acc, rounding, rbits)
    if seed < 0 or seed >= 1 << 32:
        raise ValueError(f"--seed {seed} out of range: use 0..2**32-1")
    return cfg


def build_unit(
    in_fmt,
    acc,
    rounding,
    rbits=None,
    chain_length=None,
    rand="port",
    seed=0,
    pipeline=0,
    datapath=None,
):
    """Validate CLI-level options and build the :class:`hwgen.mac.MacUnit`."""
    from .mac import MacUnit

    cfg = build_config(in_fmt, acc, rounding, rbits, chain_length, seed)
    return MacUnit(cfg, rand=rand, seed=seed, pipeline=pipeline, datapath=datapath)


def _verilog(args) -> int:
    if args.array is not None:
        from .array_export import export_array, parse_shape

        if args.datapath is not None:
            raise ValueError("--datapath applies to one MAC; an --array builds the default one")
        if args.rand == "port":
            raise ValueError("--array uses one built-in generator per PE; drop --rand port")
        rows, cols = parse_shape(args.array)
        cfg = build_config(
            args.in_fmt, args.acc, args.rounding, args.rbits, args.chain_length, args.seed
        )
        name, text, meta = export_array(
            cfg, rows, cols, seed=args.seed, pipeline=args.pipeline, name=args.name
        )
        return _write(args.output, name, text, meta, f"{rows}x{cols} array")

    from .export import default_module_name, sidecar, to_verilog

    unit = build_unit(
        args.in_fmt,
        args.acc,
        args.rounding,
        args.rbits,
        args.chain_length,
        args.rand or "port",
        args.seed,
        args.pipeline,
        args.datapath,
    )
    name = args.name or default_module_name(unit)
    return _write(args.output, name, to_verilog(unit, name), sidecar(unit, name),
                  f"{unit.datapath} datapath, latency {unit.latency}")


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
    if args.ops < 1:
        raise ValueError(f"--ops must be >= 1, got {args.ops}")
    names = (
        None if args.configs is None else [s.strip() for s in args.configs.split(",") if s.strip()]
    )
    results = run_matrix(args.ops, names=names, build_dir=args.build_dir, seed=args.seed)
    print(f"{'configuration':44s} {'ops':>8s} {'mismatches':>10s} {'sim time [s]':>12s}")
    bad = 0
    for r in results:
        print(f"{r['name']:44s} {r['ops']:8d} {r['mismatches']:10d} {r['seconds']:12.1f}")
        bad += r["mismatches"] != 0 or not r["passed"]
    print(f"{len(results)} configurations, {bad} failing")
    return 1 if bad else 0
