"""AdaQAT with the quantized layers' GEMMs on the emulated MAC (--mac), trained with the real loss."""

import json

import pytest
import torch
import torch.nn as nn

import ref
from ref.cli import main
from sim.adaqat.core import BitState, qat_model, quant_layers, set_mac
from sim.adaqat.train import AdaQatOptions
from sim.data import TensorData
from sim.loop import Dist, TrainingLoop, make_optimizer
from sim.models import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_emulated_forward_matches_the_golden_matmul():
    """Layer output = decode(ref.matmul(enc(q_x), enc(q_w)^T, C = enc(b))), bit for bit."""
    torch.manual_seed(0)
    model = qat_model(nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 5)), BitState(3, 3),
                      first_last_bits=None)
    x = torch.randn(6, 10)
    model(x)  # initialise the quantizers (float path)
    set_mac(model, "e5m2:e6m5:rn")
    lay = quant_layers(model)[1]
    h = torch.relu(model[0](x)).detach()
    with torch.no_grad():
        y = lay(h)
        qx, qw = lay.aq(h, 3), lay.wq(lay.layer.weight, 3)
    cfg = ref.parse_mac("e5m2:e6m5:rn")
    codes = ref.matmul(ref.encode(qx, ref.E5M2), ref.encode(qw, ref.E5M2).T.contiguous(), cfg,
                       ref.encode(lay.layer.bias.detach().reshape(1, -1), cfg.acc_fmt))
    assert torch.equal(y, ref.decode(codes, cfg.acc_fmt).to(torch.float32))
    set_mac(model, None)  # and it differs from the float GEMM (E6M5 accumulation rounds)
    with torch.no_grad():
        assert not torch.equal(lay(h), y)


def _train_steps(data_dir, spec, loss_scale: str = "dynamic", steps: int = 12):
    """A few real training steps (cross-entropy, the loop `srmac adaqat` runs) through ``spec``
    (None: float GEMMs). Returns the unscaled weight gradients of the first step, the loss of
    every step and the optimizer."""
    o = AdaQatOptions(model="mlp", hidden=32, depth=2, batch_size=16, lr=0.05, seed=3,
                      data_dir=str(data_dir), loss_scale=loss_scale, fixed="4/4")
    torch.manual_seed(o.seed)
    data = TensorData(o)
    model = qat_model(build_model("mlp", hidden=32, depth=2), BitState(4, 4))
    model(data.first_batch()[0])
    set_mac(model, spec, seed=o.seed)
    opt = make_optimizer(model, o)
    loop = TrainingLoop(model, data, opt, dist=Dist("cpu"), device=torch.device("cpu"), epochs=1)
    xb, yb = data.first_batch()
    losses, grads = [], None
    for _ in range(steps):
        losses.append(loop.train_step(xb, yb)[0])
        if grads is None:
            grads = {n: p.grad / opt.loss_scale for n, p in model.named_parameters()
                     if n.endswith("layer.weight")}
    return grads, losses, opt


@pytest.mark.parametrize("spec", ["e5m2:e6m5:sr_eager:4", "e4m3:fp16:rn"])
def test_training_through_an_fp8_mac_learns(data_dir, spec):
    """The real loss through an FP8 MAC: every weight gets the float gradient (up to the MAC's
    rounding), no step overflows, and the loss falls as in float."""
    grads, losses, opt = _train_steps(data_dir, spec)
    fgrads, flosses, _ = _train_steps(data_dir, None)
    for name, g in grads.items():
        f = fgrads[name]
        assert torch.isfinite(g).all(), name
        assert (g != 0).float().mean() >= 0.95 * (f != 0).float().mean(), name
        cos = float((g * f).sum() / (g.norm() * f.norm()))
        assert cos > 0.9, f"{name}: emulated gradient points elsewhere (cosine {cos:.3f})"
    assert opt.skipped == 0 and opt.loss_scale == 1024
    assert all(l == l for l in losses)  # no NaN
    assert losses[-1] < 0.8 * losses[0], losses
    assert abs(losses[-1] - flosses[-1]) < 0.1 * flosses[0], (losses, flosses)


def test_loss_scaling_keeps_small_gradients_alive():
    """A batch-mean loss gives gradients of ~1e-6 at a layer's output: below E5M2's smallest
    subnormal (2^-16) most vanish in the emulated backward GEMMs, unless the loss (so every
    gradient) is scaled first, as the loop does (x 1024, divided back before the update)."""
    torch.manual_seed(5)
    model = qat_model(nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8)),
                      BitState(4, 4), first_last_bits=None)
    x = torch.randn(32, 16)
    model(x)
    up = torch.randn(32, 8) * 2e-6  # dL/dy of the last layer

    def weight_grad(spec, scale):
        set_mac(model, spec, seed=1)
        model.zero_grad()
        (model(x) * up * scale).sum().backward()
        return model[0].layer.weight.grad / scale

    exact = weight_grad(None, 1.0)
    bare = weight_grad("e5m2:e6m5:sr_eager:4", 1.0)
    scaled = weight_grad("e5m2:e6m5:sr_eager:4", 1024.0)
    assert (bare == 0).float().mean() > 0.9
    assert (scaled == 0).float().mean() < 0.1
    cos = float((scaled * exact).sum() / (scaled.norm() * exact.norm()))
    assert cos > 0.95


def test_cli_mac_smoke_and_errors(data_dir, tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["adaqat", "--data-dir", str(data_dir), "--out", str(out), "--no-progress",
            "--batch-size", "8", "--model", "mlp", "--hidden", "8", "--depth", "2", "--epochs", "1",
            "--limit-train", "16"]
    assert main([*argv, "--mac", "e5m2:e6m5:sr_eager:4", "--lambda", "20"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["options"]["mac"] == "e5m2:e6m5:sr_eager:4" and s["steps"] == 2
    assert s["row"]["bits_wa"] != "8/8" and s["row"]["mac"] == "e5m2:e6m5:sr_eager:4"
    assert s["epochs"][0]["emulated_macs"] > 0
    capsys.readouterr()
    assert main([*argv, "--mac", "e5m2:zz"]) == 2
    err = capsys.readouterr().err.strip()
    assert "zz" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("spec", [None, "fp32"])
def test_mac_float_means_no_emulation(spec):
    assert AdaQatOptions(mac=spec).mac_config is None


def test_emulated_depthwise_conv_keeps_groups_and_padding_mode():
    """QuantLayer runs its GEMMs through the layers' public emulate(): a depthwise conv with
    reflect padding gives the bits of sim.QConv2d with the same options (not zero padding)."""
    import sim

    torch.manual_seed(1)
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, padding_mode="reflect")
    model = qat_model(nn.Sequential(nn.Conv2d(1, 4, 1), nn.ReLU(), dw, nn.ReLU(), nn.Flatten(),
                                    nn.Linear(4 * 5 * 5, 3)), BitState(4, 4), first_last_bits=None)
    x = torch.randn(2, 1, 5, 5)
    model(x)
    set_mac(model, "e5m2:e6m5:rn")
    lay = quant_layers(model)[1]
    h = torch.relu(model[0](x)).detach()
    with torch.no_grad():
        y = lay(h)
        qx, qw = lay.aq(h, 4), lay.wq(dw.weight, 4)
        outs = {}
        for mode in ("reflect", "zeros"):
            q = sim.QConv2d(4, 4, 3, padding=1, groups=4, padding_mode=mode, config="e5m2:e6m5:rn")
            q.weight.copy_(qw)
            q.bias.copy_(dw.bias)
            outs[mode] = q.eval()(qx)
    assert torch.equal(y, outs["reflect"]) and not torch.equal(y, outs["zeros"])
