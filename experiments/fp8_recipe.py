"""The FP8 training recipe on Fashion-MNIST: RN vs lazy SR vs eager SR, several seeds.

Forward GEMMs multiply E4M3 activations by E4M3 weights; both backward GEMMs
multiply E5M2 gradients by E4M3 weights / activations on an E5M3-input MAC
(E5M3 holds both formats exactly); every GEMM accumulates in each format of
``--acc`` with the row's rounding. The runs are ``srmac train`` runs;
finished runs (a ``summary.json`` with the same options) are reused. Writes
``table.md`` and ``table.csv`` under ``--out``.

    python experiments/fp8_recipe.py --acc e6m5,fp16 --seeds 0,1,2 --epochs 3 \
        --limit-train 10000 --hidden 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

from ref.outputs import markdown_table, write_csv, write_text
from sim.train import TrainOptions, run


def options(args, acc: str, rounding: str, seed: int) -> TrainOptions:
    base = dict(epochs=args.epochs, seed=seed, limit_train=args.limit_train,
                limit_test=args.limit_test, hidden=args.hidden, lr_schedule="cosine",
                device="cpu", progress=False)
    if rounding == "fp32":
        return TrainOptions(mac="fp32", out=str(Path(args.out) / "fp32" / f"s{seed}"), **base)
    out = str(Path(args.out) / acc / rounding.replace(":", "-") / f"s{seed}")
    fwd, bwd = f"e4m3:{acc}:{rounding}", f"e5m3:{acc}:{rounding}"
    return TrainOptions(mac=fwd, mac_bwd_input=bwd, mac_bwd_weight=bwd, quant_weight="e4m3:rn",
                        quant_act="e4m3:rn", quant_grad=args.grad, out=out, **base)


def command(o: TrainOptions) -> str:
    flags = ["srmac train"]
    if o.mac != "fp32":
        flags += [f"--mac {o.mac}", f"--mac-bwd-input {o.mac_bwd_input}",
                  f"--mac-bwd-weight {o.mac_bwd_weight}", f"--quant-weight {o.quant_weight}",
                  f"--quant-act {o.quant_act}", f"--quant-grad {o.quant_grad}"]
    flags += [f"--epochs {o.epochs}", "--lr-schedule cosine"]
    if o.limit_train:
        flags.append(f"--limit-train {o.limit_train}")
    if o.limit_test:
        flags.append(f"--limit-test {o.limit_test}")
    flags += [f"--hidden {o.hidden}", "--device cpu", "--seed S"]
    return " ".join(flags)


def done(o: TrainOptions) -> dict | None:
    path = Path(o.out) / "summary.json"
    if not path.exists():
        return None
    s = json.loads(path.read_text())
    want = {k: v for k, v in asdict(o).items() if k != "progress"}
    have = {k: v for k, v in s["options"].items() if k != "progress"}
    return s if want == have else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--roundings", default="fp32,rn,sr_lazy:4,sr_eager:4")
    p.add_argument("--acc", default="e6m5,fp16",
                   help="accumulator formats, comma-separated [default: e6m5,fp16]")
    p.add_argument("--grad", default="e5m2:rn", help="gradient rounding [default: e5m2:rn]")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit-train", type=int, default=10000)
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--out", default="build/fp8-recipe")
    args = p.parse_args(argv)
    roundings = args.roundings.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    grid = [(acc, r) for acc in args.acc.split(",") for r in roundings if r != "fp32"]
    if "fp32" in roundings:
        grid.insert(0, (None, "fp32"))
    rows = []
    for acc, rounding in grid:
        summaries = []
        for seed in seeds:
            o = options(args, acc, rounding, seed)
            s = done(o)
            if s is None:
                print(f"fp8 recipe: {rounding} seed {seed} ...", flush=True)
                run(o)
                s = done(o)
            summaries.append(s)
        accs = [100 * s["final"]["test_acc"] for s in summaries]
        epochs = [e for s in summaries for e in s["epochs"]]
        o = options(args, acc, rounding, 0)
        rows.append(dict(
            recipe="float32" if rounding == "fp32" else f"FP8, {acc} acc., {rounding}",
            fwd=o.mac, bwd="-" if rounding == "fp32" else o.mac_bwd_input,
            seeds=len(seeds),
            acc=f"{statistics.fmean(accs):.2f} ± "
                f"{statistics.stdev(accs) if len(accs) > 1 else 0:.2f}",
            range=f"{min(accs):.2f}-{max(accs):.2f}",
            loss=f"{statistics.fmean(s['final']['train_loss'] for s in summaries):.4f}",
            s_epoch=f"{statistics.fmean(e['time_s'] for e in epochs):.1f}",
            macs=f"{statistics.fmean(e['emulated_macs'] for e in epochs):.3g}",
            command=command(o)))
    out = Path(args.out)
    write_csv(out / "table.csv", rows)
    table = markdown_table(rows, ["recipe", "fwd", "bwd", "seeds", "acc", "range", "loss",
                                  "s_epoch", "macs"],
                           ["recipe", "forward MAC", "backward MACs", "seeds",
                            "test acc. % (mean ± std)", "min-max %", "final train loss",
                            "s / epoch", "emulated MACs / epoch"])
    cmds = "\n".join(f"- {r['recipe']}: `{r['command']}`" for r in rows)
    write_text(out / "table.md", table + "\n\nCommands (S = seed):\n\n" + cmds + "\n")
    print(table + "\n\n" + cmds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
