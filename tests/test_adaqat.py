"""AdaQAT: LSQ quantizers, finite-difference and hardware-cost gradients, freezing, CLI."""

import csv
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from clitools import run_adaqat

from ref.cli import main
from sim.adaqat import (
    BitState,
    BitWidth,
    LsqQuantizer,
    bitops,
    fd_gradients,
    hw_gradients,
    layer_macs,
    qat_model,
    quant_range,
)
from sim.adaqat_models import build_adaqat_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_lsq_values_on_grid(bits, signed):
    torch.manual_seed(bits)
    q = LsqQuantizer(signed)
    x = torch.randn(1000) * 3
    x = torch.cat([x, -x])  # both ends reach past the range
    if not signed:
        x = x.relu()
    q(x, bits)  # initialise, then pick a step whose range x overflows on both ends
    top = 2 ** (bits - 1) if signed else 2**bits - 1
    q.step.data.fill_(float(x.abs().max()) / top * 0.8)
    y = q(x, bits)
    s = float(q.step.detach().abs())
    k = torch.round(y.detach() / s)
    assert torch.allclose(y.detach(), k * s, rtol=1e-6, atol=0)  # integer multiples of the step
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    assert (lo, hi) == quant_range(bits, signed)
    assert int(k.min()) == lo and int(k.max()) == hi  # x spans past the clipping range
    assert len(torch.unique(k)) <= 2**bits


def test_lsq_unsigned_clips_negative_and_signed_keeps_sign():
    x = torch.tensor([-3.0, -0.4, 0.0, 0.4, 3.0])
    qu, qs = LsqQuantizer(False), LsqQuantizer(True)
    for q in (qu, qs):
        q(x.abs(), 4)  # initialise
        q.step.data.fill_(0.5)
    assert qu(x, 4).tolist() == [0.0, 0.0, 0.0, 0.5, 3.0]
    assert qs(x, 4).tolist() == [-3.0, -0.5, 0.0, 0.5, 3.0]
    assert qs(x, 2).tolist() == [-1.0, -0.5, 0.0, 0.5, 0.5]  # grid {-2..1} * 0.5


def test_lsq_ste_and_step_gradients():
    q = LsqQuantizer(True)
    q(torch.ones(4), 3)
    q.step.data.fill_(1.0)
    # inside the range [-4, 3]: STE passes the gradient; outside: zero
    x = torch.tensor([-6.0, -1.3, 0.2, 2.6, 9.0], requires_grad=True)
    q.step.grad = None
    q(x, 3).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    # LSQ step gradient: (round(v) - v) inside, Q_n / Q_p when clipped; scaled by 1/sqrt(n*Q_p)
    v = x.detach()
    expect = sum(float(torch.round(t) - t) if -4 <= t <= 3 else (-4.0 if t < -4 else 3.0)
                 for t in v) / math.sqrt(5 * 3)
    assert q.step.grad.item() == pytest.approx(expect, rel=1e-5)


def _tiny_model():
    torch.manual_seed(0)
    state = BitState(4, 4)
    model = qat_model(nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3)),
                      state)
    return model, state


def test_fd_gradient_matches_independent_losses():
    model, state = _tiny_model()
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
    model(x)  # initialise steps
    gw, ga = fd_gradients(model, state, x, y, 3, 3)
    assert (state.w_bits, state.a_bits) == (4, 4)  # restored

    def loss(w, a):
        state.w_bits, state.a_bits = w, a
        with torch.no_grad():
            return float(F.cross_entropy(model(x), y))

    assert gw == pytest.approx(loss(3, 3) - loss(2, 3), abs=1e-6)
    assert ga == pytest.approx(loss(3, 3) - loss(3, 2), abs=1e-6)
    assert gw != 0 and ga != 0
    with pytest.raises(ValueError, match="widths >= 2"):
        fd_gradients(model, state, x, y, 1, 4)


def test_fd_gradient_leaves_batchnorm_stats():
    model = qat_model(build_adaqat_model("resnet-small", channels=2), BitState(4, 4))
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    model.train()
    bn = model.stem[1]
    before = bn.running_mean.clone()
    fd_gradients(model, BitState(4, 4), x, y, 4, 4)
    assert torch.equal(bn.running_mean, before)


def test_hw_gradient_and_bitops():
    assert hw_gradients(5.5, 3.25) == (3.25, 5.5)  # d(Nw*Na)/dNw = Na, d/dNa = Nw
    model, state = _tiny_model()
    layer_macs(model, (1, 12))
    assert [m.macs for m in model.modules() if hasattr(m, "wq")] == [12 * 6, 6 * 3]
    assert bitops(model, 4, 3) == 4 * 8 * 72 + 4 * 3 * 18  # first layer reads 8-bit pixels


def test_freezing_rule_and_bounds():
    b = BitWidth(8.0, 2.0, 8.0, lr=1.0, patience=4, tol=0.3)
    for _ in range(3):
        b.update(0.5)  # moving: 1/2 bit per step
    assert not b.frozen and b.value == pytest.approx(6.5)
    for _ in range(3):
        b.update(0.01)  # almost still, but the window still holds the 6.5 -> 6.0 move
    assert not b.frozen
    b.update(0.01)  # window of 5 values spans 0.04 < 0.3: freezes at ceil(6.46)
    assert b.frozen and b.frozen_at == 7 and b.value == 7.0 and b.bits == 7
    for g in (10.0, -10.0, 1e3):
        assert b.update(g) == 7.0
    assert b.bits == 7
    # bounds: clipped to [lo, hi]
    c = BitWidth(3.0, 2.0, 5.0, lr=1.0, patience=50, tol=0.1)
    c.update(100.0)
    assert c.value == 2.0 and c.bits == 2
    c.update(-100.0)
    assert c.value == 5.0
    assert BitWidth(4.2, 2, 8, 1, 5, 0.1).bits == 5  # ceil
    for args, msg in [((9, 2, 8, 1, 5, 0.1), "outside"), ((4, 1, 8, 1, 5, 0.1), "bounds"),
                      ((4, 2, 8, -1, 5, 0.1), "learning rate"), ((4, 2, 8, 1, 0, 0.1), "patience")]:
        with pytest.raises(ValueError, match=msg):
            BitWidth(*args)


def test_cli_adaqat_smoke(data_dir, tmp_path):
    s = run_adaqat(data_dir, tmp_path / "a", "--model", "mlp", "--hidden", "16", "--epochs", "2",
             "--lambda", "0.05", "--patience", "3", "--bit-lr", "2", "--pretrain-epochs", "1")
    rows = list(csv.DictReader(open(tmp_path / "a" / "bits.csv")))
    assert len(rows) == s["steps"] == 12
    nw = [float(r["n_w"]) for r in rows]
    assert nw[0] < 8.0  # moved by the hardware-cost term from the initial 8
    assert all(2.0 <= float(r["n_a"]) <= 8.0 for r in rows)
    f = s["frozen_w_at"]
    if f is not None:  # never moves after freezing
        assert len({r["n_w"] for r in rows[f - 1:]}) == 1
    assert (tmp_path / "a" / "bits.png").stat().st_size > 1000
    table = list(csv.DictReader(open(tmp_path / "a" / "summary.csv")))
    assert len(table) == 1 and table[0]["mode"] == "adaqat" and table[0]["total_epochs"] == "3"
    w, a = (int(v) for v in table[0]["bits_wa"].split("/"))
    assert w == int(rows[-1]["bits_w"]) and a == int(rows[-1]["bits_a"])
    assert int(table[0]["bitops"]) == w * 8 * 784 * 16 + w * a * 16 * 10


def test_cli_fixed_baseline_resnet(data_dir, tmp_path):
    s = run_adaqat(data_dir, tmp_path / "f", "--model", "resnet-small", "--channels", "2",
             "--fixed", "3/2", "--epochs", "1", "--limit-train", "16", "--limit-test", "8")
    assert s["row"]["bits_wa"] == "3/2" and s["row"]["explore_epochs"] == 0
    rows = list(csv.DictReader(open(tmp_path / "f" / "bits.csv")))
    assert {(r["bits_w"], r["bits_a"]) for r in rows} == {("3", "2")}


@pytest.mark.parametrize("extra, word", [
    (("--lambda", "-1"), "--lambda"),
    (("--fixed", "4x4"), "--fixed"),
    (("--min-bits", "1"), "bounds"),
    (("--init-bits", "9"), "outside"),
])
def test_cli_bad_input(data_dir, tmp_path, capsys, extra, word):
    rc = main(["adaqat", "--data-dir", str(data_dir), "--out", str(tmp_path / "x"),
               "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and len(err.splitlines()) == 1
