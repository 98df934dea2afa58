"""The training loop behind ``srmac adaqat`` (single process, float LSQ fake quantization).

Phases, all on the same SGD optimiser (weights and LSQ step sizes):

1. optional float pre-training (``pretrain_epochs``), then LSQ steps are
   initialised from the trained weights (AdaQAT as fine-tuning);
2. exploration: every step trains at ``(ceil N_w, ceil N_a)`` and updates
   ``N_w``, ``N_a`` with the finite-difference + hardware-cost gradient
   (:mod:`sim.adaqat`) until both are frozen;
3. fine-tuning at the frozen widths for the rest of ``epochs``.

``fixed="4/4"`` skips phase 2 (fixed-width QAT baseline). Writes into ``out``:
``bits.csv`` (one row per step), ``bits.png`` (N_w, N_a trajectories),
``summary.json`` and ``summary.csv`` (one results-table row).
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
    hw_gradients,
    layer_macs,
    qat_model,
)
from .adaqat_models import ADAQAT_MODELS, build_adaqat_model
from .data import load_tensors
from .seeds import derive_seed

__all__ = ["AdaQatOptions", "run", "parse_fixed", "SUMMARY_FIELDS"]

SUMMARY_FIELDS = ("model", "mode", "lambda", "bits_wa", "top1", "bitops", "explore_epochs",
                  "total_epochs")


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
    lam: float = 0.01
    epochs: int = 2
    fixed: str | None = None
    init_bits: float = 8.0
    min_bits: float = 2.0
    max_bits: float = 8.0
    bit_lr: float = 0.5
    patience: int = 50
    freeze_tol: float = 0.3
    pretrain_epochs: int = 0
    lr: float = 0.02
    momentum: float = 0.9
    batch_size: int = 64
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    hidden: int = 256
    channels: int = 8
    data_dir: str | None = None
    out: str | None = None
    progress: bool = True

    def validate(self) -> None:
        if self.model not in ADAQAT_MODELS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {', '.join(ADAQAT_MODELS)}")
        for name in ("epochs", "batch_size", "hidden", "channels", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("limit_train", "limit_test"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        if self.pretrain_epochs < 0:
            raise ValueError(f"--pretrain-epochs must be >= 0, got {self.pretrain_epochs}")
        if not self.lam >= 0:
            raise ValueError(f"--lambda must be >= 0, got {self.lam}")
        if not (self.lr > 0 and self.bit_lr >= 0):
            raise ValueError(f"--lr must be > 0 and --bit-lr >= 0, got {self.lr}, {self.bit_lr}")
        if self.fixed is not None:
            parse_fixed(self.fixed)
        else:  # BitWidth checks bounds, init, patience and tolerance
            self._bit("N_w")

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
    return Path("build/adaqat") / f"{o.model}-{tag}-s{o.seed}"


def _evaluate(model, x, y, batch) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    with torch.no_grad():
        for s in range(0, len(y), batch):
            logits = model(x[s: s + batch])
            loss += float(F.cross_entropy(logits, y[s: s + batch], reduction="sum"))
            correct += float((logits.argmax(1) == y[s: s + batch]).sum())
    model.train()
    return loss / len(y), correct / len(y)


def _plot(rows: list[dict], path: Path, title: str) -> None:
    from ref.plotting import subplots

    step = [r["step"] for r in rows]
    fig, ax = subplots(figsize=(6, 3.5))
    ax.plot(step, [r["n_w"] for r in rows], label="N_w (real)")
    ax.plot(step, [r["n_a"] for r in rows], label="N_a (real)")
    ax.step(step, [r["bits_w"] for r in rows], "--", where="post", label="ceil N_w")
    ax.step(step, [r["bits_a"] for r in rows], ":", where="post", label="ceil N_a")
    ax.set_xlabel("training step")
    ax.set_ylabel("bit-width")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run(o: AdaQatOptions) -> dict:
    """Run AdaQAT (or the fixed-width baseline) as ``o`` says; returns the summary."""
    o.validate()
    xtr, ytr, xte, yte = load_tensors(o.data_dir, o.limit_train, o.limit_test)
    out = Path(o.out) if o.out else default_out(o)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(o.seed)
    model = build_adaqat_model(o.model, hidden=o.hidden, channels=o.channels)
    params = dict(lr=o.lr, momentum=o.momentum)
    steps_per_epoch = -(-len(ytr) // o.batch_size)

    def batches(epoch: int):
        gen = torch.Generator().manual_seed(derive_seed(o.seed, epoch, 0xADA))
        order = torch.randperm(len(ytr), generator=gen)
        for s in range(0, len(order), o.batch_size):
            b = order[s: s + o.batch_size]
            yield xtr[b], ytr[b]

    def bar(desc):
        if not o.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=steps_per_epoch, desc=desc, leave=False, dynamic_ncols=True)

    t0 = time.perf_counter()
    float_acc = None
    if o.pretrain_epochs:
        opt = torch.optim.SGD(model.parameters(), **params)
        for ep in range(1, o.pretrain_epochs + 1):
            pb = bar(f"float pretrain {ep}/{o.pretrain_epochs}")
            for xb, yb in batches(1000 + ep):
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if pb is not None:
                    pb.update(1)
                    pb.set_postfix(loss=f"{float(loss):.4f}")
            if pb is not None:
                pb.close()
        float_acc = _evaluate(model, xte, yte, o.batch_size)[1]
        print(f"srmac adaqat: float pre-training done, test top-1 {float_acc:.4f}")

    state = BitState()
    if o.fixed:
        state.w_bits, state.a_bits = parse_fixed(o.fixed)
        nw = na = None
    else:
        nw, na = o._bit("N_w"), o._bit("N_a")
        state.w_bits, state.a_bits = nw.bits, na.bits
    model = qat_model(model, state)
    layer_macs(model)
    model.train()
    # the first forward pass initialises the LSQ steps (from pre-trained weights if any)
    with torch.no_grad():
        model(xtr[: o.batch_size])
    opt = torch.optim.SGD(model.parameters(), **params)

    mode = f"fixed {o.fixed}" if o.fixed else "adaqat"
    print(f"srmac adaqat: {o.model}, {mode}, lambda {o.lam:g}, {len(ytr)} train / {len(yte)} test "
          f"samples, batch {o.batch_size}, {o.epochs} epoch(s), out {out}")
    rows, epochs_log = [], []
    step, explore_steps = 0, 0 if o.fixed else None
    for ep in range(1, o.epochs + 1):
        pb = bar(f"epoch {ep}/{o.epochs}")
        loss_sum = n_seen = 0.0
        for xb, yb in batches(ep):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # LSQ steps can be kicked through zero by one large gradient, which collapses a
            # layer to a constant: clip the gradient norm and keep every step positive
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
            _keep_steps_positive(model)
            step += 1
            loss = loss.detach()
            gw = ga = float("nan")
            if explore_steps is None:
                # exploration: update the real-valued widths on this same batch
                fw, fa = fd_gradients(model, state, xb, yb, state.w_bits, state.a_bits)
                hw_w, hw_a = hw_gradients(nw.value, na.value)
                gw, ga = fw + o.lam * hw_w, fa + o.lam * hw_a
                nw.update(gw)
                na.update(ga)
                state.w_bits, state.a_bits = nw.bits, na.bits
                if nw.frozen and na.frozen:
                    explore_steps = step
            rows.append(dict(step=step, epoch=ep, loss=float(loss),
                             n_w=nw.value if nw else state.w_bits,
                             n_a=na.value if na else state.a_bits,
                             bits_w=state.w_bits, bits_a=state.a_bits, grad_w=gw, grad_a=ga,
                             frozen_w=int(nw.frozen) if nw else 1,
                             frozen_a=int(na.frozen) if na else 1))
            loss_sum += float(loss) * len(yb)
            n_seen += len(yb)
            if pb is not None:
                pb.update(1)
                pb.set_postfix(loss=f"{float(loss):.3f}", W=state.w_bits, A=state.a_bits)
        if pb is not None:
            pb.close()
        te_loss, te_acc = _evaluate(model, xte, yte, o.batch_size)
        epochs_log.append(dict(epoch=ep, train_loss=loss_sum / n_seen, test_loss=te_loss,
                               test_acc=te_acc, w_bits=state.w_bits, a_bits=state.a_bits))
        print(f"epoch {ep}: train loss {loss_sum / n_seen:.4f} | test loss {te_loss:.4f} "
              f"top-1 {te_acc:.4f} | W{state.w_bits}/A{state.a_bits}")
    if explore_steps is None:  # never froze: the whole run explored
        explore_steps = step
    final = epochs_log[-1]
    row = {"model": o.model, "mode": "fixed" if o.fixed else "adaqat", "lambda": o.lam,
           "bits_wa": f"{state.w_bits}/{state.a_bits}", "top1": round(final["test_acc"], 4),
           "bitops": bitops(model, state.w_bits, state.a_bits),
           "explore_epochs": round(explore_steps / steps_per_epoch, 2),
           "total_epochs": o.epochs + o.pretrain_epochs}
    summary = dict(options=asdict(o), out=str(out), steps=step, steps_per_epoch=steps_per_epoch,
                   explore_steps=explore_steps, float_pretrain_top1=float_acc,
                   frozen_w_at=nw.frozen_at if nw else None,
                   frozen_a_at=na.frozen_at if na else None,
                   layer_macs=[m.macs for m in model.modules() if hasattr(m, "wq")],
                   epochs=epochs_log, row=row, time_s=time.perf_counter() - t0)
    with open(out / "bits.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SUMMARY_FIELDS))
        w.writeheader()
        w.writerow(row)
    _plot(rows, out / "bits.png", f"{o.model}, {mode}, lambda {o.lam:g}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("srmac adaqat: " + ", ".join(f"{k} {row[k]}" for k in SUMMARY_FIELDS))
    print(f"srmac adaqat: wrote {out / 'bits.csv'}, {out / 'bits.png'}, {out / 'summary.json'}, "
          f"{out / 'summary.csv'}")
    return summary
