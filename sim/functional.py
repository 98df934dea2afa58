"""Functional forms: ``sim.matmul`` (``torch.matmul`` on the emulated MAC) and ``sim.quantize``.

For use inside a model's ``forward`` where a module is not wanted. They take
their seeds as arguments: vary ``step`` between training steps (a module,
:class:`sim.QMatMul` / :class:`sim.Quantizer`, does that by itself).
"""

from __future__ import annotations

import torch

from . import ops
from .quant import make_layer_config, parse_quantizer
from .seeds import Stream, sample_layout

__all__ = ["matmul", "quantize"]


@torch._dynamo.assume_constant_result
def _config_spec(config) -> str:
    """The spec string of a layer config; torch.compile takes it as a constant."""
    return make_layer_config(config).spec()


@torch._dynamo.assume_constant_result
def _quant_spec(spec) -> str:
    return "" if spec is None else parse_quantizer(spec).spec()


def _rng(seed: int, layer_id: int, step: int, device) -> torch.Tensor:
    return torch.tensor([int(seed), int(layer_id), int(step)], dtype=torch.int64, device=device)


def matmul(a, b, config="fp32:fp32:rn", *, seed: int = 0, layer_id: int = 0, step: int = 0):
    """``torch.matmul(a, b)`` with every GEMM (forward and both gradients) on ``config``'s MACs.

    ``config``: a :class:`sim.LayerConfig` or a MAC spec. Broadcasting, 1-D
    operands and the gradients as :class:`sim.QMatMul`; the seeds come from
    ``(seed, layer_id, step)`` (:mod:`sim.seeds`).
    """
    return ops.qmatmul(a, b, _rng(seed, layer_id, step, a.device), _config_spec(config),
                       list(sample_layout()), True, -1)


def quantize(x, forward, backward=None, *, seed: int = 0, layer_id: int = 0, step: int = 0):
    """``x`` rounded to ``forward`` (e.g. ``"e4m3:rn"``); its gradient rounded to ``backward``."""
    return ops.quantize(x, _rng(seed, layer_id, step, x.device), _quant_spec(forward),
                        _quant_spec(backward), list(sample_layout()),
                        True, Stream.Q_OUT)
