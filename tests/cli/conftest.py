"""In-process CLI runner shared by the CLI tests."""

from __future__ import annotations

import pytest

from synthmed.cli import main


@pytest.fixture
def cli(capsys):
    """``cli(argv)`` runs ``synthmed ARGV`` in-process and returns (exit code, stdout, stderr)."""

    def run(argv):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run
