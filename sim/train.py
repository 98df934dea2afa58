"""The training loop behind ``srmac train`` (single process or ``torchrun`` + DDP).

One run: build a float model, convert it to emulated layers (unless the MAC is
the plain-float baseline ``fp32``), train it with :class:`LowPrecisionSGD` on
Fashion-MNIST, and write into ``out``:

* ``log.csv``: one row per epoch (loss, accuracy, time, emulated MACs, MAC/s);
* ``curves.png``: loss and accuracy per epoch;
* ``model.pt``: the final parameters (``state_dict``; float layers for ``fp32``);
* ``summary.json``: options, layer configuration, final metrics, MAC/s, and a
  digest of the parameters of every rank (they must agree under DDP).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group uses
gloo on CPU and nccl on CUDA; ``batch_size`` is the global batch, split evenly
over the ranks; each epoch's shuffle is the same permutation on every rank,
which takes every ``world``-th sample. Only rank 0 prints and writes files.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import ref

from .convert import quantize_model, reset_macs, total_macs
from .data import load_tensors
from .devices import resolve_device
from .models import build_model
from .optim import LowPrecisionSGD
from .quant import make_layer_config, parse_quantizer
from .seeds import derive_seed

__all__ = ["TrainOptions", "run", "FLOAT_BASELINE", "Dist", "run_with_dist", "leave_after_distributed_run"]

#: ``--mac`` values meaning "plain float layers" (no emulation).
FLOAT_BASELINE = ("fp32", "float")


@dataclass
class TrainOptions:
    model: str = "mlp"
    mac: str = "fp32"
    mac_bwd_input: str | None = None
    mac_bwd_weight: str | None = None
    quant_weight: str = "rn"
    quant_act: str = "rn"
    quant_grad: str = "rn"
    epochs: int = 1
    seed: int = 0
    batch_size: int = 128
    lr: float = 0.05
    lr_schedule: str = "const"
    momentum: float = 0.9
    weight_decay: float = 0.0
    opt_fmt: str = "fp32"
    opt_momentum_fmt: str | None = None
    opt_rounding: str = "rn"
    opt_rbits: int | None = None
    loss_scale: str = "dynamic"
    limit_train: int | None = None
    limit_test: int | None = None
    hidden: int = 256
    channels: int = 8
    data_dir: str | None = None
    out: str | None = None
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "hidden", "channels"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be >= 1, got {getattr(self, name)}")
        for name in ("limit_train", "limit_test"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        if self.lr_schedule not in ("const", "cosine"):
            raise ValueError(f"--lr-schedule must be const or cosine, got {self.lr_schedule!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def is_float(self) -> bool:
        return self.mac.strip().lower() in FLOAT_BASELINE

    def layer_config(self):
        return make_layer_config(self.mac, bwd_input=self.mac_bwd_input,
                                 bwd_weight=self.mac_bwd_weight, weight=self.quant_weight,
                                 act=self.quant_act, grad=self.quant_grad)


def _loss_scale(text: str) -> tuple[float, bool]:
    t = str(text).strip().lower()
    if t == "dynamic":
        return 2.0**10, True
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"--loss-scale must be a number or 'dynamic', got {text!r}") from None
    if not v > 0:
        raise ValueError(f"--loss-scale must be > 0, got {text!r}")
    return v, False


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def default_out(opts: TrainOptions) -> Path:
    return Path("build/train") / f"{opts.model}-{_slug(opts.mac)}-s{opts.seed}"


class Dist:
    """Rank, world size and reductions; a no-op stand-in outside torchrun."""

    def __init__(self, device_kind: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.active = self.world > 1
        self.owned = False
        if self.active and not torch.distributed.is_initialized():
            backend = "nccl" if device_kind == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
            self.owned = True

    def sum(self, values: list[float], device) -> list[float]:
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        if not self.active:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def close(self, *, meet: bool = True):
        if self.owned:
            # Tearing gloo down while a peer is still busy (rank 0 writing the
            # summary and plot) aborted a rank ("terminate called without an
            # active exception") in about one run in ten: meet first, except
            # on an error path, where the peer may never arrive.
            if meet:
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def param_digest(model) -> str:
    """SHA-256 (16 hex digits) of all parameters' bytes, in state-dict order."""
    h = hashlib.sha256()
    for _, p in sorted(model.state_dict().items()):
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(derive_seed(seed, epoch, 0xDA7A))
    return torch.randperm(n, generator=gen)


def _plot(rows: list[dict], path: Path, title: str) -> None:
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
    fig.savefig(path, dpi=100)


def _run_split(model, x, y, idx, batch, opt, train: bool, bar, device, sched=None):
    """Loss sum, correct count and sample count over ``idx`` in batches."""
    loss_sum = correct = count = 0.0
    model.train(train)
    for s in range(0, len(idx), batch):
        b = idx[s: s + batch]
        xb, yb = x[b].to(device), y[b].to(device)
        with torch.set_grad_enabled(train):
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if train:
                opt.zero_grad(set_to_none=True)
                opt.scale_loss(loss).backward()
                opt.step()
                if sched is not None:
                    sched.step()
        loss_sum += float(loss.detach()) * len(b)
        correct += float((logits.detach().argmax(1) == yb).sum())
        count += len(b)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / count:.4f}", acc=f"{correct / count:.3f}")
    return loss_sum, correct, count


def run(opts: TrainOptions) -> dict:
    """Train as ``opts`` says; returns the summary (also written by rank 0)."""
    opts.validate()
    kind = resolve_device(opts.device, emulated=not opts.is_float)
    return run_with_dist(kind, lambda dist: _run(opts, dist, kind))


def run_with_dist(kind: str, body):
    """``body(dist)`` inside a process group when under torchrun; closes it cleanly."""
    dist = Dist(kind)
    try:
        summary = body(dist)
    except BaseException:
        dist.close(meet=False)
        raise
    # DDP's reducer sits in reference cycles that hold the process group: free
    # it now, while the interpreter is whole, not during its finalisation.
    gc.collect()
    dist.close()
    return summary


def leave_after_distributed_run(world_size: int) -> None:
    """End a finished torchrun worker at once (no interpreter shutdown); no-op alone.

    Under torchrun, gloo's threads occasionally aborted a rank during
    interpreter shutdown ("terminate called without an active exception")
    after a complete run (seen on CI, about one run in fifteen here); every
    file is written by then, so the worker leaves without that shutdown.
    """
    if world_size > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _run(opts: TrainOptions, dist: Dist, kind: str) -> dict:
    device = torch.device(f"cuda:{dist.local_rank}" if kind == "cuda" else "cpu")
    if kind == "cuda":
        torch.cuda.set_device(device)
    lead = dist.rank == 0
    if opts.batch_size % dist.world:
        raise ValueError(
            f"--batch-size {opts.batch_size} must be a multiple of the world size {dist.world}")
    local_batch = opts.batch_size // dist.world
    scale, dynamic = _loss_scale(opts.loss_scale)
    layer_cfg = None if opts.is_float else opts.layer_config()
    for q in (opts.quant_weight, opts.quant_act, opts.quant_grad):
        parse_quantizer(q)

    xtr, ytr, xte, yte = load_tensors(opts.data_dir, opts.limit_train, opts.limit_test)

    torch.manual_seed(opts.seed)
    model = build_model(opts.model, hidden=opts.hidden, channels=opts.channels)
    if layer_cfg is not None:
        model = quantize_model(model, layer_cfg, seed=opts.seed, inplace=True)
    model.to(device)
    net = model
    if dist.active:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if kind == "cuda" else None)
    opt = LowPrecisionSGD(net.parameters(), opts.lr, opts.momentum, opts.weight_decay,
                          fmt=opts.opt_fmt, momentum_fmt=opts.opt_momentum_fmt,
                          rounding=opts.opt_rounding, rbits=opts.opt_rbits, seed=opts.seed,
                          loss_scale=scale, dynamic_loss_scale=dynamic)
    initial_digest = param_digest(model)

    out = Path(opts.out) if opts.out else default_out(opts)
    if lead:
        out.mkdir(parents=True, exist_ok=True)
    n_train = len(ytr) // dist.world
    if n_train < 1:
        raise ValueError(f"{len(ytr)} training samples cannot be split over {dist.world} ranks")
    test_idx = torch.arange(len(yte))[dist.rank:: dist.world]
    train_steps = -(-n_train // local_batch)
    steps = train_steps + -(-len(test_idx) // local_batch)
    # Cosine decay to 0 over every training step (the final accuracy is then
    # far less noisy than at a constant rate).
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, opts.epochs * train_steps)
             if opts.lr_schedule == "cosine" else None)
    title = f"{opts.model}, {'float32' if layer_cfg is None else layer_cfg.fwd.spec()}"
    if lead:
        print(f"srmac train: {title}, {len(ytr)} train / {len(yte)} test samples, "
              f"batch {opts.batch_size}, {dist.world} process(es), device {device}, out {out}")
    rows = []
    t_run = time.perf_counter()
    for epoch in range(1, opts.epochs + 1):
        reset_macs(model)
        order = _epoch_order(len(ytr), opts.seed, epoch)[dist.rank:: dist.world][:n_train]
        bar = None
        if lead and opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc=f"epoch {epoch}/{opts.epochs}", leave=False,
                       dynamic_ncols=True)
        t0 = time.perf_counter()
        tr = _run_split(net, xtr, ytr, order, local_batch, opt, True, bar, device, sched)
        te = _run_split(net, xte, yte, test_idx, local_batch, opt, False, bar, device)
        if bar is not None:
            bar.close()
        dt = time.perf_counter() - t0
        tl, tc, tn, vl, vc, vn, macs = dist.sum([*tr, *te, float(total_macs(model))], device)
        row = dict(epoch=epoch, train_loss=tl / tn, train_acc=tc / tn, test_loss=vl / vn,
                   test_acc=vc / vn, time_s=dt, emulated_macs=int(macs),
                   mac_per_s=macs / dt if dt > 0 else 0.0, loss_scale=opt.loss_scale,
                   skipped_steps=opt.skipped)
        rows.append(row)
        if lead:
            print(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
                  f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} | {dt:.1f} s, "
                  f"{row['emulated_macs']:.3g} MACs, {row['mac_per_s'] / 1e6:.3g} M MAC/s")
    total_time = time.perf_counter() - t_run
    digests = dist.gather(param_digest(model))
    summary = dict(
        options=asdict(opts), out=str(out), world_size=dist.world, device=str(device),
        layer_config=None if layer_cfg is None else layer_cfg.to_dict(),
        float_baseline=layer_cfg is None, torch_version=torch.__version__,
        srmac_ref=getattr(ref, "__version__", None), epochs=rows, final=rows[-1],
        time_s=total_time, emulated_macs=sum(r["emulated_macs"] for r in rows),
        initial_param_digest=initial_digest, param_digests=digests,
        params_in_sync=len(set(digests)) == 1,
    )
    summary["mac_per_s"] = summary["emulated_macs"] / total_time if total_time > 0 else 0.0
    if lead:
        with open(out / "log.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        _plot(rows, out / "curves.png", title)
        torch.save(model.state_dict(), out / "model.pt")
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"srmac train: wrote {out / 'log.csv'}, {out / 'curves.png'}, {out / 'model.pt'}, "
              f"{out / 'summary.json'}")
    return summary
