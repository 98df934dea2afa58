"""``srmac train``: one run of a model whose GEMMs all run on the emulated MAC.

Build a float model from the registry (:mod:`sim.models`), convert it to
emulated layers (unless the MAC is the plain-float baseline ``fp32``), train it
with :class:`sim.optim.LowPrecisionSGD` in the shared loop (:mod:`sim.loop`:
data order, loss scaling, DDP, evaluation), and write into ``out``
(:mod:`sim.results`: atomically, ``summary.json`` last):

* ``log.csv``: one row per epoch (loss, accuracy, time, emulated MACs, MAC/s,
  loss scale, skipped steps);
* ``curves.png``: loss and accuracy per epoch;
* ``model.pt``: the final parameters (``state_dict``; float layers for ``fp32``);
* ``summary.json``: options, layer configuration, final metrics, MAC/s, a
  digest of the parameters of every rank (they must agree under DDP), and the
  size and digest of every other file.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) ``batch_size`` is the
global batch, split evenly over the ranks. Only rank 0 prints and writes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import ref
from ref.outputs import csv_text

from .convert import quantize_model
from .devices import resolve_device
from .loop import (
    LoopOptions,
    TrainingLoop,
    cosine_schedule,
    is_float_mac,
    leave_after_distributed_run,
    make_optimizer,
    open_data,
    param_digest,
    run_with_dist,
)
from .models import build_model
from .optim import check_opt_format
from .quant import fp8_config, make_layer_config, parse_quantizer
from .results import RunFolder, figure_bytes, result_key, torch_bytes

__all__ = ["TrainOptions", "run", "default_out", "slug", "leave_after_distributed_run", "RECIPES",
           "DEFAULT_LR", "recipe_fields", "parse_betas", "parse_quant_out"]


#: The recipes of ``--recipe``: name -> the :mod:`sim.quant` function that builds the layer
#: configuration from an accumulator format and a rounding.
RECIPES = ("fp8",)

#: Learning rate of ``--optimizer`` when ``--lr`` is not given.
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}


def parse_betas(text: str) -> tuple[float, float]:
    """``"0.9,0.999"`` -> ``(0.9, 0.999)``, each in [0, 1) (one-line ValueError)."""
    try:
        b1, b2 = (float(t) for t in str(text).split(","))
    except ValueError:
        raise ValueError(f"--betas must be two numbers B1,B2 like 0.9,0.999, got {text!r}") from None
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"--betas must be in [0, 1), got {text!r}")
    return b1, b2


def parse_quant_out(text: str) -> tuple[str | None, str | None]:
    """``--quant-out FWD[,BWD]`` -> the ``(forward, backward)`` pair of :func:`sim.quantize_model`'s
    ``outputs``: each ``<format>:<rounding>`` (``e4m3:rn``, ``e5m2:sr:8``) or ``none``."""
    parts = [t.strip() for t in str(text).split(",")]
    if len(parts) not in (1, 2) or not all(parts):
        raise ValueError(f"--quant-out must be FWD or FWD,BWD (e.g. e4m3:rn,e5m2:rn), got {text!r}")
    out = []
    for what, t in zip(("forward", "backward"), parts, strict=False):
        if t.lower() == "none":
            out.append(None)
            continue
        try:
            q = parse_quantizer(t)
        except ValueError as exc:
            raise ValueError(f"--quant-out {what}: {exc}") from None
        if q.fmt is None:
            raise ValueError(f"--quant-out {what} {t!r} names no format: write e.g. "
                             f"'e4m3:{q.spec()}'")
        out.append(q.spec())
    out += [None] * (2 - len(out))
    if out == [None, None]:
        raise ValueError(f"--quant-out {text!r} rounds nothing: drop it")
    return out[0], out[1]


def recipe_fields(recipe: str, acc: str, rounding: str, grad: str | None = None) -> dict:
    """The :class:`TrainOptions` GEMM fields of ``recipe`` (``fp8``: :func:`sim.fp8_config`).

    ``acc``: the accumulator format, ``rounding``: ``rn``, ``rz`` or e.g.
    ``sr_eager:4``; ``grad``: the gradient storage rounding (default the
    recipe's, ``e5m2:rn``). Returns ``mac``, ``mac_bwd_input``,
    ``mac_bwd_weight``, ``quant_weight``, ``quant_act``, ``quant_grad``.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    kw = {} if grad is None else {"grad": grad}
    cfg = fp8_config(acc, rounding, **kw)
    return dict(mac=cfg.fwd.spec(), mac_bwd_input=cfg.bwd_input.spec(),
                mac_bwd_weight=cfg.bwd_weight.spec(), quant_weight=cfg.weight.spec(),
                quant_act=cfg.act.spec(), quant_grad=cfg.grad.spec())


@dataclass
class TrainOptions(LoopOptions):
    """Options of one ``srmac train`` run (see ``srmac train --help`` for each).

    ``opt_momentum_fmt`` is the format of the whole optimizer state (SGD's
    momentum buffer, Adam's moments: ``--opt-state-fmt``); ``betas`` is
    ``"B1,B2"`` or None (torch's 0.9, 0.999); ``quant_out`` is ``"FWD[,BWD]"``
    (:func:`parse_quant_out`). New fields default to the behaviour before they
    existed, so finished runs keep matching (:mod:`sim.results`).
    """

    mac: str = "fp32"
    mac_bwd_input: str | None = None
    mac_bwd_weight: str | None = None
    quant_weight: str = "rn"
    quant_act: str = "rn"
    quant_grad: str = "rn"
    quant_out: str | None = None
    optimizer: str = "sgd"
    betas: str | None = None
    opt_fmt: str = "fp32"
    opt_momentum_fmt: str | None = None
    opt_rounding: str = "rn"
    opt_rbits: int | None = None
    opt_kahan: bool = False
    opt_master: bool = False

    def validate(self) -> None:
        super().validate()
        for q in (self.quant_weight, self.quant_act, self.quant_grad):
            parse_quantizer(q)
        if self.is_float:
            self._refuse_with_float()
        else:
            self.layer_config()
        if self.quant_out is not None:
            parse_quant_out(self.quant_out)
        self._validate_optimizer()

    def _refuse_with_float(self) -> None:
        """Options that act on emulated GEMMs are an error with float layers (not dropped)."""
        given = [(f"--{n.replace('_', '-')}", getattr(self, n))
                 for n in ("mac_bwd_input", "mac_bwd_weight", "quant_out")
                 if getattr(self, n) is not None]
        given += [(f"--{n.replace('_', '-')}", getattr(self, n))
                  for n in ("quant_weight", "quant_act", "quant_grad") if getattr(self, n) != "rn"]
        if given:
            flag, value = given[0]
            raise ValueError(f"{flag} {value} acts on emulated GEMMs, but --mac {self.mac} means "
                             "float layers: drop it, or emulate (e.g. --mac fp32:fp32:rn for "
                             "float32 GEMMs on the MAC)")

    def _validate_optimizer(self) -> None:
        if self.optimizer not in DEFAULT_LR:
            raise ValueError(f"--optimizer must be one of {', '.join(DEFAULT_LR)}, got "
                             f"{self.optimizer!r}")
        if self.optimizer != "sgd" and self.momentum != LoopOptions.momentum:
            raise ValueError(f"momentum {self.momentum} is SGD's; --optimizer {self.optimizer} "
                             "has --betas")
        if self.betas is not None:
            if self.optimizer == "sgd":
                raise ValueError("--betas are Adam's moment decays; SGD has --momentum: drop "
                                 "--betas or use --optimizer adam/adamw")
            parse_betas(self.betas)
        if (self.optimizer == "sgd" and self.momentum == 0 and self.opt_momentum_fmt is not None):
            raise ValueError(f"--opt-state-fmt {self.opt_momentum_fmt}: SGD without momentum has "
                             "no state to store: drop it or give --momentum")
        if self.opt_rounding not in ("rn", "rz", "sr"):
            raise ValueError(f"--opt-rounding must be rn, rz or sr, got {self.opt_rounding!r}")
        if self.opt_rounding == "sr":
            if self.opt_rbits is None:
                raise ValueError(f"--opt-rounding sr needs its random bits: add --opt-rbits R "
                                 f"(1..{ref.MAX_RBITS}, e.g. 8)")
            if not 1 <= self.opt_rbits <= ref.MAX_RBITS:
                raise ValueError(f"--opt-rbits must be in 1..{ref.MAX_RBITS}, got {self.opt_rbits}")
        elif self.opt_rbits is not None:
            raise ValueError(f"--opt-rbits {self.opt_rbits} does nothing with --opt-rounding "
                             f"{self.opt_rounding}: drop it or use --opt-rounding sr")
        if self.opt_kahan and self.opt_master:
            raise ValueError("--opt-kahan compensates the rounding of low-precision weights and "
                             "--opt-master keeps an fp32 copy of them: choose one")
        if self.opt_master and ref.parse_format(self.opt_fmt) == ref.FP32:
            raise ValueError("--opt-master does nothing with --opt-fmt fp32 (the weights are the "
                             "fp32 master): give a narrower --opt-fmt, e.g. bf16")
        for fmt in (self.opt_fmt, self.opt_momentum_fmt):
            if fmt is not None:
                check_opt_format(fmt)

    @property
    def is_float(self) -> bool:
        return is_float_mac(self.mac)

    def layer_config(self):
        return make_layer_config(self.mac, bwd_input=self.mac_bwd_input,
                                 bwd_weight=self.mac_bwd_weight, weight=self.quant_weight,
                                 act=self.quant_act, grad=self.quant_grad)

    def outputs(self):
        """The ``outputs`` argument of :func:`sim.quantize_model` (None: no output quantizers)."""
        return None if self.quant_out is None else parse_quant_out(self.quant_out)

    def optimizer_args(self) -> dict:
        """Keyword arguments of :func:`sim.loop.make_optimizer` beyond the loop's."""
        args = dict(name=self.optimizer, fmt=self.opt_fmt, state_fmt=self.opt_momentum_fmt,
                    rounding=self.opt_rounding, rbits=self.opt_rbits, kahan=self.opt_kahan,
                    master=self.opt_master)
        if self.betas is not None:
            args["betas"] = parse_betas(self.betas)
        return args


def slug(text: str) -> str:
    """``text`` with every run of non-alphanumerics as one ``-`` (folder names)."""
    return "".join(c if c.isalnum() else "-" for c in str(text).lower()).strip("-")


def default_out(opts: TrainOptions) -> Path:
    return Path("build/train") / f"{opts.model}-{slug(opts.mac)}-s{opts.seed}"


def run(opts: TrainOptions) -> dict:
    """Train as ``opts`` says; returns the summary (also written by rank 0)."""
    opts.validate()
    kind = resolve_device(opts.device, emulated=not opts.is_float)
    return run_with_dist(kind, _run, opts, kind)


def _plot(rows: list[dict], title: str) -> bytes:
    from ref.plotting import subplots

    ep = [r["epoch"] for r in rows]
    fig, (a1, a2) = subplots(1, 2, figsize=(9, 3.5))
    a1.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    a1.plot(ep, [r["test_loss"] for r in rows], "s--", label="test")
    a1.set_xlabel("epoch")
    a1.set_ylabel("cross-entropy loss")
    a1.legend()
    a2.plot(ep, [100 * r["train_acc"] for r in rows], "o-", label="train")
    a2.plot(ep, [100 * r["test_acc"] for r in rows], "s--", label="test")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return figure_bytes(fig)


def _run(dist, opts: TrainOptions, kind: str) -> dict:
    device = dist.device(kind)
    if opts.batch_size % dist.world:
        raise ValueError(
            f"--batch-size {opts.batch_size} must be a multiple of the world size {dist.world}")
    layer_cfg = None if opts.is_float else opts.layer_config()
    out = Path(opts.out) if opts.out else default_out(opts)
    if not dist.lead:
        return _train(dist, opts, device, layer_cfg, out, None)
    with RunFolder(out, "srmac train") as folder:
        return _train(dist, opts, device, layer_cfg, out, folder)


def _train(dist, opts: TrainOptions, device, layer_cfg, out: Path, folder) -> dict:
    report = None
    data = open_data(opts, dist.rank, dist.world, pin_memory=device.type == "cuda")
    torch.manual_seed(opts.seed)
    model = build_model(opts.model, **opts.model_args(), classes=data.classes, in_ch=data.in_ch)
    if layer_cfg is not None:
        model = quantize_model(model, layer_cfg, seed=opts.seed, inplace=True,
                               outputs=opts.outputs())
        report = model.srmac_report
        if dist.lead and report.leftovers:
            print("srmac train: stays float32: " + "; ".join(
                f"{r.layer or '(model)'} ({r.type}): {r.detail}" for r in report.leftovers),
                flush=True)
    model.to(device)
    opt = make_optimizer(model, opts, **opts.optimizer_args())
    initial_digest = param_digest(model)
    sched = cosine_schedule(opt, opts, opts.epochs * data.steps_per_epoch)
    loop = TrainingLoop(model, data, opt, dist=dist, device=device, epochs=opts.epochs,
                        sched=sched, progress=opts.progress)
    title = f"{opts.model}, {'float32' if layer_cfg is None else layer_cfg.fwd.spec()}"
    if dist.lead:
        print(f"srmac train: {title}, {data.n_train} train / {data.n_test} test samples, "
              f"batch {opts.batch_size}, {dist.world} process(es), device {device}, out {out}",
              flush=True)
    t_run = time.perf_counter()
    rows = loop.run()
    total_time = time.perf_counter() - t_run
    digests = dist.gather(param_digest(model))
    summary = dict(
        options=asdict(opts), result_key=result_key(opts), out=str(out), world_size=dist.world,
        device=str(device),
        layer_config=None if layer_cfg is None else layer_cfg.to_dict(),
        conversion=None if report is None else report.summary(),
        float_baseline=layer_cfg is None, torch_version=torch.__version__,
        srmac_ref=getattr(ref, "__version__", None), epochs=rows, final=rows[-1],
        time_s=total_time, emulated_macs=sum(r["emulated_macs"] for r in rows),
        initial_param_digest=initial_digest, param_digests=digests,
        params_in_sync=len(set(digests)) == 1,
    )
    summary["mac_per_s"] = summary["emulated_macs"] / total_time if total_time > 0 else 0.0
    if folder is not None:
        summary = folder.finish({"log.csv": csv_text(rows), "curves.png": _plot(rows, title),
                                 "model.pt": torch_bytes(model.state_dict())}, summary)
        print(f"srmac train: wrote {out / 'log.csv'}, {out / 'curves.png'}, {out / 'model.pt'}, "
              f"{out / 'summary.json'}", flush=True)
    return summary
