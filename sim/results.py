"""Training-run folders that are whole or visibly not: atomic files, a manifest, a lock.

A run (``srmac train``, ``srmac adaqat``) writes its files into one folder:

1. :class:`RunFolder` takes an exclusive lock on ``<out>/.srmac.lock``
   (``fcntl.flock``: released by the kernel when the process ends, even on
   SIGKILL), so a second run on the same folder stops at once with one line;
   it then deletes any old ``summary.json``, so a folder whose new files are
   only half written never looks finished;
2. :meth:`RunFolder.finish` writes every file atomically (:mod:`ref.outputs`:
   temp file, fsync, rename), then ``summary.json`` last, holding the size and
   SHA-256 of every other file (``"files"``) and the options that decide the
   results (``"result_key"``).

A run counts as done (:func:`finished_run`) only when ``summary.json`` is a
JSON object with the expected keys, its ``result_key`` equals the one asked
for, and every listed file exists with its recorded size and digest. The key
leaves out the output path (and other options that do not change results),
so a moved or copied results folder resumes without retraining; an option
added after a run was written counts as its default.

An OS error while writing (a full disk, ``ulimit -f``) becomes an
:class:`ref.outputs.OutputError`: one line, and the folder keeps no summary.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import io
import json
import os
from pathlib import Path

from ref.outputs import OutputError, check_writable_dir, write_bytes

__all__ = ["SUMMARY", "LOCK", "NOT_RESULT_OPTIONS", "result_key", "same_key", "RunFolder",
           "FolderLock", "finished_run", "finished_like", "figure_bytes", "torch_bytes", "json_text"]

SUMMARY = "summary.json"
LOCK = ".srmac.lock"
#: Options that never change a run's results (where it writes, how it reports, how many
#: loader processes): left out of the key that resume compares.
NOT_RESULT_OPTIONS = ("out", "progress", "workers")
#: Keys every summary written by :meth:`RunFolder.finish` holds.
REQUIRED = ("options", "result_key", "files", "epochs")


def result_key(options) -> dict:
    """The options that decide a run's results: every field but :data:`NOT_RESULT_OPTIONS`.

    ``options``: an options dataclass (:class:`sim.train.TrainOptions`, ...) or
    a plain dict.
    """
    items = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options)
    return {k: v for k, v in items.items() if k not in NOT_RESULT_OPTIONS}


def same_key(have: dict, want: dict, defaults: dict | None = None) -> list[str]:
    """The option names on which two result keys differ (empty: the same run).

    An option missing from one key counts as its value in ``defaults`` (an
    option added after a run was written is at its default there).
    """
    defaults = defaults or {}
    missing = object()
    diff = []
    for k in sorted(set(have) | set(want)):
        a = have.get(k, defaults.get(k, missing))
        b = want.get(k, defaults.get(k, missing))
        if a != b:
            diff.append(k)
    return diff


def json_text(obj) -> str:
    """Indented JSON with a final newline (the form every summary is written in)."""
    return json.dumps(obj, indent=2) + "\n"


def figure_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes (written atomically by the caller)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def torch_bytes(obj) -> bytes:
    """``torch.save(obj)`` into memory."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FolderLock:
    """An exclusive, non-blocking lock on ``<folder>/.srmac.lock`` (a context manager).

    ``what`` names the holder in the message a second process gets, e.g.
    ``"srmac train-table"``. The lock dies with the process that holds it.
    """

    def __init__(self, folder, what: str = "srmac"):
        self.folder, self.what, self._fd = Path(folder), what, None
        self._created: Path | None = None  # the topmost folder acquire() created

    def acquire(self) -> FolderLock:
        top, p = None, self.folder.absolute()
        while not p.exists() and p != p.parent:
            top, p = p, p.parent
        check_writable_dir(self.folder, "output folder")
        self._created = top
        path = self.folder / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"cannot create the lock file {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise OutputError(f"{self.folder} is in use by {holder}: wait for it to finish, or "
                                  "choose another --out") from None
            raise OutputError(f"cannot lock {path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.what} (pid {os.getpid()})\n".encode(), 0)
        self._fd = fd
        return self

    def release(self, *, failed: bool = False) -> None:
        """Drop the lock. ``failed``: also remove the lock file and the folders ``acquire``
        created when nothing else was written there (a failed command leaves nothing)."""
        if self._fd is None:
            return
        if failed:
            try:
                if [p.name for p in self.folder.iterdir()] == [LOCK]:
                    (self.folder / LOCK).unlink()
                    _remove_empty(self.folder, self._created)
            except OSError:
                pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, exc_type, *exc) -> None:
        self.release(failed=exc_type is not None)


def _remove_empty(folder: Path, top: Path | None) -> None:
    """Remove ``folder`` and its parents up to ``top`` (folders a command created), if empty."""
    if top is None:
        return
    p, top = folder.absolute(), top.absolute()
    while True:
        try:
            p.rmdir()
        except OSError:
            return
        if p == top or p == p.parent:
            return
        p = p.parent


class RunFolder:
    """The output folder of one run: locked, its old summary removed, files written at the end.

    Use as a context manager around the whole run (rank 0 only under DDP)::

        with RunFolder(out, "srmac train") as folder:
            ...train...
            folder.finish({"log.csv": text, "model.pt": data}, summary)
    """

    def __init__(self, out, what: str):
        self.out = Path(out)
        self.lock = FolderLock(self.out, what)

    def __enter__(self) -> RunFolder:
        self.lock.acquire()
        summary = self.out / SUMMARY
        try:
            if summary.is_dir():
                raise OutputError(f"{summary} is a folder: remove it, or choose another --out")
            summary.unlink(missing_ok=True)
        except OSError as exc:
            self.lock.release()
            raise OutputError(f"cannot remove the old {summary}: {exc.strerror}") from None
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.lock.release(failed=exc_type is not None)

    def finish(self, files: dict[str, str | bytes], summary: dict) -> dict:
        """Write ``files`` (name -> text or bytes) atomically, then the summary; returns it.

        The summary gets ``files`` (name -> size and SHA-256) and, unless
        given, ``result_key`` (from its ``options``).
        """
        manifest = {}
        for name, data in files.items():
            raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            self._write(name, raw)
            manifest[name] = {"bytes": len(raw), "sha256": _digest(raw)}
        summary = dict(summary)
        summary.setdefault("result_key", result_key(summary["options"]))
        summary["files"] = manifest
        self._write(SUMMARY, json_text(summary).encode("utf-8"))
        return summary

    def _write(self, name: str, raw: bytes) -> None:
        path = self.out / name
        try:
            write_bytes(path, raw)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OutputError(f"cannot write {path}: {reason} (the run is not saved; free space "
                              "or raise the file-size limit, then run it again)") from None


def finished_run(out, key: dict | None = None,
                 defaults: dict | None = None) -> tuple[dict | None, str | None]:
    """``(summary, None)`` when ``out`` holds a whole run with result key ``key``.

    Otherwise ``(None, why)``: ``why`` is ``None`` when there is simply no
    run there yet, else one line saying what is wrong (not JSON, a list, a
    folder, a missing key, other options, a missing or changed file).
    ``key=None`` accepts any options; ``defaults`` (the result key of the
    default options) fills options missing from either key (see :func:`same_key`).
    """
    out = Path(out)
    path = out / SUMMARY
    if out.exists() and not out.is_dir():
        return None, f"{out} is a file, not a run folder"
    if not path.exists():
        return None, None
    if path.is_dir():
        return None, f"{path} is a folder, not a summary file"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path} is not readable JSON ({type(exc).__name__})"
    if not isinstance(summary, dict):
        return None, f"{path} holds a {type(summary).__name__}, not a JSON object"
    missing = [k for k in REQUIRED if k not in summary]
    if missing:
        return None, f"{path} lacks {', '.join(repr(k) for k in missing)}"
    if not isinstance(summary["files"], dict) or not isinstance(summary["result_key"], dict):
        return None, f"{path}: 'files' and 'result_key' must be JSON objects"
    diff = [] if key is None else same_key(summary["result_key"], key, defaults)
    if diff:
        return None, f"{path} is a run with other options ({', '.join(diff[:4])})"
    for name, meta in summary["files"].items():
        f = out / name
        if not f.is_file():
            return None, f"{f} is missing"
        if not isinstance(meta, dict) or "sha256" not in meta:
            return None, f"{path}: no digest recorded for {name}"
        try:
            raw = f.read_bytes()
        except OSError as exc:
            return None, f"{f} cannot be read ({exc.strerror})"
        if len(raw) != meta.get("bytes") or _digest(raw) != meta["sha256"]:
            return None, f"{f} differs from the file the run wrote (cut short or changed)"
    return summary, None


def finished_like(options) -> tuple[dict | None, str | None]:
    """:func:`finished_run` for an options dataclass: its ``out`` folder, its key, its defaults."""
    return finished_run(options.out, result_key(options), result_key(type(options)()))
