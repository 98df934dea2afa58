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
