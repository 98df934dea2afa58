"""``srmac regress`` as the README runs it: the installed command, from another working directory.

Last round the README's ``srmac regress`` failed everywhere but in the tests,
which passed absolute temporary folders: ``SRMAC_REPORT`` was relative and the
simulator runs in the build folder. Here the command runs as a process with a
relative ``--build-dir`` from a fresh working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwgen.regress import simulator_missing_reason

ROOT = Path(__file__).resolve().parents[1]
SRMAC = Path(sys.executable).with_name("srmac")


def _srmac(cwd, *argv, timeout=600):
    if not SRMAC.exists():
        pytest.skip(f"{SRMAC} not installed (pip install -e .)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout, as an editable install would
    return subprocess.run([str(SRMAC), *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_readme_regress_from_another_directory(tmp_path):
    if simulator_missing_reason():
        pytest.skip(simulator_missing_reason())
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    p = _srmac(cwd, "regress", "--ops", "1000", "--configs", "e5m2_e6m5_rn",
               "--build-dir", "rel/regress")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["configuration", "ops", "mismatches"]
    assert lines[1].split()[:3] == ["e5m2_e6m5_rn", "1000", "0"]
    assert lines[-1] == "1 configurations, 0 failing"
    assert (cwd / "rel" / "regress" / "e5m2_e6m5_rn" / "report.json").is_file()


def test_regress_names_the_log_when_the_bench_wrote_no_report(tmp_path, monkeypatch, capsys):
    """A run without a report fails and prints the absolute path of its sim.log."""
    if simulator_missing_reason():
        pytest.skip(simulator_missing_reason())
    from hwgen import regress
    from ref.cli import main

    monkeypatch.chdir(tmp_path)
    # A bench module that does not exist: the simulator starts, no test runs, no report.
    real = regress.simulate
    monkeypatch.setattr(regress, "simulate",
                        lambda top, v, bdir, bench, *a: real(top, v, bdir, "no_such_bench", *a))
    assert main(["regress", "--ops", "10", "--configs", "e5m2_e6m5_rz", "--build-dir", "b"]) == 1
    out = capsys.readouterr().out
    log = tmp_path / "b" / "e5m2_e6m5_rz" / "sim.log"
    assert f"no report: see {log}" in out and "FAIL" in out
    assert out.splitlines()[-1] == "1 configurations, 1 failing"


@pytest.mark.parametrize("argv,needle", [
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--configs", ",,"], "names no configuration"),
    (["--configs", "nope"], "'nope'"),
    (["--ops", "0"], "--ops must be >= 1"),
    (["--ops", "many"], "'many'"),
])
def test_regress_bad_options_fail_before_any_run(argv, needle, tmp_path, capsys):
    from ref.cli import main

    assert main(["regress", "--build-dir", str(tmp_path / "b"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("srmac regress: error: ") and needle in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
