"""The AdaQAT results table (markdown, mean ± std over seeds) and the accuracy / BitOPs plot.

    python3 experiments/adaqat_table.py [OUT] [--plot PNG]

OUT is the folder experiments/adaqat_grid.sh filled (default build/adaqat-grid).
"""

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

C = "--epochs 3 --limit-train 10000 --batch-size 64 --lr-schedule cosine"
MODES = ["float", "f8x8", "f4x4", "f3x3", "f2x2", "l0.01", "l0.05", "l0.2"]


def rows(root: Path):
    for model in ("mlp", "cnn"):
        m = f"--model {model}" + (" --hidden 128" if model == "mlp" else "")
        for mode in MODES:
            runs = sorted(root.glob(f"{model}-{mode}-s*/summary.json"))
            if not runs:
                continue
            if mode == "float":
                accs = [json.loads(p.read_text())["final"]["test_acc"] for p in runs]
                r = dict(method="float32", lam="-", wa=["float"], bitops=None, expl=None,
                         cmd=f"srmac train {m} --mac fp32 --lr 0.02 {C} --seed S")
            else:
                sums = [next(csv.DictReader(open(p.parent / "summary.csv"))) for p in runs]
                accs = [float(s["top1"]) for s in sums]
                fixed = mode.startswith("f")
                wa = mode[1:].replace("x", "/")
                r = dict(method=f"fixed {wa}" if fixed else "AdaQAT", lam="-" if fixed else mode[1:],
                         wa=[s["bits_wa"] for s in sums],
                         bitops=statistics.fmean(float(s["bitops"]) for s in sums),
                         expl=statistics.fmean(float(s["explore_epochs"]) for s in sums),
                         cmd=f"srmac adaqat {m} " + (f"--fixed {wa}" if fixed else f"--lambda {mode[1:]}")
                         + f" {C} --seed S")
            r.update(model=model, seeds=len(accs), acc=statistics.fmean(accs),
                     std=statistics.stdev(accs) if len(accs) > 1 else 0.0)
            yield r


def markdown(table) -> str:
    out = ["| model | method | lambda | seeds | W/A (per seed) | top-1 % (mean ± std) | BitOPs / sample | exploration epochs | total epochs |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        bit = "-" if r["bitops"] is None else f"{r['bitops'] / 1e6:.2f} M"
        ex = "-" if r["expl"] is None else f"{r['expl']:.2f}"
        out.append(f"| {r['model']} | {r['method']} | {r['lam']} | {r['seeds']} | {', '.join(r['wa'])} | "
                   f"{100 * r['acc']:.2f} ± {100 * r['std']:.2f} | {bit} | {ex} | 3 |")
    out += ["", "Commands (S = seed):", ""]
    out += [f"- {r['model']}, {r['method']}{'' if r['lam'] == '-' else ' lambda ' + r['lam']}: `{r['cmd']}`"
            for r in table]
    return "\n".join(out) + "\n"


def plot(table, path: Path) -> None:
    from ref.plotting import subplots

    fig, axes = subplots(1, 2, figsize=(10, 3.8))
    for ax, model in zip(axes, ("mlp", "cnn"), strict=True):
        mine = [r for r in table if r["model"] == model]
        for r in mine:
            if r["bitops"] is None:
                ax.axhline(100 * r["acc"], color="grey", ls="--", lw=1, label="float32")
                continue
            ada = r["method"] == "AdaQAT"
            ax.errorbar(r["bitops"] / 1e6, 100 * r["acc"], yerr=100 * r["std"],
                        fmt="o" if ada else "s", color="C1" if ada else "C0", capsize=3)
            ax.annotate(f"λ={r['lam']}" if ada else r["method"].split()[1],
                        (r["bitops"] / 1e6, 100 * r["acc"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("BitOPs per sample (millions, log)")
        ax.set_ylabel("top-1 %")
        ax.set_title(f"{model}: AdaQAT (circles) vs fixed W/A (squares)")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="build/adaqat-grid")
    ap.add_argument("--plot", default=None, help="write the accuracy / BitOPs plot here")
    args = ap.parse_args()
    table = list(rows(Path(args.root)))
    if not table:
        sys.exit(f"no runs under {args.root}: run experiments/adaqat_grid.sh first")
    print(markdown(table))
    if args.plot:
        plot(table, Path(args.plot))


if __name__ == "__main__":
    main()
