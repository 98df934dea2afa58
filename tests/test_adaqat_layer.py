"""AdaQAT per-layer bit-widths (--per-layer, --bit-every) and float starts (--init)."""

import csv
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from clitools import run_adaqat

from ref.cli import main
from sim.adaqat.core import (
    BitState,
    bitops,
    fd_gradients_per_layer,
    hw_gradients_per_layer,
    layer_macs,
    qat_model,
    quant_layers,
)
from sim.adaqat.train import AdaQatOptions, Widths, load_float_init
from sim.models import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _mlp3(per_layer=True):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    model = qat_model(net, BitState(5, 5), per_layer=per_layer, first_last_bits=None)
    layer_macs(model, (1, 12))
    return model


def test_per_layer_states_are_separate():
    shared = quant_layers(_mlp3(per_layer=False))
    assert len({id(m.state) for m in shared}) == 1
    own = quant_layers(_mlp3())
    assert len({id(m.state) for m in own}) == 3
    own[1].state.w_bits = 3
    assert [m.state.w_bits for m in own] == [5, 3, 5]
    assert [m.name for m in own] == ["0", "2", "4"]


def test_fd_per_layer_matches_independent_losses():
    model = _mlp3()
    layers = quant_layers(model)
    for m, (w, a) in zip(layers, [(4, 5), (3, 4), (5, 3)], strict=True):
        m.state.w_bits, m.state.a_bits = w, a
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    model(x)  # initialise the LSQ steps

    def loss(**change):
        old = [(m.state.w_bits, m.state.a_bits) for m in layers]
        for key, v in change.items():  # e.g. w1=2: layer 1 weights at 2 bits
            setattr(layers[int(key[1:])].state, "w_bits" if key[0] == "w" else "a_bits", v)
        with torch.no_grad():
            val = float(F.cross_entropy(model(x), y))
        for m, (w, a) in zip(layers, old, strict=True):
            m.state.w_bits, m.state.a_bits = w, a
        return val

    g = fd_gradients_per_layer(model, x, y)
    base = loss()
    expect = [(base - loss(w0=3), None), (base - loss(w1=2), base - loss(a1=3)),
              (base - loss(w2=4), base - loss(a2=2))]
    assert len(g) == 3 and g[0][1] is None  # the first layer reads raw input: no N_a
    for (gw, ga), (ew, ea) in zip(g, expect, strict=True):
        assert gw == pytest.approx(ew, abs=1e-6)
        if ea is not None:
            assert ga == pytest.approx(ea, abs=1e-6)
    assert [(m.state.w_bits, m.state.a_bits) for m in layers] == [(4, 5), (3, 4), (5, 3)]
    assert any(gw != 0 for gw, _ in g)
    with pytest.raises(ValueError, match="per_layer=True"):
        fd_gradients_per_layer(_mlp3(per_layer=False), x, y)
    layers[2].state.a_bits = 1
    with pytest.raises(ValueError, match="widths >= 2"):
        fd_gradients_per_layer(model, x, y)


def test_hw_gradient_and_bitops_per_layer():
    model = _mlp3()
    layers = quant_layers(model)
    macs = [12 * 8, 8 * 6, 6 * 3]
    assert [m.macs for m in layers] == macs
    tot = sum(macs)
    nw, na = [6.5, 3.25, 4.0], [None, 5.0, 2.5]
    g = hw_gradients_per_layer(layers, nw, na)
    # d/dN_w,l of sum_l w_l a_l MACs_l / M: a_l MACs_l / M (first layer: 8-bit input)
    assert g[0] == (pytest.approx(8 * 96 / tot), None)
    assert g[1] == (pytest.approx(5.0 * 48 / tot), pytest.approx(3.25 * 48 / tot))
    assert g[2] == (pytest.approx(2.5 * 18 / tot), pytest.approx(4.0 * 18 / tot))
    for m, (w, a) in zip(layers, [(6, 5), (3, 4), (2, 7)], strict=True):
        m.state.w_bits, m.state.a_bits = w, a
    assert bitops(model) == 6 * 8 * 96 + 3 * 4 * 48 + 2 * 7 * 18
    assert bitops(model, 4, 4) == 4 * 8 * 96 + 4 * 4 * 48 + 4 * 4 * 18
    # the paper's setting: first and last layers at 8 bits, no gradient for them
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    ends = qat_model(net, BitState(5, 5), per_layer=True)
    layer_macs(ends, (1, 12))
    g = hw_gradients_per_layer(quant_layers(ends), [None, 3.25, None], [None, 5.0, None])
    assert g == [(None, None), (pytest.approx(5.0 * 48 / tot), pytest.approx(3.25 * 48 / tot)),
                 (None, None)]
    assert fd_gradients_per_layer(ends, torch.randn(4, 12), torch.randint(0, 3, (4,)))[0] == (
        None, None)


def test_cli_per_layer_cnn(data_dir, tmp_path):
    out = tmp_path / "pl"
    s = run_adaqat(data_dir, out, "--model", "cnn", "--channels", "4", "--per-layer",
                   "--bit-every", "2", "--first-last-bits", "0", "--epochs", "1", "--lambda", "2",
                   "--bit-lr", "1", "--patience", "2")
    rows = list(csv.DictReader(open(out / "bits.csv")))
    layers = list(csv.DictReader(open(out / "layers.csv")))
    assert len(rows) == s["steps"] == 6
    assert [r["name"] for r in layers] == ["0", "3", "7"]  # conv, conv, linear
    assert "n_a_0" not in rows[0] and {"n_w_0", "n_w_2", "n_a_1", "n_a_2"} <= set(rows[0])
    # widths change only on every 2nd step
    cols = [c for c in rows[0] if c.startswith("n_")]
    assert [r["updated"] for r in rows] == ["0", "1"] * 3
    for prev, r in zip(rows[:-1], rows[1:], strict=True):
        if r["updated"] == "0":
            assert all(r[c] == prev[c] for c in cols)
    assert [float(rows[1][c]) for c in cols] != [8.0] * len(cols)
    # each layer moves on its own (cost gradients scale with the layer's share of MACs)
    assert len({rows[1][f"n_w_{i}"] for i in range(3)}) == 3
    # a frozen width never moves again
    for i, lay in enumerate(layers):
        f = lay["frozen_w_at"]
        if f:
            upd = [r for r in rows if r["updated"] == "1"]
            assert len({r[f"n_w_{i}"] for r in upd[int(f) - 1:]}) == 1
    # BitOPs: per-layer widths times per-layer MACs (first layer: 8-bit pixels)
    expect = sum(int(r["w_bits"]) * (int(r["a_bits"]) if r["a_bits"] else 8) * int(r["macs"])
                 for r in layers)
    assert s["row"]["bitops"] == expect == int(rows[-1]["bitops"])
    assert s["row"]["mode"] == "adaqat-layer"
    w, a = (float(v) for v in s["row"]["bits_wa"].split("/"))
    mean_w = sum(int(r["w_bits"]) * int(r["macs"]) for r in layers) / sum(
        int(r["macs"]) for r in layers)
    assert w == pytest.approx(mean_w, abs=0.006)
    assert (out / "bits.png").stat().st_size > 1000


def test_cli_init_from_float_checkpoint(data_dir, tmp_path, capsys):
    common = ("--model", "mlp", "--hidden", "16", "--epochs", "1", "--fixed", "4/4")
    fresh_model = lambda: build_model("mlp", hidden=16)  # noqa: E731
    s1 = run_adaqat(data_dir, tmp_path / "p", *common, "--pretrain-epochs", "2")
    ckpt = tmp_path / "p" / "float_model.pt"
    sd = torch.load(ckpt, weights_only=True)
    fresh = fresh_model()
    load_float_init(fresh, ckpt)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in sd.items())
    # the same float start: the same float top-1 and, with the same batches, the same QAT run
    s2 = run_adaqat(data_dir, tmp_path / "i", *common, "--init", str(ckpt))
    assert s2["float_pretrain_top1"] == s1["float_pretrain_top1"]
    s0 = run_adaqat(data_dir, tmp_path / "r", *common)
    assert s0["float_pretrain_top1"] is None
    # DDP-prefixed and nested checkpoints load too
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pt")
    load_float_init(fresh_model(), tmp_path / "ddp.pt")
    capsys.readouterr()
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    bad = [(("--hidden", "32"), str(ckpt), "shape mismatch"),
           (("--model", "cnn"), str(ckpt), "does not match cnn"),
           ((), str(tmp_path / "junk.pt"), "not a PyTorch state dict"),
           ((), str(tmp_path / "missing.pt"), "no such file"),
           ((), str(tmp_path / "i" / "model.pt"), "missing key")]  # a QAT model, not float
    for extra, path, word in bad:
        rc = main(["adaqat", "--data-dir", str(data_dir), "--out", str(tmp_path / "x"),
                   "--no-progress", "--model", "mlp", "--hidden", "16", *extra, "--init", path])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and word in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("extra, word", [
    (("--per-layer", "--fixed", "4/4"), "--per-layer"),
    (("--bit-every", "0"), "--bit-every"),
    (("--model", "mlp", "--dataset", "imagenet"), "fashion-mnist"),
    (("--dataset", "imagenet", "--model", "resnet18"), "--data-dir"),
])
def test_cli_bad_input_layer(data_dir, tmp_path, capsys, extra, word):
    argv = ["adaqat", "--out", str(tmp_path / "x"), "--no-progress", *extra]
    if "imagenet" not in extra:
        argv += ["--data-dir", str(data_dir)]
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and len(err.splitlines()) == 1, err


def test_width_update_pairs_each_width_with_its_own_gradients():
    """_Widths flattens (N_w,l ..., N_a,l ...) and both gradient lists in the same order."""
    model = _mlp3()
    layers = quant_layers(model)
    o = AdaQatOptions(per_layer=True, lam=0.5, bit_lr=1.0, init_bits=6.0)
    widths = Widths(o, layers, BitState())
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    model(x)
    fd = fd_gradients_per_layer(model, x, y)
    task = widths.task_gradients(model, x, y)
    assert task == [gw for gw, _ in fd] + [ga for _, ga in fd if ga is not None]
    hw = hw_gradients_per_layer(layers, [6.0] * 3, [None, 6.0, 6.0])
    widths.update(task)
    for i in range(3):
        assert widths.w[i].value == pytest.approx(6.0 - (fd[i][0] + 0.5 * hw[i][0]))
    for i in (1, 2):
        assert widths.a[i].value == pytest.approx(6.0 - (fd[i][1] + 0.5 * hw[i][1]))
        assert layers[i].state.a_bits == widths.a[i].bits


def test_finite_differences_do_not_draw_dropout_masks():
    """MobileNet-V2 has dropout: both losses of a difference must see the same network."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))
    model = qat_model(net, BitState(4, 4), per_layer=True, first_last_bits=None)
    model.train()
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
    model(x)
    first = fd_gradients_per_layer(model, x, y)
    assert all(fd_gradients_per_layer(model, x, y) == first for _ in range(3))
    assert net[2].training  # dropout is back on for training


def test_init_from_srmac_train_float_model(data_dir, tmp_path):
    """`srmac train --mac fp32` writes model.pt; adaqat --init starts from exactly those weights."""
    tr = tmp_path / "train"
    assert main(["train", "--model", "cnn", "--channels", "4", "--mac", "fp32", "--epochs", "1",
                 "--batch-size", "16", "--data-dir", str(data_dir), "--out", str(tr),
                 "--no-progress", "--device", "cpu"]) == 0
    trained = json.loads((tr / "summary.json").read_text())["final"]["test_acc"]
    s = run_adaqat(data_dir, tmp_path / "q", "--model", "cnn", "--channels", "4", "--init",
             str(tr / "model.pt"), "--fixed", "8/8", "--epochs", "1")
    assert s["float_pretrain_top1"] == pytest.approx(trained, abs=1e-9)
