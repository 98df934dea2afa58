"""The run behind ``srmac adaqat`` (single process or ``torchrun`` + DDP), on the shared loop.

Phases, all with SGD + loss scaling (:mod:`sim.loop`; weights and quantizer
parameters; gradient norm clipped to :data:`GRAD_CLIP`):

1. optional float start: ``init`` loads a float state dict (``--init CKPT``),
   ``pretrain_epochs`` trains in float first (written as ``float_model.pt``,
   loadable with ``--init``); the quantizers are then initialised from these
   weights (AdaQAT as fine-tuning);
2. exploration: every step trains at the current integer widths, and every
   ``bit_every``-th step updates the real-valued widths with the
   finite-difference + hardware-cost gradient (:mod:`sim.adaqat.core`) until
   all are frozen. ``per_layer=False``: one pair ``N_w``, ``N_a`` for the
   network; ``True``: one pair per layer;
3. fine-tuning at the frozen widths for the rest of ``epochs``.

``fixed="4/4"`` skips phase 2 (fixed-width QAT baseline). ``mac`` runs every
quantized layer's GEMMs (forward and both backward) on an emulated MAC.

Writes into ``out`` (:mod:`sim.results`: atomically, ``summary.json`` last):
``bits.csv`` (one row per step), ``bits.png`` (width trajectories),
``layers.csv`` (per-layer MACs and final widths), ``log.csv`` (one row per
epoch, as ``srmac train``), ``summary.csv`` (one results-table row),
``model.pt`` (QAT state dict + widths), ``float_model.pt`` (after
``pretrain_epochs``) and ``summary.json``.

Distributed: ``batch_size`` is the global batch, split over the ranks; DDP
averages the weight gradients, and the finite-difference losses are averaged
over the ranks before the width update, so every rank keeps the same widths.
Only rank 0 prints and writes files.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ref.outputs import csv_text

from ..devices import resolve_device
from ..loop import (
    LoopOptions,
    TrainingLoop,
    cosine_schedule,
    evaluate,
    is_float_mac,
    make_optimizer,
    open_data,
    param_digest,
    run_with_dist,
)
from ..models import build_model
from ..quant import make_layer_config
from ..results import RunFolder, figure_bytes, result_key, torch_bytes
from .core import (
    BitState,
    BitWidth,
    bitops,
    fd_gradients,
    fd_gradients_per_layer,
    hw_gradients,
    hw_gradients_per_layer,
    layer_macs,
    qat_model,
    set_mac,
)
from .quantizers import QUANTIZERS

__all__ = ["AdaQatOptions", "run", "parse_fixed", "load_float_init", "SUMMARY_FIELDS",
           "default_out", "Widths", "AdaQatLoop", "GRAD_CLIP"]

SUMMARY_FIELDS = ("model", "mode", "lambda", "bits_wa", "top1", "bitops", "explore_epochs",
                  "total_epochs", "mac", "quantizer")

#: Gradient-norm clip of every QAT step (weights and quantizer parameters together).
GRAD_CLIP = 1.0


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
class AdaQatOptions(LoopOptions):
    model: str = "cnn"
    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.02
    lam: float = 0.01
    fixed: str | None = None
    per_layer: bool = False
    bit_every: int = 1
    mac: str | None = None
    quantizer: str = "dorefa-pact"
    first_last_bits: int = 8
    init_bits: float = 8.0
    min_bits: float = 2.0
    max_bits: float = 8.0
    bit_lr: float = 0.5
    patience: int = 50
    init: str | None = None
    pretrain_epochs: int = 0

    def validate(self) -> None:
        super().validate()
        if self.bit_every < 1 or self.patience < 1:
            raise ValueError(f"--bit-every and --patience must be >= 1, got {self.bit_every}, "
                             f"{self.patience}")
        if self.pretrain_epochs < 0:
            raise ValueError(f"--pretrain-epochs must be >= 0, got {self.pretrain_epochs}")
        if not self.lam >= 0:
            raise ValueError(f"--lambda must be >= 0, got {self.lam}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"--quantizer must be one of {', '.join(QUANTIZERS)}, got "
                             f"{self.quantizer!r}")
        if not (self.first_last_bits == 0 or 1 <= self.first_last_bits <= 16):
            raise ValueError(f"--first-last-bits must be 0 (learned) or 1..16, got "
                             f"{self.first_last_bits}")
        if self.init is not None and not Path(self.init).is_file():
            raise ValueError(f"--init {self.init}: no such file (a float state dict, e.g. "
                             "float_model.pt written by --pretrain-epochs)")
        if self.mac_config is not None:
            make_layer_config(self.mac_config)
        if self.fixed is not None:
            parse_fixed(self.fixed)
            if self.per_layer:
                raise ValueError("--per-layer learns the widths; it cannot be combined with --fixed")
        else:  # BitWidth checks bounds, initial width, rate and patience
            self.bit_width("N_w")

    @property
    def mac_config(self) -> str | None:
        """The emulated MAC spec, or ``None`` for float GEMMs (``--mac fp32`` too)."""
        return None if is_float_mac(self.mac) else self.mac

    @property
    def end_bits(self) -> int | None:
        """Width of the first and last layers, or None when they learn like the others."""
        return self.first_last_bits or None

    def bit_width(self, name: str) -> BitWidth:
        return BitWidth(self.init_bits, self.min_bits, self.max_bits, self.bit_lr, self.patience,
                        name=name)


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


class Widths:
    """The learned widths: one pair for the network, or one pair per layer.

    ``w`` / ``a`` hold a :class:`BitWidth` per slot, ``None`` where nothing
    learns (a fixed layer, or no layer with that kind of width). Gradients are
    flat lists in the order of :meth:`all`: weight widths, then input widths.
    """

    def __init__(self, o: AdaQatOptions, layers, state: BitState):
        self.o, self.layers, self.state, self.per_layer = o, layers, state, o.per_layer
        if o.per_layer:
            self.w = [o.bit_width(f"N_w[{i}]") if m.learn_w else None for i, m in enumerate(layers)]
            self.a = [o.bit_width(f"N_a[{i}]") if m.learn_a else None for i, m in enumerate(layers)]
        else:
            self.w = [o.bit_width("N_w") if any(m.learn_w for m in layers) else None]
            self.a = [o.bit_width("N_a") if any(m.learn_a for m in layers) else None]
        if not self.all():
            raise ValueError(
                f"model {o.model} has no layer whose width can be learned: its first and last "
                f"layers stay at --first-last-bits {o.first_last_bits} and it has no other; use a "
                "deeper model (e.g. --depth 2) or --first-last-bits 0")
        self.apply()

    def all(self) -> list[BitWidth]:
        return [b for b in self.w + self.a if b is not None]

    @property
    def frozen(self) -> bool:
        return all(b.frozen for b in self.all())

    def apply(self) -> None:
        """Set the integer widths the quantizers use from the real ones."""
        if self.per_layer:
            for m, w, a in zip(self.layers, self.w, self.a, strict=True):
                if w is not None:
                    m.state.w_bits = w.bits
                if a is not None:
                    m.state.a_bits = a.bits
        else:
            if self.w[0] is not None:
                self.state.w_bits = self.w[0].bits
            if self.a[0] is not None:
                self.state.a_bits = self.a[0].bits

    def task_gradients(self, model, x, y) -> list[float]:
        """Finite-difference gradients, flat in the order of :meth:`all`."""
        if self.per_layer:
            g = fd_gradients_per_layer(model, x, y)
            return [gw for gw, _ in g if gw is not None] + [ga for _, ga in g if ga is not None]
        gw, ga = fd_gradients(model, self.state, x, y, self.state.w_bits, self.state.a_bits)
        return [g for g, b in ((gw, self.w[0]), (ga, self.a[0])) if b is not None]

    def hw_gradients(self) -> list[float]:
        """``dL_HW/dN`` at the current real widths, flat in the order of :meth:`all`."""
        if self.per_layer:
            hw = hw_gradients_per_layer(self.layers, [b.value if b else None for b in self.w],
                                        [b.value if b else None for b in self.a])
            return [g for g, _ in hw if g is not None] + [g for _, g in hw if g is not None]
        w, a = self.w[0], self.a[0]
        gw, ga = hw_gradients(self.layers, w.value if w else 0.0, a.value if a else 0.0)
        return [g for g, b in ((gw, w), (ga, a)) if b is not None]

    def update(self, task: list[float]) -> list[float]:
        """Step every width with ``task + lambda * dL_HW/dN``; returns those gradients."""
        grads = [t + self.o.lam * h for t, h in zip(task, self.hw_gradients(), strict=True)]
        for b, g in zip(self.all(), grads, strict=True):
            b.update(g)
        self.apply()
        return grads

    def mean_bits(self) -> tuple[float, float]:
        """MAC-weighted mean integer widths of the layers whose widths learn."""
        lw = [m for m in self.layers if m.learn_w]
        la = [m for m in self.layers if m.learn_a]
        w = sum(m.w_bits * m.macs for m in lw) / max(sum(m.macs for m in lw), 1)
        a = sum(m.a_bits * m.macs for m in la) / max(sum(m.macs for m in la), 1)
        return w, a


class AdaQatLoop(TrainingLoop):
    """The shared loop plus, after each step, AdaQAT's bit-width update (until all froze)."""

    def __init__(self, model, data, opt, *, o: AdaQatOptions, layers, state: BitState,
                 widths: Widths | None, **kw):
        super().__init__(model, data, opt, grad_clip=GRAD_CLIP, **kw)
        self.o, self.layers, self.state, self.widths = o, layers, state, widths
        self.quantizers = [q for m in layers for q in (m.wq, m.aq) if q is not None]
        self.explore_steps = 0 if widths is None else None
        self.bit_rows: list[dict] = []

    def after_update(self) -> None:
        for q in self.quantizers:
            q.keep_in_range()

    def after_step(self, xb, yb, loss: float) -> None:
        grads = None
        if self.explore_steps is None and self.step % self.o.bit_every == 0:
            # update the real-valued widths on this same batch; average the finite
            # differences over the ranks so that every rank takes the same step
            task = self.widths.task_gradients(self.model, xb, yb)
            task = [g / self.dist.world for g in self.dist.sum(task, self.device)]
            grads = self.widths.update(task)
            if self.widths.frozen:
                self.explore_steps = self.step
        self.bit_rows.append(self._bit_row(loss, grads))

    def postfix(self, loss: float, acc: float) -> dict:
        if self.o.per_layer:
            return {"loss": f"{loss:.3f}", "MBitOPs": f"{bitops(self.model) / 1e6:.3g}"}
        return {"loss": f"{loss:.3f}", "W": self.state.w_bits, "A": self.state.a_bits}

    def epoch_columns(self) -> dict:
        return {"bits_wa": self.bits_text(), "bitops": bitops(self.model)}

    def epoch_line(self, row: dict) -> str:
        return super().epoch_line(row) + f" | W/A {row['bits_wa']}"

    def emulated_macs(self) -> int:
        return sum(m._emu[0].macs for m in self.layers if m._emu)

    def reset_macs(self) -> None:
        for m in self.layers:
            if m._emu:
                m._emu[0].macs = 0

    def bits_text(self) -> str:
        if self.o.per_layer:
            w, a = self.widths.mean_bits()
            return f"{w:.2f}/{a:.2f}"
        return f"{self.state.w_bits}/{self.state.a_bits}"

    def _bit_row(self, loss: float, grads) -> dict:
        """One bits.csv row: network-wide columns, or per-layer ``n_w_<i>``, ``n_a_<i>``."""
        nan = float("nan")
        ep = (self.step - 1) // self.data.steps_per_epoch + 1
        wd = self.widths
        if wd is None or not self.o.per_layer:
            w = wd.w[0] if wd else None
            a = wd.a[0] if wd else None
            g = list(grads or [])
            gw = g.pop(0) if grads and w is not None else nan
            ga = g.pop(0) if grads and a is not None else nan
            return dict(step=self.step, epoch=ep, loss=loss,
                        n_w=w.value if w else self.state.w_bits,
                        n_a=a.value if a else self.state.a_bits,
                        bits_w=self.state.w_bits, bits_a=self.state.a_bits, grad_w=gw, grad_a=ga,
                        frozen_w=int(w.frozen) if w else 1, frozen_a=int(a.frozen) if a else 1)
        r = dict(step=self.step, epoch=ep, loss=loss, bitops=bitops(self.model),
                 frozen=sum(b.frozen for b in wd.all()), updated=int(grads is not None))
        for i, (w, a) in enumerate(zip(wd.w, wd.a, strict=True)):
            if w is not None:
                r[f"n_w_{i}"] = w.value
            if a is not None:
                r[f"n_a_{i}"] = a.value
        return r


def run(o: AdaQatOptions) -> dict:
    """Run AdaQAT (or the fixed-width baseline) as ``o`` says; returns the summary."""
    o.validate()
    kind = resolve_device(o.device, emulated=o.mac_config is not None)
    return run_with_dist(kind, _run, o, kind)


def _run(dist, o: AdaQatOptions, kind: str) -> dict:
    device = dist.device(kind)
    if o.batch_size % dist.world:
        raise ValueError(f"--batch-size {o.batch_size} must be a multiple of the world size "
                         f"{dist.world}")
    out = Path(o.out) if o.out else default_out(o)
    if not dist.lead:
        return _adaqat(dist, o, device, out, None)
    with RunFolder(out, "srmac adaqat") as folder:
        return _adaqat(dist, o, device, out, folder)


def _pretrain(dist, o: AdaQatOptions, model, data, device) -> list[dict]:
    opt = make_optimizer(model, o)
    loop = TrainingLoop(model, data, opt, dist=dist, device=device, epochs=o.pretrain_epochs,
                        progress=o.progress, epoch_offset=1000, title="float pretrain epoch")
    return loop.run(lambda text: print(f"srmac adaqat: {text}", flush=True))


def _adaqat(dist, o: AdaQatOptions, device, out: Path, folder) -> dict:
    data = open_data(o, dist.rank, dist.world, pin_memory=device.type == "cuda")
    torch.manual_seed(o.seed)
    model = build_model(o.model, **o.model_args(), classes=data.classes, in_ch=data.in_ch)
    if o.init:
        load_float_init(model, o.init, o.model)
    model.to(device)
    t0 = time.perf_counter()
    files: dict[str, bytes | str] = {}
    pre_rows, float_acc = [], None
    if o.pretrain_epochs:
        pre_rows = _pretrain(dist, o, model, data, device)
        float_acc = pre_rows[-1]["test_acc"]
        files["float_model.pt"] = torch_bytes(model.state_dict())
    elif o.init:
        _, correct, count = dist.sum(list(evaluate(model, data, dist, device)), device)
        float_acc = correct / count
    if float_acc is not None and dist.lead:
        print(f"srmac adaqat: float start ({'pre-trained' if o.pretrain_epochs else o.init}), "
              f"test top-1 {float_acc:.4f}", flush=True)

    state = BitState(*(parse_fixed(o.fixed) if o.fixed else (8, 8)))
    model = qat_model(model, state, per_layer=o.per_layer, quantizer=o.quantizer,
                      first_last_bits=o.end_bits)
    layers = layer_macs(model, data.input_shape)
    widths = None if o.fixed else Widths(o, layers, state)
    model.train()
    # the first forward pass initialises the quantizers (from the float start if any);
    # under DDP, rank 0's values are broadcast when the model is wrapped
    with torch.no_grad():
        model(data.first_batch()[0].to(device))
    if o.mac_config is not None:
        set_mac(model, o.mac_config, seed=o.seed)
    quant_params = [p for m in layers for q in (m.wq, m.aq) if q is not None
                    for p in q.parameters()]
    opt = make_optimizer(model, o, no_decay=quant_params)
    loop = AdaQatLoop(model, data, opt, o=o, layers=layers, state=state, widths=widths,
                      dist=dist, device=device, epochs=o.epochs, progress=o.progress,
                      sched=cosine_schedule(opt, o, o.epochs * data.steps_per_epoch))
    mode = f"fixed {o.fixed}" if o.fixed else ("adaqat per layer" if o.per_layer else "adaqat")
    if o.mac_config is not None:
        mode += f", GEMMs on {o.mac_config}"
    if dist.lead:
        ends = f"first/last layers at {o.end_bits} bits" if o.end_bits else "all layers learn"
        print(f"srmac adaqat: {o.model}, {o.dataset}, {mode}, lambda {o.lam:g}, {o.quantizer}, "
              f"{ends}, {data.n_train} train / {data.n_test} test samples, batch {o.batch_size}, "
              f"{o.epochs} epoch(s), {dist.world} process(es), device {device}, out {out}",
              flush=True)
    epochs_log = loop.run(lambda text: print(f"srmac adaqat: {text}", flush=True))
    explore_steps = loop.step if loop.explore_steps is None else loop.explore_steps
    summary = _summary(dist, o, out, device, model, layers, widths, loop, epochs_log, pre_rows,
                       float_acc, explore_steps, data.steps_per_epoch, time.perf_counter() - t0)
    if folder is None:
        return summary
    names = [m.name for m in layers] if o.per_layer else None
    files.update({
        "bits.csv": csv_text(loop.bit_rows),
        "layers.csv": csv_text(summary["layers"]),
        "log.csv": csv_text(epochs_log),
        "summary.csv": csv_text([summary["row"]], SUMMARY_FIELDS),
        "bits.png": _plot(loop.bit_rows, f"{o.model}, {mode}, lambda {o.lam:g}", names),
        "model.pt": torch_bytes(dict(state_dict=model.state_dict(), layers=summary["layers"],
                                     options=asdict(o))),
    })
    summary = folder.finish(files, summary)
    row = summary["row"]
    print("srmac adaqat: " + ", ".join(f"{k} {row[k]}" for k in SUMMARY_FIELDS))
    print(f"srmac adaqat: wrote {out}/{{{', '.join(sorted(files))}, summary.json}}", flush=True)
    return summary


def _summary(dist, o, out, device, model, layers, widths, loop, epochs_log, pre_rows, float_acc,
             explore_steps, steps_per_epoch, time_s) -> dict:
    layer_rows = [dict(index=i, name=m.name, macs=m.macs, w_bits=m.w_bits,
                       a_bits=m.a_bits if m.quant_input else "", learn_w=int(m.learn_w),
                       learn_a=int(m.learn_a),
                       signed_input=int(bool(m.aq is not None and m.aq.signed)))
                  for i, m in enumerate(layers)]
    if widths is not None and o.per_layer:
        for r, w, a in zip(layer_rows, widths.w, widths.a, strict=True):
            r["frozen_w_at"] = "" if w is None or w.frozen_at is None else w.frozen_at
            r["frozen_a_at"] = "" if a is None or a.frozen_at is None else a.frozen_at
    final = epochs_log[-1]
    row = {"model": o.model,
           "mode": "fixed" if o.fixed else ("adaqat-layer" if o.per_layer else "adaqat"),
           "lambda": o.lam, "bits_wa": loop.bits_text(), "top1": round(final["test_acc"], 4),
           "bitops": bitops(model), "explore_epochs": round(explore_steps / steps_per_epoch, 2),
           "total_epochs": o.epochs + o.pretrain_epochs, "mac": o.mac_config or "float",
           "quantizer": o.quantizer}
    # every rank must hold the same weights and widths (DDP + averaged finite differences)
    rank_states = dist.gather([param_digest(model), [r["w_bits"] for r in layer_rows],
                               [r["a_bits"] for r in layer_rows],
                               [b.value for b in widths.all()] if widths else []])
    w0 = widths.w[0] if widths is not None and not o.per_layer else None
    a0 = widths.a[0] if widths is not None and not o.per_layer else None
    return dict(options=asdict(o), result_key=result_key(o), out=str(out), world_size=dist.world,
                device=str(device),
                rank_states=rank_states,
                ranks_in_sync=all(r == rank_states[0] for r in rank_states),
                steps=loop.step, steps_per_epoch=steps_per_epoch, explore_steps=explore_steps,
                float_pretrain_top1=float_acc, pretrain_epochs_log=pre_rows,
                frozen_w_at=w0.frozen_at if w0 else None, frozen_a_at=a0.frozen_at if a0 else None,
                frozen_w_how=w0.frozen_how if w0 else None,
                frozen_a_how=a0.frozen_how if a0 else None,
                all_frozen=widths is None or widths.frozen,
                layer_macs=[m.macs for m in layers], layers=layer_rows,
                loss_scale=loop.opt.loss_scale, skipped_steps=loop.opt.skipped,
                epochs=epochs_log, final=final, row=row, time_s=time_s)


def _plot(rows: list[dict], title: str, layer_names: list[str] | None) -> bytes:
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
    return figure_bytes(fig)
