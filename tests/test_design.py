"""Design files: validation messages, manifest determinism, ids and samplers."""

from __future__ import annotations

import copy
import hashlib

import pytest
import yaml

from pybamm_factory.api import write_manifest
from pybamm_factory.design import DesignError, build_manifest, load_design, packaged_designs, parse_design
from tests.conftest import REPO

SMOKE = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())


def _with(path: str, value):
    raw = copy.deepcopy(SMOKE)
    node = raw
    keys = path.split("/")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return raw


_DELETE = object()

MALFORMED = [
    ("unknown top-level key", _with("colour", "red"), "field 'colour': unknown key"),
    ("model not allowed", _with("model", "p2d"), "field 'model': 'p2d' is not allowed; allowed: spme, dfn"),
    ("parameter set unknown", _with("parameter_set", "Nope2099"), "field 'parameter_set': 'Nope2099' is not a PyBaMM parameter set"),
    ("varied name absent", _with("varied/Flux capacitor [F]", {"low": 1, "high": 2}),
     "field 'varied.Flux capacitor [F]': 'Flux capacitor [F]' is not a parameter of OKane2022"),
    ("empty range", _with("varied/SEI solvent diffusivity [m2.s-1]", {"distribution": "log-uniform", "low": 1e-19, "high": 1e-20}),
     "empty range: low (1e-19) must be < high (1e-20)"),
    ("bad distribution", _with("varied/SEI solvent diffusivity [m2.s-1]", {"distribution": "beta", "low": 1, "high": 2}),
     "'beta' is not allowed; allowed: uniform, log-uniform, normal"),
    ("wrong type", _with("aging/max_cycles", "ten"), "field 'aging.max_cycles': expected an integer >= 1, got 'ten'"),
    ("impossible voltage window", _with("protocols/0/upper_voltage_v", 2.0),
     "impossible protocol: lower_voltage_v (2.5) must be < upper_voltage_v (2.0)"),
    ("voltage outside cut-offs", _with("protocols/0/upper_voltage_v", 4.6), "lies outside the parameter set's cut-offs"),
    ("negative C-rate", _with("protocols/0/charge_c_rate", {"low": -1, "high": 1}), "impossible protocol: C-rates must lie in (0, 10]"),
    ("rpt interval > cycles", _with("aging/rpt_interval_cycles", 50), "must be <= aging.max_cycles"),
    ("soc out of range", _with("eis/socs", [0.5, 1.2]), "field 'eis.socs[1]': state of charge must lie in (0, 1)"),
    ("sampler unknown", _with("sampler", "grid"), "field 'sampler': 'grid' is not allowed; allowed: lhs, sobol"),
    ("missing required", _with("protocols", _DELETE), "field 'protocols': is required"),
    ("bad model option", _with("model_options/SEI", "magic"), "field 'model_options'"),
    ("fixed not a number", _with("fixed", {"Initial SEI thickness [m]": "thin"}), "expected a number"),
    ("split fractions", _with("splits", {"train": 0.9, "val": 0.2, "test": 0.1}), "sum to 1"),
    ("geometry parameter varied", _with("varied/Negative particle radius [m]", {"low": 4e-6, "high": 6e-6}),
     "sets the mesh geometry"),
    ("function varied without factor", _with("varied/Negative particle diffusivity [m2.s-1]", {"low": 1e-14, "high": 5e-14}),
     "vary 'Negative particle diffusivity [m2.s-1] (factor)' (a multiplier on the function) instead"),
    ("factor of an unknown parameter", _with("varied/Flux capacitor [F] (factor)", {"low": 0.5, "high": 2}),
     "'Flux capacitor [F]' is not a parameter of OKane2022"),
    ("factor of a geometry parameter", _with("varied/Negative particle radius [m] (factor)", {"low": 0.5, "high": 2}),
     "sets the mesh geometry"),
    ("contact resistance without its option", _with("varied/Contact resistance [Ohm]", {"low": 0.0, "high": 0.02}),
     "has no effect unless model_options sets 'contact resistance': 'true'"),
    ("holdout side", _with("splits/holdout", {"column": "ambient_temperature_k", "side": "middle"}),
     "field 'splits.holdout.side': 'middle' is not allowed; allowed: high, low"),
    ("initial concentration above the maximum", _with("varied/Initial concentration in negative electrode [mol.m-3]",
                                                       {"distribution": "uniform", "low": 28000, "high": 35000}),
     "field 'varied.Initial concentration in negative electrode [mol.m-3]': must lie in (0, 33133] "
     "(the negative electrode's maximum concentration in mol.m-3), got [28000, 35000]"),
    ("fraction above one", _with("fixed", {"Positive electrode porosity": 1.2}),
     "field 'fixed.Positive electrode porosity': must lie in (0, 1] (a fraction), got [1.2, 1.2]"),
    ("correlation of an unvaried name", _with("correlations", {"names": ["SEI solvent diffusivity [m2.s-1]", "Ambient temperature [K]"],
                                                               "matrix": [[1, 0.5], [0.5, 1]]}),
     "field 'correlations.names': 'Ambient temperature [K]' is not under varied"),
    ("correlation matrix not positive definite", _with("correlations", {"names": list(SMOKE["varied"]),
                                                                        "matrix": [[1, 1], [1, 1]]}),
     "field 'correlations.matrix': is not positive definite"),
    ("name that is a path", _with("name", "../../outside"), "field 'name': '../../outside' is not allowed"),
    ("name that is absolute", _with("name", "/tmp/x"), "field 'name': '/tmp/x' is not allowed"),
    ("correlation matrix not symmetric", _with("correlations", {"names": list(SMOKE["varied"])[:2], "matrix": [[1, 0.5], [0.2, 1]]}),
     "field 'correlations.matrix': must be symmetric"),
]


@pytest.mark.parametrize("label,raw,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_design_is_rejected_with_one_line(label, raw, message, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DesignError) as err:
        load_design(path)
    text = str(err.value)
    assert message in text
    assert text.startswith(str(path)), "the message names the file"
    assert "\n" not in text


def test_yaml_syntax_error_and_unsafe_yaml_are_rejected(tmp_path):
    bad = tmp_path / "syntax.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(DesignError, match="not valid YAML"):
        load_design(bad)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(DesignError):
        load_design(unsafe)


def test_packaged_designs_include_default_smoke_and_load():
    names = packaged_designs()
    assert {"default", "smoke"} <= set(names)
    for name in names:
        assert load_design(name).name == name


def test_manifest_is_byte_identical_for_same_design_and_seed(tmp_path):
    a = write_manifest("smoke", 12, 3, tmp_path / "a.parquet")
    b = write_manifest("smoke", 12, 3, tmp_path / "b.parquet")
    c = write_manifest("smoke", 12, 4, tmp_path / "c.parquet")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_manifest_ids_columns_and_shared_cell_designs():
    design = load_design("smoke")
    m = build_manifest(design, 8, 7)
    assert list(m.columns[:3]) == ["sample_id", "cell_design_id", "sample_index"]
    assert m["sample_id"].is_unique
    for name in design.varied:
        assert name in m.columns
        dist = design.varied[name]
        assert m[name].between(dist.low, dist.high).all()
    # conditions_per_cell_design = 2: each cell design appears twice with the same parameters
    sizes = m.groupby("cell_design_id").size()
    assert (sizes == 2).all() and len(sizes) == 4
    assert (m.groupby("cell_design_id")[list(design.varied)].nunique() == 1).all().all()
    assert set(m["ambient_temperature_k"]) <= set(design.ambient_temperatures_k)
    # ids derive from design content + seed + index, not from the run
    assert build_manifest(design, 8, 7)["sample_id"].tolist() == m["sample_id"].tolist()
    assert build_manifest(design, 10, 7)["sample_id"].tolist()[:8] == m["sample_id"].tolist()


def test_latin_hypercube_strata_are_each_hit_once():
    design = load_design("smoke")
    m = build_manifest(design, 16, 11)
    cells = m.drop_duplicates("cell_design_id")
    dist = design.varied["SEI solvent diffusivity [m2.s-1]"]
    import numpy as np

    u = (np.log(cells["SEI solvent diffusivity [m2.s-1]"]) - np.log(dist.low)) / (np.log(dist.high) - np.log(dist.low))
    strata = np.floor(u * len(cells)).astype(int)
    assert sorted(strata) == list(range(len(cells)))


def test_sobol_sampler_gives_complete_saltelli_design():
    raw = copy.deepcopy(SMOKE)
    raw["sampler"] = "sobol"
    raw["conditions_per_cell_design"] = 1
    design = parse_design(raw, "sobol.yaml")
    m = build_manifest(design, 10, 5)
    d = len(design.varied)
    assert len(m) % (d + 2) == 0 and len(m) >= 10
    assert build_manifest(design, 10, 5).equals(m)


def _correlated_smoke(r: float) -> dict:
    names = list(SMOKE["varied"])[:2]
    raw = copy.deepcopy(SMOKE)
    raw["correlations"] = {"names": names, "matrix": [[1.0, r], [r, 1.0]], "source": "test"}
    return raw


def test_correlations_reach_the_manifest_and_keep_each_marginal():
    """A Gaussian copula: the normal scores of the two parameters' quantiles correlate as
    written, each parameter keeps its own distribution and range, and the manifest stays
    deterministic."""
    import numpy as np
    from scipy import stats

    raw = _correlated_smoke(-0.9)
    names = raw["correlations"]["names"]
    design = parse_design(raw, "correlated.yaml")
    cells = build_manifest(design, 800, 2).drop_duplicates("cell_design_id")
    independent = build_manifest(parse_design(copy.deepcopy(SMOKE), "smoke.yaml"), 800, 2).drop_duplicates("cell_design_id")
    scores = []
    for name in names:
        dist = design.varied[name]
        assert cells[name].between(dist.low, dist.high).all()
        # each marginal: same distribution as without the correlation (two-sample KS)
        assert stats.ks_2samp(cells[name], independent[name], method="asymp").pvalue > 0.01
        unit = (np.log(cells[name]) - np.log(dist.low)) / (np.log(dist.high) - np.log(dist.low))
        scores.append(stats.norm.ppf(unit))
    assert np.corrcoef(scores)[0, 1] == pytest.approx(-0.9, abs=0.03)
    assert abs(np.corrcoef([independent[n] for n in names])[0, 1]) < 0.15
    assert build_manifest(design, 800, 2).equals(build_manifest(parse_design(_correlated_smoke(-0.9), "again.yaml"), 800, 2))


def test_correlations_need_the_lhs_sampler(tmp_path):
    raw = _correlated_smoke(0.5)
    raw["sampler"] = "sobol"
    path = tmp_path / "sobol.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DesignError, match="field 'correlations': needs sampler 'lhs'; the 'sobol' sampler's Sobol indices assume independent"):
        load_design(path)


def test_correlated_normals_are_truncated_jointly():
    """Two normals correlated -0.99, one truncated half a std above its mean (a fit close
    to a physical ceiling). Rejecting whole rows keeps the sum of their standard scores, the
    combination the correlation pins down, centred; truncating each marginal on its own
    would shift it by about half a std."""
    import numpy as np

    pos, neg = "Positive electrode active material volume fraction", "Negative electrode active material volume fraction"
    raw = copy.deepcopy(SMOKE)
    raw["varied"][pos] = {"distribution": "normal", "mean": 0.60, "std": 0.02, "low": 0.54, "high": 0.61}
    raw["varied"][neg] = {"distribution": "normal", "mean": 0.70, "std": 0.02, "low": 0.64, "high": 0.76}
    raw["correlations"] = {"names": [pos, neg], "matrix": [[1.0, -0.99], [-0.99, 1.0]]}
    design = parse_design(raw, "truncated.yaml")
    cells = build_manifest(design, 600, 4).drop_duplicates("cell_design_id")
    assert len(cells) == 300
    assert cells[pos].between(0.54, 0.61).all() and cells[neg].between(0.64, 0.76).all()
    assert cells[pos].max() > 0.605  # the truncated side is reached
    pinned = (cells[pos] - 0.60) / 0.02 + (cells[neg] - 0.70) / 0.02  # std 0.14 untruncated
    assert abs(pinned.mean()) < 0.05, pinned.mean()
    assert np.corrcoef(cells[pos], cells[neg])[0, 1] < -0.95  # truncation weakens it a little


def test_initial_concentration_ceiling_follows_the_designs_own_maximum():
    """The ceiling is the design's fixed maximum concentration where it sets one, and no
    ceiling is checked where the design varies the maximum itself."""
    initial = "Initial concentration in negative electrode [mol.m-3]"
    maximum = "Maximum concentration in negative electrode [mol.m-3]"
    raw = _with(f"varied/{initial}", {"distribution": "uniform", "low": 28000, "high": 30000})
    parse_design(raw)  # under the set's 33133
    lowered = copy.deepcopy(raw)
    lowered["fixed"] = {**lowered.get("fixed", {}), maximum: 29000.0}
    with pytest.raises(DesignError, match=r"must lie in \(0, 29000\]"):
        parse_design(lowered)
    varied_max = _with(f"varied/{initial}", {"distribution": "uniform", "low": 28000, "high": 35000})
    varied_max["varied"][maximum] = {"distribution": "uniform", "low": 34000, "high": 36000}
    parse_design(varied_max)


def test_default_design_ages_at_fitted_rates_with_jumps():
    """No acceleration factor: each degradation parameter of the default is either the one
    fitted to the measured LG M50T trajectories (the shipped calibrated design, within a
    cell-to-cell floor of its range) or, where that fit does not identify it, within a
    decade of the parameter set's own value; the life is reached with cycle jumps."""
    import math

    from pybamm_factory.design.spec import parameter_values

    design = load_design("default")
    calibrated = load_design("lgm50t-aging")
    pv = parameter_values(design.parameter_set)
    rates = [n for n in design.varied if any(k in n for k in ("SEI", "plating", "LAM"))]
    assert len(rates) >= 6
    for name in rates:
        dist = design.varied[name]
        fitted = calibrated.varied.get(name)
        identified = fitted is not None and "UNIDENTIFIED" not in calibrated.raw["varied"][name]["source"]
        if identified:
            assert math.isclose(dist.low, fitted.low, rel_tol=0.01) and math.isclose(dist.high, fitted.high, rel_tol=0.01), name
            assert "fitted" in design.raw["varied"][name]["source"], name
        elif "activation energy" in name:
            assert "UNIDENTIFIED" in design.raw["varied"][name]["source"], name
        else:
            literature = float(pv[name])
            assert literature / 10 * (1 - 1e-6) <= dist.low <= dist.high <= literature * 10 * (1 + 1e-6), name
    # fixed degradation values are the parameter set's, except the SEI film resistivity,
    # fitted to the LG M50T cells' measured resistance growth (scripts/fit_sei_resistivity.py)
    for name, value in design.fixed.items():
        if name == "SEI resistivity [Ohm.m]":
            assert pv[name] / 100 < value < pv[name], value
        elif any(k in name for k in ("SEI", "plating", "LAM")):
            assert value == pv[name], name
    assert design.aging.cycle_jump is not None and design.aging.rpt_fade_step
    assert design.aging.max_cycles >= 5000
    assert load_design("accelerated").aging.cycle_jump is None  # the old study, kept and labelled
    assert "ACCELERATED" in load_design("accelerated").description


def test_readme_design_example_loads_and_validates():
    import re

    block = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.S)[0]
    design = parse_design(yaml.safe_load(block), "README.md example")
    assert design.aging.cycle_jump is not None and design.aging.rpt_fade_step == 0.02


def test_a_distributions_centre_is_a_normals_mean_a_choices_middle_level_else_the_median():
    from pybamm_factory.design.schema import Distribution

    # a normal truncated unevenly (as a fit near a searched bound is): its median lies off the mean
    normal = Distribution("normal", 0.0, 1.2, mean=1.0, std=0.5)
    assert normal.centre() == 1.0 and normal.ppf([0.5])[0] < 0.9
    assert Distribution("choice", 0.3, 0.9, values=(0.9, 0.3, 0.6)).centre() == 0.6
    assert Distribution("choice", 1.0, 2.0, values=(2.0, 1.0)).centre() == 1.0
    assert Distribution("uniform", 2.0, 4.0).centre() == pytest.approx(3.0)
    assert Distribution("log-uniform", 1.0, 100.0).centre() == pytest.approx(10.0)
