"""Operand roundings and the per-layer configuration of the three GEMMs.

A layer of the simulator runs three GEMMs, each an emulated MAC array
described by a :class:`ref.MacConfig`:

* ``fwd``: ``y = x @ W^T`` (inputs: activations, weights);
* ``bwd_input``: ``dx = dy @ W`` (inputs: output gradients, weights);
* ``bwd_weight``: ``dW = dy^T @ x`` (inputs: output gradients, activations).

Before a GEMM its float operands are rounded to the GEMM's input format by a
:class:`QuantSpec` (one for weights, one for activations, one for gradients):
a rounding (rn, rz or sr with r random bits) and optionally a storage format
that the value is rounded to first (the tensor "as stored"), then carried
exactly (or to nearest) into each GEMM's input format.

(The ``nn.Module`` that rounds a tensor between layers is :class:`sim.Quantizer`.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import ref
from ref.codec import QUANTIZE_ROUNDINGS
from ref.formats import FloatFormat, parse_format

__all__ = ["QuantSpec", "LayerConfig", "parse_quantizer", "make_layer_config", "fp8_config"]


@dataclass(frozen=True)
class QuantSpec:
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

    def _sr_kwargs(self, seed: int, positions) -> dict:
        if self.rounding != "sr":
            return {}
        if positions is None:
            return {"rbits": self.rbits, "seed": seed}
        from .seeds import sr_words

        return {"rbits": self.rbits, "rand": sr_words(seed, positions, self.rbits)}

    def round_codes(self, x, fmt: FloatFormat, seed: int, positions=None):
        """Codes of ``x`` rounded into ``fmt`` with this rounding (``self.fmt`` ignored).

        ``seed`` feeds SR: element ``n`` (row-major) takes the word
        ``ref.encode(..., seed=seed)`` gives element ``n``, or, with
        ``positions`` (an int64 tensor of ``x``'s shape), element
        ``positions[n]`` (see :func:`sim.seeds.sr_words`).
        """
        return ref.encode(x, fmt, self.rounding, **self._sr_kwargs(seed, positions))

    def round_values(self, x, seed: int, positions=None):
        """``x`` rounded to this spec's (storage) format, as a tensor of ``x``'s dtype."""
        if self.fmt is None:
            raise ValueError(f"quantizer {self.spec()!r} needs a format to round to, "
                             "e.g. 'e4m3:rn' or 'e5m2:sr:8'")
        vals = ref.quantize(x, self.fmt, self.rounding, **self._sr_kwargs(seed, positions))
        if vals.dtype != x.dtype:  # ref.quantize widens when the format does not fit
            raise ValueError(f"{self.fmt.name} values are not all {x.dtype} values: quantize "
                             "a tensor of a wider dtype (e.g. float32)")
        return vals

    def encode(self, x, fmt: FloatFormat, seed: int, positions=None):
        """Codes (int64 tensor) of float tensor ``x`` in GEMM input format ``fmt``.

        Without a storage format: rounded straight into ``fmt``. With one: rounded
        into the storage format, then encoded to nearest into ``fmt`` (exact when
        ``fmt`` holds every stored value, as E5M3 holds E4M3 and E5M2).
        """
        if self.fmt is None or self.fmt == fmt:
            return self.round_codes(x, fmt, seed, positions)
        stored = ref.decode(self.round_codes(x, self.fmt, seed, positions), self.fmt)
        return ref.encode(stored, fmt, "rn")

    def spec(self) -> str:
        parts = [self.fmt.spec()] if self.fmt is not None else []
        parts.append(self.rounding)
        if self.rbits:
            parts.append(str(self.rbits))
        return ":".join(parts)


def parse_quantizer(text: str | QuantSpec) -> QuantSpec:
    """Read ``rn``, ``rz``, ``sr:8``, or with a storage format ``e4m3:sr:8``."""
    if isinstance(text, QuantSpec):
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
    return QuantSpec(rounding, rbits, fmt)


@dataclass(frozen=True)
class LayerConfig:
    """The three GEMM MACs of a layer and its three operand quantizers.

    For :class:`sim.QMatMul` (``a @ b`` of two activations) ``act`` rounds
    ``a``, ``weight`` rounds ``b``, and ``bwd_input`` / ``bwd_weight`` compute
    the gradients of ``a`` / ``b``.
    """

    fwd: ref.MacConfig
    bwd_input: ref.MacConfig
    bwd_weight: ref.MacConfig
    weight: QuantSpec = field(default_factory=QuantSpec)
    act: QuantSpec = field(default_factory=QuantSpec)
    grad: QuantSpec = field(default_factory=QuantSpec)

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

    _FIELDS = ("fwd", "bwd_input", "bwd_weight", "weight", "act", "grad")

    def spec(self) -> str:
        """One string that :meth:`from_spec` reads back (``;``-separated, in field order)."""
        return ";".join(getattr(self, f).spec() for f in self._FIELDS)

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def from_spec(text: str) -> LayerConfig:
        """The configuration written by :meth:`spec` (cached: the ops read it every call)."""
        parts = text.split(";")
        if len(parts) != len(LayerConfig._FIELDS):
            raise ValueError(f"layer config spec needs {len(LayerConfig._FIELDS)} ';'-separated "
                             f"fields ({', '.join(LayerConfig._FIELDS)}), got {text!r}")
        return LayerConfig(*parts)


def make_layer_config(mac, *, bwd_input=None, bwd_weight=None, weight="rn", act="rn",
                      grad="rn") -> LayerConfig:
    """One configuration for a whole model: ``mac`` for all three GEMMs unless overridden.

    ``mac`` (and the overrides) are :class:`ref.MacConfig` or specs such as
    ``"e5m2:e6m5:sr_eager:4"``; quantizers are :class:`QuantSpec` or specs
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


def fp8_config(acc: str = "fp16", rounding: str = "sr_eager:4", *, grad: str = "e5m2:rn",
               bwd_fmt: str = "e5m3") -> LayerConfig:
    """The FP8 training recipe as a layer configuration.

    Forward: E4M3 activations and weights on an ``e4m3:<acc>:<rounding>`` MAC.
    Backward: gradients stored as E5M2 (``grad``: ``e5m2:rn`` or e.g.
    ``e5m2:sr:8``), weights and activations as E4M3; both backward GEMMs
    multiply an E5M2 value by an E4M3 value, so their MACs take ``bwd_fmt``
    inputs (E5M3 holds every E4M3 and every E5M2 value exactly: the inputs
    reach the MAC unchanged), with the same accumulator and rounding.
    """
    fwd = ref.parse_mac(f"e4m3:{acc}:{rounding}")
    bwd = ref.parse_mac(f"{bwd_fmt}:{acc}:{rounding}")
    return LayerConfig(fwd, bwd, bwd, weight="e4m3:rn", act="e4m3:rn", grad=grad)
