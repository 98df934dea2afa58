"""``srmac report``: the scaling table and plot (largest array per board and rounding).

``srmac report --boards icebreaker,ulx3s-25f --roundings rn,sr_lazy,sr_eager``
searches, for each board and rounding, the largest array whose full board
build places and routes (see :mod:`boards.report`), and writes
``<out>.csv`` (one row per board and rounding), ``<out>_points.csv`` (every
build, with any other cached build of the same designs), ``<out>.md`` (the
markdown table) and the plot. Builds are cached in
``--results`` (default ``build/report``), so a rerun only parses them;
``--sizes 1x1,2x2`` builds exactly those sizes instead of searching, and
``--quick`` is ``--boards icebreaker --roundings rn --sizes 1x1``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap

from ref.cli import add_mac_arguments, check_outputs, mac_from_args, parse_int
from ref.config import Rounding

from . import report as R
from .registry import design_defaults, get_board

__all__ = ["register"]

_ROUNDINGS = ("rn", "rz", "sr_lazy", "sr_eager")
DEFAULT_BOARDS = "icebreaker,ulx3s-25f"
DEFAULT_ROUNDINGS = "rn,sr_lazy,sr_eager"


def _split(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def _report(args) -> int:

    if args.force and args.no_build:
        raise ValueError("--force rebuilds and --no-build builds nothing: pick one")
    if args.quick:
        for flag, value in (("--boards", args.boards), ("--roundings", args.roundings)):
            if value is not None:
                raise ValueError(f"--quick is icebreaker, rn, 1x1: drop {flag} (or --quick)")
        args.boards, args.roundings, args.sizes = "icebreaker", "rn", args.sizes or "1x1"
    if args.sizes is not None:
        for flag, value in (("--start", args.start), ("--max-builds", args.max_builds)):
            if value is not None:
                raise ValueError(f"{flag} steers the search; --sizes builds exactly those sizes: "
                                 "drop one")
    boards = [get_board(b).name for b in _split(args.boards or DEFAULT_BOARDS)]
    roundings = _split(args.roundings or DEFAULT_ROUNDINGS)
    for r in roundings:
        if r not in _ROUNDINGS:
            raise ValueError(f"unknown rounding {r!r}: choose from {', '.join(_ROUNDINGS)}")
    if not boards or not roundings:
        raise ValueError("need at least one board (--boards) and one rounding (--roundings)")
    mac = mac_from_args(args)
    if args.rbits is not None and not any(Rounding(r).is_sr for r in roundings):
        raise ValueError(f"--rbits {args.rbits} does nothing with --roundings {','.join(roundings)}: "
                         "drop it or add sr_lazy / sr_eager")
    cfgs = [mac.replace(rounding=r) for r in roundings]
    args.kmax = parse_int(args.kmax, "--kmax", 1)
    design = _design(args, mac)
    args.max_builds = parse_int(args.max_builds, "--max-builds", 1)
    args.timeout = _seconds(args.timeout, "--timeout")
    sizes = [R.parse_shape(s) for s in _split(args.sizes)] if args.sizes is not None else None
    if sizes == []:
        raise ValueError(f"--sizes {args.sizes!r} names no size: give e.g. 1x1,2x2")
    start = None if args.start in (None, "auto") else R.parse_shape(args.start)
    candidates = R.shapes()
    if start is not None and start not in candidates:
        raise ValueError(f"--start {args.start}: pick a near-square size such as 2x2 or 2x3")
    # every output before the first build: an unwritable one fails now, not after hours
    files = [(args.out + ext, "--out") for ext in (".csv", "_points.csv", ".md")]
    files += [(args.plot, "--plot")] if args.plot else []
    outputs, _ = check_outputs(files, [] if args.no_build else [(args.results, "--results")])

    from tqdm import tqdm

    jobs = [(b, c) for b in boards for c in cfgs]
    results = []
    bar = tqdm(jobs, desc="report", unit="search", file=sys.stderr,
               disable=True if args.no_progress else None)  # None: on a terminal only
    for board, cfg in bar:
        bar.set_postfix_str(f"{board} {cfg.spec()}")
        get_board(board).check(cfg, 1, 1, seed=0, kmax=args.kmax, pipeline=design.pipeline,
                               interleave=design.interleave, mult=design.mult)
        probe = R.board_probe(board, cfg, args.results, kmax=args.kmax, timeout=args.timeout,
                              force=args.force, build=not args.no_build, design=design)

        def log(p):
            fmax = f", Fmax {p.fmax_mhz:.2f} MHz" if p.fmax_mhz else ""
            lanes = f" (x{p.interleave})" if p.interleave > 1 else ""
            lc = f", {p.logic_cells}/{p.logic_cells_available} LC" if p.logic_cells else ""
            why = f" ({p.message})" if p.message and not p.fits else ""
            tqdm.write(f"{p.board} {p.spec} {p.rows}x{p.cols}{lanes}: {p.status}{why}{lc}{fmax} "
                       f"({p.build_s:.0f} s)")

        if sizes is not None:
            points = []
            for rows, cols in sizes:
                points.append(probe(rows, cols))
                log(points[-1])
            fit = [p for p in points if p.fits]
            best = max(fit, key=lambda p: p.pes) if fit else None
            up = next((p for p in sorted(points, key=lambda p: p.pes)
                       if best is not None and p.pes > best.pes), None)
            results.append((best, up, points))
        else:
            first = start or R.START.get(board, (2, 2))
            results.append(R.search_largest(probe, candidates, start=candidates.index(first),
                                             max_builds=args.max_builds, on_point=log))
    summary = R.summary_rows(results)
    points = [p for _, _, ps in results for p in ps]
    # other cached builds of the same designs (an earlier --sizes run, say): more points to plot
    seen = {(p.board, p.spec, p.rows, p.cols) for p in points}
    for board, cfg in jobs:
        points += [p for p in R.cached_points(args.results, board, cfg, kmax=args.kmax,
                                              design=design)
                   if (p.board, p.spec, p.rows, p.cols) not in seen]
    points.sort(key=lambda p: (boards.index(p.board), roundings.index(p.spec.split(":")[2]),
                               p.pes, p.rows))
    command = _command(args, boards, roundings)
    R.write_csv(outputs[0], summary, R.SUMMARY_COLUMNS)
    R.write_csv(outputs[1], [p.row() for p in points], R.POINT_COLUMNS)
    print(R.write_markdown(outputs[2], summary, command), end="")
    if args.plot:
        R.plot(outputs[3], points, summary)
    print("wrote " + ", ".join(str(p) for p in outputs))
    return 0


def _design(args, mac) -> R.Design:
    """The board design of the report on ``mac``'s formats from --interleave, --pipeline and
    --mult (unset: the board build defaults, :func:`boards.registry.design_defaults`)."""
    from .fpga import MULTS

    if args.mult not in MULTS:
        raise ValueError(f"--mult must be one of {', '.join(MULTS)}, got {args.mult!r}")
    pipeline, interleave = design_defaults(
        mac,
        None if args.pipeline is None else parse_int(args.pipeline, "--pipeline", 0, 8),
        None if args.interleave is None else parse_int(args.interleave, "--interleave", 1, 5))
    return R.Design(pipeline=pipeline, interleave=interleave, mult=args.mult)


def _seconds(text, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"cannot read {what} {text!r}: expected seconds, e.g. 3600") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{what} must be a positive number of seconds, got {text}")
    return value


def _command(args, boards, roundings) -> str:
    """The command line that reproduces this report (the options that matter)."""
    mac = mac_from_args(args)
    parts = ["srmac", "report", "--boards", ",".join(boards), "--roundings", ",".join(roundings),
             "--in", mac.in_fmt.spec(), "--acc", mac.acc_fmt.spec()]
    if any(Rounding(r).is_sr for r in roundings):
        parts += ["--rbits", str(mac.rbits)]
    if args.kmax != 256:
        parts += ["--kmax", str(args.kmax)]
    design = _design(args, mac)
    pipeline, interleave = design_defaults(mac)
    default = R.Design(pipeline=pipeline, interleave=interleave)
    for flag, value, dflt in (("--interleave", design.interleave, default.interleave),
                              ("--pipeline", design.pipeline, default.pipeline),
                              ("--mult", design.mult, default.mult)):
        if value != dflt:
            parts += [flag, str(value)]
    if args.sizes:
        parts += ["--sizes", args.sizes]
    elif args.start not in (None, "auto"):
        parts += ["--start", args.start]
    parts += ["--out", args.out] + (["--plot", args.plot] if args.plot else [])
    return " ".join(shlex.quote(p) for p in parts)


_EPILOG = """\
examples:
  srmac report --boards icebreaker,ulx3s-25f --roundings rn,sr_lazy,sr_eager --plot build/report/scaling.png
  srmac report --quick --kmax 16 --no-progress          # one 1x1 iCEBreaker build (about 1 min)
  srmac report --boards ulx3s-85f --roundings sr_eager --rbits 6 --sizes 8x8,10x10
  srmac report --boards ulx3s-25f --roundings sr_eager --interleave 3 --sizes 6x6
  srmac report --no-build                               # the tables from cached builds only

Builds are cached in --results; a rerun only parses them (--force rebuilds).
"""


def register(sub):
    p = sub.add_parser(
        "report", help="scaling report: largest array per board and rounding, its resources, "
                       "Fmax and peak MAC/s",
        description=textwrap.fill(
            "For each board and rounding, search the largest array whose full board build "
            "places and routes (or build exactly --sizes), and write the summary table "
            "(<out>.csv, <out>.md), every build (<out>_points.csv) and, with --plot, the "
            "figure. Builds are cached, so a rerun only parses them.", 79),
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--boards", default=None,
                   help=f"comma-separated boards (default {DEFAULT_BOARDS})")
    p.add_argument("--roundings", default=None,
                   help=f"comma-separated rounding modes (default {DEFAULT_ROUNDINGS})")
    add_mac_arguments(p, spec=False, rounding=False)  # --roundings lists the roundings
    p.add_argument("--kmax", default="256", metavar="K", help="K per RUN command (default 256)")
    p.add_argument("--interleave", default=None, metavar="L",
                   help="chains per PE: an L-stage accumulation loop (default 2)")
    p.add_argument("--pipeline", default=None, metavar="P",
                   help="registers between each PE's product and its loop (default 1)")
    p.add_argument("--mult", default="lut", choices=("lut", "dsp"),
                   help="significand multipliers in logic (lut, default) or DSP blocks (dsp)")
    p.add_argument("--sizes", default=None,
                   help="build exactly these sizes (e.g. 1x1,2x2) instead of searching")
    p.add_argument("--start", default=None,
                   help="first size of each search (default auto: near the expected answer, "
                        "e.g. 2x3 on the iCEBreaker, 6x6 on the ULX3S-25F)")
    p.add_argument("--max-builds", default=None, metavar="N",
                   help="stop each search after this many builds (default: until found)")
    p.add_argument("--timeout", default="3600", metavar="SECONDS",
                   help="seconds per build before it counts as a timeout (default 3600)")
    p.add_argument("--results", default="build/report",
                   help="cache of the builds (default build/report)")
    p.add_argument("--force", action="store_true", help="rebuild even when cached")
    p.add_argument("--no-build", action="store_true",
                   help="only read cached builds; sizes never built are reported as such")
    p.add_argument("--out", default="build/report/scaling",
                   help="output prefix: <out>.csv, <out>_points.csv, <out>.md "
                        "(default build/report/scaling)")
    p.add_argument("--plot", default=None, help="write the plot here (PNG)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: icebreaker, rn, 1x1 (unless --sizes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_report)
