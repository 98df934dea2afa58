"""Execute every notebook in ``notebooks/`` top to bottom, so the committed story cannot rot.

Each notebook is read into memory and run with nbclient on the ``python3``
kernel; the executed copy is thrown away, so the committed outputs do not
change. The working directory is ``notebooks/`` (as under Jupyter): the
notebooks only read from the repository (03 reads ``docs/data/*.csv``).
A cell that raises fails the test with the cell's traceback. An extra cell
appended to the in-memory copy checks that the kernel runs this
interpreter's environment (the virtualenv with ``ref``, ``sim``, ``boards``).

Time on the 2-core development VM: about 2.5 minutes for all six notebooks,
most of it 05 (training, ~70 s) and 04 (board simulation, ~25 s).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
CHECK = "import sys; print(sys.prefix)"


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5, f"expected notebooks 01..05 in {NB_DIR}, found {[p.name for p in NOTEBOOKS]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell raised\n{exc}", pytrace=False)
    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    assert Path(out.strip()).resolve() == Path(sys.prefix).resolve(), (
        f"{path.name} ran on a kernel from {out.strip()!r}, not this environment {sys.prefix!r}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs {[e.get('ename') for e in errors]}"
