"""Every verb, bad input: one line on stderr, exit status 2, nothing written (issue 16).

The matrix is rebuilt from the issue's list: every output of every verb made
unwritable (a folder that cannot be created, a file where a folder must be, a
folder where a file must be), contradictory and ignored options, negative or
unreadable counts and timeouts, and a CUDA device that is not there. Each case
runs ``srmac`` in-process through :func:`ref.cli.main`, in an empty working
directory, and checks that the working directory and the test's folder are
unchanged afterwards (no half-written output, not even an empty folder).

Most cases fail in argument checking; the ones that first elaborate a design
(board checks) take a second or two.
"""

from __future__ import annotations

import os

import pytest

from ref.cli import main

#: A folder that cannot be created (``/proc`` refuses new entries, even to root).
NOPE = "/proc/nope/x"


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """An empty working directory with ``afile`` (a file) and ``adir`` (a folder) in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "x.csv").mkdir()  # a folder where report --out adir/x wants x.csv
    return tmp_path


def _expect_one_line_exit_2(argv, capsys, root):
    before = _tree(root)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own usage errors (also one line, exit 2)
        rc = exc.code
    out, err = capsys.readouterr()
    verb = argv[0]
    assert rc == 2, f"exit {rc} for {argv}: {err or out}"
    assert err.startswith(f"srmac {verb}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert out == "", f"stdout for {argv}: {out!r}"
    assert _tree(root) == before, f"{argv} left files behind"
    return err


# ---- unwritable outputs: every verb that writes something ---------------------------------

#: (argv with {} for the output, kind): "dir" for a folder option, "file" for a file option.
OUTPUTS = [
    (["rbits", "--sweep", "--quick", "--out", "{}"], "dir"),
    (["demo", "--quick", "--out", "{}"], "dir"),
    (["verilog", "-o", "{}"], "file"),
    (["verilog", "--mac", "e4m3:fp16:rn", "-o", "{}"], "file"),
    (["verilog", "--array", "2x2", "-o", "{}"], "file"),
    (["regress", "--ops", "10", "--configs", "e5m2_e6m5_rn", "--build-dir", "{}"], "dir"),
    (["synth", "e5m2:e6m5:rn", "--dry-run", "--keep", "{}"], "dir"),
    (["synth", "--sweep", "--dry-run", "--formats", "e5m2:e6m5", "--rbits", "2",
      "--out", "{}"], "dir"),
    (["build", "--rows", "1", "--cols", "1", "--rounding", "rn", "--build-dir", "{}"], "dir"),
    (["board", "build", "--array", "1x1", "--mac", "e5m2:e6m5:rn", "--build-dir", "{}"], "dir"),
    (["report", "--quick", "--no-build", "--no-progress", "--out", "{}"], "prefix"),
    (["report", "--quick", "--no-build", "--no-progress", "--plot", "{}"], "file"),
    (["report", "--quick", "--no-progress", "--results", "{}"], "dir"),
]
TRAINING_OUTPUTS = [
    ["train", "--epochs", "1", "--no-progress", "--out", "{}"],
    ["train-table", "--models", "mlp", "--macs", "fp32", "--seeds", "0", "--epochs", "1",
     "--no-progress", "--out", "{}"],
    ["adaqat", "--epochs", "1", "--no-progress", "--out", "{}"],
]
#: kind -> the bad targets, relative to the sandbox: cannot be created, a file used as a
#: folder, something inside a file, and (file outputs) a folder used as a file.
BAD_TARGETS = {
    "dir": [NOPE, "afile", "afile/sub"],
    "file": [NOPE, "afile/x.v", "adir"],
    "prefix": [NOPE, "afile/x", "adir/x"],
}


def _fill(argv, target):
    return [a.replace("{}", target) for a in argv]


@pytest.mark.parametrize("argv,target", [
    pytest.param(argv, t, id=f"{argv[0]}-{'-'.join(a for a in argv[1:] if a.startswith('-'))}-{t}")
    for argv, kind in OUTPUTS for t in BAD_TARGETS[kind]
])
def test_unwritable_output(argv, target, sandbox, capsys):
    _expect_one_line_exit_2(_fill(argv, target), capsys, sandbox)


@pytest.mark.parametrize("argv", TRAINING_OUTPUTS, ids=lambda a: a[0])
@pytest.mark.parametrize("target", [NOPE, "afile", "afile/sub"])
def test_unwritable_training_output(argv, target, sandbox, data_dir, capsys):
    _expect_one_line_exit_2(_fill(argv, target) + ["--data-dir", str(data_dir)], capsys, sandbox)


# ---- inputs that are not what they should be ------------------------------------------------

INPUTS = [
    ["flash", "--bitstream", "adir", "--dry-run"],
    ["flash", "--bitstream", "adir"],
    ["flash", "--bitstream", "nothing.bin"],
    ["run", "--port", "/dev/srmac-no-such-port"],
    ["run", "--port", "adir"],
    ["run", "--port", "afile"],
    ["board", "run", "--port", "/dev/srmac-no-such-port"],
    ["train", "--data-dir", "adir", "--epochs", "1", "--no-progress", "--out", "o"],
]


@pytest.mark.parametrize("argv", INPUTS, ids=lambda a: "-".join(a))
def test_bad_input_paths(argv, sandbox, capsys):
    # `train` without data writes nothing; `o` must not appear either
    _expect_one_line_exit_2(argv, capsys, sandbox)


# ---- contradictory and ignored options --------------------------------------------------------

CONTRADICTIONS = [
    # one MAC, given twice or with an option that does nothing
    ["verilog", "--mac", "e5m2:e6m5:rn", "--rounding", "sr_eager"],
    ["verilog", "--mac", "e5m2:e6m5:rn", "--in", "e4m3"],
    ["verilog", "--mac", "e5m2:e6m5:sr_eager:4", "--rbits", "4"],
    ["verilog", "--mac", "e5m2:e6m5:sr_eager:4", "--chain-length", "16"],
    ["verilog", "--rounding", "rn", "--rbits", "4"],
    ["verilog", "--rounding", "rz", "--rbits", "4"],
    ["verilog", "--rounding", "rn", "--chain-length", "64"],
    ["verilog", "--rbits", "4", "--chain-length", "64"],
    ["verilog", "--seed", "3"],                                  # no --rand prng: no generator
    ["verilog", "--rand", "port", "--seed", "3"],
    ["verilog", "--rounding", "rn", "--rand", "prng"],
    ["verilog", "--rounding", "rn", "--array", "2x2", "--seed", "1"],
    ["verilog", "--array", "2x2", "--rand", "port"],
    ["verilog", "-o", "out.json"],                               # the sidecar would overwrite it
    ["verilog", "-o", "x.v.json"],
    ["verilog", "--name", "1bad"],
    ["verilog", "--name", "a b"],
    ["verilog", "--mac", "e5m2:e6m5:sr_eager"],                  # a spec without r
    ["verilog", "--rounding", "round"],
    ["build", "--rounding", "rn", "--rbits", "4", "--dry-run"],  # `verilog` refused it, build too
    ["build", "--mac", "e5m2:e6m5:rn", "--rounding", "rn", "--dry-run"],
    ["build", "--mac", "e5m2:e6m5:rn", "--acc", "fp16", "--dry-run"],
    ["build", "--board", "nosuch", "--dry-run"],
    ["run", "--port", "/dev/srmac-no-such-port", "--rounding", "rn", "--rbits", "4"],
    ["run", "--port", "/dev/srmac-no-such-port", "--mac", "e5m2:e6m5:rn", "--in", "e4m3"],
    ["run"],                                                      # no --port
    ["board", "sim", "--mac", "e5m2:e6m5:rn", "--rounding", "rz"],
    ["board", "sim", "--rounding", "rz", "--rbits", "2"],
    ["board", "sim", "--build-dir", "b"],
    ["board", "sim", "--port", "/dev/ttyUSB1"],
    ["board", "build", "--shape", "2x2x2"],
    ["board", "build", "--port", "/dev/ttyUSB1"],
    ["board", "run", "--build-dir", "b", "--port", "/dev/srmac-no-such-port"],
    ["board", "sim", "--shape", "2x3"],
    ["board", "sim", "--array", "0x2"],
    ["synth", "e5m2:e6m5:rn", "--jobs", "2"],                    # sweep options without --sweep
    ["synth", "e5m2:e6m5:rn", "--formats", "e4m3:fp16"],
    ["synth", "e5m2:e6m5:rn", "--out", "o"],
    ["synth", "e5m2:e6m5:rn", "--reuse"],
    ["synth", "--sweep", "--json"],
    ["synth", "--sweep", "--keep", "k"],
    ["synth", "--sweep", "--in", "e4m3"],
    ["synth", "--sweep", "--rounding", "rn"],
    ["synth", "--sweep", "e5m2:e6m5:rn"],
    ["synth", "--sweep", "--mac", "e5m2:e6m5:rn"],
    ["synth", "e5m2:e6m5:rn", "--mac", "e5m2:e6m5:rz"],
    ["synth", "--mac", "e5m2:e6m5:rn", "--rounding", "rz"],
    ["synth", "--rounding", "rn", "--rbits", "4"],
    ["synth"],                                                    # no MAC, no --sweep
    ["synth", "e5m2:e6m5:rn", "--device", "xc7"],
    ["synth", "e5m2:e6m5:rn", "--interleave", "2,3", "--dry-run"],   # one design's files
    ["synth", "e5m2:e6m5:rn", "--interleave", "6"],
    ["synth", "e5m2:e6m5:rn", "--interleave", "2,3", "--cuts", "add"],
    ["verilog", "--mac", "e4m3:e6m5:sr_eager:4", "--interleave", "2"],  # dual does not apply
    ["verilog", "--mac", "e5m2:e6m5:rn", "--interleave", "0"],
    ["rbits", "--n", "16", "--out", "X"],                         # sweep options without --sweep
    ["rbits", "--n", "16", "--in", "e4m3"],
    ["rbits", "--n", "16", "--acc", "fp16"],
    ["rbits", "--n", "16", "--quick"],
    ["rbits", "--n", "16", "--runs", "100"],
    ["rbits", "--n", "16", "--dist", "dot"],
    ["rbits", "--n", "16", "--seed", "1"],
    ["rbits", "--n", "16", "--tol", "0.2"],
    ["rbits", "--n", "16", "--rmax", "4"],
    ["rbits", "--sweep", "--explain"],
    ["rbits", "--sweep", "--dist", "gauss"],
    ["rbits", "--sweep", "--n-min", "64", "--n-max", "32"],
    ["rbits", "--sweep", "--n-min", "24"],
    ["quantize", "--rounding", "rn", "--rbits", "3", "1"],
    ["quantize", "--rounding", "rz", "--samples", "10", "1"],
    ["quantize", "--rounding", "sr", "1"],
    ["quantize", "--fmt", "e6m5:none", "nan"],
    ["mac", "--codes", "1,2,3", "--a", "1", "--b", "1"],
    ["mac", "--a", "1.3", "--b", "1"],
    ["mac", "--codes", "1,2"],
    ["regress", "--configs", ",,"],
    ["regress", "--configs", " , "],
    ["regress", "--configs", "nope"],
    ["report", "--force", "--no-build"],
    ["report", "--quick", "--boards", "ulx3s-25f"],
    ["report", "--quick", "--roundings", "sr_eager"],
    ["report", "--sizes", "1x1", "--start", "2x2", "--no-build"],
    ["report", "--sizes", "1x1", "--max-builds", "2", "--no-build"],
    ["report", "--roundings", "rn,rz", "--rbits", "4", "--no-build"],
    ["report", "--roundings", "stochastic", "--no-build"],
    ["report", "--boards", "nosuch", "--no-build"],
    ["report", "--sizes", ",,", "--no-build"],
    ["report", "--start", "3x7", "--no-build"],
    ["demo", "--backend", "fast"],
    # training: options of emulated GEMMs with float layers, the recipe, the optimizer, data
    ["train", "--mac", "fp32", "--quant-weight", "sr:4"],         # must not drop the quantizer
    ["train", "--quant-act", "e4m3:rn"],                          # no --mac: float layers
    ["train", "--mac", "fp32", "--mac-bwd-input", "e5m2:fp16:rn"],
    ["train", "--quant-out", "e4m3:rn,e5m2:rn"],
    ["train", "--mac", "e5m2:e6m5:rn", "--quant-out", "e4m3"],    # no rounding
    ["train", "--mac", "e5m2:e6m5:rn", "--quant-out", "sr:4"],    # no format
    ["train", "--mac", "e5m2:e6m5:rn", "--quant-out", "none,none"],
    ["train", "--mac", "e5m2:e6m5:rn", "--quant-out", "e4m3:rn,e5m2:rn,e5m2:rn"],
    ["train", "--recipe", "fp8", "--mac", "e5m2:e6m5:rn"],
    ["train", "--recipe", "fp8", "--in", "e5m2"],
    ["train", "--recipe", "fp8", "--quant-act", "e4m3:sr:4"],
    ["train", "--recipe", "fp8", "--mac-bwd-weight", "e5m3:fp16:rn"],
    ["train", "--recipe", "fp8", "--rounding", "rn", "--rbits", "4"],
    ["train", "--recipe", "fp8", "--acc", "e99m1"],
    ["train", "--optimizer", "adam", "--momentum", "0.8"],
    ["train", "--betas", "0.9,0.99"],                            # sgd has no betas
    ["train", "--optimizer", "adam", "--betas", "0.9"],
    ["train", "--optimizer", "adamw", "--betas", "0.9,1.5"],
    ["train", "--opt-rbits", "8"],                               # with --opt-rounding rn
    ["train", "--opt-rounding", "sr"],                           # no --opt-rbits
    ["train", "--opt-kahan", "--opt-master", "--opt-fmt", "bf16"],
    ["train", "--opt-master"],                                   # the weights are fp32 already
    ["train", "--momentum", "0", "--opt-state-fmt", "bf16"],     # no state to store
    ["train", "--opt-state-fmt", "e9m30"],
    ["train", "--image-size", "64"],                             # Fashion-MNIST
    ["train", "--workers", "2"],
    ["train", "--model", "resnet18"],                            # an ImageNet model
    ["adaqat", "--model", "resnet20", "--image-size", "32"],
    ["train-table", "--recipe", "fp8", "--macs", "rn"],
    ["train-table", "--recipe", "fp8", "--macs", "e4m3:e6m5:rn"],
    ["train-table", "--models", "mlp", "--macs", "e5m2:e6m5:rn", "--quant-out", "e4m3"],
]


@pytest.mark.parametrize("argv", CONTRADICTIONS, ids=lambda a: "-".join(a))
def test_contradictory_or_ignored_options(argv, sandbox, capsys):
    _expect_one_line_exit_2(argv, capsys, sandbox)


# ---- negative or unreadable counts, seeds and timeouts ----------------------------------------

#: (argv prefix, count option, bad values): each value alone must be refused.
COUNTS = [
    (["quantize", "--rounding", "sr", "--rbits", "3", "1"], "--samples", ["0", "-1", "x"]),
    (["quantize", "1"], "--seed", ["-1", "x"]),
    (["quantize", "--rounding", "sr", "1"], "--rbits", ["0", "-1", "31", "x"]),
    (["mac", "--a", "1", "--b", "1"], "--rbits", ["0", "-1", "31", "x"]),
    (["mac", "--a", "1", "--b", "1"], "--rand", ["-1", "x"]),
    (["rbits"], "--n", ["0", "-3", "x"]),
    (["rbits", "--sweep"], "--n-min", ["0", "-16", "x"]),
    (["rbits", "--sweep"], "--n-max", ["0", "-16", "x"]),
    (["rbits", "--sweep"], "--rmax", ["0", "-1", "x"]),
    (["rbits", "--sweep"], "--runs", ["0", "-1", "x"]),
    (["rbits", "--sweep"], "--seed", ["-1", "x"]),
    (["rbits", "--sweep"], "--tol", ["0", "-1", "x"]),
    (["demo"], "--seeds", ["0", "-1", "x"]),
    (["verilog"], "--rbits", ["0", "-1", "31", "x"]),
    (["verilog"], "--chain-length", ["0", "-1", "x"]),
    (["verilog", "--rand", "prng"], "--seed", ["-1", "x", str(2**32)]),
    (["verilog"], "--pipeline", ["-1", "x"]),
    (["regress"], "--ops", ["0", "-1", "x"]),
    (["regress"], "--seed", ["-1", "x"]),
    (["synth", "e5m2:e6m5:rn"], "--seed", ["-1", "x"]),
    (["synth", "e5m2:e6m5:rn"], "--pipeline", ["-1", "x"]),
    (["synth", "e5m2:e6m5:rn"], "--freq", ["0", "-3", "x"]),
    (["synth", "--sweep"], "--jobs", ["0", "-1", "x"]),
    (["synth", "--sweep"], "--rbits", ["0", "-1", "x"]),
    (["build", "--dry-run"], "--rows", ["0", "-1", "x"]),
    (["build", "--dry-run"], "--cols", ["0", "-1", "x"]),
    (["build", "--dry-run"], "--seed", ["-1", "x"]),
    (["build", "--dry-run"], "--kmax", ["0", "-1", "x"]),
    (["build", "--dry-run"], "--rbits", ["0", "-1", "x"]),
    (["flash", "--dry-run"], "--timeout", ["0", "-1", "nan", "inf", "x"]),
    (["run", "--port", "/dev/srmac-no-such-port"], "--seed", ["-1", "x"]),
    (["board", "sim"], "--kmax", ["0", "-1", "x"]),
    (["board", "sim"], "--seed", ["-1", "x"]),
    (["board", "sim"], "--rbits", ["0", "-1", "x"]),
    (["report", "--no-build"], "--kmax", ["0", "-1", "x"]),
    (["report", "--no-build"], "--max-builds", ["0", "-1", "x"]),
    (["report", "--no-build"], "--timeout", ["0", "-1", "nan", "x"]),
    (["report", "--no-build"], "--rbits", ["0", "-1", "x"]),
    (["train"], "--epochs", ["0", "-1"]),
    (["train"], "--batch-size", ["0", "-1"]),
    (["train"], "--limit-train", ["0", "-5"]),
    (["train-table"], "--epochs", ["0", "-1"]),
    (["adaqat"], "--epochs", ["0", "-1"]),
    (["adaqat"], "--batch-size", ["0", "-1"]),
]


@pytest.mark.parametrize("argv", [
    pytest.param([*prefix, flag, v], id=f"{prefix[0]}{flag}={v}")
    for prefix, flag, values in COUNTS for v in values
])
def test_bad_counts_and_timeouts(argv, sandbox, capsys):
    # `--x=-1` keeps argparse from reading -1 as an option
    argv = argv[:-2] + [f"{argv[-2]}={argv[-1]}"]
    _expect_one_line_exit_2(argv, capsys, sandbox)


# ---- a CUDA device that is not there --------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["train", "--device", "cuda", "--epochs", "1"],
    ["train-table", "--device", "cuda", "--models", "mlp", "--macs", "fp32", "--seeds", "0"],
    ["adaqat", "--device", "cuda", "--epochs", "1"],
], ids=lambda a: a[0])
def test_missing_cuda(argv, sandbox, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    err = _expect_one_line_exit_2(argv + ["--out", "o"], capsys, sandbox)
    assert "cuda" in err.lower()


def test_matrix_size():
    """The issue counted 228 bad inputs over the 15 verbs; this matrix has at least as many."""
    n = (sum(len(BAD_TARGETS[k]) for _, k in OUTPUTS) + 3 * len(TRAINING_OUTPUTS) + len(INPUTS)
         + len(CONTRADICTIONS) + sum(len(v) for _, _, v in COUNTS) + 3)
    verbs = ({a[0] for a, _ in OUTPUTS} | {a[0] for a in TRAINING_OUTPUTS} | {a[0] for a in INPUTS}
             | {a[0] for a in CONTRADICTIONS} | {p[0] for p, _, _ in COUNTS})
    assert len(verbs) == 15, sorted(verbs)
    assert n >= 228, n
