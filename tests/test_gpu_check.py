"""benchmarks/gpu_check.sh, the one-call GPU check of issue 13, rehearsed on the CPU.

No GPU is lent to CI, and a device lease is short: the script has to work the
first time it meets one. ``--rehearse`` runs every step (the kernel tests in
Triton's interpreter, the benchmark suite at 1/64 of its sizes, the four
training runs on slices, the tile sweep) on the CPU, with the real command
lines, parsers and table writers. These tests run it as a user does, from the
repository root, and check what comes back.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/gpu_check.sh"
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
#: What the device tool's result folder ($OUT) receives: at most 8 files, flat.
RESULT_FILES = {"summary.md", "emulation.csv", "emulation.md", "projection.md", "train.md",
                "tiles.md", "log.txt"}


def gpu_check(*args, timeout=300, **env):
    full = {**os.environ, **{k: str(v) for k, v in env.items()}}
    full.pop("TRITON_INTERPRET", None)
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=timeout)


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section of summary.md."""
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in ``text``, as cells."""
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in r] for r in rows if not r[0].strip().startswith(("config", "run",
                                                                                 "network", "tile"))]


@pytest.mark.skipif(not FASHION.exists(), reason="needs dataset-fashion-mnist (make setup)")
def test_rehearsal_runs_every_step_and_returns_the_tables(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    r = gpu_check("--rehearse", GPU_CHECK_DIR=work, OUT=out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    # the device tool returns at most 8 files, no folders: exactly the tables and one log
    assert {p.name for p in out.iterdir()} == RESULT_FILES
    summary = (out / "summary.md").read_text()
    assert summary == (work / "summary.md").read_text()
    assert "(status 0," in summary and "; skipped:" not in summary
    assert re.search(r"\d+ passed", section(summary, "Tests"))

    bench = table_rows(section(summary, "Emulated GEMM vs torch.mm"))
    for cfg in ("e5m2:e6m5:sr_eager:4", "e5m2:e6m5:rn"):
        gemms = {row[1] for row in bench if row[0] == cfg and row[3] == "fast"}
        assert {"256^3", "1024^3", "4096^3", "resnet20 stage3 bwd-weight",
                "resnet18 conv1 fwd"} <= gemms, gemms
    assert all(float(row[4].replace(",", "")) > 0 for row in bench)
    assert [row[:3] for row in table_rows(section(summary, "Projected epochs"))] == [
        ["resnet20", "50,000, 128", "e5m2:e6m5:sr_eager:4"], ["resnet20", "50,000, 128", "e5m2:e6m5:rn"],
        ["resnet18", "1,281,167, 32", "e5m2:e6m5:sr_eager:4"], ["resnet18", "1,281,167, 32", "e5m2:e6m5:rn"]]
    assert "a rehearsal: not a projection to quote" in summary

    train = {row[0]: row for row in table_rows(section(summary, "Training (one epoch or a slice)"))}
    assert set(train) == {"cnn-sr_eager4-gpu", "cnn-fp32-gpu", "cnn-sr_eager4-cpu",
                          "resnet20-sr_eager4-gpu"}
    for name, row in train.items():
        assert row[1] == "cpu" and float(row[3]) >= 0 and float(row[4].replace(",", "")) >= 0, row
        assert (row[5] == "- (float)") == (name == "cnn-fp32-gpu"), row
    assert float(train["cnn-sr_eager4-gpu"][5]) > 0
    tiles = table_rows(section(summary, "Tile shapes"))
    assert len(tiles) == 1 and tiles[0][0] == "16x16:2" and float(tiles[0][2]) >= 0


def test_a_short_budget_skips_steps_and_says_so(tmp_path):
    r = gpu_check("--rehearse", GPU_CHECK_DIR=tmp_path, GPU_CHECK_BUDGET=5, timeout=120)
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    summary = (tmp_path / "summary.md").read_text()
    assert "(status 3," in summary
    assert "skipped: tests benchmark training:cnn-sr_eager4-gpu" in summary


def test_bad_option_and_unwritable_folder_are_one_line_errors(tmp_path):
    r = gpu_check("--bogus")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--rehearse" in r.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = gpu_check("--rehearse", GPU_CHECK_DIR=blocker / "sub")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "GPU_CHECK_DIR" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_without_a_gpu_it_refuses_and_names_the_rehearsal(tmp_path):
    r = gpu_check(GPU_CHECK_DIR=tmp_path)
    assert r.returncode == 2
    assert "no GPU here" in r.stderr and "--rehearse" in r.stderr


def test_help_shows_the_device_command():
    r = gpu_check("--help")
    assert r.returncode == 0
    assert "carry build/data/fashion-mnist" in r.stdout and "--rehearse" in r.stdout
