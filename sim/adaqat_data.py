"""Data sources of ``srmac adaqat``: Fashion-MNIST tensors or an ImageNet-style image folder.

Both give the same interface to the training loop, for one rank of ``world``
(single process: rank 0 of 1):

* ``batches(epoch)``: the rank's training batches; every epoch is a fresh
  permutation, the same on all ranks, of which rank ``r`` takes every
  ``world``-th sample, cut so that every rank runs ``steps_per_epoch`` steps;
* ``eval_batches()``: the rank's share of the test (val) split, in order;
* ``in_ch``, ``classes``, ``input_shape`` (one sample, for MAC counting),
  ``n_train``, ``n_test`` (global counts).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .data import load_tensors
from .seeds import derive_seed

__all__ = ["TensorData", "FolderData", "DATASETS", "open_data"]

DATASETS = ("fashion-mnist", "imagenet")


def _order(n: int, seed: int, epoch: int, salt: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(derive_seed(seed, epoch, salt))
    return torch.randperm(n, generator=gen)


class TensorData:
    """Fashion-MNIST (or its synthetic stand-in) as in-memory tensors."""

    in_ch, classes, input_shape = 1, 10, (1, 1, 28, 28)

    def __init__(self, o, rank: int = 0, world: int = 1):
        self.xtr, self.ytr, self.xte, self.yte = load_tensors(o.data_dir, o.limit_train,
                                                              o.limit_test)
        self.seed, self.rank, self.world = o.seed, rank, world
        self.batch = o.batch_size // world
        self.n_train, self.n_test = len(self.ytr), len(self.yte)
        self.per_rank = self.n_train // world
        if self.per_rank < 1:
            raise ValueError(f"{self.n_train} training samples cannot be split over {world} ranks")
        self.steps_per_epoch = -(-self.per_rank // self.batch)

    def batches(self, epoch: int):
        # single process: the permutation AdaQAT always used (salt 0xADA)
        order = _order(self.n_train, self.seed, epoch, 0xADA)
        order = order[self.rank:: self.world][: self.per_rank]
        for s in range(0, len(order), self.batch):
            b = order[s: s + self.batch]
            yield self.xtr[b], self.ytr[b]

    def first_batch(self):
        return self.xtr[: self.batch], self.ytr[: self.batch]

    def eval_batches(self):
        idx = torch.arange(self.n_test)[self.rank:: self.world]
        for s in range(0, len(idx), self.batch):
            b = idx[s: s + self.batch]
            yield self.xte[b], self.yte[b]


class FolderData:
    """ImageNet-style ``DIR/train/<class>/*``, ``DIR/val/<class>/*`` (see :mod:`sim.imagenet`)."""

    def __init__(self, o, rank: int = 0, world: int = 1, pin_memory: bool = False):
        from .imagenet import ImageFolderData

        if not o.data_dir:
            raise ValueError("--dataset imagenet needs --data-dir DIR holding train/<class>/ and "
                             "val/<class>/ image folders")
        root = Path(o.data_dir)
        self.train = ImageFolderData(root / "train", o.image_size, True, seed=o.seed)
        self.val = ImageFolderData(root / "val", o.image_size, False, classes=self.train.classes)
        self.in_ch, self.classes = 3, len(self.train.classes)
        self.input_shape = (1, 3, o.image_size, o.image_size)
        self.seed, self.rank, self.world = o.seed, rank, world
        self.batch = o.batch_size // world
        self.workers, self.pin = o.workers, pin_memory
        # --limit-*: a fixed random subset (the file list is sorted by class)
        self.train_idx = self._subset(len(self.train), o.limit_train, 1)
        self.val_idx = self._subset(len(self.val), o.limit_test, 2)
        self.n_train, self.n_test = len(self.train_idx), len(self.val_idx)
        self.per_rank = self.n_train // world
        if self.per_rank < 1:
            raise ValueError(f"{self.n_train} training images cannot be split over {world} ranks")
        self.steps_per_epoch = -(-self.per_rank // self.batch)

    def _subset(self, n: int, limit: int | None, salt: int) -> torch.Tensor:
        if not limit or limit >= n:
            return torch.arange(n)
        return _order(n, self.seed, 0, 0x11A6E + salt)[:limit].sort().values

    def _loader(self, ds, idx):
        return torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, idx.tolist()), batch_size=self.batch, shuffle=False,
            num_workers=self.workers, pin_memory=self.pin, drop_last=False)

    def batches(self, epoch: int):
        self.train.epoch = epoch
        order = self.train_idx[_order(self.n_train, self.seed, epoch, 0xADA)]
        yield from self._loader(self.train, order[self.rank:: self.world][: self.per_rank])

    def first_batch(self):
        idx = self.train_idx[: self.batch]
        items = [self.train[int(i)] for i in idx]
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    def eval_batches(self):
        yield from self._loader(self.val, self.val_idx[self.rank:: self.world])


def open_data(o, rank: int = 0, world: int = 1, pin_memory: bool = False):
    """The data source for ``o.dataset``."""
    if o.dataset == "fashion-mnist":
        return TensorData(o, rank, world)
    if o.dataset == "imagenet":
        return FolderData(o, rank, world, pin_memory)
    raise ValueError(f"unknown dataset {o.dataset!r}: choose one of {', '.join(DATASETS)}")
