"""Shared fixtures: one real smoke dataset per test session (real PyBaMM solves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybamm_factory import api

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory) -> Path:
    """The packaged smoke design, 4 samples, 2 workers, written to a temp directory."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    return api.run("smoke", samples=4, workers=2, seed=7, out=out, quiet=True)


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The measured files beside the checkout. A clone without them skips these tests;
    .ci/run refuses to start without the folder, so in CI they always run."""
    if not REALDATA.exists():
        pytest.skip(f"real data folder missing: {REALDATA} (tests read the measured files there)")
    return REALDATA
