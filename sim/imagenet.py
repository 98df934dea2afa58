"""ImageNet-style data from an image-folder tree (PIL only, no torchvision).

Layout (the usual ImageNet one)::

    DIR/train/<class>/<image>.{jpeg,jpg,png,...}
    DIR/val/<class>/<image>...

Classes are the sub-folder names of ``train``, sorted; label = index in that
order. ``val`` must use a subset of those names (a class missing from ``val``
is fine). Images are decoded with Pillow and converted to RGB.

Transforms (per sample, deterministic in ``(seed, epoch, index)`` so the
number of loader workers does not change the run):

* train: random resized crop (area 8..100 %, aspect 3/4..4/3) to
  ``size x size``, horizontal flip with probability 1/2;
* val: resize the shorter side to ``round(size * 256 / 224)``, center crop
  ``size x size``.

Then scale to [0, 1] and normalise with the ImageNet channel mean/std.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import numpy as np
import torch

from .data import epoch_order
from .seeds import derive_seed

__all__ = ["ImageFolderData", "FolderData", "scan_image_folder", "write_synthetic_image_folder",
           "IMAGE_EXTENSIONS", "MEAN", "STD"]

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp")
#: ImageNet per-channel mean and standard deviation (RGB, values in [0, 1]).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def scan_image_folder(root, classes: list[str] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """``([(path, label), ...], classes)`` for ``root/<class>/<image>``, sorted by path.

    ``classes`` given: the label of a folder is its index there, and an unknown
    folder is an error; otherwise the sorted sub-folder names are the classes.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist: expected {root}/<class>/<image> "
                         "(see docs/adaqat.md, ImageNet layout)")
    found = sorted(d.name for d in root.iterdir() if d.is_dir())
    if classes is None:
        classes = found
    index = {c: i for i, c in enumerate(classes)}
    items = []
    for name in found:
        if name not in index:
            raise ValueError(f"{root}/{name} is not one of the {len(classes)} training classes")
        for dirpath, _, files in os.walk(root / name):
            for f in files:
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    items.append((os.path.join(dirpath, f), index[name]))
    if not items:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}/<class>/")
    items.sort()
    return items, list(classes)


def _crop_box(w: int, h: int, rng: random.Random) -> tuple[int, int, int, int]:
    """Random area 8..100 %, log-uniform aspect 3/4..4/3; the whole image if 10 tries fail."""
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return x0, y0, x0 + cw, y0 + ch
    return 0, 0, w, h


class ImageFolderData(torch.utils.data.Dataset):
    """One split of an image folder; ``__getitem__`` gives ``(float32 (3, S, S), int64 label)``.

    ``train=True`` applies the random crop and flip, seeded by
    ``(seed, epoch, index)``; set :attr:`epoch` before each epoch.
    """

    def __init__(self, root, size: int, train: bool, classes: list[str] | None = None,
                 seed: int = 0):
        if size < 8:
            raise ValueError(f"--image-size must be >= 8, got {size}")
        self.items, self.classes = scan_image_folder(root, classes)
        self.size, self.train, self.seed, self.epoch = int(size), bool(train), int(seed), 0
        self._mean = torch.tensor(MEAN).view(3, 1, 1)
        self._std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, i: int):
        from PIL import Image

        path = self.items[i][0]
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except OSError as exc:
            raise ValueError(f"cannot decode image {path}: {exc}") from None

    def __getitem__(self, i: int):
        from PIL import Image

        img = self._load(i)
        s = self.size
        if self.train:
            rng = random.Random(derive_seed(self.seed, self.epoch, i))
            img = img.resize((s, s), Image.BILINEAR, box=_crop_box(*img.size, rng))
            if rng.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            short = round(s * 256 / 224)
            w, h = img.size
            scale = short / min(w, h)
            w, h = max(s, round(w * scale)), max(s, round(h * scale))
            img = img.resize((w, h), Image.BILINEAR)
            x0, y0 = (w - s) // 2, (h - s) // 2
            img = img.crop((x0, y0, x0 + s, y0 + s))
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        x = (x.float() / 255.0 - self._mean) / self._std
        return x, torch.tensor(self.items[i][1], dtype=torch.int64)


def write_synthetic_image_folder(root, classes: int = 4, n_train: int = 8, n_val: int = 2,
                                 size: int = 40, seed: int = 0) -> Path:
    """A tiny learnable image folder for tests: ``n_train``/``n_val`` PNGs per class.

    Class ``c`` images are RGB noise with a bright square whose colour channel is
    ``c % 3`` and whose corner is ``c // 3``; sizes vary a little (``size`` .. ``size + 7``).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in range(classes):
            d = root / split / f"class{c:03d}"
            d.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                w, h = (int(v) for v in rng.integers(size, size + 8, 2))
                img = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
                q = (c // 3) % 4
                y0, x0 = (h // 2) * (q // 2), (w // 2) * (q % 2)
                img[y0: y0 + h // 2, x0: x0 + w // 2, c % 3] = 240
                Image.fromarray(img).save(d / f"img{k:04d}.png")
    return root


class FolderData:
    """An ImageNet-style ``DIR/train/<class>/*``, ``DIR/val/<class>/*`` as a data source.

    The interface of :class:`sim.data.TensorData` (one rank's share);
    ``--limit-train`` / ``--limit-test`` take a fixed random subset (the file
    list is sorted by class); images are decoded by ``o.workers`` loader
    processes per rank.
    """

    def __init__(self, o, rank: int = 0, world: int = 1, pin_memory: bool = False):
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
        self.train_idx = self._subset(len(self.train), o.limit_train, 1)
        self.val_idx = self._subset(len(self.val), o.limit_test, 2)
        self.n_train, self.n_test = len(self.train_idx), len(self.val_idx)
        self.per_rank = self.n_train // world
        if self.per_rank < 1:
            raise ValueError(f"{self.n_train} training images cannot be split over {world} ranks")
        self.steps_per_epoch = -(-self.per_rank // self.batch)
        self.eval_steps = -(-len(self.val_idx[rank::world]) // self.batch)

    def _subset(self, n: int, limit: int | None, salt: int) -> torch.Tensor:
        if not limit or limit >= n:
            return torch.arange(n)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, 0, 0x11A6E + salt))
        return torch.randperm(n, generator=gen)[:limit].sort().values

    def _loader(self, ds, idx):
        return torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, idx.tolist()), batch_size=self.batch, shuffle=False,
            num_workers=self.workers, pin_memory=self.pin, drop_last=False)

    def batches(self, epoch: int):
        self.train.epoch = epoch
        order = self.train_idx[epoch_order(self.n_train, self.seed, epoch)]
        yield from self._loader(self.train, order[self.rank:: self.world][: self.per_rank])

    def first_batch(self):
        items = [self.train[int(i)] for i in self.train_idx[: self.batch]]
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    def eval_batches(self):
        yield from self._loader(self.val, self.val_idx[self.rank:: self.world])
