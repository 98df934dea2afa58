"""Emulated layers: ``QLinear``, ``QConv1d``, ``QConv2d`` and ``QMatMul``.

Drop-in subclasses of ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` (same
constructor, parameters and state dict, plus the ``srmac_rng`` buffer), and
``QMatMul``, ``torch.matmul`` of two activations. Each call is one custom
operator (:mod:`sim.ops`) whose forward and backward GEMMs run on the golden
model:

* forward ``y = x W^T + b`` with ``config.fwd``: chains start from the bias
  (rounded to nearest in the accumulator format);
* ``dx = dy W`` with ``config.bwd_input``;
* ``dW = dy^T x`` and ``db = 1^T dy`` with ``config.bwd_weight``.

Convolutions: any ``groups`` (depthwise included: one chain per group over its
``(c, i, j)``), stride, dilation, numeric padding or ``'same'`` / ``'valid'``,
and every ``padding_mode``.

Seeds: the ``srmac_rng`` buffer holds ``(base seed, layer id, step)``;
``step`` counts training calls. Each call derives its seeds from it (see
:mod:`sim.seeds`): training is reproducible and resumable, evaluation does not
advance anything, so a checkpoint always evaluates to the same bits.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn

from . import ops
from .gemm import conv_pads
from .quant import make_layer_config
from .seeds import sample_layout

__all__ = ["SeededModule", "QLayerMixin", "QLinear", "QConv1d", "QConv2d", "QMatMul", "MatMul"]

_COUNTER_IDS = itertools.count()
RNG_BUFFER = "srmac_rng"


class SeededModule:
    """Mixin: the ``srmac_rng`` buffer ``(seed, layer id, step)`` and a MAC counter."""

    def _init_seeds(self, layer_id: int, seed: int, device=None) -> None:
        self.register_buffer(RNG_BUFFER, torch.tensor([int(seed), int(layer_id), 0],
                                                      dtype=torch.int64, device=device))
        self._counter = next(_COUNTER_IDS)

    def _rng_value(self, i: int) -> int:
        return int(getattr(self, RNG_BUFFER)[i])

    def _set_rng(self, i: int, value: int) -> None:
        with torch.no_grad():
            getattr(self, RNG_BUFFER)[i] = int(value)

    seed = property(lambda self: self._rng_value(0), lambda self, v: self._set_rng(0, v),
                    doc="Base seed of the layer's random bits (in the state dict).")
    layer_id = property(lambda self: self._rng_value(1), lambda self, v: self._set_rng(1, v),
                        doc="Layer number that separates its seeds from the other layers'.")
    step = property(lambda self: self._rng_value(2), lambda self, v: self._set_rng(2, v),
                    doc="Training calls so far (in the state dict; evaluation does not count).")

    def _call_rng(self) -> torch.Tensor:
        """The rng of this call; a training call advances ``step`` (no value is read here)."""
        rng = getattr(self, RNG_BUFFER)
        now = ops.rng_snapshot(rng)
        if self.training:
            with torch.no_grad():
                rng[2:] += 1
        return now

    @property
    def macs(self) -> int:
        """Emulated MACs run by this module's GEMMs (all three of each call)."""
        return ops.mac_count(self._counter)

    @macs.setter
    def macs(self, value: int) -> None:
        ops.reset_mac_count(self._counter, value)

    def __setstate__(self, state):  # copies (deepcopy, pickle) count their own MACs
        count = ops.mac_count(state.get("_counter", -1))
        super().__setstate__(state)
        self._counter = next(_COUNTER_IDS)
        ops.reset_mac_count(self._counter, count)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A float checkpoint (no srmac_rng) loads into a converted model: keep the seeds.
        key = prefix + RNG_BUFFER
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if key not in state_dict and key in missing_keys:
            missing_keys.remove(key)


class QLayerMixin(SeededModule):
    """An emulated GEMM layer: its :class:`LayerConfig`, seeds and MAC count."""

    def _init_q(self, config, layer_id: int, seed: int, device=None):
        self.set_config(config)
        self._init_seeds(layer_id, seed, device)

    def _copy_from(self, mod):
        """Take ``mod``'s parameters and training mode (for ``from_float``); returns self."""
        with torch.no_grad():
            self.weight.copy_(mod.weight)
            if mod.bias is not None:
                self.bias.copy_(mod.bias)
        self.train(mod.training)
        return self

    def set_config(self, config) -> None:
        self.config = make_layer_config(config)
        self._spec = self.config.spec()

    def q_extra_repr(self) -> str:
        c = self.config
        return (f"fwd={c.fwd.spec()}, bwd_input={c.bwd_input.spec()}, "
                f"bwd_weight={c.bwd_weight.spec()}, weight={c.weight.spec()}, act={c.act.spec()}, "
                f"grad={c.grad.spec()}")


def _layout() -> list[int]:
    return list(sample_layout())


class QLinear(QLayerMixin, nn.Linear):
    """``nn.Linear`` whose three GEMMs run on the emulated MAC of ``config``.

    ``config``: a :class:`sim.LayerConfig` or a MAC spec for all three GEMMs
    (e.g. ``"e5m2:e6m5:sr_eager:4"``). Inputs may have leading dimensions
    (dim 0 is the sample dimension under DDP).
    """

    def __init__(self, in_features, out_features, bias=True, *, config="fp32:fp32:rn",
                 layer_id=0, seed=0, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._init_q(config, layer_id, seed, device)

    @classmethod
    def from_float(cls, mod: nn.Linear, config, layer_id=0, seed=0) -> QLinear:
        q = cls(mod.in_features, mod.out_features, mod.bias is not None, config=config,
                layer_id=layer_id, seed=seed, device=mod.weight.device, dtype=mod.weight.dtype)
        return q._copy_from(mod)

    def emulate(self, x, weight, bias=None):
        """This layer's GEMMs on other tensors (AdaQAT's integer grids); advances the seeds."""
        return ops.qlinear(x, weight, bias, self._call_rng(), self._spec, _layout(),
                           self.training, self._counter)

    def forward(self, x):
        return self.emulate(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", " + self.q_extra_repr()


class _QConvMixin(QLayerMixin):
    """What the emulated convolutions share; the ``nn.Conv1d`` / ``nn.Conv2d`` base after it in
    the MRO takes the geometry, this mixin the emulation (``config``, ``layer_id``, ``seed``)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", *, config="fp32:fp32:rn", layer_id=0,
                 seed=0, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device=device, dtype=dtype)
        self._init_q(config, layer_id, seed, device)

    def _pads2d(self, kernel, dilation):
        pad = self.padding if isinstance(self.padding, str) else tuple(self.padding)
        if not isinstance(pad, str) and len(pad) == 1:
            pad = (0, pad[0])
        return list(conv_pads(pad, kernel, dilation))

    def _conv(self, x4, w4, bias, stride, dilation):
        return ops.qconv2d(x4, w4, bias, self._call_rng(), self._spec, list(stride),
                           self._pads2d(tuple(w4.shape[2:]), dilation), list(dilation),
                           self.groups, self.padding_mode, _layout(), self.training,
                           self._counter)

    @classmethod
    def from_float(cls, mod, config, layer_id=0, seed=0):
        """The emulated twin of ``mod`` (an ``nn.Conv1d`` / ``nn.Conv2d``): same
        geometry, device and dtype, its parameters copied."""
        q = cls(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                mod.dilation, mod.groups, mod.bias is not None, mod.padding_mode, config=config,
                layer_id=layer_id, seed=seed, device=mod.weight.device, dtype=mod.weight.dtype)
        return q._copy_from(mod)

    def forward(self, x):
        return self.emulate(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", " + self.q_extra_repr()


class QConv2d(_QConvMixin, nn.Conv2d):
    """``nn.Conv2d`` (any groups, padding and padding mode) as im2col + emulated GEMMs.

    Forward: chains over ``(c, i, j)`` of the output's group; ``dx``: a stride-1
    convolution of the zero-stuffed output gradient with the flipped kernel,
    chains over ``(o, i, j)``; ``dW``: chains over ``(n, p, q)``.
    """

    def emulate(self, x, weight, bias=None):
        """This layer's GEMMs on other tensors (AdaQAT's integer grids); advances the seeds."""
        squeeze = x.dim() == 3
        y = self._conv(x.unsqueeze(0) if squeeze else x, weight, bias, self.stride,
                       self.dilation)
        return y.squeeze(0) if squeeze else y


class QConv1d(_QConvMixin, nn.Conv1d):
    """``nn.Conv1d`` as a height-1 :class:`QConv2d` (chains over ``(c, j)``)."""

    def emulate(self, x, weight, bias=None):
        squeeze = x.dim() == 2
        x4 = (x.unsqueeze(0) if squeeze else x).unsqueeze(2)
        y = self._conv(x4, weight.unsqueeze(2), bias, (1, self.stride[0]),
                       (1, self.dilation[0])).squeeze(2)
        return y.squeeze(0) if squeeze else y


class MatMul(nn.Module):
    """``torch.matmul(a, b)`` as a module, so that :func:`sim.quantize_model` can emulate it.

    Write attention as ``self.scores = sim.MatMul()`` ... ``self.scores(q, k.transpose(-2,
    -1))``: a float model that converts to :class:`QMatMul`.
    """

    def forward(self, a, b):
        return torch.matmul(a, b)


class QMatMul(QLayerMixin, nn.Module):
    """``torch.matmul(a, b)`` of two activations on the emulated MACs of ``config``.

    Broadcasting and 1-D operands as ``torch.matmul``. ``act`` rounds ``a``,
    ``weight`` rounds ``b``; ``da = g b^T`` runs on ``bwd_input`` and ``db =
    a^T g`` on ``bwd_weight`` (an operand broadcast over batch dimensions gets
    one chain over the broadcast entries and the contraction). Batch entry
    ``g`` (flattened) row ``i`` is PE row ``g * M + i``.
    """

    def __init__(self, *, config="fp32:fp32:rn", layer_id=0, seed=0, device=None):
        super().__init__()
        self._init_q(config, layer_id, seed, device)

    @classmethod
    def from_float(cls, mod: nn.Module, config, layer_id=0, seed=0) -> QMatMul:
        device = next((b.device for b in mod.buffers()), None)
        return cls(config=config, layer_id=layer_id, seed=seed, device=device).train(mod.training)

    def forward(self, a, b):
        return ops.qmatmul(a, b, self._call_rng(), self._spec, _layout(), self.training,
                           self._counter)

    def extra_repr(self) -> str:
        return self.q_extra_repr()

