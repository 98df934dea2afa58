"""srmac golden model: formats, rounding, SR MACs, chains and the PRNG.

The executable form of the arithmetic contract (docs/design.md). NumPy arrays
in give NumPy out; torch tensors in give torch out on the same device, with
the same bits.
"""

from .chain import dot_reference, matmul_reference
from .codec import decode, encode, quantize
from .config import MAX_RBITS, ROUNDINGS, MacConfig, Rounding, parse_mac, required_rbits
from .dispatch import dot, matmul
from .formats import BF16, E4M3, E5M2, E6M5, FP16, FP32, NAMED_FORMATS, FloatFormat, parse_format
from .mac import mac
from .prng import Xorshift32, seed_state_int

__all__ = [
    "FloatFormat", "E5M2", "E4M3", "E6M5", "FP16", "BF16", "FP32", "NAMED_FORMATS",
    "parse_format", "encode", "decode", "quantize", "MacConfig", "Rounding", "parse_mac", "ROUNDINGS",
    "MAX_RBITS", "required_rbits", "mac", "dot", "matmul", "dot_reference", "matmul_reference", "Xorshift32", "seed_state_int",
    "sr_matmul",
]


def sr_matmul(A, B, cfg, seed=0, **kwargs):
    """``torch.matmul`` through the emulated MAC: :func:`ref.torch_api.sr_matmul`.

    A plain function (not a lazy module attribute) so that ``torch.compile``
    traces a call of ``ref.sr_matmul`` without a graph break; it imports torch
    on first use, so ``import ref`` stays light.
    """
    from .torch_api import sr_matmul as _sr_matmul

    return _sr_matmul(A, B, cfg, seed, **kwargs)
