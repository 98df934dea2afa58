"""Output files that are whole or absent: writability checks, atomic writes, CSV and tables.

Every file srmac writes (CSV, JSON, Markdown, plots, Verilog, bitstreams,
checkpoints) goes through :func:`atomic_write` or one of the helpers built on
it: the data is written to a temporary file in the destination's folder,
flushed to disk (``fsync``) and renamed over the destination in one step. A
crash, a full disk or a kill at any point leaves either the old file or the
new one, never a half-written file (the temporary file is removed on a Python
error; after a SIGKILL a ``.<name>.*.tmp`` file may remain beside it, which no
reader looks at).

Long jobs call :func:`check_writable` on every output before any work, so an
unwritable ``--out`` fails in a second with one line, not after an hour.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "OutputError",
    "check_writable",
    "check_writable_dir",
    "atomic_write",
    "write_text",
    "write_bytes",
    "write_csv",
    "read_csv",
    "csv_text",
    "markdown_table",
]


class OutputError(ValueError):
    """An output path that cannot be written (the message says which and why)."""


def _probe_dir(folder: Path, what: str) -> None:
    """Create ``folder`` (and parents) and prove a file can be created in it."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write {what} under {folder}: it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".srmac-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"cannot write {what} in {folder}: {reason}; choose a writable path") from None


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Check that the file ``path`` can be (re)written; create its folder. Returns the Path.

    Raises :class:`OutputError` (a ``ValueError``) with one line naming the path
    when it is a folder, when its folder cannot be created, or when no file
    can be created there.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{what} {p} is a folder: give a file name")
    _probe_dir(p.parent if str(p.parent) else Path("."), f"{what} {p.name}")
    return p


def check_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check that ``path`` is (or can be created as) a writable folder. Returns the Path."""
    p = Path(path)
    _probe_dir(p, what)
    return p


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[io.IOBase]:
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it to ``path``.

    ``mode`` is ``"w"`` (text, UTF-8 unless ``encoding`` is given) or ``"wb"``.
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    p = check_writable(path, "output")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the Path."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the Path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def _columns(rows: Sequence[dict], columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    return list(dict.fromkeys(k for row in rows for k in row))


def csv_text(rows: Iterable[dict], columns: Sequence[str] | None = None) -> str:
    """The CSV text of ``rows`` (dicts): a header, one line per row, ``None`` as empty.

    ``columns`` defaults to every key in order of first appearance; keys not
    in ``columns`` are left out.
    """
    rows = list(rows)
    cols = _columns(rows, columns)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: "" if row.get(k) is None else row.get(k) for k in cols})
    return buf.getvalue()


def write_csv(path: str | os.PathLike, rows: Iterable[dict], columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` as CSV to ``path`` atomically (see :func:`csv_text`); returns the Path."""
    return write_text(path, csv_text(rows, columns))


def read_csv(path: str | os.PathLike) -> list[dict]:
    """The rows of a CSV file written by :func:`write_csv`, as dicts of strings.

    Raises ``ValueError`` naming the file and line when a line has a different
    number of fields than the header or the file does not end with a newline
    (a line cut short by a crash).
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        n = text.count("\n") + 1
        raise ValueError(f"{p}: line {n} is cut short (no end of line): delete or repair that line")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return []
    rows = []
    for row in reader:
        if len(row) != len(header):
            raise ValueError(
                f"{p}: line {reader.line_num} has {len(row)} fields, the header {len(header)}: "
                "delete or repair that line"
            )
        rows.append(dict(zip(header, row, strict=True)))
    return rows


def markdown_table(
    rows: Iterable[dict],
    columns: Sequence[str] | None = None,
    headers: Sequence[str] | None = None,
    align: str | None = None,
) -> str:
    """A GitHub Markdown table of ``rows``: one column per key of ``columns``.

    ``headers`` (default: the column names) label the columns; ``align`` is one
    character per column, ``l`` or ``r`` (default: left). ``None`` prints as
    ``-``; a ``|`` inside a cell is escaped.
    """
    rows = list(rows)
    cols = _columns(rows, columns)
    heads = list(headers) if headers is not None else cols
    if len(heads) != len(cols):
        raise ValueError(f"{len(heads)} headers for {len(cols)} columns")
    al = align or "l" * len(cols)
    if len(al) != len(cols) or set(al) - {"l", "r"}:
        raise ValueError(f"align needs one of 'l'/'r' per column, got {align!r}")

    def cell(v) -> str:
        return "-" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" if a == "l" else "--:" for a in al) + "|"]
    lines += ["| " + " | ".join(cell(row.get(k)) for k in cols) + " |" for row in rows]
    return "\n".join(lines)
