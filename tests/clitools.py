"""Helpers for CLI tests."""


def one_line_error(capsys, verb: str) -> str:
    """The captured stderr, checked to be one ``srmac <verb>: error: ...`` line."""
    err = capsys.readouterr().err
    assert err.startswith(f"srmac {verb}: error: "), err
    assert err.count("\n") == 1, err
    return err
