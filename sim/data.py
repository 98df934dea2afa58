"""Fashion-MNIST from IDX files (no network), a small IDX reader/writer, and the data sources.

A *data source* (:class:`TensorData` here, :class:`sim.imagenet.FolderData`
for image folders) gives the training loop one
rank's share of a data set (single process: rank 0 of 1;
:func:`sim.loop.open_data` picks one):

* ``batches(epoch)``: the rank's training batches; every epoch is a fresh
  permutation (:func:`epoch_order`), the same on all ranks, of which rank
  ``r`` takes every ``world``-th sample, cut so that every rank runs
  ``steps_per_epoch`` steps;
* ``eval_batches()``: the rank's share of the test split, in order
  (``eval_steps`` batches);
* ``first_batch()``, ``in_ch``, ``classes``, ``input_shape`` (one sample),
  ``n_train``, ``n_test`` (global counts).

IDX (LeCun's MNIST format): a 4-byte magic ``0x00 0x00 <type> <ndim>``, then
``ndim`` big-endian uint32 sizes, then the data in row-major order, big-endian.
Files may be gzip-compressed (``.gz``), as Debian's ``dataset-fashion-mnist``
installs them under ``/usr/share/datasets/fashion-mnist``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from .seeds import derive_seed

__all__ = ["read_idx", "write_idx", "load_fashion_mnist", "load_tensors", "DatasetMissingError",
           "write_synthetic_dataset", "DEFAULT_DATA_DIR", "FILES", "CLASSES", "TensorData",
           "epoch_order", "DATASETS", "pad_images"]

#: Data sets the training verbs read.
DATASETS = ("fashion-mnist", "imagenet")

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
# Per-pixel statistics of the training set (values in [0, 1]); used to normalise inputs.
MEAN, STD = 0.2860, 0.3530

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetMissingError(ValueError):
    """The dataset files are not where we looked (a user error: one-line message)."""


def _open(path: Path):
    with open(path, "rb") as fh:
        head = fh.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_idx(path) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a NumPy array of its type and shape."""
    path = Path(path)
    with _open(path) as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic {data[:4].hex()!r})")
    ndim = data[3]
    off = 4 + 4 * ndim
    if len(data) < off:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - off != count * dtype.itemsize:
        raise ValueError(f"{path}: IDX payload has {len(data) - off} bytes, header says "
                         f"{count * dtype.itemsize}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=off).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path, array, *, compress: bool | None = None) -> Path:
    """Write ``array`` as IDX (gzip when ``compress`` or the name ends in .gz)."""
    path = Path(path)
    arr = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}
    key = arr.dtype.newbyteorder("=")
    if key not in codes:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}")
    code = codes[key]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    payload = header + arr.astype(_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as fh:
        fh.write(payload)
    return path


def _find(data_dir: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def load_fashion_mnist(data_dir=None):
    """Load Fashion-MNIST as uint8 NumPy arrays.

    Returns ``(train_images (N, 28, 28), train_labels (N,), test_images, test_labels)``.
    ``data_dir`` defaults to ``$SRMAC_DATA_DIR`` or ``/usr/share/datasets/fashion-mnist``.
    Raises :class:`DatasetMissingError` (a ``ValueError``) with a one-line
    message saying how to install the data when a file is missing.
    """
    data_dir = Path(data_dir or os.environ.get("SRMAC_DATA_DIR") or DEFAULT_DATA_DIR)
    paths, missing = {}, []
    for key, stem in FILES.items():
        p = _find(data_dir, stem)
        if p is None:
            missing.append(stem + "[.gz]")
        paths[key] = p
    if missing:
        raise DatasetMissingError(
            f"Fashion-MNIST not found in {data_dir} (missing {', '.join(missing)}): "
            "install it with "
            "`apt-get install dataset-fashion-mnist` or `make setup`, or pass --data-dir DIR"
        )
    out = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = out[f"{split}_images"], out[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"Fashion-MNIST {split} files in {data_dir} disagree: images "
                             f"{x.shape}, labels {y.shape}")
    return out["train_images"], out["train_labels"], out["test_images"], out["test_labels"]


def to_tensors(images, labels, device="cpu"):
    """Normalised float32 (N, 1, 28, 28) images and int64 labels as torch tensors."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)
    x = ((x - MEAN) / STD).unsqueeze(1)
    return x.to(device), torch.from_numpy(labels.astype(np.int64)).to(device)


def load_tensors(data_dir=None, limit_train=None, limit_test=None):
    """Fashion-MNIST as ``(xtr, ytr, xte, yte)`` tensors, each split cut to its limit."""
    xtr, ytr, xte, yte = load_fashion_mnist(data_dir)
    if limit_train:
        xtr, ytr = xtr[:limit_train], ytr[:limit_train]
    if limit_test:
        xte, yte = xte[:limit_test], yte[:limit_test]
    return (*to_tensors(xtr, ytr), *to_tensors(xte, yte))


def write_synthetic_dataset(data_dir, n_train: int = 64, n_test: int = 32, seed: int = 0) -> Path:
    """Write a tiny learnable stand-in for Fashion-MNIST (same IDX file names) for tests.

    Class ``c`` images are noise plus a bright horizontal band at rows
    ``2c + 4 .. 2c + 6``, so a model can learn them.
    """
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 80, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 4: 2 * c + 7, 4:24] = 230
        prefix = "t10k" if split == "test" else "train"
        write_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return data_dir


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``n`` training samples in ``epoch`` (same on every rank)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, epoch, 0xDA7A))
    return torch.randperm(n, generator=gen)


def pad_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised ``(N, 1, 28, 28)`` images centred in ``size x size`` on a black border.

    The border is the normalised value of a 0 pixel (the background of every
    Fashion-MNIST image); ``size`` 28 returns ``x`` itself.
    """
    pad = size - x.shape[-1]
    if pad < 0 or pad % 2:
        raise ValueError(f"Fashion-MNIST's 28x28 images pad to an even larger size, not {size}")
    if pad == 0:
        return x
    p = pad // 2
    return torch.nn.functional.pad(x, (p, p, p, p), value=(0.0 - MEAN) / STD)


class TensorData:
    """Fashion-MNIST (or its synthetic stand-in) as in-memory tensors, one rank's share.

    ``o`` carries ``data_dir``, ``limit_train``, ``limit_test`` (the first N
    samples), ``seed`` and ``batch_size`` (global: split over ``world``).
    ``size`` 32 pads the 28x28 images to 32x32 (:func:`pad_images`, for the
    CIFAR-shaped models).
    """

    in_ch, classes = 1, 10

    def __init__(self, o, rank: int = 0, world: int = 1, size: int = 28):
        self.xtr, self.ytr, self.xte, self.yte = load_tensors(o.data_dir, o.limit_train,
                                                              o.limit_test)
        self.xtr, self.xte = pad_images(self.xtr, size), pad_images(self.xte, size)
        self.input_shape = (1, 1, size, size)
        self.seed, self.rank, self.world = o.seed, rank, world
        self.batch = o.batch_size // world
        self.n_train, self.n_test = len(self.ytr), len(self.yte)
        self.per_rank = self.n_train // world
        if self.per_rank < 1:
            raise ValueError(f"{self.n_train} training samples cannot be split over {world} ranks")
        self.steps_per_epoch = -(-self.per_rank // self.batch)
        self.test_idx = torch.arange(self.n_test)[rank::world]
        self.eval_steps = -(-len(self.test_idx) // self.batch)

    def batches(self, epoch: int):
        order = epoch_order(self.n_train, self.seed, epoch)[self.rank:: self.world][: self.per_rank]
        for s in range(0, len(order), self.batch):
            b = order[s: s + self.batch]
            yield self.xtr[b], self.ytr[b]

    def first_batch(self):
        return self.xtr[: self.batch], self.ytr[: self.batch]

    def eval_batches(self):
        for s in range(0, len(self.test_idx), self.batch):
            b = self.test_idx[s: s + self.batch]
            yield self.xte[b], self.yte[b]

