"""Helpers for tests that drive the command line (tests/test_cli.py, tests/test_crash.py)."""

from __future__ import annotations

from click.testing import CliRunner

from pybamm_factory.cli import main

RUN = ["run", "--design", "smoke", "--samples", "4", "--seed", "7", "--quiet"]


def run_cli(*args: str):
    """`pybamm-factory run` of the smoke design (4 samples, seed 7) with extra options."""
    return CliRunner().invoke(main, [*RUN, *args])


def one_line_refusal(result, *fragments: str) -> str:
    """Exit 2 and exactly one line, ``error: ...``, holding every fragment; no traceback."""
    text = result.output.strip()
    assert result.exit_code == 2, (result.exit_code, text, result.exception)
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert text.startswith("error: "), text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text
