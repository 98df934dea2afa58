"""IDX reader and the missing-dataset message."""

import gzip
import struct

import numpy as np
import pytest

import sim
from ref.cli import main
from sim.data import write_synthetic_dataset


def test_read_hand_built_idx(tmp_path):
    # 2 x 3 uint8 and 2 big-endian int32, written byte by byte (not with write_idx)
    raw = b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + bytes(range(6))
    (tmp_path / "a.idx").write_bytes(raw)
    a = sim.read_idx(tmp_path / "a.idx")
    assert a.dtype == np.uint8 and a.shape == (2, 3) and a.tolist() == [[0, 1, 2], [3, 4, 5]]
    with gzip.open(tmp_path / "b.gz", "wb") as fh:
        fh.write(b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + struct.pack(">ii", -7, 258))
    assert sim.read_idx(tmp_path / "b.gz").tolist() == [-7, 258]


def test_write_read_roundtrip(tmp_path):
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("x.idx", "x.idx.gz"):
        np.testing.assert_array_equal(sim.read_idx(sim.write_idx(tmp_path / name, x)), x)


def test_bad_idx(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        sim.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"ab")
    with pytest.raises(ValueError, match="payload"):
        sim.read_idx(tmp_path / "short")


def test_load_synthetic(tmp_path):
    write_synthetic_dataset(tmp_path, n_train=12, n_test=5)
    xtr, ytr, xte, yte = sim.load_fashion_mnist(tmp_path)
    assert xtr.shape == (12, 28, 28) and ytr.shape == (12,) and xte.shape == (5, 28, 28)
    assert yte.max() < 10


def test_missing_dataset_message(tmp_path):
    with pytest.raises(sim.DatasetMissingError) as info:
        sim.load_fashion_mnist(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "make setup" in msg


def test_missing_dataset_cli(tmp_path, capsys):
    rc = main(["train", "--data-dir", str(tmp_path / "none"), "--no-progress",
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "dataset-fashion-mnist" in err


def test_32x32_models_read_fashion_mnist_padded_with_background(data_dir):
    import torch

    from sim.data import MEAN, STD, TensorData
    from sim.loop import open_data
    from sim.train import TrainOptions

    small = TensorData(TrainOptions(data_dir=str(data_dir)))
    big = open_data(TrainOptions(model="resnet20", data_dir=str(data_dir)))
    assert small.input_shape == (1, 1, 28, 28) and big.input_shape == (1, 1, 32, 32)
    assert big.xtr.shape[1:] == (1, 32, 32) and big.xte.shape[1:] == (1, 32, 32)
    assert torch.equal(big.xtr[:, :, 2:30, 2:30], small.xtr)
    border = big.xtr.clone()
    border[:, :, 2:30, 2:30] = (0.0 - MEAN) / STD
    assert torch.all(border == (0.0 - MEAN) / STD)  # a black (0) pixel, as the images' own edges
