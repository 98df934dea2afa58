"""``LowPrecisionSGD``: SGD with momentum whose stored state is rounded to a format.

Per parameter ``w`` (index ``i`` in the parameter list) and step ``t``::

    g = grad / loss_scale + weight_decay * w          (float64)
    m = Q_m(momentum * m + g)                          (skipped when momentum == 0)
    w = Q_w(w - lr * m)

``Q`` rounds to ``fmt`` (``momentum_fmt`` for ``m``) with ``rounding`` (rn, rz,
or sr with ``rbits`` random bits) through :func:`ref.encode` / :func:`ref.decode`; SR draws its
bits from seed ``derive_seed(seed, t, i, stream)``, identical on every
distributed rank, so replicas stay bit-identical. The update is computed in
float64 and rounded once, so SR sees the exact update (to float64 precision).

Loss scaling: multiply the loss by :meth:`scale_loss` before ``backward``;
``step`` divides the gradients back. With ``dynamic_loss_scale`` a step whose
gradients hold inf/NaN is skipped and the scale halves; after
``growth_interval`` good steps it doubles.
"""

from __future__ import annotations

import math

import torch

import ref
from ref.codec import QUANTIZE_ROUNDINGS

from .seeds import Stream, derive_seed

__all__ = ["LowPrecisionSGD"]


def _check_fmt(fmt) -> ref.FloatFormat:
    fmt = ref.parse_format(fmt)
    # Parameters stay float32 tensors: every value of fmt must be a float32.
    if fmt.precision > 24 or fmt.emax > 127 or fmt.emin - fmt.man_bits < -149:
        raise ValueError(f"optimizer format {fmt.name} does not fit float32: use at most e8m23")
    return fmt


class LowPrecisionSGD(torch.optim.Optimizer):
    """SGD + momentum with weights and momentum rounded to a format (see module doc).

    Parameters
    ----------
    lr, momentum, weight_decay : float
    fmt : str or FloatFormat
        Format of the weights after each update (default fp32).
    momentum_fmt : str or FloatFormat or None
        Format of the momentum buffer (default: ``fmt``).
    rounding : {"rn", "rz", "sr"}
    rbits : int or None
        Random bits for ``"sr"``.
    seed : int
        Base seed of the SR bits.
    loss_scale : float
        Initial loss scale (1 = none).
    dynamic_loss_scale : bool
    growth_interval : int
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, *,
                 fmt="fp32", momentum_fmt=None, rounding: str = "rn", rbits: int | None = None,
                 seed: int = 0, loss_scale: float = 1.0, dynamic_loss_scale: bool = False,
                 growth_interval: int = 200):
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if rounding not in QUANTIZE_ROUNDINGS:
            raise ValueError(
                f"optimizer rounding must be one of {QUANTIZE_ROUNDINGS}, got {rounding!r}")
        if rounding == "sr" and not (isinstance(rbits, int) and 1 <= rbits <= ref.MAX_RBITS):
            raise ValueError(
                f"optimizer rounding 'sr' needs rbits in 1..{ref.MAX_RBITS}, got {rbits!r}")
        if rounding != "sr":
            rbits = None
        if not (loss_scale > 0 and math.isfinite(loss_scale)):
            raise ValueError(f"loss scale must be a positive finite number, got {loss_scale}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.fmt = _check_fmt(fmt)
        self.momentum_fmt = _check_fmt(momentum_fmt) if momentum_fmt is not None else self.fmt
        self.rounding, self.rbits, self.seed = rounding, rbits, int(seed)
        self.loss_scale = float(loss_scale)
        self.dynamic_loss_scale = bool(dynamic_loss_scale)
        self.growth_interval = int(growth_interval)
        self.steps = 0  # updates applied
        self.skipped = 0  # steps skipped for non-finite gradients
        self._good = 0

    # ---- loss scaling ---------------------------------------------------------
    def scale_loss(self, loss):
        return loss * self.loss_scale if self.loss_scale != 1.0 else loss

    def _grads_finite(self) -> bool:
        return all(bool(torch.isfinite(p.grad).all())
                   for g in self.param_groups for p in g["params"] if p.grad is not None)

    # ---- rounding ---------------------------------------------------------------
    def _round(self, x, fmt, stream: int, index: int):
        if fmt == ref.FP32 and self.rounding == "rn":
            return x.to(torch.float32)  # float32 RN is the FP32 RN rounding (same overflow rule)
        kw = {}
        if self.rounding == "sr":
            kw = {"rbits": self.rbits, "seed": derive_seed(self.seed, self.steps, index, stream)}
        # decode(encode(...)) is ref.quantize; float64 -> float32 is exact as fmt fits float32.
        return ref.decode(ref.encode(x, fmt, self.rounding, **kw), fmt).to(torch.float32)

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
        index = 0
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                i, index = index, index + 1
                if p.grad is None:
                    continue
                w = p.detach().to(torch.float64)
                g = p.grad.detach().to(torch.float64) / self.loss_scale
                if wd:
                    g = g + wd * w
                if mom:
                    state = self.state[p]
                    buf = state.get("momentum")
                    m = g if buf is None else mom * buf.to(torch.float64) + g
                    m = self._round(m, self.momentum_fmt, Stream.OPT_MOMENTUM, i)
                    state["momentum"] = m
                    g = m.to(torch.float64)
                p.copy_(self._round(w - lr * g, self.fmt, Stream.OPT_WEIGHT, i))
        self.steps += 1
        if self.dynamic_loss_scale:
            self._good += 1
            if self._good >= self.growth_interval:
                self.loss_scale *= 2
                self._good = 0
        return True

    def state_dict(self):
        sd = super().state_dict()
        sd["lowp"] = dict(loss_scale=self.loss_scale, steps=self.steps, skipped=self.skipped,
                          good=self._good)
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        extra = state_dict.pop("lowp", None)
        super().load_state_dict(state_dict)
        if extra:
            self.loss_scale, self.steps = extra["loss_scale"], extra["steps"]
            self.skipped, self._good = extra["skipped"], extra["good"]
