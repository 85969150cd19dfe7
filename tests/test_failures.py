"""Rare failures with a controlled prevalence (design/failures.py): the design asks for a
share of cell designs per scenario, the manifest carries exactly that, the scenario's rate
and conditions are applied to those cells only, splits keep every class in proportion,
and bad requests are refused in one line."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from pybamm_factory.design import build_manifest, load_design
from pybamm_factory.design.failures import SCENARIOS, prevalence
from pybamm_factory.design.spec import DesignError, parse_design
from pybamm_factory.quality import make_splits

SEI = SCENARIOS["sei_outlier"].parameter
LAM_PE = SCENARIOS["lam_outlier"].parameter


def _design(failures, samples_per_design=1):
    raw = copy.deepcopy(load_design("default").raw)
    raw["failures"] = failures
    raw["conditions_per_cell_design"] = samples_per_design
    return parse_design(raw, "failures.yaml")


def test_the_manifest_carries_exactly_the_asked_share_and_the_scenario_is_applied():
    design = _design({"sei_outlier": {"share": 0.05, "severity": {"low": 10, "high": 100}}, "lam_outlier": 0.1},
                     samples_per_design=2)
    manifest = build_manifest(design, 400, 7)
    plain = build_manifest(parse_design({k: v for k, v in design.raw.items() if k != "failures"}, "plain.yaml"), 400, 7)
    designs = manifest["cell_design_id"].nunique()
    counts = manifest.groupby("failure_class")["cell_design_id"].nunique()
    assert counts["sei_outlier"] == round(0.05 * designs) and counts["lam_outlier"] == round(0.1 * designs)
    assert (manifest.groupby("cell_design_id")["failure_class"].nunique() == 1).all()  # a faulty cell is faulty everywhere
    none = manifest["failure_class"] == "none"
    assert (manifest.loc[none, "failure_severity"] == 1).all()
    same = [c for c in plain.columns if c != "sample_id"]  # sample ids hash the design, failures included
    pd.testing.assert_frame_equal(manifest.loc[none, same], plain.loc[none, same])  # the others are untouched
    lam = manifest["failure_class"] == "lam_outlier"
    factor = manifest.loc[lam, LAM_PE] / plain.loc[lam, LAM_PE]
    assert np.allclose(factor, manifest.loc[lam, "failure_severity"]) and factor.between(5, 20).all()
    sei = manifest["failure_class"] == "sei_outlier"
    assert np.allclose(manifest.loc[sei, SEI] / plain.loc[sei, SEI], manifest.loc[sei, "failure_severity"])
    assert manifest.loc[sei, "failure_severity"].between(10, 100).all()
    conditions = ["protocol_id", "charge_c_rate", "discharge_c_rate", "ambient_temperature_k"]
    pd.testing.assert_frame_equal(manifest[conditions], plain[conditions])  # conditions are never touched
    assert manifest.equals(build_manifest(design, 400, 7)) and not manifest.equals(build_manifest(design, 400, 8))
    table = prevalence(manifest, design.failures).set_index("failure_class")
    assert table.loc["lam_outlier", "cell_designs"] == counts["lam_outlier"] and table.loc["none", "share_asked"] == pytest.approx(0.85)


def test_splits_are_stratified_by_failure_class():
    design = _design({"lam_outlier": 0.2})
    manifest = build_manifest(design, 300, 3)
    log = pd.DataFrame({"sample_id": manifest["sample_id"], "status": "ok"})
    splits = make_splits(manifest, log, design.splits, 3).merge(manifest[["sample_id", "failure_class"]], on="sample_id")
    share = splits.groupby("split")["failure_class"].apply(lambda s: (s == "lam_outlier").mean())
    assert set(share.index) == {"train", "validation", "test"}
    assert np.allclose(share, 0.2, atol=0.03), share  # each split holds the class in proportion


BAD = [
    ({"meltdown": 0.1}, "failures.meltdown", "unknown failure scenario; allowed: lam_outlier, sei_outlier"),
    ({"lam_outlier": 0}, "failures.lam_outlier.share", "expected 0 < share <= 1"),
    ({"lam_outlier": {"share": 0.1, "severity": {"low": 0.5, "high": 2}}}, "failures.lam_outlier.severity", "1 <= low <= high"),
    ({"lam_outlier": 0.6, "sei_outlier": 0.6}, "failures", "the shares add up to 1.2"),
    ({"lam_outlier": {"share": 0.1, "onset": 3}}, "failures.lam_outlier.onset", "unknown key"),
]


@pytest.mark.parametrize("failures,field,message", BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_bad_failure_requests_are_one_line_errors(failures, field, message):
    with pytest.raises(DesignError) as err:
        _design(failures)
    text = str(err.value)
    assert f"field '{field}'" in text and message in text and "\n" not in text


def test_a_scenario_needs_its_rate_as_a_varied_parameter():
    raw = copy.deepcopy(load_design("smoke").raw)  # varies SEI and plating, not the positive electrode's LAM
    raw["failures"] = {"lam_outlier": 0.1}
    with pytest.raises(DesignError, match=r"needs 'Positive electrode LAM constant proportional term \[s-1\]' among varied"):
        parse_design(raw, "smoke.yaml")


LAM_OPTIONS = {"SEI": "solvent-diffusion limited", "particle mechanics": ["swelling only", "swelling only"],
               "loss of active material": ["stress-driven", "stress-driven"]}


@pytest.mark.slow
def test_a_lam_outlier_bends_into_a_knee_where_its_label_says(tmp_path):
    """Two cell designs, one a positive-electrode LAM outlier (100x): a real SPMe run over 60
    cycles. The outlier's fade bends where labels.knee_onset_cycle says (the SOH falls at
    least twice as fast after it as before, measured on the RPTs), its twin shows no knee,
    and the card reports the prevalence and the knee."""
    from pybamm_factory import api
    from pybamm_factory.dataset import verify
    from pybamm_factory.dataset.store import read_table
    from tests.physics_designs import BASE

    raw = copy.deepcopy(BASE)
    raw.update(name="lam-outlier", model_options=LAM_OPTIONS, conditions_per_cell_design=1, ambient_temperatures_c=[25],
               varied={LAM_PE: {"distribution": "log-uniform", "low": 4e-6, "high": 6e-6}},
               failures={"lam_outlier": {"share": 0.5, "severity": {"low": 100, "high": 100}}})
    raw["aging"].update(max_cycles=60, rpt_interval_cycles=6, stop_soh=0.5)
    raw["eis"] = {"enabled": False}
    raw["protocols"][0].update(charge_c_rate=0.5, discharge_c_rate=1.0)
    raw["splits"] = {"train": 1.0, "val": 0.0, "test": 0.0}
    design_file = tmp_path / "lam-outlier.yaml"
    design_file.write_text(__import__("yaml").safe_dump(raw, sort_keys=False))
    out = api.run(design_file, samples=2, workers=1, seed=1, out=tmp_path / "run", quiet=True)
    manifest, labels = read_table(out, "manifest"), read_table(out, "labels")
    assert sorted(manifest["failure_class"]) == ["lam_outlier", "none"]
    assert (read_table(out, "solver_log")["status"] == "ok").all()
    by_class = dict(zip(manifest["failure_class"], manifest["sample_id"]))
    outlier = labels[labels["sample_id"] == by_class["lam_outlier"]].sort_values("cycle")
    twin = labels[labels["sample_id"] == by_class["none"]].sort_values("cycle")
    onset = outlier["knee_onset_cycle"].iloc[0]
    assert np.isfinite(onset) and 0 < onset < outlier["cycle"].max(), outlier[["cycle", "soh", "lam_pe_pct"]]
    assert twin["knee_onset_cycle"].isna().all() and twin["soh"].iloc[-1] > outlier["soh"].iloc[-1]
    before, after = outlier[outlier["cycle"] <= onset], outlier[outlier["cycle"] >= onset]
    slope_before = np.polyfit(before["cycle"], before["soh"], 1)[0]
    slope_after = np.polyfit(after["cycle"], after["soh"], 1)[0]
    assert slope_after <= 2 * slope_before < 0, (slope_before, slope_after)  # the fade bends at the label
    assert outlier["lam_pe_pct"].iloc[-1] > 10 * twin["lam_pe_pct"].iloc[-1]  # and the mechanism is the one named
    card = (out / "README.md").read_text()
    assert "## Rare failures" in card and "| `lam_outlier` | 0.5 | 1 | 1 | 1 of 1 |" in card
    assert verify(out) == []


def test_base_starts_a_design_from_another_and_records_the_merged_design(tmp_path):
    from pybamm_factory.design import packaged_designs

    natural = load_design("failures-natural")
    default = load_design("default")
    assert "base" not in natural.raw and natural.raw["varied"] == default.raw["varied"]
    assert natural.raw["failures"] and natural.name == "failures-natural" and natural.content_hash != default.content_hash
    assert {"failures-natural", "failures-oversampled"} <= set(packaged_designs())
    child = tmp_path / "child.yaml"
    child.write_text("base: parent.yaml\nname: child\n")
    with pytest.raises(DesignError, match=r"child.yaml: field 'base': no design file .*parent.yaml, and not a packaged design"):
        load_design(child)
    (tmp_path / "parent.yaml").write_text("base: child.yaml\nname: parent\n")
    with pytest.raises(DesignError, match="leads back to itself"):
        load_design(child)
    (tmp_path / "parent.yaml").write_text("base: smoke\nname: parent\naging: {max_cycles: 9, rpt_interval_cycles: 3}\n")
    merged = load_design(child)
    assert merged.name == "child" and merged.aging.max_cycles == 9 and merged.varied == load_design("smoke").varied
