"""Shared fixtures: one real smoke dataset per test session (real PyBaMM solves)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pybamm_factory import api

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
# the card's creation date, fixed the reproducible-builds way so that runs compared in one
# test session never differ by a midnight (dataset/card.py: creation_date)
os.environ.setdefault("SOURCE_DATE_EPOCH", "1796083200")


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory) -> Path:
    """The packaged smoke design, 4 samples, 2 workers, written to a temp directory."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    return api.run("smoke", samples=4, workers=2, seed=7, out=out, quiet=True)


REALDATA_ARCHIVE = REPO / "tests" / "data" / "realdata.tar.xz"


@pytest.fixture(scope="session")
def realdata(tmp_path_factory) -> Path:
    """The measured files: ../shared/realdata beside the checkout when it is there, else the
    same files unpacked from tests/data/realdata.tar.xz (2.7 MB, byte-identical, with their
    licences), so a fresh clone runs every test that reads them."""
    if REALDATA.exists():
        return REALDATA
    import tarfile

    target = tmp_path_factory.mktemp("shared")
    with tarfile.open(REALDATA_ARCHIVE) as archive:
        archive.extractall(target, filter="data")
    return target / "realdata"
