"""boards.faults: the link fault campaign (protocol v2 must give 0 silent wrong, 0 hangs,
0 tracebacks), against the Python board and the RTL; the campaign itself can fail."""

from __future__ import annotations

import numpy as np
import pytest

import ref
from boards import faults as F
from boards import protocol as P
from boards.host import Accelerator
from boards.model import BoardModel
from boards.sim import FAULTS, FaultyLink, ModelTransport

CFG = ref.parse_mac("e5m2:e6m5:sr_eager:4")


def check(results, trials):
    assert len(results) == trials
    assert {(r.direction, r.kind) for r in results} == set(F.CLASSES)
    bad = [r for r in results if r.outcome in ("silent_wrong", "hang", "traceback")]
    assert not bad, "\n".join(f"{r.outcome}: {r.direction} {r.kind}, {r.detail}" for r in bad)
    assert all("fault not reached" not in r.detail for r in results)


def test_campaign_on_the_model():
    """560 trials, 20 per class (about 5 s)."""
    check(F.campaign(560, seed=1, progress=False), 560)


def test_campaign_on_the_rtl():
    """One trial per class on the RTL in Amaranth's simulator (about 30 s)."""
    check(F.campaign(len(F.CLASSES), seed=2, target="rtl", progress=False), len(F.CLASSES))


@pytest.mark.slow
def test_campaign_on_the_model_long():
    """10,080 trials, 360 per class (about 2 min); the table in docs/array.md."""
    check(F.campaign(10_080, seed=0, progress=False), 10_080)


@pytest.mark.slow
def test_campaign_on_the_rtl_long():
    """280 trials, 10 per class, on the RTL (about 5 min)."""
    check(F.campaign(10 * len(F.CLASSES), seed=3, target="rtl", progress=False),
          10 * len(F.CLASSES))


def test_campaign_sees_a_board_that_runs_a_resent_run(monkeypatch):
    """The campaign can fail: a board without the RUN repeat check (protocol v1's bug)
    gives silent wrong results when a RUN's reply is lost."""
    def forgetful(self, status, _end=BoardModel._end):
        self.last_run = False
        return _end(self, status)

    monkeypatch.setattr(BoardModel, "_end", forgetful)
    res = F.campaign(40, classes=[("to_host", "lost"), ("to_host", "late")], seed=4,
                     progress=False)
    assert sum(r.outcome == "silent_wrong" for r in res) >= 3


@pytest.mark.parametrize("M, K, N", [(1, 1, 1), (3, 9, 5), (4, 4, 2)])
def test_command_plan_is_what_the_host_sends(M, K, N):
    link = FaultyLink(ModelTransport(BoardModel(CFG, 2, 2, kmax=4)))
    Accelerator(link).matmul(np.zeros((M, K), np.int64), np.zeros((K, N), np.int64),
                             np.zeros((M, N), np.int64))
    plan = F.command_plan(M, K, N, 2, 2, 4)
    assert link.frames == link.replies == len(plan) and plan[0] == P.IDENT


def test_table_rows():
    res = [F.TrialResult("to_host", "late", "recovered", True, ""),
           F.TrialResult("to_host", "late", "raised", False, "x"),
           F.TrialResult("to_board", "drop", "recovered", True, "")]
    rows = F.campaign_rows(res)
    assert rows[0] == {"direction": "to_host", "fault": "late", "trials": 2, "recovered": 1,
                       "raised": 1, "silent_wrong": 0, "hang": 0, "traceback": 0, "resent": 1}
    assert rows[-1]["direction"] == "all" and rows[-1]["trials"] == 3
    assert F.markdown(res).splitlines()[0].startswith("| direction | fault | trials |")


def test_cli(capsys):
    assert F.main(["--trials", "56", "--faults", "late,stale"]) == 0
    out = capsys.readouterr().out
    assert "| to_host | late | 28 | 28 | 0 | 0 | 0 | 0 |" in out
    assert F.main(["--trials", "0"]) == 2
    assert F.main(["--faults", "flip"]) == 2
    err = capsys.readouterr().err
    assert "--trials must be an integer >= 1" in err and "unknown fault class 'flip'" in err
    assert set(FAULTS) <= set(err.split("choose from ")[1].replace(",", " ").split())


def test_srmac_board_faults(capsys):
    """`srmac board faults`, the path users take."""
    from ref.cli import main

    assert main(["board", "faults", "--trials", "34", "--faults", "repeat,short_payload",
                 "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "| to_board | repeat | 17 | 17 | 0 | 0 | 0 | 0 |" in out
    assert "| to_host | short_payload | 17 | 17 | 0 | 0 | 0 | 0 | 17 |" in out
    assert main(["board", "sim", "--faults", "late"]) == 2
    assert "--faults is for `srmac board faults`" in capsys.readouterr().err
