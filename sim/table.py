"""The training results table: a grid of ``srmac train`` runs, resumable, aggregated over seeds.

A grid is models x MAC configurations x seeds, every run with the same
epochs, data subset, batch and quantizers, so that the rows differ only in the
MAC (the accumulation arithmetic). With a recipe (``--recipe fp8``) every
emulated row is that recipe with the row's accumulator and rounding
(``e6m5:sr_eager:4``: :func:`sim.train.recipe_fields`), its backward MACs and
operand roundings included; ``fp32`` rows are always the float baseline. Each run writes its usual folder
``<root>/<model>/<mac slug>/s<seed>/``; :func:`run_grid` skips a run whose
folder holds a finished run (:func:`sim.results.finished_run`: a valid
``summary.json``, every file it lists whole) with the same result-deciding
options, so a long grid can be stopped (even by SIGKILL) and resumed, moved or
copied, at no cost; a broken run gets one line and is trained again. The root
is locked while the grid runs: a second grid on it stops with one line.

The aggregate is ``table.csv`` (one row per model and MAC: mean and standard
deviation of the final test accuracy over seeds, mean seconds per epoch,
emulated MACs per epoch, and the command that reproduces one seed),
``table.md`` (the same as a markdown table) and ``table.png`` (accuracy per
MAC with the spread over seeds).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ref.outputs import csv_text, write_bytes, write_text

from .loop import is_float_mac, progress_bar
from .models import model_names
from .results import FolderLock, figure_bytes, finished_like
from .train import DEFAULT_LR, TrainOptions, recipe_fields, slug

__all__ = ["DEFAULT_MACS", "FP8_MACS", "default_macs", "TableSpec", "run_table", "run_grid",
           "aggregate", "write_table", "parse_list", "command", "split_recipe_mac"]

#: fp32 baseline, then E5M2 x E5M2 -> E6M5 with every rounding (issue 6's grid).
DEFAULT_MACS = (
    "fp32",
    "e5m2:e6m5:rn",
    "e5m2:e6m5:rz",
    *(f"e5m2:e6m5:sr_lazy:{r}" for r in (2, 4, 6, 8)),
    *(f"e5m2:e6m5:sr_eager:{r}" for r in (2, 4, 6, 8)),
)

#: The FP8 recipe's grid (``--recipe fp8``): float32, then E6M5 and FP16 accumulators with RN,
#: lazy and eager SR (r = 4).
FP8_MACS = ("fp32", *(f"{acc}:{r}" for acc in ("e6m5", "fp16")
                      for r in ("rn", "sr_lazy:4", "sr_eager:4")))

#: The GEMM options of a run: a float-baseline row keeps their defaults.
_GEMM_FIELDS = ("mac_bwd_input", "mac_bwd_weight", "quant_weight", "quant_act", "quant_grad",
                "quant_out")


def default_macs(recipe: str | None = None) -> list[str]:
    """The default ``--macs`` of a grid: :data:`DEFAULT_MACS`, or :data:`FP8_MACS` for fp8."""
    return list(FP8_MACS if recipe == "fp8" else DEFAULT_MACS)


def split_recipe_mac(item: str) -> tuple[str, str]:
    """``"e6m5:sr_eager:4"`` -> ``("e6m5", "sr_eager:4")``: a recipe row's accumulator, rounding."""
    from ref import Rounding, parse_format

    tokens = str(item).strip().lower().split(":")
    names = {m.value for m in Rounding}
    for i, tok in enumerate(tokens):
        if tok in names and i > 0:
            acc = ":".join(tokens[:i])
            try:
                parse_format(acc)
            except ValueError:
                break
            return acc, ":".join(tokens[i:])
    raise ValueError(f"a --recipe row is ACC:ROUNDING like e6m5:rn or fp16:sr_eager:4 (the "
                     f"recipe sets the input formats), got {item!r}")

def parse_list(text: str, kind=str) -> list:
    """``"a,b,c"`` -> ``[a, b, c]`` (converted with ``kind``); empty items are an error."""
    items = [t.strip() for t in str(text).split(",")]
    if not items or any(not t for t in items):
        raise ValueError(f"expected a comma-separated list, got {text!r}")
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None


@dataclass
class TableSpec:
    """A grid: models x macs x seeds, each run with ``base``'s shared options."""

    root: Path
    models: list[str] = field(default_factory=lambda: ["mlp", "cnn"])
    macs: list[str] = field(default_factory=lambda: list(DEFAULT_MACS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    base: TrainOptions = field(default_factory=TrainOptions)
    recipe: str | None = None

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.models or not self.macs or not self.seeds:
            raise ValueError("a results table needs at least one model, one MAC and one seed")
        names = model_names("fashion-mnist")
        for model in self.models:
            if model not in names:
                raise ValueError(f"unknown model {model!r}: choose one of {', '.join(names)}")
        for mac in self.macs:  # fail before hours of training, not in the middle
            self.options(self.models[0], mac, self.seeds[0]).validate()

    def options(self, model: str, mac: str, seed: int) -> TrainOptions:
        """The options of one run: ``base`` with the row's model, MAC (or recipe row) and seed."""
        if is_float_mac(mac):  # the float baseline: no GEMM options
            gemm = {name: getattr(TrainOptions, name) for name in _GEMM_FIELDS}
            folder, gemm["mac"] = slug(mac), mac
        elif self.recipe is not None:
            gemm = recipe_fields(self.recipe, *split_recipe_mac(mac))
            folder = slug(f"{self.recipe}-{mac}")
        else:
            gemm, folder = {"mac": mac}, slug(mac)
        out = self.root / model / folder / f"s{seed}"
        return replace(self.base, model=model, seed=seed, out=str(out), progress=False, **gemm)

    def runs(self) -> list[TrainOptions]:
        # Seed-major: a grid stopped early has every row at the first seeds.
        return [self.options(m, mac, s) for s in self.seeds for m in self.models
                for mac in self.macs]


#: TrainOptions fields no command line shows (where and how a run reports; the seed last).
_NOT_SHOWN = ("out", "progress", "seed")
#: Fields shown first, in this order (the rest follow in the dataclass's order).
_FIRST = ("model", "dataset", "mac", "mac_bwd_input", "mac_bwd_weight", "quant_weight",
          "quant_act", "quant_grad", "quant_out")
#: Fields whose flag is not ``--<field with dashes>``.
_FLAGS = {"opt_momentum_fmt": "--opt-state-fmt"}


def _cli_default(opts: TrainOptions, name: str):
    """What ``srmac train`` takes for ``name`` when the flag is not given."""
    if name == "lr":
        return DEFAULT_LR.get(opts.optimizer)
    if name == "image_size" and opts.dataset == "imagenet":
        from .models import image_size

        return image_size(opts.model)
    return getattr(TrainOptions, name)


def _recipe_flags(opts: TrainOptions) -> list[str] | None:
    """``--recipe fp8 --acc A --rounding R [--rbits N]`` when the GEMM fields are that recipe."""
    import ref

    if opts.is_float:
        return None
    fwd = ref.parse_mac(opts.mac)
    rounding = fwd.rounding.value + (f":{fwd.rbits}" if fwd.rounding.is_sr else "")
    try:
        want = recipe_fields("fp8", fwd.acc_fmt.spec(), rounding, opts.quant_grad)
    except ValueError:
        return None
    if any(getattr(opts, k) != v for k, v in want.items()):
        return None
    flags = ["--recipe fp8", f"--acc {fwd.acc_fmt.spec()}", f"--rounding {fwd.rounding.value}"]
    if fwd.rounding.is_sr:
        flags.append(f"--rbits {fwd.rbits}")
    if opts.quant_grad != recipe_fields("fp8", "fp16", "rn")["quant_grad"]:
        flags.append(f"--quant-grad {opts.quant_grad}")
    return flags


def command(opts: TrainOptions) -> str:
    """The ``srmac train`` command line that reproduces ``opts`` (defaults left out).

    Every option that decides the result and differs from what the command
    takes by default is shown (:func:`sim.cli.train_options` reads it back into
    the same options), the GEMM options first (as ``--recipe fp8 ...`` when
    they are that recipe), the seed last.
    """
    parts = ["srmac train"]
    recipe = _recipe_flags(opts)
    names = [f.name for f in fields(TrainOptions)]
    for name in [*_FIRST, *(n for n in names if n not in _FIRST)]:
        if name in _NOT_SHOWN:
            continue
        if recipe is not None and name in ("mac", *_GEMM_FIELDS[:-1]):
            if name == "mac":
                parts += recipe
            continue
        v = getattr(opts, name)
        if v is None or v == _cli_default(opts, name):
            continue
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        parts.append(flag if v is True else f"{flag} {v}")
    if opts.seed != TrainOptions.seed:
        parts.append(f"--seed {opts.seed}")
    return " ".join(parts)


def run_grid(runs: list, root, train, *, progress: bool = True,
             what: str = "srmac train-table", say=print) -> list[dict]:
    """Train every run of ``runs`` (options with an ``out`` each) not already finished.

    ``train(options)`` trains one run (e.g. :func:`sim.train.run`). Holds the
    lock of ``root`` throughout. Returns the summaries in the order of ``runs``;
    raises ValueError (one line) when a run left no finished folder.
    """
    with FolderLock(root, what):
        todo = []
        for o in runs:
            done, why = finished_like(o)
            if done is None:
                if why:
                    say(f"{what}: {why}: training that run again")
                todo.append(o)
        say(f"{what}: {len(runs) - len(todo)} of {len(runs)} runs already done, "
            f"{len(todo)} to train")
        bar = progress_bar(progress and bool(todo), len(todo), "runs")
        for o in todo:
            if bar is not None:
                bar.set_postfix_str(str(Path(o.out).relative_to(root)) if
                                    Path(o.out).is_relative_to(root) else str(o.out))
            train(o)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        summaries = []
        for o in runs:
            s, why = finished_like(o)
            if s is None:
                raise ValueError(f"run {o.out} did not finish ({why or 'no summary.json'})")
            summaries.append(s)
    return summaries


def run_table(spec: TableSpec, *, progress: bool = True, train=None, say=print) -> list[dict]:
    """Run every missing run of the grid; returns one summary per run (grid order).

    ``train`` (default :func:`sim.train.run`) is the function that trains one
    run from its options and returns its summary; tests pass a stand-in.
    """
    if train is None:
        from .train import run as train
    return run_grid(spec.runs(), spec.root, train, progress=progress, say=say)


def aggregate(summaries: list[dict]) -> list[dict]:
    """One row per (model, mac): accuracy mean/std over seeds, time and MACs per epoch."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for s in summaries:
        o = s["options"]
        groups.setdefault((o["model"], o["mac"]), []).append(s)
    rows = []
    for (model, mac), runs in groups.items():
        acc = [r["final"]["test_acc"] for r in runs]
        epochs = [e for r in runs for e in r["epochs"]]
        opts = TrainOptions(**{**runs[0]["options"], "seed": 0})
        rows.append(dict(
            model=model, mac=mac, bwd_macs=_bwd_macs(opts), seeds=len(runs),
            epochs=opts.epochs,
            test_acc_mean=statistics.fmean(acc),
            test_acc_std=statistics.stdev(acc) if len(acc) > 1 else 0.0,
            test_acc_min=min(acc), test_acc_max=max(acc),
            train_loss_mean=statistics.fmean(r["final"]["train_loss"] for r in runs),
            time_per_epoch_s=statistics.fmean(e["time_s"] for e in epochs),
            emulated_macs_per_epoch=int(statistics.fmean(e["emulated_macs"] for e in epochs)),
            command=command(opts).replace("--seed 0", "").strip() + " --seed S",
        ))
    return rows


def _bwd_macs(opts: TrainOptions) -> str:
    """The backward MACs when they are not the forward one ("" otherwise, or for float)."""
    if opts.is_float:
        return ""
    cfg = opts.layer_config()
    if cfg.bwd_input == cfg.fwd and cfg.bwd_weight == cfg.fwd:
        return ""
    if cfg.bwd_input == cfg.bwd_weight:
        return cfg.bwd_input.spec()
    return f"{cfg.bwd_input.spec()} (dx), {cfg.bwd_weight.spec()} (dW)"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def markdown(rows: list[dict]) -> str:
    """The table (a "backward MACs" column when a row has its own) and each row's command."""
    bwd = any(r.get("bwd_macs") for r in rows)
    head = ("| model | MAC | " + ("backward MACs | " if bwd else "")
            + "seeds | test acc. % (mean ± std) | min-max % | final train loss "
            "| s / epoch | emulated MACs / epoch |\n|---|---|" + ("---|" if bwd else "")
            + "---|---|---|---|---|---|\n")

    def bwd_cell(r):
        if not bwd:
            return ""
        return (f"`{r['bwd_macs']}` | " if r.get("bwd_macs")
                else ("- | " if r["mac"] == "fp32" else "same | "))

    body = "".join(
        f"| {r['model']} | `{r['mac']}` | {bwd_cell(r)}{r['seeds']} | {_pct(r['test_acc_mean'])} ± "
        f"{_pct(r['test_acc_std'])} | {_pct(r['test_acc_min'])}-{_pct(r['test_acc_max'])} | "
        f"{r['train_loss_mean']:.4f} | {r['time_per_epoch_s']:.1f} | "
        f"{r['emulated_macs_per_epoch']:.3g} |\n" for r in rows)
    cmds = "".join(f"- {r['model']}, `{r['mac']}`: `{r['command']}`\n" for r in rows)
    return head + body + "\nCommands (S = seed):\n\n" + cmds


def _short_labels(macs: list[str]) -> tuple[list[str], str]:
    """The MAC specs without the ``in:acc:`` part all emulated ones share, and that part."""
    emulated = [m.split(":") for m in macs if not is_float_mac(m)]
    n = 0
    while emulated and all(len(t) > n + 1 and t[n] == emulated[0][n] for t in emulated):
        n += 1
    n = min(n, 2)
    labels = [m if is_float_mac(m) else ":".join(m.split(":")[n:]) for m in macs]
    return labels, ":".join(emulated[0][:n]) if emulated and n else ""


def plot(rows: list[dict]) -> bytes:
    from ref.plotting import subplots

    models = sorted({r["model"] for r in rows})
    fig, axes = subplots(1, len(models), figsize=(5.5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        mine = [r for r in rows if r["model"] == model]
        x = list(range(len(mine)))
        ax.errorbar(x, [100 * r["test_acc_mean"] for r in mine],
                    yerr=[100 * r["test_acc_std"] for r in mine], fmt="o", capsize=3)
        ax.set_xticks(x)
        labels, shared = _short_labels([r["mac"] for r in mine])
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{model}: {shared or 'forward'} MACs (mean ± std over seeds)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return figure_bytes(fig)


def write_table(rows: list[dict], root: Path) -> list[Path]:
    """Write table.csv, table.md and table.png under ``root``; returns their paths."""
    root = Path(root)
    paths = [root / "table.csv", root / "table.md", root / "table.png"]
    write_text(paths[0], csv_text(rows))
    write_text(paths[1], markdown(rows))
    write_bytes(paths[2], plot(rows))
    return paths
