"""Running posrec's command line inside a test, and what its errors must look like."""

from posrec.cli import main


def run(capsys, *args) -> tuple[int, str, str]:
    """``posrec ARGS...`` in this process -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code: int, err: str, pattern: str) -> None:
    """Exit 2 and stderr is exactly one ``posrec: error:`` line holding ``pattern``."""
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("posrec: error:") and pattern in lines[0], err


def assert_clean_error(code: int, err: str, pattern: str) -> None:
    """Exit 2, one ``posrec: error`` line holding ``pattern`` (warnings may come before it), no
    traceback."""
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.startswith("posrec: error")]
    assert len(lines) == 1 and pattern in lines[0], err
    assert "Traceback" not in err
