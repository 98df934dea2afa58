"""AdaQAT at scale: ResNet-18 / MobileNet-V2 (sim.zoo), the image-folder loader, torchrun DDP.

Everything runs on a tiny synthetic image folder (4 classes, ~32x32 PNGs) on CPU.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from ref.cli import main
from sim.adaqat import BitState, qat_model, quant_layers
from sim.imagenet import ImageFolderData, write_synthetic_image_folder
from sim.models import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    return write_synthetic_image_folder(tmp_path_factory.mktemp("imgs"), classes=4, n_train=4,
                                        n_val=2, size=32)


@pytest.mark.parametrize("name, params", [("resnet18", 11_689_512), ("mobilenet-v2", 3_504_872)])
def test_zoo_parameter_counts_match_the_published_models(name, params):
    m = build_model(name)  # 1000 classes, width 1.0
    assert sum(p.numel() for p in m.parameters()) == params
    small = build_model(name, classes=4, in_ch=3)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 4)


@pytest.mark.parametrize("name, n_layers", [("resnet18", 21), ("mobilenet-v2", 53)])
def test_zoo_quantized_inputs_respect_their_sign(name, n_layers):
    """Unsigned activation quantizers only ever see x >= 0; signed ones do see negatives."""
    torch.manual_seed(0)
    model = qat_model(build_model(name, classes=4, width=0.5), BitState(8, 8))
    layers = quant_layers(model)
    assert len(layers) == n_layers and layers[0].aq is None
    seen = {}

    def hook(mod, inp):
        seen[mod.name] = float(inp[0].detach().min())

    for m in layers[1:]:
        m.register_forward_pre_hook(hook)
    model.train()
    model(torch.randn(4, 3, 32, 32))
    signed = {m.name for m in layers[1:] if m.aq.signed}
    for m in layers[1:]:
        if m.name in signed:
            assert seen[m.name] < 0, m.name
        else:
            assert seen[m.name] >= 0, m.name
    # ResNet-18: every input follows a ReLU; MobileNet-V2: 16 expansion convs + the last 1x1
    assert len(signed) == (0 if name == "resnet18" else 17)


def test_image_folder_loader(image_dir, tmp_path):
    tr = ImageFolderData(image_dir / "train", 24, train=True, seed=3)
    va = ImageFolderData(image_dir / "val", 24, train=False, classes=tr.classes)
    assert tr.classes == [f"class{c:03d}" for c in range(4)] and len(tr) == 16 and len(va) == 8
    x, y = tr[5]
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32 and int(y) == 5 // 4
    assert torch.equal(tr[5][0], x)  # deterministic in (seed, epoch, index)
    tr.epoch = 1
    assert not torch.equal(tr[5][0], x)  # a new crop next epoch
    v1, v2 = va[3][0], va[3][0]
    assert torch.equal(v1, v2) and int(va[3][1]) == 1
    # normalised: a pure-white pixel maps to (1 - mean) / std
    assert float(x.max()) <= (1 - 0.406) / 0.225 + 1e-5
    (image_dir / "val" / "stray").mkdir()
    try:
        with pytest.raises(ValueError, match="stray"):
            ImageFolderData(image_dir / "val", 24, False, classes=tr.classes)
    finally:
        (image_dir / "val" / "stray").rmdir()
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolderData(tmp_path / "nowhere", 24, True)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        ImageFolderData(tmp_path / "empty", 24, True)


def _argv(image_dir, out, *extra):
    return ["adaqat", "--dataset", "imagenet", "--data-dir", str(image_dir), "--out", str(out),
            "--image-size", "32", "--batch-size", "4", "--limit-train", "8", "--epochs", "1",
            "--workers", "0", "--no-progress", "--device", "cpu", *extra]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet-v2"])
def test_cli_zoo_smoke_single_process(image_dir, tmp_path, name):
    out = tmp_path / name
    # width 0.25: the ResNet-18 / MobileNet-V2 topology with 1/16 of the weights (fast on CPU)
    assert main(_argv(image_dir, out, "--model", name, "--width", "0.25", "--lambda", "0.5",
                      "--bit-lr", "1")) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 2 and s["world_size"] == 1 and s["ranks_in_sync"]
    assert s["row"]["bits_wa"] != "8/8"  # lambda 0.5 pulled the widths down
    w, a = (int(v) for v in s["row"]["bits_wa"].split("/"))
    lay = s["layers"]
    assert {(r["w_bits"], r["a_bits"]) for r in lay[1:-1]} == {(w, a)}  # first / last: 8 bits
    assert (lay[0]["w_bits"], lay[0]["a_bits"], lay[-1]["w_bits"], lay[-1]["a_bits"]) == (
        8, "", 8, 8)
    assert s["row"]["bitops"] == sum(r["w_bits"] * (r["a_bits"] or 8) * r["macs"] for r in lay)
    assert s["epochs"][0]["test_loss"] == s["epochs"][0]["test_loss"]  # not NaN
    # model.pt holds the QAT state dict: it loads into the same quantized model
    ck = torch.load(out / "model.pt", weights_only=True)
    qm = qat_model(build_model(name, classes=4, width=0.25), BitState(w, a))
    qm.load_state_dict(ck["state_dict"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_agree(image_dir, tmp_path):
    """gloo DDP: same weights and the same widths on both ranks (finite differences averaged)."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "ref.cli",
           *_argv(image_dir, out, "--model", "resnet18", "--width", "0.25", "--per-layer",
                  "--lambda", "0.5", "--bit-lr", "1")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["world_size"] == 2 and s["steps"] == 2 and len(s["rank_states"]) == 2
    assert s["ranks_in_sync"], s["rank_states"]
    values = s["rank_states"][0][3]
    # 19 weight + 19 input widths learn (the stem and the classifier stay at 8 bits)
    assert len(values) == 19 + 19 and len(set(values)) > 1  # per-layer widths moved apart
