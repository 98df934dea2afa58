"""Worker of tests/test_sim_ddp.py: a DDP forward/backward on this rank's samples.

Run under ``torch.distributed.run``; rank 0 saves every rank's logits and input
gradients to ``argv[1]``, once with the default layout (global positions) and
once with each rank pretending to be alone (``sim.sample_positions(1, 0)``).
"""

import sys

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

import sim


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 6 * 6, 4))
    cfg = sim.make_layer_config("e5m2:e6m5:sr_eager:4", act="sr:3", grad="sr:4")
    return sim.quantize_model(model, cfg, seed=5,
                              outputs={"activation": ("e4m3:sr:4", "e5m2:sr:4")})


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 1, 6, 6, generator=g), torch.randint(0, 4, (8,), generator=g)


def run(model, x, y):
    """Logits and input gradient of a summed loss (per-sample gradients: no batch mean)."""
    x = x.clone().requires_grad_()
    logits = model(x)
    F.cross_entropy(logits, y, reduction="sum").backward()
    return logits.detach(), x.grad


def main(path):
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = batch()
    shard = slice(rank, None, world)  # DistributedSampler's split
    out = {}
    model = nn.parallel.DistributedDataParallel(build())
    out["global"] = run(model, x[shard], y[shard])
    local = nn.parallel.DistributedDataParallel(build())
    with sim.sample_positions(1, 0):
        out["local"] = run(local, x[shard], y[shard])
    gathered = [None] * world
    dist.all_gather_object(gathered, out)
    if rank == 0:
        torch.save(gathered, path)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
