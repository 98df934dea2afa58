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
from .quant import make_layer_config, parse_quantizer
from .results import RunFolder, figure_bytes, result_key, torch_bytes

__all__ = ["TrainOptions", "run", "default_out", "slug", "leave_after_distributed_run"]


@dataclass
class TrainOptions(LoopOptions):
    mac: str = "fp32"
    mac_bwd_input: str | None = None
    mac_bwd_weight: str | None = None
    quant_weight: str = "rn"
    quant_act: str = "rn"
    quant_grad: str = "rn"
    opt_fmt: str = "fp32"
    opt_momentum_fmt: str | None = None
    opt_rounding: str = "rn"
    opt_rbits: int | None = None

    def validate(self) -> None:
        super().validate()
        for q in (self.quant_weight, self.quant_act, self.quant_grad):
            parse_quantizer(q)
        if not self.is_float:
            self.layer_config()

    @property
    def is_float(self) -> bool:
        return is_float_mac(self.mac)

    def layer_config(self):
        return make_layer_config(self.mac, bwd_input=self.mac_bwd_input,
                                 bwd_weight=self.mac_bwd_weight, weight=self.quant_weight,
                                 act=self.quant_act, grad=self.quant_grad)


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
    data = open_data(opts, dist.rank, dist.world, pin_memory=device.type == "cuda")
    torch.manual_seed(opts.seed)
    model = build_model(opts.model, **opts.model_args(), classes=data.classes, in_ch=data.in_ch)
    if layer_cfg is not None:
        model = quantize_model(model, layer_cfg, seed=opts.seed, inplace=True)
    model.to(device)
    opt = make_optimizer(model, opts, fmt=opts.opt_fmt, momentum_fmt=opts.opt_momentum_fmt,
                         rounding=opts.opt_rounding, rbits=opts.opt_rbits)
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
