"""Augmentation on a small real physics dataset: training, flags, schemas, metrics that can fail."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pybamm_factory import api
from pybamm_factory.api import augment  # the pipeline and the card's section
from pybamm_factory.augment.models import ConditionalVAE
from pybamm_factory.dataset import store, validate_frame, verify
from pybamm_factory.dataset.store import read_table


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """16 samples (8 cell designs) of the smoke design: small, real physics."""
    out = tmp_path_factory.mktemp("aug") / "run"
    return api.run("smoke", samples=16, workers=2, seed=3, out=out, quiet=True)


@pytest.fixture(scope="module")
def cvae_report(small_dataset):
    return augment(small_dataset, model="cvae", samples=40, seed=0, epochs=400, quiet=True)


def test_loss_decreases_and_generated_tables_pass_schemas(small_dataset, cvae_report):
    assert cvae_report["loss_last"] < 0.5 * cvae_report["loss_first"]
    folder = small_dataset / "augment" / cvae_report["generator_id"]
    for table in ("manifest", "labels", "curves", "impedance_features"):
        frame = pd.read_parquet(folder / f"{table}.parquet")
        assert validate_frame(frame, f"generated_{table}") == [], table
        assert frame["is_generated"].all() and (frame["generator_id"] == cvae_report["generator_id"]).all()
    labels = pd.read_parquet(folder / "labels.parquet")
    assert labels["sample_id"].nunique() == 40
    assert "ambient_temperature_k" in labels.columns  # the conditions used travel with the rows
    # lithium loss in A.h and in the capacity convention are derived as for physics labels: lli_ah / lli_pct
    # is the physics cells' initial lithium, and lli_capacity_pct is zero at the first RPT, then grows
    physics = read_table(small_dataset, "labels")
    physics = physics[physics["lli_pct"] > 0.01]
    physics_lithium_ah = 100 * physics["lli_ah"] / physics["lli_pct"]
    lithium_ah = (100 * labels["lli_ah"] / labels["lli_pct"]).dropna()
    assert len(lithium_ah) and np.ptp(lithium_ah) < 1e-9 * lithium_ah.iloc[0]  # one value: the training cells' median
    assert physics_lithium_ah.min() * (1 - 1e-9) <= lithium_ah.iloc[0] <= physics_lithium_ah.max() * (1 + 1e-9)
    first = labels.sort_values("cycle").groupby("sample_id")["lli_capacity_pct"]
    assert (first.first() == 0).all() and (first.last() > 0).all()
    # physics tables untouched and the card re-verified with the new files
    assert verify(small_dataset) == []
    listed = (small_dataset / "checksums.sha256").read_text()
    assert f"augment/{cvae_report['generator_id']}/labels.parquet" in listed
    assert "Generated cells live under" in (small_dataset / "README.md").read_text()


def test_checkpoint_loads_with_weights_only(small_dataset, cvae_report):
    folder = small_dataset / "augment" / cvae_report["generator_id"]
    config = json.loads((folder / "model.json").read_text())["config"]
    net = ConditionalVAE(**config)
    net.load_state_dict(torch.load(folder / "model.pt", weights_only=True))


def test_trained_generator_beats_poor_baselines(cvae_report):
    """Margins that hold on this 16-sample dataset whatever the training seed.

    Measured over training seeds 0-5 (dataset seed 3): model / noise-baseline ratio of the
    mean Wasserstein distance 0.54-0.69 and of the MMD 0.38-0.81; the model's
    real-vs-generated AUC 0.68-0.72 while the noise baseline's spans 0.69-0.84, and the
    TSTR SOH MAE ratio 0.83-1.21. With about eight physics test cells the AUC and TSTR
    comparisons flip between seeds, so they are held to the report's own targets
    (AUC <= 0.8 here, TSTR within 1.5x the noise baseline), not to the baseline's value.
    """
    m = cvae_report["metrics"]
    model, noise, copy = m["model"], m["noise_baseline"], m["copy_baseline"]
    assert model["wasserstein_mean"] < 0.8 * noise["wasserstein_mean"]
    assert model["mmd_rbf"] < 0.9 * noise["mmd_rbf"]
    assert model["classifier_auc"] <= 0.8
    assert model["tstr_soh_mae"] <= 1.5 * noise["tstr_soh_mae"]
    assert model["physics_values_in_range"] >= noise["physics_values_in_range"]
    assert model["memorisation_ratio"] > copy["memorisation_ratio"]  # the copier sits on its training cells
    assert model["physics_soh_non_increasing"] == 1.0 and model["physics_lli_non_decreasing"] == 1.0


def test_training_is_deterministic_for_a_seed(small_dataset, cvae_report):
    again = augment(small_dataset, model="cvae", samples=40, seed=0, epochs=400, quiet=True)
    assert again["metrics"]["model"] == cvae_report["metrics"]["model"]


def test_conditioning_on_temperature_follows_the_physics(small_dataset, cvae_report):
    labels = read_table(small_dataset, "labels")
    manifest = read_table(small_dataset, "manifest").set_index("sample_id")
    last = labels.sort_values("cycle").groupby("sample_id").tail(1).set_index("sample_id")
    temps = manifest.loc[last.index, "ambient_temperature_k"]
    hot_faster = last["soh"][temps == temps.max()].mean() < last["soh"][temps == temps.min()].mean()
    base = manifest.median(numeric_only=True)
    cond = pd.DataFrame([base] * 20)
    cond["ambient_temperature_k"] = [temps.min()] * 10 + [temps.max()] * 10
    cond["protocol_id"] = "cccv-cc"
    cond.to_csv(small_dataset / "cond.csv", index=False)
    report = augment(small_dataset, model="cvae", samples=20, seed=0, epochs=400, quiet=True,
                     conditions=cond)
    gen = pd.read_parquet(small_dataset / "augment" / report["generator_id"] / "labels.parquet")
    gen_last = gen.sort_values("cycle").groupby("sample_id").tail(1)
    hot = gen_last[gen_last["ambient_temperature_k"] == temps.max()]["soh"].mean()
    cold = gen_last[gen_last["ambient_temperature_k"] == temps.min()]["soh"].mean()
    assert (hot < cold) == hot_faster
    assert np.isfinite([hot, cold]).all()


@pytest.mark.slow
def test_wgan_trains_and_writes(small_dataset):
    report = augment(small_dataset, model="wgan", samples=20, seed=1, epochs=300, quiet=True)
    assert report["metrics"]["model"]["physics_soh_non_increasing"] == 1.0
    assert np.isfinite(report["metrics"]["model"]["mmd_rbf"])


def test_cells_with_different_rpt_cycles_train_and_generate_their_own_time_axis(small_dataset, tmp_path):
    """Cells aged with fade-triggered RPTs (or to different lives) have RPTs at different
    cycles. Stretch the time axis of half of the small dataset's cells (their RPT cycles
    x 1.5 in every table, as a cell that fades slower would have them): the head must
    train on both grids and give every generated cell its own strictly increasing cycles."""
    import shutil

    root = tmp_path / "stretched"
    shutil.copytree(small_dataset, root, ignore=shutil.ignore_patterns("augment"))
    labels = read_table(root, "labels")
    splits = read_table(root, "splits")
    slow = set(sorted(labels["sample_id"].unique())[::2])
    for table in ("labels", "curves", "impedance_features", "spectra"):
        frame = read_table(root, table)
        stretch = frame["sample_id"].isin(slow)
        frame.loc[stretch, "cycle"] = (frame.loc[stretch, "cycle"] * 3) // 2
        store.write_table(root, table, frame, dict(zip(splits["sample_id"], splits["split"])))
    report = augment(root, model="cvae", samples=30, seed=0, epochs=300, quiet=True)
    gen = pd.read_parquet(root / "augment" / report["generator_id"] / "labels.parquet")
    per_cell = gen.groupby("sample_id")["cycle"].apply(list)
    assert all(all(b > a for a, b in zip(c, c[1:])) for c in per_cell)
    assert all(c[0] <= 1 for c in per_cell)
    last = per_cell.apply(lambda c: c[-1])
    grid = labels.groupby("sample_id")["cycle"].max().max()
    assert last.min() < 1.5 * grid and last.max() > grid  # generated lives span both time axes
    assert report["metrics"]["model"]["physics_soh_non_increasing"] == 1.0


def test_baselines_are_small_estimators_that_fit_and_return_themselves():
    from pybamm_factory.augment import CopyGenerator, NoiseGenerator

    x, y = np.zeros((6, 2)), np.arange(18, dtype=float).reshape(6, 3)
    noise, copy = NoiseGenerator(), CopyGenerator()
    assert noise.fit(x, y) is noise and copy.fit(x, y) is copy
    drawn = noise.sample(np.zeros((50, 2)), seed=1)
    assert drawn.shape == (50, 3) and abs(drawn.mean()) < 0.5 and np.array_equal(drawn, noise.sample(np.zeros((50, 2)), seed=1))
    copied = copy.sample(np.zeros((20, 2)), seed=2)
    assert copied.shape == (20, 3) and all(any(np.array_equal(row, t) for t in y) for row in copied)  # only training rows
