"""The training loop shared by ``srmac train`` and ``srmac adaqat``.

One place for what both verbs do the same way:

* :class:`LoopOptions`: the options both take (model, data, epochs, SGD,
  loss scaling, device, output) and their validation;
* :func:`open_data`: the data source of ``--dataset`` (:mod:`sim.data`,
  :mod:`sim.imagenet`): every epoch a fresh permutation of the training set,
  the same on all ranks, of which rank ``r`` takes every ``world``-th sample;
* :class:`Dist` / :func:`run_with_dist`: ``torchrun`` process groups (gloo on
  CPU, nccl on CUDA), :func:`wrap` for DistributedDataParallel;
* :func:`make_optimizer`: :func:`sim.optim.build_optimizer` (SGD, Adam, AdamW wrapped in
  :class:`sim.optim.LowPrecisionOptimizer`) with loss scaling
  (``--loss-scale dynamic`` by default: the loss is multiplied by a power of
  two before ``backward``, so that the small gradients of the emulated GEMMs do
  not underflow in an 8-bit format; a step with inf/NaN gradients is skipped
  and the scale halves);
* :class:`TrainingLoop`: epochs of training steps, then an evaluation on the
  test split; one row per epoch (loss, accuracy, time, emulated MACs, loss
  scale, skipped steps); a progress bar on a terminal only. Subclasses add
  per-step work (:meth:`TrainingLoop.after_step`, AdaQAT's bit-width update)
  and per-epoch columns.

Only rank 0 prints (``say``) and writes files.
"""

from __future__ import annotations

import gc
import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .convert import reset_macs, total_macs
from .data import DATASETS, TensorData
from .devices import DEVICES
from .imagenet import FolderData
from .models import MODELS
from .optim import LowPrecisionOptimizer, build_optimizer

__all__ = ["LoopOptions", "FLOAT_BASELINE", "is_float_mac", "parse_loss_scale", "open_data",
           "Dist", "run_with_dist", "leave_after_distributed_run", "param_digest", "wrap",
           "make_optimizer", "cosine_schedule", "progress_bar", "TrainingLoop", "evaluate"]

#: ``--mac`` values meaning "plain float layers" (no emulation).
FLOAT_BASELINE = ("fp32", "float")


def is_float_mac(spec: str | None) -> bool:
    """True for no MAC, ``fp32`` or ``float``: float layers, no emulation."""
    return spec is None or str(spec).strip().lower() in FLOAT_BASELINE


def parse_loss_scale(text: str) -> tuple[float, bool]:
    """``"dynamic"`` -> ``(1024.0, True)``; a number ``v > 0`` -> ``(v, False)``."""
    t = str(text).strip().lower()
    if t == "dynamic":
        return 2.0**10, True
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"--loss-scale must be a number or 'dynamic', got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"--loss-scale must be a positive finite number, got {text!r}")
    return v, False


@dataclass
class LoopOptions:
    """Options of every training verb (each verb's dataclass adds its own)."""

    model: str = "mlp"
    dataset: str = "fashion-mnist"
    epochs: int = 1
    seed: int = 0
    batch_size: int = 128
    lr: float = 0.05
    lr_schedule: str = "const"
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss_scale: str = "dynamic"
    limit_train: int | None = None
    limit_test: int | None = None
    hidden: int = 256
    depth: int = 1
    channels: int = 8
    width: float = 1.0
    image_size: int = 224
    workers: int = 4
    data_dir: str | None = None
    out: str | None = None
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        """Raise ValueError (one line naming the option) on a bad value."""
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}: choose one of "
                             f"{', '.join(DATASETS)}")
        want = MODELS[self.model].datasets
        if self.dataset not in want:
            others = [n for n, s in MODELS.items() if self.dataset in s.datasets]
            raise ValueError(f"model {self.model} is for --dataset {' or '.join(want)}; use "
                             f"{', '.join(others)} for {self.dataset}")
        for name in ("epochs", "batch_size", "hidden", "depth", "channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("limit_train", "limit_test"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not self.weight_decay >= 0:
            raise ValueError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.lr_schedule not in ("const", "cosine"):
            raise ValueError(f"--lr-schedule must be const or cosine, got {self.lr_schedule!r}")
        if not self.width > 0:
            raise ValueError(f"--width must be > 0, got {self.width}")
        if self.image_size < 8:
            raise ValueError(f"--image-size must be >= 8, got {self.image_size}")
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        if self.device not in DEVICES:
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        parse_loss_scale(self.loss_scale)

    def model_args(self) -> dict:
        """The keyword arguments of :func:`sim.models.build_model` these options give."""
        return dict(hidden=self.hidden, depth=self.depth, channels=self.channels, width=self.width)


def open_data(o: LoopOptions, rank: int = 0, world: int = 1, pin_memory: bool = False):
    """The data source of ``o.dataset`` for one rank (see :mod:`sim.data`)."""
    if o.dataset == "fashion-mnist":  # padded to the side the model is shaped for (28 or 32)
        return TensorData(o, rank, world, size=MODELS[o.model].image_size)
    if o.dataset == "imagenet":
        return FolderData(o, rank, world, pin_memory)
    raise ValueError(f"unknown dataset {o.dataset!r}: choose one of {', '.join(DATASETS)}")


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

    @property
    def lead(self) -> bool:
        """Rank 0: the process that prints and writes files."""
        return self.rank == 0

    def device(self, kind: str) -> torch.device:
        """This rank's device (``cuda:<local rank>`` or ``cpu``), made current."""
        if kind != "cuda":
            return torch.device("cpu")
        dev = torch.device(f"cuda:{self.local_rank}")
        torch.cuda.set_device(dev)
        return dev

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


def run_with_dist(kind: str, body, *args):
    """``body(dist, *args)`` inside a process group when under torchrun; closes it cleanly."""
    dist = Dist(kind)
    try:
        result = body(dist, *args)
    except BaseException:
        dist.close(meet=False)
        raise
    # DDP's reducer sits in reference cycles that hold the process group: free
    # it now, while the interpreter is whole, not during its finalisation.
    gc.collect()
    dist.close()
    return result


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


def param_digest(model) -> str:
    """SHA-256 (16 hex digits) of all parameters' and buffers' bytes, in state-dict order."""
    h = hashlib.sha256()
    for _, p in sorted(model.state_dict().items()):
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def wrap(model, dist: Dist, device: torch.device):
    """``model`` in DistributedDataParallel under torchrun, else itself."""
    if not dist.active:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def make_optimizer(model, o: LoopOptions, *, no_decay=(), name: str = "sgd",
                   **lowp) -> LowPrecisionOptimizer:
    """The ``name`` optimizer (``sgd`` with momentum, ``adam``, ``adamw``) with ``o``'s loss scaling.

    Learning rate, momentum and weight decay come from ``o``; no weight decay on
    the ``no_decay`` parameters. ``lowp`` passes ``betas`` and the rounding of
    the stored weights and state (``fmt``, ``state_fmt``, ``rounding``, ``rbits``,
    ``kahan``, ``master``) to :func:`sim.optim.build_optimizer` (default float32).
    """
    scale, dynamic = parse_loss_scale(o.loss_scale)
    skip = {id(p) for p in no_decay}
    params = list(model.parameters())
    groups = [dict(params=[p for p in params if id(p) not in skip], weight_decay=o.weight_decay)]
    rest = [p for p in params if id(p) in skip]
    if rest:
        groups.append(dict(params=rest, weight_decay=0.0))
    return build_optimizer(groups, name, lr=o.lr, momentum=o.momentum,
                           weight_decay=o.weight_decay, seed=o.seed, loss_scale=scale,
                           dynamic_loss_scale=dynamic, **lowp)


def cosine_schedule(opt, o: LoopOptions, total_steps: int):
    """Cosine decay to 0 over ``total_steps`` for ``--lr-schedule cosine``, else None."""
    if o.lr_schedule != "cosine":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total_steps, 1))


def progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar when ``enabled`` and stderr is a terminal, else None."""
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def evaluate(model, data, dist: Dist, device, bar=None) -> tuple[float, float, float]:
    """Loss sum, correct and sample counts over this rank's test share (not yet summed).

    Under DDP the floating-point buffers (BatchNorm running statistics, which
    drift apart between DDP broadcasts) are first averaged over the ranks.
    """
    if dist.active:
        with torch.no_grad():
            for b in model.buffers():
                if b.is_floating_point():
                    torch.distributed.all_reduce(b)
                    b.div_(dist.world)
    was = model.training
    model.eval()
    loss_sum = correct = count = 0.0
    with torch.no_grad():
        for xb, yb in data.eval_batches():
            xb, yb = xb.to(device), yb.to(device)
            logits = model(xb)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += float((logits.argmax(1) == yb).sum())
            count += len(yb)
            if bar is not None:
                bar.update(1)
    model.train(was)
    return loss_sum, correct, count


class TrainingLoop:
    """Epochs of training steps on ``model`` (one rank's share of ``data``), each followed by an evaluation.

    A step: forward on the (DDP-wrapped) model, cross-entropy, ``backward`` of
    the scaled loss, an optional gradient-norm clip (``grad_clip``, on the
    unscaled gradients), the optimizer step (skipped and the scale halved when
    a gradient is not finite), the schedule, then :meth:`after_update` and
    :meth:`after_step`. :meth:`run` returns one row per epoch.
    """

    def __init__(self, model, data, opt: LowPrecisionOptimizer, *, dist: Dist, device, epochs: int,
                 sched=None, progress: bool = False, grad_clip: float | None = None,
                 epoch_offset: int = 0, title: str = "epoch"):
        self.model, self.data, self.opt, self.sched = model, data, opt, sched
        self.dist, self.device, self.epochs = dist, device, int(epochs)
        self.progress = progress and dist.lead
        self.grad_clip, self.epoch_offset, self.title = grad_clip, int(epoch_offset), title
        self.net = wrap(model, dist, device)
        self.step = 0
        self.rows: list[dict] = []

    # ---- hooks ---------------------------------------------------------------
    def after_update(self) -> None:
        """Called after every optimizer step (e.g. keep quantizer parameters in range)."""

    def after_step(self, xb, yb, loss: float) -> None:
        """Called after every training step with its batch and loss."""

    def postfix(self, loss: float, acc: float) -> dict:
        """The progress bar's right-hand text after a training step."""
        return {"loss": f"{loss:.4f}", "acc": f"{acc:.3f}"}

    def epoch_columns(self) -> dict:
        """Extra columns of an epoch's row."""
        return {}

    def emulated_macs(self) -> int:
        return total_macs(self.model)

    def reset_macs(self) -> None:
        reset_macs(self.model)

    # ---- the loop ------------------------------------------------------------
    def train_step(self, xb, yb) -> tuple[float, float]:
        """One SGD step; returns (loss, correct count)."""
        logits = self.net(xb)
        loss = F.cross_entropy(logits, yb)
        self.opt.zero_grad(set_to_none=True)
        self.opt.scale_loss(loss).backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                           self.grad_clip * self.opt.loss_scale)
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        self.after_update()
        self.step += 1
        return float(loss.detach()), float((logits.detach().argmax(1) == yb).sum())

    def train_epoch(self, epoch: int, bar) -> tuple[float, float, float]:
        self.model.train()
        loss_sum = correct = count = 0.0
        for xb, yb in self.data.batches(epoch + self.epoch_offset):
            xb = xb.to(self.device, non_blocking=True)
            yb = yb.to(self.device, non_blocking=True)
            loss, good = self.train_step(xb, yb)
            self.after_step(xb, yb, loss)
            loss_sum += loss * len(yb)
            correct += good
            count += len(yb)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(self.postfix(loss_sum / count, correct / count))
        return loss_sum, correct, count

    def evaluate(self, bar=None) -> tuple[float, float, float]:
        return evaluate(self.model, self.data, self.dist, self.device, bar)

    def run(self, say=print) -> list[dict]:
        """Train and evaluate every epoch; ``say`` prints one line per epoch (rank 0)."""
        for epoch in range(1, self.epochs + 1):
            self.reset_macs()
            bar = progress_bar(self.progress, self.data.steps_per_epoch + self.data.eval_steps,
                               f"{self.title} {epoch}/{self.epochs}")
            t0 = time.perf_counter()
            tr = self.train_epoch(epoch, bar)
            te = self.evaluate(bar)
            if bar is not None:
                bar.close()
            dt = time.perf_counter() - t0
            tl, tc, tn, vl, vc, vn, macs = self.dist.sum(
                [*tr, *te, float(self.emulated_macs())], self.device)
            row = dict(epoch=epoch, train_loss=tl / tn, train_acc=tc / tn, test_loss=vl / vn,
                       test_acc=vc / vn, time_s=dt, emulated_macs=int(macs),
                       mac_per_s=macs / dt if dt > 0 else 0.0, loss_scale=self.opt.loss_scale,
                       skipped_steps=self.opt.skipped, **self.epoch_columns())
            self.rows.append(row)
            if self.dist.lead:
                say(self.epoch_line(row))
        return self.rows

    def epoch_line(self, row: dict) -> str:
        text = (f"{self.title} {row['epoch']}: train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.4f} | test loss {row['test_loss']:.4f} acc "
                f"{row['test_acc']:.4f} | {row['time_s']:.1f} s")
        if row["emulated_macs"]:
            text += (f", {row['emulated_macs']:.3g} MACs, {row['mac_per_s'] / 1e6:.3g} M MAC/s, "
                     f"loss scale {row['loss_scale']:g}")
        if row["skipped_steps"]:
            text += f", {row['skipped_steps']} skipped steps"
        return text

