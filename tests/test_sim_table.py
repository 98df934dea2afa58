"""`srmac train-table`: the grid, its resumability, the aggregate and the written table."""

import csv
from dataclasses import asdict

import pytest

from ref.cli import main
from sim.results import RunFolder, result_key
from sim.table import DEFAULT_MACS, TableSpec, aggregate, command, markdown, parse_list, run_table
from sim.train import TrainOptions


def _fake_train(calls):
    """A stand-in for sim.train.run: accuracy depends on the MAC and seed, files as run writes."""

    def train(opts: TrainOptions):
        calls.append((opts.model, opts.mac, opts.seed))
        acc = 0.5 + 0.1 * len(opts.mac) / 30 + 0.01 * opts.seed
        rows = [dict(epoch=e, train_loss=1.0 / e, train_acc=acc, test_loss=1.0, test_acc=acc,
                     time_s=2.0 * e, emulated_macs=1000 * e) for e in range(1, opts.epochs + 1)]
        with RunFolder(opts.out, "test") as folder:
            return folder.finish({"log.csv": "epoch\n1\n"},
                                 dict(options=asdict(opts), result_key=result_key(opts),
                                      epochs=rows, final=rows[-1]))

    return train


def test_default_grid_is_the_issue_grid():
    assert DEFAULT_MACS[0] == "fp32"
    assert {"e5m2:e6m5:rn", "e5m2:e6m5:rz"} <= set(DEFAULT_MACS)
    for mode in ("sr_lazy", "sr_eager"):
        assert [m for m in DEFAULT_MACS if mode in m] == [f"e5m2:e6m5:{mode}:{r}" for r in (2, 4, 6, 8)]


def test_grid_runs_once_and_resumes(tmp_path):
    spec = TableSpec(tmp_path, models=["mlp", "cnn"], macs=["fp32", "e5m2:e6m5:rn"], seeds=[0, 1],
                     base=TrainOptions(epochs=2, limit_train=64))
    calls = []
    out = run_table(spec, progress=False, train=_fake_train(calls))
    assert len(out) == len(calls) == 8 and len(set(calls)) == 8
    assert run_table(spec, progress=False, train=_fake_train(calls)) == out
    assert len(calls) == 8  # every run was found finished
    # Changing a shared option makes every run stale; removing one run reruns only it.
    (tmp_path / "mlp" / "fp32" / "s1" / "summary.json").unlink()
    run_table(spec, progress=False, train=_fake_train(calls))
    assert calls[8:] == [("mlp", "fp32", 1)]
    spec3 = TableSpec(tmp_path, models=["mlp"], macs=["fp32"], seeds=[0],
                      base=TrainOptions(epochs=3, limit_train=64))
    run_table(spec3, progress=False, train=_fake_train(calls))
    assert calls[9:] == [("mlp", "fp32", 0)]


def test_aggregate_statistics_and_markdown(tmp_path):
    spec = TableSpec(tmp_path, models=["mlp"], macs=["fp32", "e5m2:e6m5:sr_eager:4"],
                     seeds=[0, 1, 2], base=TrainOptions(epochs=2))
    rows = aggregate(run_table(spec, progress=False, train=_fake_train([])))
    assert [r["mac"] for r in rows] == ["fp32", "e5m2:e6m5:sr_eager:4"]
    r = rows[1]
    accs = [0.5 + 0.1 * len("e5m2:e6m5:sr_eager:4") / 30 + 0.01 * s for s in (0, 1, 2)]
    assert r["seeds"] == 3 and r["test_acc_mean"] == pytest.approx(sum(accs) / 3)
    assert r["test_acc_std"] == pytest.approx(0.01)
    assert r["test_acc_min"] == pytest.approx(accs[0]) and r["test_acc_max"] == pytest.approx(accs[2])
    assert r["time_per_epoch_s"] == pytest.approx(3.0) and r["emulated_macs_per_epoch"] == 1500
    assert r["command"] == "srmac train --mac e5m2:e6m5:sr_eager:4 --epochs 2 --seed S"
    md = markdown(rows)
    assert "| mlp | `e5m2:e6m5:sr_eager:4` | 3 |" in md and r["command"] in md


def test_command_reproduces_the_options():
    o = TrainOptions(model="cnn", mac="e5m2:e6m5:rz", epochs=4, seed=7, limit_train=1000)
    assert command(o) == "srmac train --model cnn --mac e5m2:e6m5:rz --epochs 4 --limit-train 1000 --seed 7"


@pytest.mark.parametrize("kw,msg", [
    (dict(models=["resnet"]), "unknown model"),
    (dict(macs=["e5m2:e6m5:sr_eager:99"]), "99"),
    (dict(seeds=[]), "at least one"),
])
def test_bad_grid_fails_before_training(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        TableSpec(tmp_path, **kw)


def test_parse_list():
    assert parse_list("0, 1,2", int) == [0, 1, 2]
    with pytest.raises(ValueError, match="comma-separated"):
        parse_list("0,,1", int)
    with pytest.raises(ValueError, match="int"):
        parse_list("a,b", int)


def test_cli_end_to_end(data_dir, tmp_path, capsys):
    data = data_dir
    out = tmp_path / "table"
    rc = main(["train-table", "--models", "mlp", "--macs", "fp32,e5m2:e6m5:rn", "--seeds", "0,1",
               "--epochs", "1", "--hidden", "8", "--batch-size", "16", "--data-dir", str(data),
               "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| mlp | `e5m2:e6m5:rn` | 2 |" in text
    with open(out / "table.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["mac"] for r in rows] == ["fp32", "e5m2:e6m5:rn"]
    assert int(rows[1]["emulated_macs_per_epoch"]) > 0 and int(rows[0]["emulated_macs_per_epoch"]) == 0
    assert (out / "table.png").stat().st_size > 0
    assert (out / "mlp" / "e5m2-e6m5-rn" / "s1" / "model.pt").exists()


def test_cli_bad_list(capsys):
    assert main(["train-table", "--seeds", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "int" in err


def test_fp8_recipe_grid_rows_carry_their_backward_macs(tmp_path):
    """--recipe fp8: each emulated row is sim.fp8_config(acc, rounding); fp32 stays float."""
    import sim
    from ref.cli import build_parser
    from sim.cli import train_options
    from sim.table import FP8_MACS, default_macs, split_recipe_mac

    assert default_macs("fp8") == list(FP8_MACS) and FP8_MACS[0] == "fp32"
    spec = TableSpec(tmp_path, models=["mlp"], macs=["fp32", "e6m5:rn", "fp16:sr_eager:4"],
                     seeds=[0, 1], base=TrainOptions(epochs=2, quant_out="e4m3:rn,e5m2:rn"),
                     recipe="fp8")
    runs = spec.runs()
    assert runs[0].is_float and runs[0].quant_out is None and runs[0].quant_grad == "rn"
    for o in runs[1:3]:
        acc, rounding = split_recipe_mac({"e4m3:e6m5:rn": "e6m5:rn"}.get(o.mac, "fp16:sr_eager:4"))
        assert o.layer_config() == sim.fp8_config(acc, rounding)
        assert o.quant_out == "e4m3:rn,e5m2:rn"
    assert runs[2].out.endswith("mlp/fp8-fp16-sr-eager-4/s0")
    rows = aggregate(run_table(spec, progress=False, train=_fake_train([])))
    assert [r["bwd_macs"] for r in rows] == ["", "e5m3:e6m5:rn", "e5m3:e5m10:sr_eager:4"]
    md = markdown(rows)
    assert "| MAC | backward MACs |" in md and "| `e4m3:e6m5:rn` | `e5m3:e6m5:rn` |" in md
    parser = build_parser()
    for r, o in zip(rows, runs, strict=False):
        cmd = r["command"].replace("--seed S", "--seed 0")
        assert ("--recipe fp8" in cmd) == (not o.is_float), cmd
        again = train_options(parser.parse_args(cmd.split()[1:]))
        assert result_key(again) == result_key(o), cmd
    with pytest.raises(ValueError, match="ACC:ROUNDING"):
        TableSpec(tmp_path, macs=["rn"], recipe="fp8")


def test_train_table_cli_grid_with_bwd_macs_in_each_command(data_dir, tmp_path, capsys):
    out = tmp_path / "fp8"
    rc = main(["train-table", "--models", "mlp", "--recipe", "fp8", "--macs", "fp32,e6m5:rn",
               "--seeds", "0", "--epochs", "1", "--hidden", "4", "--batch-size", "16",
               "--limit-train", "16", "--data-dir", str(data_dir), "--out", str(out),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "--recipe fp8 --acc e6m5 --rounding rn" in text
    assert "| mlp | `e4m3:e6m5:rn` | `e5m3:e6m5:rn` | 1 |" in text
    assert (out / "mlp" / "fp8-e6m5-rn" / "s0" / "summary.json").exists()
