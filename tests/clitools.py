"""Helpers for CLI tests."""


def one_line_error(capsys, verb: str) -> str:
    """The captured stderr, checked to be one ``srmac <verb>: error: ...`` line."""
    err = capsys.readouterr().err
    assert err.startswith(f"srmac {verb}: error: "), err
    assert err.count("\n") == 1, err
    return err


def run_adaqat(data_dir, out, *extra) -> dict:
    """``srmac adaqat`` on ``data_dir`` into ``out`` (batch 8, no bars); returns summary.json."""
    import json

    from ref.cli import main

    argv = ["adaqat", "--data-dir", str(data_dir), "--out", str(out), "--no-progress",
            "--batch-size", "8", *extra]
    assert main(argv) == 0
    return json.loads((out / "summary.json").read_text())
