"""`srmac train` smoke runs on a tiny synthetic IDX dataset (no real data needed)."""

import csv
import json

import pytest

from ref.cli import main


def _train(data_dir, out, *extra):
    argv = ["train", "--data-dir", str(data_dir), "--out", str(out), "--no-progress", *extra]
    assert main(argv) == 0
    return json.loads((out / "summary.json").read_text())


def test_train_mlp_emulated(data_dir, tmp_path):
    args = ("--model", "mlp", "--hidden", "8", "--mac", "e5m2:e6m5:sr_eager:4", "--epochs", "2",
            "--limit-train", "32", "--batch-size", "16", "--seed", "3", "--opt-fmt", "bf16",
            "--opt-rounding", "sr", "--opt-rbits", "8", "--quant-grad", "sr:4")
    s1 = _train(data_dir, tmp_path / "a", *args)
    rows = list(csv.DictReader(open(tmp_path / "a" / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "train_acc", "test_acc", "time_s", "emulated_macs"} <= set(rows[0])
    # per epoch: fwd (784*8 + 8*10) per sample on 32 + 16 samples, plus the backward GEMMs
    fwd = (784 * 8 + 8 * 10) * 48
    assert int(rows[0]["emulated_macs"]) > fwd
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    assert s1["layer_config"]["fwd"] == "e5m2:e6m5:sr_eager:4"
    assert s1["layer_config"]["grad"] == "sr:4"
    assert s1["initial_param_digest"] != s1["param_digests"][0]  # it trained
    s2 = _train(data_dir, tmp_path / "b", *args)  # deterministic for a seed
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "emulated_macs")
    metrics = [[[r[k] for k in keys] for r in s["epochs"]] for s in (s1, s2)]
    assert metrics[0] == metrics[1]
    assert s1["param_digests"] == s2["param_digests"]


def test_train_cnn_and_float_baseline(data_dir, tmp_path):
    s = _train(data_dir, tmp_path / "c", "--model", "cnn", "--channels", "2", "--mac",
               "e4m3:e6m5:rn", "--limit-train", "4", "--limit-test", "4", "--batch-size", "4")
    assert s["emulated_macs"] > 0 and not s["float_baseline"]
    f = _train(data_dir, tmp_path / "f", "--model", "mlp", "--mac", "fp32", "--epochs", "3",
               "--lr", "0.1")
    assert f["float_baseline"] and f["emulated_macs"] == 0
    assert f["final"]["train_loss"] < f["epochs"][0]["train_loss"]


def test_train_bad_mac(data_dir, tmp_path, capsys):
    rc = main(["train", "--data-dir", str(data_dir), "--mac", "e5m2:e6m5:sr_eager",
               "--out", str(tmp_path / "x"), "--no-progress"])
    assert rc == 2 and "rbits" in capsys.readouterr().err


def test_cosine_schedule_decays_to_zero(data_dir, tmp_path, monkeypatch):
    """--lr-schedule cosine: the rate falls to 0 at the last step (so the run differs from const)."""
    import torch

    seen = []
    real_step = torch.optim.lr_scheduler.CosineAnnealingLR.step

    def step(self, *a, **k):
        real_step(self, *a, **k)
        seen.append(self.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(torch.optim.lr_scheduler.CosineAnnealingLR, "step", step)
    base = ("--mac", "fp32", "--epochs", "2", "--batch-size", "16", "--lr", "0.1")
    c = _train(data_dir, tmp_path / "cos", *base, "--lr-schedule", "cosine")
    assert len(seen) == 2 * 3 + 1  # constructor step + 48 / 16 steps per epoch
    assert seen[1] < 0.1 and seen[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(seen, seen[1:], strict=False))
    k = _train(data_dir, tmp_path / "const", *base)
    assert c["param_digests"] != k["param_digests"]
    with pytest.raises(SystemExit) as exc:
        main(["train", "--lr-schedule", "step"])
    assert exc.value.code == 2


def test_training_verbs_speak_the_one_mac_vocabulary(data_dir, tmp_path, capsys):
    """--mac SPEC or the split flags of ref.cli (defaults e5m2:e6m5:sr_eager:4); none: float."""
    s = _train(data_dir, tmp_path / "s", "--in", "e4m3", "--rounding", "rn", "--limit-train", "16",
               "--hidden", "4")
    assert s["options"]["mac"] == "e4m3:e6m5:rn" and s["layer_config"]["fwd"] == "e4m3:e6m5:rn"
    s = _train(data_dir, tmp_path / "f", "--limit-train", "16", "--hidden", "4")
    assert s["options"]["mac"] == "fp32" and s["float_baseline"]
    assert main(["adaqat", "--data-dir", str(data_dir), "--out", str(tmp_path / "a"),
                 "--no-progress", "--fixed", "4/4", "--limit-train", "16", "--channels", "2",
                 "--rbits", "6"]) == 0
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert s["options"]["mac"] == "e5m2:e6m5:sr_eager:6"
    capsys.readouterr()
    for verb, bad, word in [("train", ["--mac", "fp32", "--in", "e4m3"], "contradict"),
                            ("train", ["--mac", "e5m2:e6m5:rn", "--rbits", "3"], "both describe"),
                            ("adaqat", ["--rounding", "rz", "--rbits", "2"], "does nothing")]:
        rc = main([verb, "--data-dir", str(data_dir), "--out", str(tmp_path / "x"),
                   "--no-progress", *bad])
        err = capsys.readouterr().err
        assert rc == 2 and word in err and err.count("\n") == 1, err
        assert not (tmp_path / "x").exists()


# ---- models of the one registry, the optimizer wrapper, the FP8 recipe, output quantizers ----

def test_resnet20_trains_through_the_emulated_mac_from_the_cli(data_dir, tmp_path):
    """ResNet-20 (width 1/8) on Fashion-MNIST padded to 32x32, every GEMM on E5M2/E6M5 eager SR."""
    s = _train(data_dir, tmp_path / "r20", "--model", "resnet20", "--width", "0.125",
               "--mac", "e5m2:e6m5:sr_eager:4", "--epochs", "4", "--limit-train", "32",
               "--limit-test", "8", "--batch-size", "16", "--lr", "0.1")
    assert s["layer_config"]["fwd"] == s["layer_config"]["bwd_weight"] == "e5m2:e6m5:sr_eager:4"
    # 19 3x3 convs, 2 projection shortcuts and the classifier: all emulated, nothing left float
    assert s["conversion"].startswith("emulated: 22,") and "(convertible: 0)" in s["conversion"]
    # the MACs of 2 training steps of 16 and one evaluation of 8 samples of 32x32 (not 28x28)
    import torch

    import sim
    from sim.models import build_model

    m = sim.quantize_model(build_model("resnet20", width=0.125), "e5m2:e6m5:sr_eager:4")
    m(torch.randn(16, 1, 32, 32)).sum().backward()
    step = sim.total_macs(m)
    sim.reset_macs(m)
    with torch.no_grad():
        m.eval()(torch.randn(8, 1, 32, 32))
    assert all(e["emulated_macs"] == 2 * step + sim.total_macs(m) for e in s["epochs"])
    losses = [e["train_loss"] for e in s["epochs"]]
    assert losses[-1] < losses[0] - 0.2, losses  # it learns through the emulated GEMMs
    assert s["epochs"][-1]["skipped_steps"] == 0


def test_adam_with_sr_rounded_bf16_weights_and_state_from_the_cli(data_dir, tmp_path,
                                                                 monkeypatch):
    import torch

    import sim.train

    made = []
    real = sim.train.make_optimizer

    def spy(*a, **k):
        made.append(real(*a, **k))
        return made[-1]

    monkeypatch.setattr(sim.train, "make_optimizer", spy)
    s = _train(data_dir, tmp_path / "adam", "--mac", "e5m2:e6m5:rn", "--hidden", "8",
               "--optimizer", "adam", "--opt-fmt", "bf16", "--opt-state-fmt", "bf16",
               "--opt-rounding", "sr", "--opt-rbits", "8", "--epochs", "3", "--batch-size", "16")
    assert s["options"]["lr"] == 1e-3 and s["options"]["optimizer"] == "adam"
    (opt,) = made
    assert isinstance(opt.optimizer, torch.optim.Adam) and opt.rounding == "sr" and opt.rbits == 8
    losses = [e["train_loss"] for e in s["epochs"]]
    assert losses[-1] < losses[0], losses
    as_bf16 = lambda t: t.to(torch.bfloat16).to(t.dtype)  # noqa: E731
    weights = torch.load(tmp_path / "adam" / "model.pt", weights_only=True)
    for name, w in weights.items():
        if w.is_floating_point():
            assert torch.equal(w, as_bf16(w)), name  # stored as bf16 values
    moments = [v for p in opt.params for k, v in opt.param_state(p).items()
               if k in ("exp_avg", "exp_avg_sq")]
    assert len(moments) == 2 * len(opt.params)
    assert all(torch.equal(m, as_bf16(m)) for m in moments)
    assert any(not torch.equal(m.float(), m.float().to(torch.float16).float()) for m in moments)


def test_recipe_fp8_is_sim_fp8_config_and_quant_out_attaches_quantizers(data_dir, tmp_path):
    import sim

    s = _train(data_dir, tmp_path / "fp8", "--model", "cnn", "--channels", "2", "--recipe", "fp8",
               "--acc", "fp16", "--rounding", "sr_lazy", "--rbits", "6", "--quant-out",
               "e4m3:rn,e5m2:rn", "--limit-train", "16", "--batch-size", "16")
    assert s["layer_config"] == sim.fp8_config("fp16", "sr_lazy:6").to_dict()
    # cnn: conv, ReLU, pool, conv, ReLU, pool, linear: 3 GEMMs, 4 output quantizers
    assert s["conversion"].startswith("emulated: 3, output quantizers: 4,")
    assert s["options"]["quant_out"] == "e4m3:rn,e5m2:rn"
    d = _train(data_dir, tmp_path / "fp8d", "--recipe", "fp8", "--hidden", "4",
               "--limit-train", "16")
    assert d["layer_config"] == sim.fp8_config("e6m5", "sr_eager:4").to_dict()


@pytest.mark.parametrize("argv", [
    ["--model", "resnet20", "--width", "0.5", "--mac", "e5m2:e6m5:sr_eager:4", "--seed", "3"],
    ["--recipe", "fp8", "--acc", "fp16", "--rounding", "rn", "--quant-out", "e4m3:rn,e5m2:rn"],
    ["--recipe", "fp8", "--quant-grad", "e5m2:sr:8", "--epochs", "2"],
    ["--mac", "e4m3:fp16:rn", "--mac-bwd-input", "e5m2:fp16:rn", "--quant-grad", "sr:4"],
    ["--mac", "e5m2:e6m5:rn", "--optimizer", "adamw", "--betas", "0.8,0.99", "--weight-decay",
     "0.01", "--opt-fmt", "bf16", "--opt-kahan", "--lr", "0.05"],
    ["--optimizer", "adam", "--opt-fmt", "bf16", "--opt-master", "--opt-state-fmt", "fp32"],
    ["--model", "mobilenet-v2-cifar", "--dataset", "imagenet", "--data-dir", "/x"],
    ["--model", "resnet20", "--dataset", "imagenet", "--data-dir", "/x", "--image-size", "224"],
])
def test_table_command_reads_back_into_the_same_options(argv):
    """sim.table.command() shows every option that decides the result: the CLI reads it back."""
    from ref.cli import build_parser
    from sim.cli import train_options
    from sim.results import result_key
    from sim.table import command

    parser = build_parser()
    opts = train_options(parser.parse_args(["train", *argv]))
    opts.validate()
    text = command(opts)
    again = train_options(parser.parse_args(text.split()[1:]))
    assert result_key(again) == result_key(opts), text
    if "--recipe" in argv:
        assert "--recipe fp8" in text and "--mac-bwd" not in text
    if "--mac-bwd-input" in argv:
        assert "--mac-bwd-input e5m2:fp16:rn" in text
