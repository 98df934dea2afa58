"""The AdaQAT results grid of docs/adaqat.md: resumable, one folder per run, one lock.

    python3 experiments/adaqat_grid.py [OUT] [--seeds 0,1,2] [--models mlp,cnn] [--no-mac]
    python3 experiments/adaqat_table.py [OUT] --plot docs/img/adaqat_tradeoff.png

Rows per model and seed, all on Fashion-MNIST (the first 10000 training images, the
10000 test images), 3 epochs, batch 64, cosine learning-rate decay:

* float32: ``srmac train --mac fp32`` (same model, data, rate and schedule);
* fixed-width QAT at 8/8, 4/4, 3/3, 2/2 and AdaQAT at three lambdas (``srmac adaqat``:
  DoReFa weights, PACT activations, first and last layers at 8 bits);
* AdaQAT with LSQ quantizers at lambda 0.05;
* fixed 4/4 and AdaQAT lambda 0.05 with every GEMM on the emulated
  ``e5m2:e6m5:sr_eager:4`` MAC (slow: they run after all the float-GEMM rows).

The MLP has two hidden layers (784-128-128-10): with the first and last layers at 8 bits,
a one-hidden-layer MLP would have no width to learn. Runs go through the same functions as
the commands (:func:`sim.train.run`, :func:`sim.adaqat.train.run`), under
:func:`sim.table.run_grid`: a finished run (its summary and every file it lists intact, the
same options) is skipped, so the grid can be stopped, killed, moved and resumed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.adaqat.train import AdaQatOptions  # noqa: E402
from sim.train import TrainOptions  # noqa: E402

#: Shared by every run of the grid.
COMMON = dict(epochs=3, limit_train=10000, batch_size=64, lr=0.02, lr_schedule="cosine",
              progress=False)
MODEL_ARGS = {"mlp": dict(hidden=128, depth=2), "cnn": dict(channels=8)}
MAC = "e5m2:e6m5:sr_eager:4"
LAMBDAS = (0.01, 0.05, 0.2)


@dataclass(frozen=True)
class Row:
    """One row of the table: a method on a model, over seeds."""

    model: str
    method: str  # "float32", "fixed", "AdaQAT"
    fixed: str | None = None
    lam: float | None = None
    mac: str | None = None
    quantizer: str = "dorefa-pact"

    @property
    def tag(self) -> str:
        parts = [self.model, "float" if self.method == "float32" else
                 (f"f{self.fixed.replace('/', 'x')}" if self.fixed else f"l{self.lam:g}")]
        if self.quantizer != "dorefa-pact":
            parts.append(self.quantizer)
        if self.mac:
            parts.append("".join(c if c.isalnum() else "-" for c in self.mac))
        return "-".join(parts)

    def options(self, root: Path, seed: int):
        out = str(root / f"{self.tag}-s{seed}")
        args = dict(COMMON, model=self.model, seed=seed, out=out, **MODEL_ARGS[self.model])
        if self.method == "float32":
            return TrainOptions(mac="fp32", **args)
        return AdaQatOptions(fixed=self.fixed, lam=self.lam if self.lam is not None else 0.01,
                             mac=self.mac, quantizer=self.quantizer, **args)

    def command(self) -> str:
        o = self.options(Path("."), 0)
        default = type(o)()
        verb = "srmac train" if self.method == "float32" else "srmac adaqat"
        parts = [verb]
        for name in ("model", "hidden", "depth", "channels", "mac", "fixed", "lam", "quantizer",
                     "epochs", "limit_train", "batch_size", "lr", "lr_schedule"):
            if not hasattr(o, name):
                continue
            v = getattr(o, name)
            if v is None or (v == getattr(default, name) and name not in ("model", "mac")):
                continue
            if name == "lam" and self.fixed:
                continue
            flag = "--lambda" if name == "lam" else "--" + name.replace("_", "-")
            parts.append(f"{flag} {v}")
        return " ".join(parts) + " --seed S"


def rows(models=("mlp", "cnn"), mac: bool = True) -> list[Row]:
    """The rows of the table, float-GEMM rows first, in table order per model."""
    out = []
    for model in models:
        out.append(Row(model, "float32"))
        out += [Row(model, "fixed", fixed=f) for f in ("8/8", "4/4", "3/3", "2/2")]
        out += [Row(model, "AdaQAT", lam=lam) for lam in LAMBDAS]
        out.append(Row(model, "AdaQAT", lam=0.05, quantizer="lsq"))
    if mac:
        for model in models:
            out += [Row(model, "fixed", fixed="4/4", mac=MAC), Row(model, "AdaQAT", lam=0.05, mac=MAC)]
    return out


def _train(o):
    if isinstance(o, TrainOptions):
        from sim.train import run
    else:
        from sim.adaqat.train import run
    return run(o)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="build/adaqat-grid")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--no-mac", dest="mac", action="store_false",
                    help="leave out the rows on the emulated MAC")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from sim.table import run_grid

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    root = Path(args.root)
    seeds = [int(s) for s in args.seeds.split(",")]
    table = rows(args.models.split(","), args.mac)
    # seed-major within each speed class: a grid stopped early has whole rows at the first seeds
    runs = [r.options(root, s) for fast in (True, False) for s in seeds for r in table
            if (r.mac is None) == fast]
    try:
        run_grid(runs, root, _train, what="adaqat grid")
    except ValueError as exc:
        sys.exit(f"adaqat grid: error: {exc}")


if __name__ == "__main__":
    main()
