"""The AdaQAT results table (markdown, mean ± std over seeds) and the accuracy / BitOPs plot.

    python3 experiments/adaqat_table.py [OUT] [--seeds 0,1,2] [--plot PNG]

OUT is the folder experiments/adaqat_grid.py filled (default build/adaqat-grid). Only
finished runs count (sim.results.finished_run); a row with fewer seeds says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from adaqat_grid import Row, rows  # noqa: E402

from sim.results import finished_like  # noqa: E402

HOW = {"settled": "s", "oscillating": "o", None: "-"}


def collect(root: Path, seeds: list[int]) -> list[dict]:
    table = []
    for r in rows():
        found = []
        for seed in seeds:
            o = r.options(root, seed)
            s, _ = finished_like(o)
            if s is not None:
                found.append(s)
        if not found:
            continue
        acc = [s["final"]["test_acc"] for s in found]
        item = dict(row=r, seeds=len(found), acc=statistics.fmean(acc),
                    std=statistics.stdev(acc) if len(acc) > 1 else 0.0, wa=["float"],
                    bitops=None, expl=None, froze=None)
        if r.method != "float32":
            item.update(wa=[s["row"]["bits_wa"] for s in found],
                        bitops=statistics.fmean(s["row"]["bitops"] for s in found),
                        expl=statistics.fmean(s["row"]["explore_epochs"] for s in found))
            if r.method == "AdaQAT":
                item["froze"] = [HOW[s["frozen_w_how"]] + HOW[s["frozen_a_how"]] for s in found]
        table.append(item)
    return table


def label(r: Row) -> str:
    text = r.method if r.method != "fixed" else f"fixed {r.fixed}"
    if r.quantizer != "dorefa-pact":
        text += f" ({r.quantizer.upper()})"
    return text


def markdown(table: list[dict]) -> str:
    out = ["| model | method | lambda | GEMMs | seeds | W/A (per seed) | top-1 % (mean ± std) "
           "| BitOPs / sample | exploration epochs | froze W,A (per seed) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        r = t["row"]
        bit = "-" if t["bitops"] is None else f"{t['bitops'] / 1e6:.2f} M"
        ex = "-" if t["expl"] is None else f"{t['expl']:.2f}"
        fr = "-" if t["froze"] is None else ", ".join(t["froze"])
        out.append(f"| {r.model} | {label(r)} | {'-' if r.lam is None else f'{r.lam:g}'} | "
                   f"{'`' + r.mac + '`' if r.mac else 'float'} | {t['seeds']} | "
                   f"{', '.join(t['wa'])} | {100 * t['acc']:.2f} ± {100 * t['std']:.2f} | {bit} | "
                   f"{ex} | {fr} |")
    out += ["", "Commands (S = seed):", ""]
    out += [f"- {t['row'].model}, {label(t['row'])}"
            f"{'' if t['row'].lam is None else ' lambda ' + format(t['row'].lam, 'g')}"
            f"{', ' + t['row'].mac if t['row'].mac else ''}: `{t['row'].command()}`"
            for t in table]
    return "\n".join(out) + "\n"


def plot(table: list[dict], path: Path) -> None:
    from ref.outputs import write_bytes
    from ref.plotting import subplots
    from sim.results import figure_bytes

    models = sorted({t["row"].model for t in table}, key=["mlp", "cnn"].index)
    fig, axes = subplots(1, len(models), figsize=(5.2 * len(models), 3.9), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for t in (t for t in table if t["row"].model == model):
            r = t["row"]
            if t["bitops"] is None:
                ax.axhline(100 * t["acc"], color="grey", ls="--", lw=1, label="float32")
                continue
            ada = r.method == "AdaQAT"
            color = "C3" if r.mac else ("C1" if ada else "C0")
            ax.errorbar(t["bitops"] / 1e6, 100 * t["acc"], yerr=100 * t["std"],
                        fmt=("o" if ada else "s") if r.quantizer == "dorefa-pact" else "^",
                        color=color, capsize=3)
            name = f"λ={r.lam:g}" if ada else r.fixed
            if r.quantizer != "dorefa-pact":
                name += " LSQ"
            if r.mac:
                name += " FP8"
            ax.annotate(name, (t["bitops"] / 1e6, 100 * t["acc"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("BitOPs per sample (millions, log)")
        ax.set_ylabel("top-1 %")
        ax.set_title(f"{model}: AdaQAT (circles) / fixed (squares); red: FP8 MAC", fontsize=9)
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    write_bytes(path, figure_bytes(fig))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="build/adaqat-grid")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--plot", default=None, help="write the accuracy / BitOPs plot here")
    args = ap.parse_args()
    table = collect(Path(args.root), [int(s) for s in args.seeds.split(",")])
    if not table:
        sys.exit(f"no finished runs under {args.root}: run experiments/adaqat_grid.py first")
    print(markdown(table))
    if args.plot:
        plot(table, Path(args.plot))


if __name__ == "__main__":
    main()
