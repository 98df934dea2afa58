"""AdaQAT with the quantized layers' GEMMs on the emulated MAC (--mac)."""

import json

import pytest
import torch
import torch.nn as nn

import ref
from ref.cli import main
from sim.adaqat import BitState, qat_model, quant_layers, set_mac
from sim.data import write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_emulated_forward_matches_the_golden_matmul():
    """Layer output = decode(ref.matmul(codes(k_x), codes(k_w)^T)) * s_x * s_w + b, bit for bit."""
    torch.manual_seed(0)
    model = qat_model(nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 5)), BitState(3, 3))
    x = torch.randn(6, 10)
    model(x)  # initialise the LSQ steps (float path)
    set_mac(model, "e5m2:e6m5:rn")
    lay = quant_layers(model)[1]
    h = torch.relu(model[0](x)).detach()
    with torch.no_grad():
        y = lay(h)
        kx, sx = lay.aq.codes(h, 3)
        kw, sw = lay.wq.codes(lay.layer.weight, 3)
    cfg = ref.parse_mac("e5m2:e6m5:rn")
    assert float(kx.max()) <= 7 and float(kw.abs().max()) <= 4  # exact in E5M2
    codes = ref.matmul(ref.encode(kx, ref.E5M2), ref.encode(kw, ref.E5M2).T.contiguous(), cfg)
    expect = ref.decode(codes, cfg.acc_fmt).to(torch.float32) * (sx * sw) + lay.layer.bias
    assert torch.equal(y, expect)
    # and it differs from the float GEMM (E6M5 accumulation rounds)
    set_mac(model, None)
    with torch.no_grad():
        assert not torch.equal(lay(h), y)


def test_emulated_backward_reaches_every_parameter():
    torch.manual_seed(1)
    model = qat_model(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(3 * 6 * 6, 4)), BitState(4, 4))
    x = torch.randn(2, 1, 6, 6)
    model(x)
    set_mac(model, "e5m2:e6m5:sr_eager:4", seed=3)
    model(x).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert all(m._emu[0].macs > 0 for m in quant_layers(model))  # the emulated GEMMs ran


def test_cli_mac_smoke_and_errors(tmp_path, capsys):
    data = write_synthetic_dataset(tmp_path / "d", n_train=16, n_test=8)
    out = tmp_path / "o"
    argv = ["adaqat", "--data-dir", str(data), "--out", str(out), "--no-progress",
            "--batch-size", "8", "--model", "mlp", "--hidden", "8", "--epochs", "1"]
    assert main([*argv, "--mac", "e5m2:e6m5:sr_eager:4", "--lambda", "0.2"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["options"]["mac"] == "e5m2:e6m5:sr_eager:4" and s["steps"] == 2
    assert s["row"]["bits_wa"] != "8/8"
    capsys.readouterr()
    assert main([*argv, "--mac", "e5m2:zz"]) == 2
    err = capsys.readouterr().err.strip()
    assert "zz" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("spec", [None, "fp32"])
def test_mac_float_means_no_emulation(spec):
    from sim.adaqat_train import AdaQatOptions

    assert AdaQatOptions(mac=spec).mac_config is None
