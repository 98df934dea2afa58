"""The training loop behind ``srmac adaqat`` (single process or ``torchrun`` + DDP).

Phases, all with SGD (weights and LSQ step sizes):

1. optional float start: ``init`` loads a float state dict (``--init CKPT``),
   ``pretrain_epochs`` trains in float; LSQ steps are then initialised from
   these weights (AdaQAT as fine-tuning). Pre-training writes
   ``float_model.pt``, loadable with ``--init``;
2. exploration: every step trains at the current integer widths, and every
   ``bit_every``-th step updates the real-valued widths with the
   finite-difference + hardware-cost gradient (:mod:`sim.adaqat`) until all
   are frozen. ``per_layer=False``: one pair ``N_w``, ``N_a`` for the network;
   ``True``: one pair per layer (the first layer: ``N_w`` only);
3. fine-tuning at the frozen widths for the rest of ``epochs``.

``fixed="4/4"`` skips phase 2 (fixed-width QAT baseline). Writes into ``out``:
``bits.csv`` (one row per step), ``bits.png`` (width trajectories),
``layers.csv`` (per-layer MACs and final widths), ``summary.json``,
``summary.csv`` (one results-table row) and ``model.pt`` (QAT state dict + widths).

Distributed (``torchrun``, ``WORLD_SIZE`` > 1): gloo on CPU, nccl on CUDA;
``batch_size`` is the global batch, split over the ranks; DDP averages the
weight gradients, and the finite-difference losses are averaged over the
ranks before the width update, so every rank keeps the same widths. Only
rank 0 prints and writes files.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .adaqat import (
    BitState,
    BitWidth,
    LsqQuantizer,
    bitops,
    fd_gradients,
    fd_gradients_per_layer,
    hw_gradients,
    hw_gradients_per_layer,
    layer_macs,
    qat_model,
    set_mac,
)
from .adaqat_data import DATASETS, open_data
from .adaqat_models import ADAQAT_MODELS, build_adaqat_model
from .zoo import ZOO_MODELS, build_zoo_model

__all__ = ["AdaQatOptions", "run", "parse_fixed", "load_float_init", "SUMMARY_FIELDS", "MODELS"]

SUMMARY_FIELDS = ("model", "mode", "lambda", "bits_wa", "top1", "bitops", "explore_epochs",
                  "total_epochs")
#: Every model ``srmac adaqat`` builds; the first three are for Fashion-MNIST only.
MODELS = ADAQAT_MODELS + ZOO_MODELS


def parse_fixed(text: str) -> tuple[int, int]:
    """``"4/4"`` -> ``(4, 4)`` (weight bits / activation bits, each 1..16)."""
    parts = str(text).split("/")
    try:
        w, a = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--fixed must be W/A integers like 4/4, got {text!r}") from None
    if not (1 <= w <= 16 and 1 <= a <= 16):
        raise ValueError(f"--fixed widths must be in 1..16, got {text!r}")
    return w, a


@dataclass
class AdaQatOptions:
    model: str = "mlp"
    dataset: str = "fashion-mnist"
    lam: float = 0.01
    epochs: int = 2
    fixed: str | None = None
    per_layer: bool = False
    bit_every: int = 1
    mac: str | None = None
    init_bits: float = 8.0
    min_bits: float = 2.0
    max_bits: float = 8.0
    bit_lr: float = 0.5
    patience: int = 50
    freeze_tol: float = 0.3
    init: str | None = None
    pretrain_epochs: int = 0
    lr: float = 0.02
    lr_schedule: str = "const"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    hidden: int = 256
    channels: int = 8
    width: float = 1.0
    image_size: int = 224
    workers: int = 4
    data_dir: str | None = None
    out: str | None = None
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASETS)}")
        if self.dataset != "fashion-mnist" and self.model in ADAQAT_MODELS:
            raise ValueError(f"model {self.model} is for --dataset fashion-mnist (28x28 gray); "
                             f"use {' or '.join(ZOO_MODELS)} for {self.dataset}")
        for name in ("epochs", "batch_size", "hidden", "channels", "patience", "bit_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("limit_train", "limit_test"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        if self.pretrain_epochs < 0 or self.workers < 0:
            raise ValueError(f"--pretrain-epochs and --workers must be >= 0, got "
                             f"{self.pretrain_epochs}, {self.workers}")
        if not self.lam >= 0:
            raise ValueError(f"--lambda must be >= 0, got {self.lam}")
        if not (self.lr > 0 and self.bit_lr >= 0 and self.weight_decay >= 0):
            raise ValueError(f"--lr must be > 0, --bit-lr and --weight-decay >= 0, got "
                             f"{self.lr}, {self.bit_lr}, {self.weight_decay}")
        if self.lr_schedule not in ("const", "cosine"):
            raise ValueError(f"--lr-schedule must be const or cosine, got {self.lr_schedule!r}")
        if not self.width > 0:
            raise ValueError(f"--width must be > 0, got {self.width}")
        if self.image_size < 8:
            raise ValueError(f"--image-size must be >= 8, got {self.image_size}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.init is not None and not Path(self.init).is_file():
            raise ValueError(f"--init {self.init}: no such file (a float state dict, e.g. "
                             "float_model.pt written by --pretrain-epochs)")
        if self.mac_config is not None:
            from .quant import make_layer_config

            make_layer_config(self.mac_config)
        if self.fixed is not None:
            parse_fixed(self.fixed)
            if self.per_layer:
                raise ValueError("--per-layer learns the widths; it cannot be combined with --fixed")
        else:  # BitWidth checks bounds, init, patience and tolerance
            self._bit("N_w")

    @property
    def mac_config(self) -> str | None:
        """The emulated MAC spec, or ``None`` for float GEMMs (``--mac fp32`` too)."""
        if self.mac is None or self.mac.strip().lower() in ("fp32", "float"):
            return None
        return self.mac

    def _bit(self, name: str) -> BitWidth:
        return BitWidth(self.init_bits, self.min_bits, self.max_bits, self.bit_lr, self.patience,
                        self.freeze_tol, name=name)


#: Gradient-norm clip of every QAT step (weights and LSQ steps together).
GRAD_CLIP = 1.0


def _keep_steps_positive(model) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LsqQuantizer):
                m.step.abs_().clamp_(min=1e-6)


def default_out(o: AdaQatOptions) -> Path:
    tag = f"fixed{o.fixed.replace('/', 'a')}" if o.fixed else f"lam{o.lam:g}"
    if o.per_layer:
        tag += "-layer"
    if o.mac_config is not None:
        tag += "-" + "".join(c if c.isalnum() else "-" for c in o.mac_config.lower())
    data = "" if o.dataset == "fashion-mnist" else f"-{o.dataset}"
    return Path("build/adaqat") / f"{o.model}{data}-{tag}-s{o.seed}"


def load_float_init(model, path, model_name: str = "model") -> None:
    """Load a float state dict from ``path`` into ``model`` (strict; one-line ValueError).

    Accepts a bare state dict or one under ``"state_dict"`` / ``"model"``, and
    strips a DDP ``module.`` prefix.
    """
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--init {path} is not a PyTorch state dict ({first[:120]})") from None
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"--init {path} holds no state dict of tensors")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or extra or shape:
        what = []
        if missing:
            what.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if extra:
            what.append(f"{len(extra)} unexpected key(s), e.g. {extra[0]}")
        if shape:
            k = shape[0]
            what.append(f"{len(shape)} shape mismatch(es), e.g. {k} {tuple(sd[k].shape)} vs "
                        f"{tuple(own[k].shape)}")
        raise ValueError(f"--init {path} does not match {model_name}: {'; '.join(what)} "
                         "(expected a float state dict of the same model and options)")
    model.load_state_dict(sd)


def _plot(rows: list[dict], path: Path, title: str, layer_names: list[str] | None) -> None:
    from ref.plotting import subplots

    step = [r["step"] for r in rows]
    if layer_names is None:
        fig, ax = subplots(figsize=(6, 3.5))
        ax.plot(step, [r["n_w"] for r in rows], label="N_w (real)")
        ax.plot(step, [r["n_a"] for r in rows], label="N_a (real)")
        ax.step(step, [r["bits_w"] for r in rows], "--", where="post", label="ceil N_w")
        ax.step(step, [r["bits_a"] for r in rows], ":", where="post", label="ceil N_a")
        ax.set_xlabel("training step")
        ax.set_ylabel("bit-width")
        ax.legend()
        ax.set_title(title)
    else:
        fig, axes = subplots(1, 2, figsize=(11, 3.8), sharey=True)
        for ax, key in zip(axes, ("n_w", "n_a"), strict=True):
            for i, name in enumerate(layer_names):
                col = f"{key}_{i}"
                if col in rows[0]:
                    ax.plot(step, [r[col] for r in rows], lw=1, label=f"{i}: {name}")
            ax.set_xlabel("training step")
            ax.set_title(f"{'N_w' if key == 'n_w' else 'N_a'} per layer (real)")
        axes[0].set_ylabel("bit-width")
        if len(layer_names) <= 12:
            axes[1].legend(fontsize=7)
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


class _Widths:
    """The learned widths: one pair for the network, or one pair per layer."""

    def __init__(self, o: AdaQatOptions, layers, state: BitState):
        self.o, self.layers, self.state = o, layers, state
        if o.per_layer:
            self.w = [o._bit(f"N_w[{i}]") for i in range(len(layers))]
            self.a = [o._bit(f"N_a[{i}]") if m.quant_input else None
                      for i, m in enumerate(layers)]
        else:
            self.w, self.a = [o._bit("N_w")], [o._bit("N_a")]
        self.apply()

    def all(self) -> list[BitWidth]:
        return [b for b in self.w + self.a if b is not None]

    @property
    def frozen(self) -> bool:
        return all(b.frozen for b in self.all())

    def apply(self) -> None:
        """Set the integer widths the quantizers use from the real ones."""
        if self.o.per_layer:
            for m, w, a in zip(self.layers, self.w, self.a, strict=True):
                m.state.w_bits = w.bits
                if a is not None:
                    m.state.a_bits = a.bits
        else:
            self.state.w_bits, self.state.a_bits = self.w[0].bits, self.a[0].bits

    def task_gradients(self, model, x, y) -> list[float]:
        """Finite-difference gradients, flat in the order of :meth:`all`."""
        if self.o.per_layer:
            g = fd_gradients_per_layer(model, x, y)
            return [gw for gw, _ in g] + [ga for _, ga in g if ga is not None]
        return list(fd_gradients(model, self.state, x, y, self.state.w_bits, self.state.a_bits))

    def update(self, task: list[float]) -> list[float]:
        """Add ``lambda * dL_HW/dN`` to the task gradients and step every width."""
        lam = self.o.lam
        if self.o.per_layer:
            hw = hw_gradients_per_layer(self.layers, [b.value for b in self.w],
                                        [b.value if b else None for b in self.a])
            hw_flat = [h for h, _ in hw] + [h for _, h in hw if h is not None]
        else:
            hw_flat = list(hw_gradients(self.w[0].value, self.a[0].value))
        grads = [t + lam * h for t, h in zip(task, hw_flat, strict=True)]
        for b, g in zip(self.all(), grads, strict=True):
            b.update(g)
        self.apply()
        return grads

    def mean_bits(self) -> tuple[float, float]:
        """MAC-weighted mean integer widths (activations: layers that quantize their input)."""
        mw = sum(m.macs for m in self.layers)
        ma = sum(m.macs for m in self.layers if m.quant_input)
        w = sum(m.state.w_bits * m.macs for m in self.layers) / mw
        a = sum(m.state.a_bits * m.macs for m in self.layers if m.quant_input) / max(ma, 1)
        return w, a


def run(o: AdaQatOptions) -> dict:
    """Run AdaQAT (or the fixed-width baseline) as ``o`` says; returns the summary."""
    from .train import run_with_dist

    o.validate()
    use_cuda = o.device == "cuda" or (o.device == "auto" and torch.cuda.is_available())
    kind = "cuda" if use_cuda else "cpu"
    return run_with_dist(kind, lambda dist: _run(o, dist, kind))


def _run(o: AdaQatOptions, dist, kind: str) -> dict:
    device = torch.device(f"cuda:{dist.local_rank}" if kind == "cuda" else "cpu")
    if kind == "cuda":
        torch.cuda.set_device(device)
    lead = dist.rank == 0
    if o.batch_size % dist.world:
        raise ValueError(f"--batch-size {o.batch_size} must be a multiple of the world size "
                         f"{dist.world}")
    data = open_data(o, dist.rank, dist.world, pin_memory=kind == "cuda")
    out = Path(o.out) if o.out else default_out(o)
    if lead:
        out.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if lead:
            print(text, flush=True)

    torch.manual_seed(o.seed)
    if o.model in ZOO_MODELS:
        model = build_zoo_model(o.model, classes=data.classes, in_ch=data.in_ch, width=o.width)
    else:
        model = build_adaqat_model(o.model, hidden=o.hidden, channels=o.channels)
    if o.init:
        load_float_init(model, o.init, o.model)
    model.to(device)
    steps_per_epoch = data.steps_per_epoch

    def wrap(m):
        if not dist.active:
            return m
        return torch.nn.parallel.DistributedDataParallel(
            m, device_ids=[device.index] if kind == "cuda" else None)

    def bar(desc):
        if not (o.progress and lead):
            return None
        from tqdm import tqdm

        return tqdm(total=steps_per_epoch, desc=desc, leave=False, dynamic_ncols=True)

    def evaluate(m) -> tuple[float, float]:
        if dist.active:
            # BatchNorm running statistics drift apart between DDP broadcasts: average them
            with torch.no_grad():
                for b in m.buffers():
                    if b.is_floating_point():
                        torch.distributed.all_reduce(b)
                        b.div_(dist.world)
        m.eval()
        loss = correct = count = 0.0
        with torch.no_grad():
            for xb, yb in data.eval_batches():
                xb, yb = xb.to(device), yb.to(device)
                logits = m(xb)
                loss += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += float((logits.argmax(1) == yb).sum())
                count += len(yb)
        m.train()
        loss, correct, count = dist.sum([loss, correct, count], device)
        return loss / count, correct / count

    def param_groups(m):
        # no weight decay on the LSQ step sizes (it would shrink every clipping range)
        steps = {id(q.step) for q in m.modules() if isinstance(q, LsqQuantizer)}
        p_steps = [p for p in m.parameters() if id(p) in steps]
        p_rest = [p for p in m.parameters() if id(p) not in steps]
        groups = [dict(params=p_rest, weight_decay=o.weight_decay)]
        if p_steps:
            groups.append(dict(params=p_steps, weight_decay=0.0))
        return groups

    t0 = time.perf_counter()
    float_acc = None
    if o.pretrain_epochs:
        net = wrap(model)
        opt = torch.optim.SGD(param_groups(model), lr=o.lr, momentum=o.momentum)
        for ep in range(1, o.pretrain_epochs + 1):
            pb = bar(f"float pretrain {ep}/{o.pretrain_epochs}")
            for xb, yb in data.batches(1000 + ep):
                loss = F.cross_entropy(net(xb.to(device)), yb.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if pb is not None:
                    pb.update(1)
                    pb.set_postfix(loss=f"{float(loss):.4f}")
            if pb is not None:
                pb.close()
        del net, opt
    if o.pretrain_epochs or o.init:
        float_acc = evaluate(model)[1]  # (under DDP this also averages BatchNorm statistics)
        if lead and o.pretrain_epochs:
            torch.save(model.state_dict(), out / "float_model.pt")
        say(f"srmac adaqat: float start ({'pre-trained' if o.pretrain_epochs else o.init}), "
            f"test top-1 {float_acc:.4f}")

    state = BitState()
    if o.fixed:
        state.w_bits, state.a_bits = parse_fixed(o.fixed)
    model = qat_model(model, state, per_layer=o.per_layer)
    layers = layer_macs(model, data.input_shape)
    widths = None if o.fixed else _Widths(o, layers, state)
    model.train()
    # the first forward pass initialises the LSQ steps (from the float start if any);
    # under DDP, rank 0's values are broadcast when the model is wrapped
    xb0, _ = data.first_batch()
    with torch.no_grad():
        model(xb0.to(device))
    if o.mac_config is not None:
        set_mac(model, o.mac_config, seed=o.seed)
    net = wrap(model)
    opt = torch.optim.SGD(param_groups(model), lr=o.lr, momentum=o.momentum)
    total_steps = o.epochs * steps_per_epoch
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, total_steps)
             if o.lr_schedule == "cosine" else None)

    mode = f"fixed {o.fixed}" if o.fixed else ("adaqat per layer" if o.per_layer else "adaqat")
    if o.mac_config is not None:
        mode += f", GEMMs on {o.mac_config}"
    say(f"srmac adaqat: {o.model}, {o.dataset}, {mode}, lambda {o.lam:g}, {data.n_train} train / "
        f"{data.n_test} test samples, batch {o.batch_size}, {o.epochs} epoch(s), "
        f"{dist.world} process(es), device {device}, out {out}")
    names = [m.name for m in layers]
    rows, epochs_log = [], []
    step, explore_steps = 0, 0 if o.fixed else None
    for ep in range(1, o.epochs + 1):
        pb = bar(f"epoch {ep}/{o.epochs}")
        loss_sum = n_seen = 0.0
        for xb, yb in data.batches(ep):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # LSQ steps can be kicked through zero by one large gradient, which collapses a
            # layer to a constant: clip the gradient norm and keep every step positive
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
            if sched is not None:
                sched.step()
            _keep_steps_positive(model)
            step += 1
            loss = float(loss.detach())
            grads = None
            if explore_steps is None and step % o.bit_every == 0:
                # exploration: update the real-valued widths on this same batch; average the
                # finite differences over the ranks so that every rank takes the same step
                task = widths.task_gradients(model, xb, yb)
                task = [g / dist.world for g in dist.sum(task, device)]
                grads = widths.update(task)
                if widths.frozen:
                    explore_steps = step
            rows.append(_row(step, ep, loss, state, widths, grads, model))
            loss_sum += loss * len(yb)
            n_seen += len(yb)
            if pb is not None:
                pb.update(1)
                if o.per_layer:
                    pb.set_postfix(loss=f"{loss:.3f}", MBitOPs=f"{bitops(model) / 1e6:.3g}")
                else:
                    pb.set_postfix(loss=f"{loss:.3f}", W=state.w_bits, A=state.a_bits)
        if pb is not None:
            pb.close()
        tr_loss = dist.sum([loss_sum, n_seen], device)
        te_loss, te_acc = evaluate(model)
        wa = _bits_text(o, state, widths)
        epochs_log.append(dict(epoch=ep, train_loss=tr_loss[0] / tr_loss[1], test_loss=te_loss,
                               test_acc=te_acc, bits_wa=wa, bitops=bitops(model)))
        say(f"epoch {ep}: train loss {tr_loss[0] / tr_loss[1]:.4f} | test loss {te_loss:.4f} "
            f"top-1 {te_acc:.4f} | W/A {wa}")
    if explore_steps is None:  # never froze: the whole run explored
        explore_steps = step
    final = epochs_log[-1]
    layer_rows = [dict(index=i, name=m.name, macs=m.macs, w_bits=m.state.w_bits,
                       a_bits=m.state.a_bits if m.quant_input else "",
                       signed_input=int(bool(m.aq is not None and m.aq.signed)))
                  for i, m in enumerate(layers)]
    if widths is not None and o.per_layer:
        for r, w, a in zip(layer_rows, widths.w, widths.a, strict=True):
            r["frozen_w_at"] = w.frozen_at if w.frozen_at is not None else ""
            r["frozen_a_at"] = "" if a is None or a.frozen_at is None else a.frozen_at
    row = {"model": o.model,
           "mode": "fixed" if o.fixed else ("adaqat-layer" if o.per_layer else "adaqat"),
           "lambda": o.lam, "bits_wa": _bits_text(o, state, widths),
           "top1": round(final["test_acc"], 4), "bitops": bitops(model),
           "explore_epochs": round(explore_steps / steps_per_epoch, 2),
           "total_epochs": o.epochs + o.pretrain_epochs}
    # every rank must hold the same weights and widths (DDP + averaged finite differences)
    from .train import param_digest

    rank_states = dist.gather([param_digest(model), [r["w_bits"] for r in layer_rows],
                               [r["a_bits"] for r in layer_rows],
                               [b.value for b in widths.all()] if widths else []])
    summary = dict(options=asdict(o), out=str(out), world_size=dist.world, device=str(device),
                   rank_states=rank_states, ranks_in_sync=all(r == rank_states[0]
                                                              for r in rank_states),
                   steps=step, steps_per_epoch=steps_per_epoch, explore_steps=explore_steps,
                   float_pretrain_top1=float_acc,
                   frozen_w_at=None if o.per_layer or not widths else widths.w[0].frozen_at,
                   frozen_a_at=None if o.per_layer or not widths else widths.a[0].frozen_at,
                   layer_macs=[m.macs for m in layers], layers=layer_rows,
                   epochs=epochs_log, row=row, time_s=time.perf_counter() - t0)
    if lead:
        _write(out, rows, layer_rows, row, summary, model, o, mode,
               names if o.per_layer else None)
    return summary


def _bits_text(o, state: BitState, widths) -> str:
    if o.per_layer:
        w, a = widths.mean_bits()
        return f"{w:.2f}/{a:.2f}"
    return f"{state.w_bits}/{state.a_bits}"


def _row(step, ep, loss, state, widths, grads, model) -> dict:
    """One bits.csv row: network-wide columns, or per-layer ``n_w_<i>``, ``n_a_<i>``."""
    nan = float("nan")
    if widths is None or not widths.o.per_layer:
        return dict(step=step, epoch=ep, loss=loss,
                    n_w=widths.w[0].value if widths else state.w_bits,
                    n_a=widths.a[0].value if widths else state.a_bits,
                    bits_w=state.w_bits, bits_a=state.a_bits,
                    grad_w=grads[0] if grads else nan, grad_a=grads[1] if grads else nan,
                    frozen_w=int(widths.w[0].frozen) if widths else 1,
                    frozen_a=int(widths.a[0].frozen) if widths else 1)
    r = dict(step=step, epoch=ep, loss=loss, bitops=bitops(model),
             frozen=sum(b.frozen for b in widths.all()), updated=int(grads is not None))
    for i, (w, a) in enumerate(zip(widths.w, widths.a, strict=True)):
        r[f"n_w_{i}"] = w.value
        if a is not None:
            r[f"n_a_{i}"] = a.value
    return r


def _write(out: Path, rows, layer_rows, row, summary, model, o, mode, names) -> None:
    def table(path, fields, items):
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(fields), restval="")
            w.writeheader()
            w.writerows(items)

    table(out / "bits.csv", rows[0], rows)
    table(out / "layers.csv", dict.fromkeys(k for r in layer_rows for k in r), layer_rows)
    table(out / "summary.csv", SUMMARY_FIELDS, [row])
    _plot(rows, out / "bits.png", f"{o.model}, {mode}, lambda {o.lam:g}", names)
    torch.save(dict(state_dict=model.state_dict(), layers=layer_rows, options=asdict(o)),
               out / "model.pt")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("srmac adaqat: " + ", ".join(f"{k} {row[k]}" for k in SUMMARY_FIELDS))
    print(f"srmac adaqat: wrote {out}/{{bits.csv, bits.png, layers.csv, summary.json, "
          f"summary.csv, model.pt}}", flush=True)
