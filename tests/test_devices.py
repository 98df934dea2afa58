"""``--device auto | cpu | cuda`` for training (sim.devices.resolve_device, and the CLI)."""

from __future__ import annotations

import pytest
import torch
from clitools import one_line_error

from ref.cli import main
from sim import devices


@pytest.fixture
def machine(monkeypatch):
    """Pretend to have (or not) a CUDA GPU and the Triton kernel."""

    def set_(gpu: bool, triton: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
        monkeypatch.setattr(devices.fast_device, "triton_available", lambda: triton)

    return set_


@pytest.mark.parametrize("gpu,triton,emulated,want", [
    (False, False, True, "cpu"), (False, True, True, "cpu"), (False, True, False, "cpu"),
    (True, True, True, "cuda"), (True, True, False, "cuda"),
    (True, False, True, "cpu"),  # no GPU kernel: the reference loop on a GPU is slower
    (True, False, False, "cuda"),  # the float baseline needs no kernel
])
def test_auto_never_picks_a_slower_path(machine, gpu, triton, emulated, want):
    machine(gpu, triton)
    assert devices.resolve_device("auto", emulated=emulated) == want
    assert devices.resolve_device("cpu", emulated=emulated) == "cpu"


def test_cuda_without_a_gpu_or_kernel_is_an_error(machine):
    machine(False, True)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        devices.resolve_device("cuda")
    machine(True, False)
    with pytest.raises(ValueError, match="Triton"):
        devices.resolve_device("cuda", emulated=True)
    assert devices.resolve_device("cuda", emulated=False) == "cuda"
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        devices.resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_train_device_cuda_without_gpu_one_line_exit_2(capsys, tmp_path):
    """What the user runs: `srmac train --device cuda` on a machine without CUDA."""
    rc = main(["train", "--model", "mlp", "--mac", "e5m2:e6m5:rn", "--device", "cuda",
               "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 2
    msg = one_line_error(capsys, "train")
    assert "--device cuda" in msg
    assert not (tmp_path / "run").exists()
