"""ref.outputs: writability checks, atomic writes, CSV round trips, Markdown tables."""

import os

import pytest

from ref.outputs import (
    OutputError,
    atomic_write,
    check_writable,
    check_writable_dir,
    csv_text,
    markdown_table,
    read_csv,
    write_bytes,
    write_csv,
    write_text,
)


def test_check_writable_creates_folder(tmp_path):
    p = check_writable(tmp_path / "a" / "b" / "x.csv")
    assert p.parent.is_dir() and not p.exists()
    assert not list(p.parent.iterdir())  # the probe file is gone


@pytest.mark.parametrize("bad", ["/proc/nope/x.csv", "/proc/x.csv"])
def test_check_writable_refuses_unwritable(bad):
    with pytest.raises(OutputError, match="cannot write"):
        check_writable(bad)


def test_check_writable_refuses_folder(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        check_writable(tmp_path)


def test_check_writable_dir_refuses_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_writable_dir(f)
    with pytest.raises(OutputError, match="is a file"):
        check_writable(f / "x.csv")


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p) as fh:
            fh.write("half")
            raise RuntimeError("crash")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    p = write_text(tmp_path / "out.txt", "new\n")
    assert p.read_text() == "new\n"
    assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_atomic_write_rejects_bad_mode(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_csv_round_trip(tmp_path):
    rows = [{"a": 1, "b": None}, {"a": 2, "c": "x,y"}]
    p = write_csv(tmp_path / "t.csv", rows)
    assert p.read_text().splitlines()[0] == "a,b,c"
    assert read_csv(p) == [{"a": "1", "b": "", "c": ""}, {"a": "2", "b": "", "c": "x,y"}]
    assert csv_text(rows, ["c", "a"]).splitlines() == ["c,a", ",1", '"x,y",2']


def test_read_csv_detects_cut_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n3")
    with pytest.raises(ValueError, match="line 3 is cut short"):
        read_csv(p)
    p.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match="line 3 has 1 fields"):
        read_csv(p)
    p.write_text("")
    assert read_csv(p) == []


def test_markdown_table():
    md = markdown_table([{"x": 1, "y": None}, {"x": "a|b", "y": 2.5}], headers=["X", "Y"], align="lr")
    assert md.splitlines() == ["| X | Y |", "|---|--:|", "| 1 | - |", "| a\\|b | 2.5 |"]
    with pytest.raises(ValueError, match="headers"):
        markdown_table([{"x": 1}], headers=["a", "b"])
    with pytest.raises(ValueError, match="align"):
        markdown_table([{"x": 1}], align="c")
