"""Which device a training run uses: ``--device auto | cpu | cuda``.

:func:`resolve_device` is the one rule for every training entry point:

* ``cpu``: the CPU;
* ``cuda``: the GPU, or a one-line ``ValueError`` (the CLI prints it and exits
  with status 2) when there is none, or when the run's emulated GEMMs would
  have no GPU kernel (Triton missing: the reference loop on a GPU is ~30x
  slower than two CPU cores, docs/performance.md);
* ``auto``: the GPU only where it is the faster path, i.e. a CUDA GPU is
  present and either the run is the plain-float baseline (``torch`` on the
  GPU) or the emulated GEMMs have the fused GPU kernel (:mod:`ref.fast.device`);
  otherwise the CPU kernels.
"""

from __future__ import annotations

import torch

from ref.fast import device as fast_device

__all__ = ["resolve_device", "DEVICES"]

#: The values of ``--device``.
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(requested: str, emulated: bool = True) -> str:
    """``"cpu"`` or ``"cuda"`` for ``--device requested``; ``emulated``: the run's GEMMs go
    through the emulated MAC (False for the float baseline)."""
    if requested not in DEVICES:
        raise ValueError(f"--device must be auto, cpu or cuda, got {requested!r}")
    if requested == "cpu":
        return "cpu"
    has_gpu = torch.cuda.is_available()
    has_kernel = fast_device.triton_available()
    if requested == "cuda":
        if not has_gpu:
            raise ValueError("--device cuda: no CUDA GPU is available to torch "
                             "(torch.cuda.is_available() is False); use --device cpu or auto")
        if emulated and not has_kernel:
            raise ValueError("--device cuda: the emulated GEMMs need the Triton GPU kernel "
                             "(pip install 'srmac[gpu]'); without it the GPU is slower than "
                             "the CPU: use --device cpu or auto")
        return "cuda"
    return "cuda" if has_gpu and (has_kernel or not emulated) else "cpu"
