"""Training results that survive crashes, copies and concurrent runs (sim.results, train-table).

Every case goes through the command a user runs (`srmac train-table`, `srmac train`), in
process or as a subprocess where a kill, a second process or a file-size limit is needed.
"""

import csv
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ref.cli import main
from sim.results import LOCK, FolderLock, RunFolder, finished_run

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parent.parent


def _grid_argv(data_dir, out, macs="fp32,e5m2:e6m5:rn", seeds="0,1"):
    return ["train-table", "--models", "mlp", "--macs", macs, "--seeds", seeds, "--epochs", "1",
            "--hidden", "8", "--batch-size", "16", "--limit-train", "32", "--limit-test", "16",
            "--data-dir", str(data_dir), "--out", str(out), "--no-progress"]


def _srmac(*argv, **kw):
    """``srmac ...`` as a subprocess from the repository root (as a user runs it)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "ref.cli", *map(str, argv)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _mtimes(root: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in root.rglob("model.pt")}


def _table_rows(root: Path) -> list[dict]:
    with open(root / "table.csv") as fh:
        return list(csv.DictReader(fh))


def test_moved_and_copied_grid_resumes_without_training(data_dir, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(_grid_argv(data_dir, first)) == 0
    out = capsys.readouterr().out
    assert "0 of 4 runs already done, 4 to train" in out
    before = _mtimes(first)
    assert len(before) == 4
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(first, moved)
    copied = tmp_path / "copied"
    shutil.copytree(moved, copied)
    for root in (moved, copied):
        assert main(_grid_argv(data_dir, root)) == 0
        assert "4 of 4 runs already done, 0 to train" in capsys.readouterr().out
    assert {p.relative_to(moved): t for p, t in _mtimes(moved).items()} == {
        p.relative_to(first): t for p, t in before.items()}  # nothing rewritten
    assert [r["mac"] for r in _table_rows(copied)] == ["fp32", "e5m2:e6m5:rn"]
    # another option (here the epochs) is another run: retrained
    argv = _grid_argv(data_dir, copied, macs="fp32", seeds="0")
    argv[argv.index("--epochs") + 1] = "2"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "other options (epochs)" in out and "0 of 1 runs already done" in out


@pytest.mark.parametrize("damage, word", [
    ("missing-key", "lacks 'result_key'"),
    ("list", "holds a list, not a JSON object"),
    ("not-json", "not readable JSON"),
    ("cut-log", "log.csv differs"),
    ("no-model", "model.pt is missing"),
])
def test_broken_run_gets_one_line_and_is_retrained(data_dir, tmp_path, capsys, damage, word):
    root = tmp_path / "g"
    argv = _grid_argv(data_dir, root, macs="fp32", seeds="0")
    assert main(argv) == 0
    run = root / "mlp" / "fp32" / "s0"
    summary = json.loads((run / "summary.json").read_text())
    if damage == "missing-key":
        del summary["result_key"]
        (run / "summary.json").write_text(json.dumps(summary))
    elif damage == "list":
        (run / "summary.json").write_text(json.dumps([summary]))
    elif damage == "not-json":
        (run / "summary.json").write_text('{"options": ')
    elif damage == "cut-log":
        text = (run / "log.csv").read_text()
        (run / "log.csv").write_text(text[: len(text) // 2])
    else:
        (run / "model.pt").unlink()
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if word in ln]
    assert len(lines) == 1 and lines[0].endswith("training that run again"), out
    assert "0 of 1 runs already done, 1 to train" in out
    assert finished_run(run)[0] is not None


@pytest.mark.parametrize("where", ["summary-is-a-folder", "run-is-a-file"])
def test_unexpected_files_give_one_line(data_dir, tmp_path, capsys, where):
    root = tmp_path / "g"
    run = root / "mlp" / "fp32" / "s0"
    if where == "summary-is-a-folder":
        (run / "summary.json").mkdir(parents=True)
    else:
        run.parent.mkdir(parents=True)
        run.write_text("I am a file")
    assert main(_grid_argv(data_dir, root, macs="fp32", seeds="0")) == 2
    err = capsys.readouterr().err
    assert err.startswith("srmac train-table: error: ") and err.count("\n") == 1, err
    assert str(run) in err


def test_a_second_grid_on_the_same_folder_stops(data_dir, tmp_path, capsys):
    root = tmp_path / "g"
    first = _srmac(*_grid_argv(data_dir, root))
    deadline = time.time() + 120
    while not ((root / LOCK).exists() and (root / LOCK).read_text().strip()):
        assert first.poll() is None, first.communicate()
        assert time.time() < deadline
        time.sleep(0.1)
    assert main(_grid_argv(data_dir, root)) == 2  # while the first one runs
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in use by srmac train-table (pid" in err, err
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert [r["seeds"] for r in _table_rows(root)] == ["2", "2"]
    # a single run on a folder in use stops too
    with FolderLock(root / "mlp" / "fp32" / "s0", "a test"):
        assert main(["train", "--data-dir", str(data_dir), "--out", str(root / "mlp/fp32/s0"),
                     "--no-progress", "--hidden", "8"]) == 2
    assert "in use by a test" in capsys.readouterr().err


def test_full_disk_mid_write_leaves_no_finished_run(data_dir, tmp_path):
    """`ulimit -f` below model.pt's size: one line, exit 2, no summary, no temporary files;
    the same command then finishes the run."""
    out = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--hidden", "64", "--epochs", "1", "--data-dir", data_dir,
            "--out", out, "--no-progress", "--device", "cpu"]
    limit = 100_000  # log.csv and curves.png fit, model.pt (784 x 64 floats) does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _srmac(*argv, preexec_fn=small_files)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and "model.pt" in err and "File too large" in err, err
    names = sorted(p.name for p in out.iterdir())
    assert names == [LOCK, "curves.png", "log.csv"]  # no summary.json, no .tmp file
    assert finished_run(out) == (None, None)
    proc = _srmac(*argv)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary, why = finished_run(out)
    assert why is None and set(summary["files"]) == {"log.csv", "curves.png", "model.pt"}


def test_sigkill_at_random_points_loses_and_duplicates_no_row(data_dir, tmp_path):
    """Kill `srmac train-table` (SIGKILL) at random moments, then let it finish: every row once,
    every run trained from its own options, each finished run kept across kills."""
    root = tmp_path / "g"
    argv = _grid_argv(data_dir, root, macs="fp32,e5m2:e6m5:rn,e5m2:e6m5:rz", seeds="0,1")
    rng = random.Random(1234)
    kept = {}
    for _ in range(4):
        proc = _srmac(*argv)
        time.sleep(rng.uniform(1.0, 8.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        for run in root.glob("mlp/*/s*"):
            summary, why = finished_run(run)
            assert why is None, why  # finished, or no summary yet: never a broken one
            if summary is not None:
                t = (run / "model.pt").stat().st_mtime_ns
                assert kept.setdefault(run, t) == t  # a finished run is never trained again
    proc = _srmac(*argv)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    rows = _table_rows(root)
    assert [r["mac"] for r in rows] == ["fp32", "e5m2:e6m5:rn", "e5m2:e6m5:rz"]
    assert [r["seeds"] for r in rows] == ["2", "2", "2"]
    for run in root.glob("mlp/*/s*"):
        summary, why = finished_run(run)
        assert why is None
        assert summary["options"]["out"] == str(run) and summary["options"]["seed"] == int(
            run.name[1:])
    runs = sorted(str(p.relative_to(root)) for p in root.glob("mlp/*/s*"))
    assert len(runs) == 6


def test_run_folder_removes_a_stale_summary_before_writing(tmp_path):
    out = tmp_path / "r"
    with RunFolder(out, "t") as folder:
        folder.finish({"a.csv": "x\n1\n"}, dict(options={"seed": 1}, epochs=[]))
    assert finished_run(out, {"seed": 1})[0] is not None
    assert finished_run(out, {"seed": 2})[1].endswith("other options (seed)")
    with pytest.raises(RuntimeError):
        with RunFolder(out, "t"):
            raise RuntimeError("crash mid-run")
    assert finished_run(out) == (None, None)  # the old summary no longer claims the folder
