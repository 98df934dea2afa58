"""Two CPU processes under torchrun (gloo, DDP) keep bit-identical parameters."""

import json
import os
import socket
import subprocess
import sys

from sim.data import write_synthetic_dataset


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_stay_in_sync(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", n_train=32, n_test=8)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "ref.cli", "train", "--model", "mlp", "--hidden", "8",
           "--mac", "e5m2:e6m5:sr_eager:4", "--quant-grad", "sr:4", "--opt-fmt", "bf16",
           "--opt-rounding", "sr", "--opt-rbits", "8", "--batch-size", "8", "--limit-train", "32",
           "--data-dir", str(data), "--out", str(out), "--no-progress", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[:3000]
    s = json.loads((out / "summary.json").read_text())
    assert s["world_size"] == 2 and len(s["param_digests"]) == 2
    assert s["param_digests"][0] == s["param_digests"][1]
    assert s["param_digests"][0] != s["initial_param_digest"]
    assert s["params_in_sync"]


def test_ranks_give_the_bits_of_one_process(tmp_path):
    """Seeds by global position: each rank's logits and input gradients are, bit for bit,
    the rows of a single-process run on the whole batch (SR everywhere: MACs, operand
    roundings, output quantizers); seeding by local position instead would differ."""
    import ddp_positions_worker as worker
    import torch

    path = tmp_path / "ranks.pt"
    script = os.path.join(os.path.dirname(__file__), "ddp_positions_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), script, str(path)]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-3000:]
    ranks = torch.load(path)
    x, y = worker.batch()
    logits, gx = worker.run(worker.build(), x, y)
    for rank, out in enumerate(ranks):
        assert torch.equal(out["global"][0], logits[rank::2])
        assert torch.equal(out["global"][1], gx[rank::2])
    assert not torch.equal(ranks[1]["local"][0], logits[1::2])
