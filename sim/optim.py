"""Low-precision optimizers: any ``torch.optim`` optimizer with rounded weights and state.

:class:`LowPrecisionOptimizer` wraps an optimizer (SGD, Adam, AdamW, ...). Per
step, for every parameter ``w`` (index ``i`` in the parameter list)::

    g      = grad / loss_scale                              (float64)
    w', s' = the wrapped optimizer's update of (w, s) by g  (float64)
    s      = Q_state(s')                                     every state tensor
    w      = Q_w(w')                                         (or with Kahan / a master copy)

The wrapped optimizer runs on float64 copies of the stored weights and state,
so each update is computed exactly (to float64) and rounded once. ``Q``
rounds to a format (``fmt`` for the weights, ``state_fmt`` for moments and
momentum buffers) with ``rn``, ``rz`` or ``sr`` with ``rbits`` random bits,
through :func:`ref.encode`. SR draws its bits from seed ``derive_seed(seed,
step, i, stream[, state key])``, the same on every distributed rank, so
replicas stay bit-identical.

Options:

* ``kahan=True``: compensated update. A buffer ``c`` (float32) keeps what the
  rounding of ``w`` lost; the next step adds it back::

      y = (w' - w) + c;   t = Q_w(w + y);   c = (w + y) - t;   w = t

  so updates far below half an ulp of ``w`` accumulate instead of vanishing
  under RN.
* ``master=True``: an fp32 master copy. The wrapped optimizer updates float32
  master weights; the model's weights are ``Q_w(master)`` after each step
  (mixed-precision training). Excludes ``kahan``.
* Loss scaling: multiply the loss by :meth:`scale_loss` before ``backward``;
  ``step`` divides the gradients back. With ``dynamic_loss_scale`` a step
  whose gradients hold inf/NaN is skipped (``step()`` returns False) and the
  scale halves; after ``growth_interval`` good steps it doubles.

:class:`LowPrecisionSGD` is the wrapper around ``torch.optim.SGD`` behind
``srmac train --opt-fmt``; :func:`build_optimizer` builds any of them by name.
"""

from __future__ import annotations

import math

import torch

import ref
from ref.codec import QUANTIZE_ROUNDINGS

from .seeds import Stream, derive_seed

__all__ = ["LowPrecisionOptimizer", "LowPrecisionSGD", "build_optimizer", "OPTIMIZERS",
           "check_opt_format"]

#: Optimizer names of :func:`build_optimizer`.
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def check_opt_format(fmt, what: str = "weight") -> ref.FloatFormat:
    """``fmt`` parsed, if parameters (float32 tensors) can hold its values; else ValueError."""
    fmt = ref.parse_format(fmt)
    # Parameters stay float32 tensors: every value of fmt must be a float32.
    if fmt.precision > 24 or fmt.emax > 127 or fmt.emin - fmt.man_bits < -149:
        raise ValueError(f"optimizer {what} format {fmt.name} does not fit float32: "
                         "use at most e8m23")
    return fmt


class LowPrecisionOptimizer(torch.optim.Optimizer):
    """Make ``optimizer`` low-precision (see the module doc).

    The wrapper takes over the wrapped optimizer's parameter list (it steps
    float64 copies); use the wrapper for ``step``, ``zero_grad``,
    ``state_dict`` and learning-rate schedulers (``param_groups`` is shared).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        A freshly built optimizer over the model's parameters.
    fmt, state_fmt : str or FloatFormat
        Formats of the weights and of the optimizer state (default: ``fmt``).
    rounding : {"rn", "rz", "sr"}; rbits : int (for "sr"); seed : int
    kahan : bool; master : bool
    loss_scale : float; dynamic_loss_scale : bool; growth_interval : int
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, fmt="fp32", state_fmt=None,
                 rounding: str = "rn", rbits: int | None = None, seed: int = 0,
                 kahan: bool = False, master: bool = False, loss_scale: float = 1.0,
                 dynamic_loss_scale: bool = False, growth_interval: int = 200):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"LowPrecisionOptimizer wraps a torch.optim optimizer, got "
                             f"{type(optimizer).__name__}")
        if rounding not in QUANTIZE_ROUNDINGS:
            raise ValueError(
                f"optimizer rounding must be one of {QUANTIZE_ROUNDINGS}, got {rounding!r}")
        if rounding == "sr" and not (isinstance(rbits, int) and 1 <= rbits <= ref.MAX_RBITS):
            raise ValueError(
                f"optimizer rounding 'sr' needs rbits in 1..{ref.MAX_RBITS}, got {rbits!r}")
        if kahan and master:
            raise ValueError("kahan=True compensates the rounding of low-precision weights; with "
                             "master=True the fp32 master copy keeps them: choose one")
        if not (loss_scale > 0 and math.isfinite(loss_scale)):
            raise ValueError(f"loss scale must be a positive finite number, got {loss_scale}")
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        super().__init__(self.params, {})
        self.optimizer = optimizer
        self.fmt = check_opt_format(fmt, "weight")
        self.state_fmt = check_opt_format(state_fmt, "state") if state_fmt is not None else self.fmt
        self.rounding, self.rbits = rounding, (rbits if rounding == "sr" else None)
        self.seed, self.kahan, self.master = int(seed), bool(kahan), bool(master)
        self.loss_scale = float(loss_scale)
        self.dynamic_loss_scale = bool(dynamic_loss_scale)
        self.growth_interval = int(growth_interval)
        self.steps = 0  # updates applied
        self.skipped = 0  # steps skipped for non-finite gradients
        self._good = 0
        # The wrapped optimizer steps float64 copies (float32 masters with master=True).
        wdtype = torch.float32 if self.master else torch.float64
        self.work = [p.detach().to(wdtype).clone() for p in self.params]
        self.comp = [torch.zeros_like(p, dtype=torch.float32) for p in self.params] if kahan else None
        self._index = {id(p): i for i, p in enumerate(self.params)}
        old_state = dict(optimizer.state)
        optimizer.state.clear()
        for group in optimizer.param_groups:
            for j, p in enumerate(group["params"]):
                w = self.work[self._index[id(p)]]
                group["params"][j] = w
                if p in old_state:
                    optimizer.state[w] = {k: v.to(wdtype) if torch.is_tensor(v) and v.shape == p.shape
                                          else v for k, v in old_state[p].items()}
        self.defaults = optimizer.defaults
        with torch.no_grad():  # the model's weights start in fmt
            for i, p in enumerate(self.params):
                p.copy_(self._round(self.work[i].to(torch.float64), self.fmt, Stream.OPT_WEIGHT,
                                    i, 1))  # key 1: not the words of step 0's rounding

    # param_groups and state are the wrapped optimizer's (schedulers change its lr), also
    # after its load_state_dict replaces them; torch.optim.Optimizer.__init__ sets its own first.
    def _delegate(name):
        def get(self):
            inner = self.__dict__.get("optimizer")
            return getattr(inner, name) if inner is not None else self.__dict__["_own_" + name]

        def set(self, value):
            inner = self.__dict__.get("optimizer")
            if inner is not None:
                setattr(inner, name, value)
            else:
                self.__dict__["_own_" + name] = value

        return property(get, set)

    param_groups = _delegate("param_groups")
    state = _delegate("state")
    del _delegate

    # ---- loss scaling ---------------------------------------------------------
    def scale_loss(self, loss):
        return loss * self.loss_scale if self.loss_scale != 1.0 else loss

    def _grads_finite(self) -> bool:
        return all(bool(torch.isfinite(p.grad).all()) for p in self.params if p.grad is not None)

    # ---- rounding ---------------------------------------------------------------
    def _round(self, x, fmt, stream: int, index: int, key: int):
        """``x`` (float64) rounded to ``fmt``: a float64 tensor of values of ``fmt``."""
        if fmt == ref.FP32 and self.rounding == "rn":
            return x.to(torch.float32).to(torch.float64)  # float32 RN is FP32 RN
        kw = {}
        if self.rounding == "sr":
            kw = {"rbits": self.rbits,
                  "seed": derive_seed(self.seed, self.steps, index, stream, key)}
        return ref.decode(ref.encode(x, fmt, self.rounding, **kw), fmt)

    def _round_state(self, i: int, w) -> None:
        state = self.optimizer.state.get(w, {})
        for n, key in enumerate(sorted(state)):
            v = state[key]
            if torch.is_tensor(v) and v.is_floating_point() and v.shape == w.shape and v.dim():
                stream = Stream.OPT_MOMENTUM if key == "momentum_buffer" else Stream.OPT_STATE
                v.copy_(self._round(v.to(torch.float64), self.state_fmt, stream, i, n))

    def param_state(self, p) -> dict:
        """The wrapped optimizer's state of model parameter ``p`` (values of ``state_fmt``)."""
        return self.optimizer.state.get(self.work[self._index[id(p)]], {})

    def zero_grad(self, set_to_none: bool = True):
        for p in self.params:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def add_param_group(self, param_group):
        if getattr(self, "optimizer", None) is None:  # during torch.optim.Optimizer.__init__
            return super().add_param_group(param_group)
        raise NotImplementedError("add the group to the optimizer before wrapping it")

    @torch.no_grad()
    def step(self, closure=None):
        """Apply one update; returns False when it was skipped (non-finite gradients)."""
        if closure is not None:
            with torch.enable_grad():
                closure()
        if self.dynamic_loss_scale and not self._grads_finite():
            self.loss_scale /= 2
            self.skipped += 1
            self._good = 0
            return False
        old = []
        for p, w in zip(self.params, self.work, strict=True):
            if p.grad is None:
                w.grad = None
                old.append(None)
                continue
            w.grad = p.grad.detach().to(w.dtype) / self.loss_scale
            if not self.master:
                w.copy_(p.detach())  # the stored weight (float64 holds it exactly)
            old.append(w.detach().to(torch.float64).clone() if self.kahan else None)
        self.optimizer.step()
        for i, (p, w) in enumerate(zip(self.params, self.work, strict=True)):
            if p.grad is None:
                continue
            self._round_state(i, w)
            new = w.to(torch.float64)
            if self.kahan:
                s = old[i] + ((new - old[i]) + self.comp[i].to(torch.float64))
                t = self._round(s, self.fmt, Stream.OPT_WEIGHT, i, 0)
                self.comp[i].copy_(s - t)
            else:
                t = self._round(new, self.fmt, Stream.OPT_WEIGHT, i, 0)
            p.copy_(t)
            w.grad = None
        self.steps += 1
        if self.dynamic_loss_scale:
            self._good += 1
            if self._good >= self.growth_interval:
                self.loss_scale *= 2
                self._good = 0
        return True

    def state_dict(self):
        extra = dict(loss_scale=self.loss_scale, steps=self.steps, skipped=self.skipped,
                     good=self._good)
        if self.master:
            extra["master"] = [w.clone() for w in self.work]
        if self.kahan:
            extra["comp"] = [c.clone() for c in self.comp]
        return {"optimizer": self.optimizer.state_dict(), "lowp": extra}

    def load_state_dict(self, state_dict):
        self.optimizer.load_state_dict(state_dict["optimizer"])
        extra = state_dict["lowp"]
        self.loss_scale, self.steps = extra["loss_scale"], extra["steps"]
        self.skipped, self._good = extra["skipped"], extra["good"]
        with torch.no_grad():
            for name, bufs in (("master", self.work), ("comp", self.comp)):
                for b, v in zip(bufs or [], extra.get(name, []), strict=False):
                    b.copy_(v)


class LowPrecisionSGD(LowPrecisionOptimizer):
    """``torch.optim.SGD`` (momentum, weight decay) with weights in ``fmt`` and the momentum
    buffer in ``momentum_fmt`` (default ``fmt``): see :class:`LowPrecisionOptimizer`."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, *,
                 fmt="fp32", momentum_fmt=None, rounding: str = "rn", rbits: int | None = None,
                 seed: int = 0, kahan: bool = False, master: bool = False,
                 loss_scale: float = 1.0, dynamic_loss_scale: bool = False,
                 growth_interval: int = 200):
        _check_hyper(lr, momentum, weight_decay)
        super().__init__(torch.optim.SGD(params, lr=lr, momentum=momentum,
                                         weight_decay=weight_decay),
                         fmt=fmt, state_fmt=momentum_fmt, rounding=rounding, rbits=rbits,
                         seed=seed, kahan=kahan, master=master, loss_scale=loss_scale,
                         dynamic_loss_scale=dynamic_loss_scale, growth_interval=growth_interval)


def _check_hyper(lr, momentum, weight_decay):
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if not weight_decay >= 0:
        raise ValueError(f"weight decay must be >= 0, got {weight_decay}")


def build_optimizer(params, name: str = "sgd", *, lr: float, momentum: float = 0.9,
                    weight_decay: float = 0.0, betas=(0.9, 0.999), **lowp) -> LowPrecisionOptimizer:
    """``sgd`` (with ``momentum``), ``adam`` or ``adamw`` (with ``betas``), wrapped.

    ``lowp``: the keyword arguments of :class:`LowPrecisionOptimizer` (``fmt``,
    ``state_fmt``, ``rounding``, ``rbits``, ``seed``, ``kahan``, ``master``,
    ``loss_scale``, ``dynamic_loss_scale``).
    """
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    _check_hyper(lr, momentum if key == "sgd" else 0.0, weight_decay)
    if key == "sgd":
        inner = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        inner = OPTIMIZERS[key](params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    return LowPrecisionOptimizer(inner, **lowp)
