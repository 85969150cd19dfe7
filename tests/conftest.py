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


# -- the two lanes ---------------------------------------------------------------------------
# `pytest -m "not slow"` is the fast lane (under a minute on two cores: readers, designs, CLI,
# labels and the other pure-Python tests); `pytest` runs every test (what .ci/run runs). The
# rule is applied here, not by hand: a test is `slow` when it
#   (a) uses, directly or through another fixture, a fixture that builds a dataset or solves
#       PyBaMM (SLOW_FIXTURES), or
#   (b) lives in a module whose tests solve PyBaMM themselves (SLOW_MODULES).
# Tests marked @pytest.mark.slow by hand stay slow as well.
SLOW_FIXTURES = (
    "smoke_dataset",     # here: api.run of the smoke design, 4 samples (observe, quality, verify, ... build on it)
    "small_dataset",     # test_augment.py: api.run of the smoke design, 16 samples
    "learn_dataset",     # test_learn.py: api.run of 10 SPMe cells with EIS
    "saltelli_dataset",  # test_sensitivity.py: api.run of a 16-sample Saltelli design
    "reduced",           # test_calibrate.py: a voltage calibration on the LG M50 curves (SPMe fits)
    "sei_run",           # test_eis.py: simulate_sample of a tiny design with EIS
    "jumped_and_exact",  # test_jumps.py: a jumped and an exact aging run
    "solved",            # test_pybamm_adapter.py: an SPM solved with an experiment
)
SLOW_MODULES = (
    "test_activation.py",         # VoltageProblem simulations and SPMe discharges with Arrhenius terms
    "test_aging_calibration.py",  # AgingEngine runs and trajectory fits
    "test_calibrate.py",          # VoltageProblem simulations and fits on real curves
    "test_crash.py",              # real runs killed, resumed, out of disk (its CLI refusals live in test_cli.py)
    "test_eis.py",                # simulate_sample with EIS
    "test_eis_calibration.py",    # the EIS model fitted to a measured spectrum
    "test_physics.py",            # simulate_sample on tiny meshes in every test
    "test_pybamm_adapter.py",     # SPM / EIS simulations of the adapter's checks
    "test_verify.py",             # a real run through the CLI (every sample fails the gate)
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_MODULES or any(name in SLOW_FIXTURES for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
