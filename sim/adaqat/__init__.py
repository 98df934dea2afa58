"""AdaQAT (arXiv 2404.16876): learned weight/activation bit-widths during QAT.

Modules: :mod:`~sim.adaqat.quantizers` (DoReFa / PACT / LSQ fake quantizers),
:mod:`~sim.adaqat.core` (quantized layers, bit-widths, finite-difference and
hardware-cost gradients, freezing rule), :mod:`~sim.adaqat.train` (the run
behind ``srmac adaqat``, on the shared loop :mod:`sim.loop`) and
:mod:`~sim.adaqat.cli` (the verb). Models come from the registry
:mod:`sim.models`, data from :mod:`sim.data` / :mod:`sim.imagenet`.

Names are imported lazily, so registering the verb does not import torch.
"""

import importlib

_EXPORTS = {
    **dict.fromkeys(("DoReFaWeight", "PactActivation", "LsqQuantizer", "QUANTIZERS",
                     "make_quantizers", "quant_range", "ste_round"), "quantizers"),
    **dict.fromkeys(("BitState", "QuantLayer", "qat_model", "quant_layers", "set_mac",
                     "layer_macs", "bitops", "hw_cost", "hw_gradients", "hw_gradients_per_layer",
                     "fd_gradients", "fd_gradients_per_layer", "frozen_bn_stats",
                     "freeze_decision", "BitWidth", "INPUT_BITS", "SIGNED_INPUT"), "core"),
    **dict.fromkeys(("AdaQatOptions", "run", "parse_fixed", "load_float_init",
                     "SUMMARY_FIELDS"), "train"),
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'sim.adaqat' has no attribute {name!r}")
