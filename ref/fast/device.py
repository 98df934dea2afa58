"""The fast path's CUDA side: MAC chains on the tensors' device, with torch ops.

On a GPU the reference's own vectorised step (:func:`ref.mac.mac_step` on
``TorchOps``) already works on the whole ``M x N`` output per ``k`` as a few
dozen elementwise kernels, so the device path runs that same definition on
the device (no second copy of the arithmetic to keep in step). Its cost per
``k`` is kernel launches, not arithmetic: it pays off for large ``M x N``.
``benchmarks/gpu_check.sh`` measures it; a fused CUDA kernel (numba-cuda or
Triton, sharing :mod:`ref.fast.kernel`'s MAC body) is the next step if the
launches dominate.
"""

from __future__ import annotations

__all__ = ["matmul_device"]


def matmul_device(A, B, cfg, C=None, *, seed: int = 0, rand=None, state=None,
                  return_state: bool = False):
    """:func:`ref.chain.matmul_reference` on the CUDA device of the inputs (same codes)."""
    from ..chain import matmul_reference

    return matmul_reference(A, B, cfg, C, seed=seed, rand=rand, state=state,
                            return_state=return_state)
