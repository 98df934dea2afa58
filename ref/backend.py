"""The few array operations the golden model needs, for NumPy and PyTorch.

The arithmetic in :mod:`ref.rounding` and :mod:`ref.mac` is written once against
this tiny namespace, so the NumPy backend and the PyTorch backend (CPU or CUDA)
run the same integer operations and give the same bits. All integer work is in
int64; shift counts are clamped to [0, 63] by the callers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NumpyOps", "TorchOps", "ops_for", "is_torch"]


def is_torch(x) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch")


class NumpyOps:
    name = "numpy"

    def __init__(self, like=None):
        self.device = None

    @staticmethod
    def asint(x):
        return np.asarray(x, dtype=np.int64)

    @staticmethod
    def as_int(b):
        return b.astype(np.int64)

    @staticmethod
    def asfloat64(x):
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def maximum(a, b):
        return np.maximum(a, b)

    @staticmethod
    def minimum(a, b):
        return np.minimum(a, b)

    @staticmethod
    def full(shape, value, dtype="int64"):
        return np.full(shape, value, dtype=np.dtype(dtype))

    @staticmethod
    def zeros_bool(shape):
        return np.zeros(shape, dtype=bool)

    @staticmethod
    def frexp_exp(xf):
        return np.frexp(xf)[1].astype(np.int64)

    @staticmethod
    def frexp(xf):
        m, e = np.frexp(xf)
        return m, e.astype(np.int64)

    @staticmethod
    def to_float64(xi):
        return np.asarray(xi).astype(np.float64)

    @staticmethod
    def ldexp(m, e):
        # Exponents beyond +-2**12 give inf or 0 for any float64 m: clip before the int32 cast.
        e = np.clip(np.asarray(e, dtype=np.int64), -(1 << 12), 1 << 12).astype(np.int32)
        with np.errstate(over="ignore", under="ignore"):
            return np.ldexp(m, e)

    @staticmethod
    def isnan(x):
        return np.isnan(x)

    @staticmethod
    def isinf(x):
        return np.isinf(x)

    @staticmethod
    def signbit(x):
        return np.signbit(x)

    @staticmethod
    def any(x) -> bool:
        return bool(np.any(x))

    @staticmethod
    def broadcast(*arrays):
        return np.broadcast_arrays(*arrays)

    @staticmethod
    def reshape(x, shape):
        return np.reshape(x, shape)

    @staticmethod
    def arange(n):
        return np.arange(n, dtype=np.int64)

    @staticmethod
    def copy(x):
        return np.array(x, copy=True)


class TorchOps:
    name = "torch"

    def __init__(self, like=None):
        import torch

        self.torch = torch
        self.device = like.device if like is not None and hasattr(like, "device") else None

    def asint(self, x):
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(t.int64)
        return t.as_tensor(np.asarray(x, dtype=np.int64), device=self.device)

    def as_int(self, b):
        return b.to(self.torch.int64)

    def asfloat64(self, x):
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(t.float64)
        return t.as_tensor(np.asarray(x, dtype=np.float64), device=self.device)

    def where(self, c, a, b):
        t = self.torch
        if not isinstance(a, t.Tensor):
            a = t.tensor(a, device=c.device, dtype=b.dtype if isinstance(b, t.Tensor) else None)
        if not isinstance(b, t.Tensor):
            b = t.tensor(b, device=c.device, dtype=a.dtype)
        return t.where(c, a, b)

    def maximum(self, a, b):
        t = self.torch
        if not isinstance(b, t.Tensor):
            return t.clamp(a, min=b)
        if not isinstance(a, t.Tensor):
            return t.clamp(b, min=a)
        return t.maximum(a, b)

    def minimum(self, a, b):
        t = self.torch
        if not isinstance(b, t.Tensor):
            return t.clamp(a, max=b)
        if not isinstance(a, t.Tensor):
            return t.clamp(b, max=a)
        return t.minimum(a, b)

    def full(self, shape, value, dtype="int64"):
        t = self.torch
        return t.full(tuple(shape), value, dtype=getattr(t, dtype), device=self.device)

    def zeros_bool(self, shape):
        t = self.torch
        return t.zeros(tuple(shape), dtype=t.bool, device=self.device)

    def frexp_exp(self, xf):
        return self.torch.frexp(xf)[1].to(self.torch.int64)

    def frexp(self, xf):
        m, e = self.torch.frexp(xf)
        return m, e.to(self.torch.int64)

    def to_float64(self, xi):
        return xi.to(self.torch.float64)

    def ldexp(self, m, e):
        """m * 2**e, exact up to one final rounding (torch.pow is not exact on CUDA)."""
        e = e.to(self.torch.int64)
        e1 = e.clamp(-1022, 1023)
        e2 = (e - e1).clamp(-1022, 1023)
        return m * self._pow2(e1) * self._pow2(e2)

    def _pow2(self, e):
        # 2**e for e in [-1022, 1023], built from its float64 bit pattern.
        return ((e + 1023) << 52).view(self.torch.float64)

    def isnan(self, x):
        return self.torch.isnan(x)

    def isinf(self, x):
        return self.torch.isinf(x)

    def signbit(self, x):
        return self.torch.signbit(x)

    def any(self, x) -> bool:
        return bool(x.any())

    def broadcast(self, *arrays):
        return self.torch.broadcast_tensors(*arrays)

    def reshape(self, x, shape):
        return x.reshape(shape)

    def arange(self, n):
        return self.torch.arange(n, dtype=self.torch.int64, device=self.device)

    def copy(self, x):
        return x.clone()


def ops_for(*arrays):
    """The ops namespace for the first torch tensor among ``arrays``, else NumPy."""
    for a in arrays:
        if a is not None and is_torch(a):
            return TorchOps(a)
    return NumpyOps()
