"""AdaQAT: quantizers, finite-difference and hardware-cost gradients, freezing rule, CLI."""

import csv
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from clitools import run_adaqat

from ref.cli import main
from sim.adaqat.core import (
    BitState,
    BitWidth,
    bitops,
    fd_gradients,
    freeze_decision,
    hw_cost,
    hw_gradients,
    hw_gradients_per_layer,
    layer_macs,
    qat_model,
    quant_layers,
)
from sim.adaqat.quantizers import DoReFaWeight, LsqQuantizer, PactActivation, quant_range
from sim.models import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ---- quantizers --------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_dorefa_grid_and_scale(bits):
    torch.manual_seed(bits)
    w = torch.randn(500) * 0.05
    q = DoReFaWeight()
    y = q(w, bits)
    k, s = q.codes(w, bits)
    n = 2**bits - 1
    m = float(torch.tanh(w).abs().max())
    assert float(s) == pytest.approx(m / n)
    # odd integers in [-n, n] (2^b levels), both ends reached, q = k * s
    assert torch.equal(k, torch.round(k)) and set(k.unique().tolist()) <= set(range(-n, n + 1, 2))
    assert n in (float(k.max()), -float(k.min()))  # the largest |tanh w| maps to an end
    assert torch.allclose(y, k * s, rtol=0, atol=1e-6 * m)
    assert float((y - w).abs().max()) <= m / n * 1.0001 + 0.002  # within one step of tanh(w)


def test_dorefa_gradient_is_tanh_derivative():
    w = torch.tensor([-2.0, -0.3, 0.0, 0.7, 1.5], requires_grad=True)
    DoReFaWeight()(w, 3).sum().backward()
    expect = 1 - torch.tanh(w.detach()) ** 2  # STE through the rounding, max held constant
    assert torch.allclose(w.grad, expect, rtol=1e-5)


@pytest.mark.parametrize("signed", [False, True])
def test_pact_grid_clip_and_gradients(signed):
    q = PactActivation(signed)
    x = torch.tensor([-3.0, -0.4, 0.0, 0.26, 0.9, 1.2, 3.0], requires_grad=True)
    q(x.detach(), 2)  # initialise, then set the clip
    q.alpha.data.fill_(1.0)
    y = q(x, 2)
    if signed:  # clip to [-1, 1], grid {-2..1} * 1/2
        assert y.tolist() == [-1.0, -0.5, 0.0, 0.5, 0.5, 0.5, 0.5]
    else:  # clip to [0, 1], grid {0..3} * 1/3
        assert y.detach().tolist() == pytest.approx([0, 0, 0, 1 / 3, 1, 1, 1])
    y.sum().backward()
    # PACT: STE inside the clip range, 0 outside; d/d alpha = 1 above alpha (-1 below -alpha)
    inside = [float((-1.0 if signed else 0.0) < v < 1.0) for v in x.tolist()]
    assert x.grad.tolist() == inside
    assert float(q.alpha.grad) == (1.0 if signed else 2.0)  # +1.2, +3.0 above; -1 for -3.0
    k, s = q.codes(x.detach(), 2)
    assert float(s) == pytest.approx(0.5 if signed else 1 / 3) and torch.equal(k, torch.round(k))
    if not signed:  # one bit less keeps the clipping range and halves the resolution
        top = [float(q(torch.tensor([5.0]), b).detach()) for b in (3, 4)]
        assert top == pytest.approx([1.0, 1.0])
        assert float(q.step(x, 3)) * 7 == pytest.approx(float(q.step(x, 4)) * 15)  # alpha


def test_pact_initialises_its_clip_from_the_first_batch():
    x = torch.rand(1000) * 2
    q = PactActivation()
    q(x, 4)
    assert float(q.alpha.detach()) == pytest.approx(float(x.mean() + 3 * x.std()), rel=1e-5)
    q(x * 10, 4)
    assert float(q.alpha.detach()) == pytest.approx(float(x.mean() + 3 * x.std()), rel=1e-5)  # once


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
    q.step_size.data.fill_(float(x.abs().max()) / top * 0.8)
    y = q(x, bits)
    k, s = q.codes(x, bits)
    assert torch.allclose(y.detach(), k * s, rtol=1e-6, atol=0)  # integer multiples of the step
    lo, hi = quant_range(bits, signed)
    assert int(k.min()) == lo and int(k.max()) == hi  # x spans past the clipping range


def test_lsq_step_gradient_scale_follows_lsq():
    """1/sqrt(numel * Q_p) for weights, 1/sqrt(features per sample * Q_p) for activations."""
    x = torch.rand(16, 5) * 4
    for activation, n in ((False, 16 * 5), (True, 5)):
        q = LsqQuantizer(False, activation=activation)
        q(x, 3)
        q.step_size.data.fill_(1.0)
        q.step_size.grad = None
        q(x, 3).sum().backward()
        v = x.flatten().tolist()
        raw = sum(float(round(t) - t) if t <= 7 else 7.0 for t in v)  # LSQ's ds before scaling
        assert q.step_size.grad.item() == pytest.approx(raw / math.sqrt(n * 7), rel=1e-4)


# ---- layers, first/last layers, BitOPs and cost --------------------------------------------

def _mlp3(per_layer=False, ends=8, quantizer="dorefa-pact"):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    model = qat_model(net, BitState(5, 5), per_layer=per_layer, quantizer=quantizer,
                      first_last_bits=ends)
    layer_macs(model, (1, 12))
    return model


def test_first_and_last_layers_stay_at_8_bits():
    model = _mlp3()
    first, mid, last = quant_layers(model)
    assert (first.learn_w, first.learn_a, first.w_bits, first.a_bits) == (False, False, 8, 8)
    assert (mid.learn_w, mid.learn_a, mid.w_bits, mid.a_bits) == (True, True, 5, 5)
    assert (last.learn_w, last.learn_a, last.w_bits, last.a_bits) == (False, False, 8, 8)
    assert first.aq is None  # the raw input is not quantized
    mid.state.w_bits = 3
    assert [m.w_bits for m in quant_layers(model)] == [8, 3, 8]
    free = quant_layers(_mlp3(ends=None))
    assert [(m.learn_w, m.learn_a) for m in free] == [(True, False), (True, True), (True, True)]


def test_bitops_and_cost_are_the_same_function_in_both_modes():
    """Network-wide and per-layer mode: the same L_HW = BitOPs / MACs, fixed layers counted."""
    macs = [12 * 8, 8 * 6, 6 * 3]
    for ends in (8, None):
        g_model, p_model = _mlp3(False, ends), _mlp3(True, ends)
        g_layers, p_layers = quant_layers(g_model), quant_layers(p_model)
        assert [m.macs for m in g_layers] == macs
        nw, na = 4.3, 2.6
        per_w = [nw if m.learn_w else None for m in p_layers]
        per_a = [na if m.learn_a else None for m in p_layers]
        ew = [nw if m.learn_w else 8 for m in p_layers]
        ea = [na if m.learn_a else 8 for m in p_layers]
        expect = sum(m * w * a for m, w, a in zip(macs, ew, ea, strict=True)) / sum(macs)
        assert hw_cost(g_layers, nw, na) == pytest.approx(expect)
        assert hw_cost(p_layers, per_w, per_a) == pytest.approx(expect)
        gw, ga = hw_gradients(g_layers, nw, na)
        per = hw_gradients_per_layer(p_layers, per_w, per_a)
        assert gw == pytest.approx(sum(g for g, _ in per if g is not None))
        assert ga == pytest.approx(sum(g for _, g in per if g is not None))
        eps = 1e-6  # and they are the derivatives of the cost
        assert gw == pytest.approx((hw_cost(g_layers, nw + eps, na) - hw_cost(g_layers, nw, na))
                                   / eps, rel=1e-4)
        assert ga == pytest.approx((hw_cost(g_layers, nw, na + eps) - hw_cost(g_layers, nw, na))
                                   / eps, rel=1e-4)
    # paper's setting: only the middle layer learns; its share of the MACs scales the gradient
    layers = quant_layers(_mlp3())
    assert hw_gradients(layers, 4.3, 2.6) == (pytest.approx(2.6 * 48 / 162),
                                               pytest.approx(4.3 * 48 / 162))
    assert bitops(_mlp3()) == 8 * 8 * 96 + 5 * 5 * 48 + 8 * 8 * 18
    assert bitops(_mlp3(), 4, 3) == 8 * 8 * 96 + 4 * 3 * 48 + 8 * 8 * 18


def test_fd_gradient_matches_independent_losses():
    model = _mlp3()
    state = quant_layers(model)[1].state
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
    model(x)  # initialise the quantizers
    gw, ga = fd_gradients(model, state, x, y, 3, 3)
    assert (state.w_bits, state.a_bits) == (5, 5)  # restored

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
    model = qat_model(build_model("resnet-small", channels=2), BitState(4, 4))
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    model.train()
    bn = model.stem[1]
    before = bn.running_mean.clone()
    fd_gradients(model, quant_layers(model)[1].state, x, y, 4, 4)
    assert torch.equal(bn.running_mean, before)


# ---- freezing rule ------------------------------------------------------------------------

def test_freeze_decision_on_constructed_windows():
    assert freeze_decision([4, 4, 4, 4]) == 4  # settled
    assert freeze_decision([3, 4, 3, 4, 3, 4]) == 4  # 3/4 alternation: the higher
    assert freeze_decision([4, 4, 3, 3, 4, 3]) == 4  # back and forth, unevenly
    assert freeze_decision([5, 5, 4, 4, 4, 4]) is None  # crossed one boundary once: moving
    assert freeze_decision([5, 4, 3, 4, 3, 3]) is None  # three values: moving
    assert freeze_decision([2, 4, 2, 4]) is None  # not neighbours
    # the real values decide whether one integer width is settled or just drifting through
    assert freeze_decision([6] * 5, [5.5, 5.6, 5.45, 5.6, 5.5]) == 6  # hovering
    assert freeze_decision([6] * 5, [5.9, 5.8, 5.7, 5.6, 5.5]) is None  # drifting down
    assert freeze_decision([6] * 5, [5.9, 5.8, 5.85, 5.7, 5.65]) is None  # mostly drifting
    assert freeze_decision([2] * 4, [2.0] * 4) == 2  # held at the bound


def _run_width(values_of_step, patience=6):
    """Drive a BitWidth so that its value after update t is values_of_step(t)."""
    b = BitWidth(8.0, 2.0, 8.0, lr=1.0, patience=patience)
    for t in range(200):
        b.update(b.value - values_of_step(t))  # N - lr * g = target
        if b.frozen:
            return b, t + 1
    return b, None


def test_bitwidth_freezes_an_oscillating_trajectory_at_the_higher_width():
    # N hops across the 3/4 boundary every update (3.1 <-> 2.9 is 4 <-> 3 bits) after a descent
    b, at = _run_width(lambda t: 8.0 - t if t < 5 else (3.1 if t % 2 else 2.9))
    assert b.frozen and b.frozen_how == "oscillating" and b.value == 4.0 and b.bits == 4
    assert at == 5 + 6  # the window (patience + 1 values) holds only 3s and 4s from then
    assert b.update(-100.0) == 4.0 and b.update(100.0) == 4.0  # frozen


def test_bitwidth_freezes_a_settled_trajectory_and_not_a_moving_one():
    # hovers inside (5, 6]: 6 bits; the window holds the initial 8 until 6 updates later
    b, at = _run_width(lambda t: 5.5 + (0.1 if t % 2 else -0.1))
    assert b.frozen and b.frozen_how == "settled" and b.value == 6.0 and at == 7
    # a slow drift (0.01 bit per update, 95 updates per bit) never freezes on the way
    b, at = _run_width(lambda t: 7.95 - 0.01 * t)
    assert not b.frozen and at is None and b.bits == 6
    # a steady descent (one bit every ~3 updates) never settles before the lower bound 2,
    # reached at update 21; it freezes there a window (8 + 1 values) later
    b, at = _run_width(lambda t: 7.9 - 0.3 * t, patience=8)
    assert b.frozen and b.value == 2.0 and b.frozen_how == "settled" and at == 29


def test_bitwidth_bounds_and_bad_arguments():
    c = BitWidth(3.0, 2.0, 5.0, lr=1.0, patience=50)
    c.update(100.0)
    assert c.value == 2.0 and c.bits == 2
    c.update(-100.0)
    assert c.value == 5.0
    assert BitWidth(4.2, 2, 8, 1, 5).bits == 5  # ceil
    for args, msg in [((9, 2, 8, 1, 5), "outside"), ((4, 1, 8, 1, 5), "bounds"),
                      ((4, 2, 8, -1, 5), "learning rate"), ((4, 2, 8, 1, 0), "patience")]:
        with pytest.raises(ValueError, match=msg):
            BitWidth(*args)
    with pytest.raises(ValueError, match="not finite"):
        BitWidth(4, 2, 8, 1, 5).update(float("nan"))


# ---- the command ---------------------------------------------------------------------------

def test_cli_adaqat_smoke(data_dir, tmp_path):
    s = run_adaqat(data_dir, tmp_path / "a", "--model", "mlp", "--hidden", "16", "--depth", "2",
                   "--epochs", "2", "--lambda", "5", "--patience", "3", "--bit-lr", "2",
                   "--pretrain-epochs", "1")
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
    # BitOPs: first layer 8-bit weights x 8-bit pixels, middle learned, classifier 8/8
    assert int(table[0]["bitops"]) == 8 * 8 * 784 * 16 + w * a * 16 * 16 + 8 * 8 * 16 * 10
    log = list(csv.DictReader(open(tmp_path / "a" / "log.csv")))
    assert [r["epoch"] for r in log] == ["1", "2"] and "test_acc" in log[0]


def test_cli_mlp_without_a_middle_layer_explains(data_dir, tmp_path, capsys):
    rc = main(["adaqat", "--data-dir", str(data_dir), "--out", str(tmp_path / "x"),
               "--no-progress", "--model", "mlp", "--hidden", "8", "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--first-last-bits" in err and "--depth 2" in err
    assert len(err.splitlines()) == 1


def test_cli_fixed_baseline_resnet(data_dir, tmp_path):
    s = run_adaqat(data_dir, tmp_path / "f", "--model", "resnet-small", "--channels", "2",
                   "--fixed", "3/2", "--epochs", "1", "--limit-train", "16", "--limit-test", "8")
    assert s["row"]["bits_wa"] == "3/2" and s["row"]["explore_epochs"] == 0
    rows = list(csv.DictReader(open(tmp_path / "f" / "bits.csv")))
    assert {(r["bits_w"], r["bits_a"]) for r in rows} == {("3", "2")}
    lay = s["layers"]
    assert (lay[0]["w_bits"], lay[-1]["w_bits"], lay[-1]["a_bits"]) == (8, 8, 8)
    assert {(r["w_bits"], r["a_bits"]) for r in lay[1:-1]} == {(3, 2)}


@pytest.mark.parametrize("extra, word", [
    (("--lambda", "-1"), "--lambda"),
    (("--fixed", "4x4"), "--fixed"),
    (("--min-bits", "1"), "bounds"),
    (("--init-bits", "9"), "outside"),
    (("--first-last-bits", "-1"), "--first-last-bits"),
    (("--loss-scale", "0"), "--loss-scale"),
    (("--depth", "0"), "--depth"),
])
def test_cli_bad_input(data_dir, tmp_path, capsys, extra, word):
    rc = main(["adaqat", "--data-dir", str(data_dir), "--out", str(tmp_path / "x"),
               "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and len(err.splitlines()) == 1, err
