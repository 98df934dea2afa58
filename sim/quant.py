"""Quantizers and the per-layer configuration of the three GEMMs.

A layer of the simulator runs three GEMMs, each an emulated MAC array
described by a :class:`ref.MacConfig`:

* ``fwd``: ``y = x @ W^T`` (inputs: activations, weights);
* ``bwd_input``: ``dx = dy @ W`` (inputs: output gradients, weights);
* ``bwd_weight``: ``dW = dy^T @ x`` (inputs: output gradients, activations).

Before a GEMM its float operands are rounded to the GEMM's input format by a
:class:`Quantizer` (one for weights, one for activations, one for gradients):
a rounding (rn, rz or sr with r random bits) and optionally a storage format
that the value passes through first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ref
from ref.codec import QUANTIZE_ROUNDINGS
from ref.formats import FloatFormat, parse_format

__all__ = ["Quantizer", "LayerConfig", "parse_quantizer", "make_layer_config"]


@dataclass(frozen=True)
class Quantizer:
    """How a float tensor becomes the codes of a GEMM input format.

    Parameters
    ----------
    rounding : {"rn", "rz", "sr"}
        Rounding into the format; ``"sr"`` needs ``rbits`` (1..30).
    rbits : int or None
        Random bits of SR.
    fmt : FloatFormat, str or None
        Optional storage format: the value is rounded to ``fmt`` (with
        ``rounding``) and then encoded round-to-nearest into the GEMM's input
        format. None (default): rounded straight into the GEMM's input format.
    """

    rounding: str = "rn"
    rbits: int | None = None
    fmt: FloatFormat | None = None

    def __post_init__(self):
        if self.rounding not in QUANTIZE_ROUNDINGS:
            raise ValueError(
                f"quantizer rounding must be one of {QUANTIZE_ROUNDINGS}, got {self.rounding!r}"
            )
        if self.rounding == "sr":
            if not isinstance(self.rbits, int) or not 1 <= self.rbits <= ref.MAX_RBITS:
                raise ValueError(
                    f"quantizer rounding 'sr' needs rbits in 1..{ref.MAX_RBITS}, got {self.rbits!r}"
                )
        elif self.rbits not in (None, 0):
            raise ValueError(f"quantizer rbits={self.rbits!r} is only meaningful with 'sr'")
        else:
            object.__setattr__(self, "rbits", None)
        if self.fmt is not None:
            object.__setattr__(self, "fmt", parse_format(self.fmt))

    def encode(self, x, fmt: FloatFormat, seed: int):
        """Codes (int64 tensor) of float tensor ``x`` in ``fmt``; ``seed`` feeds SR."""
        kw = {"rbits": self.rbits, "seed": seed} if self.rounding == "sr" else {}
        if self.fmt is None or self.fmt == fmt:
            return ref.encode(x, fmt, self.rounding, **kw)
        stored = ref.decode(ref.encode(x, self.fmt, self.rounding, **kw), self.fmt)
        return ref.encode(stored, fmt, "rn")

    def spec(self) -> str:
        parts = [self.fmt.spec()] if self.fmt is not None else []
        parts.append(self.rounding)
        if self.rbits:
            parts.append(str(self.rbits))
        return ":".join(parts)


def parse_quantizer(text: str | Quantizer) -> Quantizer:
    """Read ``rn``, ``rz``, ``sr:8``, or with a storage format ``e4m3:sr:8``."""
    if isinstance(text, Quantizer):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            f"quantizer spec must be a non-empty string like 'rn' or 'sr:8', got {text!r}")
    tokens = [t.strip().lower() for t in text.split(":") if t.strip()]
    fmt_tokens, rounding, rbits = [], None, None
    for tok in tokens:
        if rounding is None and tok in QUANTIZE_ROUNDINGS:
            rounding = tok
        elif rounding is not None and tok.isdigit() and rbits is None:
            rbits = int(tok)
        elif rounding is None:
            fmt_tokens.append(tok)
        else:
            raise ValueError(
                f"cannot parse quantizer spec {text!r} at {tok!r}: "
                "expected [<format>:]rn|rz|sr:<rbits>"
            )
    if rounding is None:
        raise ValueError(f"quantizer spec {text!r} has no rounding: use rn, rz or sr:<rbits>")
    fmt = parse_format(":".join(fmt_tokens)) if fmt_tokens else None
    return Quantizer(rounding, rbits, fmt)


@dataclass(frozen=True)
class LayerConfig:
    """The three GEMM MACs of a layer and its three operand quantizers."""

    fwd: ref.MacConfig
    bwd_input: ref.MacConfig
    bwd_weight: ref.MacConfig
    weight: Quantizer = field(default_factory=Quantizer)
    act: Quantizer = field(default_factory=Quantizer)
    grad: Quantizer = field(default_factory=Quantizer)

    def __post_init__(self):
        for name in ("fwd", "bwd_input", "bwd_weight"):
            object.__setattr__(self, name, ref.parse_mac(getattr(self, name)))
        for name in ("weight", "act", "grad"):
            object.__setattr__(self, name, parse_quantizer(getattr(self, name)))

    def to_dict(self) -> dict:
        return {
            "fwd": self.fwd.spec(),
            "bwd_input": self.bwd_input.spec(),
            "bwd_weight": self.bwd_weight.spec(),
            "weight": self.weight.spec(),
            "act": self.act.spec(),
            "grad": self.grad.spec(),
        }


def make_layer_config(mac, *, bwd_input=None, bwd_weight=None, weight="rn", act="rn",
                      grad="rn") -> LayerConfig:
    """One configuration for a whole model: ``mac`` for all three GEMMs unless overridden.

    ``mac`` (and the overrides) are :class:`ref.MacConfig` or specs such as
    ``"e5m2:e6m5:sr_eager:4"``; quantizers are :class:`Quantizer` or specs
    such as ``"sr:8"``.
    """
    if isinstance(mac, LayerConfig):
        return mac
    fwd = ref.parse_mac(mac)
    return LayerConfig(
        fwd=fwd,
        bwd_input=ref.parse_mac(bwd_input) if bwd_input is not None else fwd,
        bwd_weight=ref.parse_mac(bwd_weight) if bwd_weight is not None else fwd,
        weight=weight, act=act, grad=grad,
    )
