"""'<name> (activation energy)': a fitted or varied Arrhenius term on a function of state."""

from __future__ import annotations

import copy
import math

import numpy as np
import pybamm
import pytest

from pybamm_factory.calibrate import CalibrationError, Curve, VoltageProblem
from pybamm_factory.design import load_design
from pybamm_factory.design.spec import parse_design
from pybamm_factory.simulate.aging import base_parameter_values
from pybamm_factory.simulate.inputs import REFERENCE_TEMPERATURE_K, apply_fixed, default_value, set_inputs

R = pybamm.constants.R.value
D_POS = "Positive particle diffusivity [m2.s-1]"
J0_NEG = "Negative electrode exchange-current density [A.m-2]"
WMG = "lgm50_wmg"


def _value(function, *args, inputs=None) -> float:
    out = function(*[pybamm.Scalar(a) for a in args])
    return float(np.asarray(out.evaluate(inputs=inputs) if isinstance(out, pybamm.Symbol) else out).squeeze())


@pytest.mark.parametrize("target, state", [(D_POS, (0.5,)), (J0_NEG, (1000.0, 15000.0, 33133.0)),
                                           ("Electrolyte conductivity [S.m-1]", (1000.0,))])
def test_activation_energy_is_the_sets_value_at_reference_and_arrhenius_elsewhere(target, state):
    own = pybamm.ParameterValues("OKane2022")[target]
    pv = pybamm.ParameterValues("OKane2022")
    name = f"{target} (activation energy)"
    set_inputs(pv, [name])
    energy = 61_000.0
    at_ref = _value(own, *state, REFERENCE_TEMPERATURE_K)
    assert _value(pv[target], *state, REFERENCE_TEMPERATURE_K, inputs={name: energy}) == pytest.approx(at_ref, rel=1e-12)
    for t in (263.15, 283.15, 318.15):
        expected = at_ref * math.exp(energy / R * (1 / REFERENCE_TEMPERATURE_K - 1 / t))
        assert _value(pv[target], *state, t, inputs={name: energy}) == pytest.approx(expected, rel=1e-12)
    # the default is the set's own effective activation energy: OKane2022's are pure Arrhenius terms
    own_energy = default_value(pybamm.ParameterValues("OKane2022"), name)
    assert own_energy == pytest.approx({D_POS: 25000.0, J0_NEG: 35000.0}.get(target, 17000.0), rel=1e-6)
    assert _value(pv[target], *state, 268.15, inputs={name: own_energy}) == pytest.approx(_value(own, *state, 268.15), rel=1e-9)


def test_the_default_energy_of_a_set_whose_functions_read_other_parameters():
    """ORegan2022's exchange currents read the set's maximum concentrations: the default is
    still the set's own Arrhenius energy, not the 0 of a function that cannot be evaluated."""
    pv = pybamm.ParameterValues("ORegan2022")
    own = pv[J0_NEG]
    c_max = float(pv["Maximum concentration in negative electrode [mol.m-3]"])

    def log_j0(t):
        out = own(pybamm.Scalar(1000.0), pybamm.Scalar(0.5 * c_max), pybamm.Scalar(c_max), pybamm.Scalar(t))
        return math.log(float(np.asarray(pv.process_symbol(out).evaluate()).squeeze()))
    expected = -R * (log_j0(308.15) - log_j0(288.15)) / (1 / 308.15 - 1 / 288.15)
    energy = default_value(pybamm.ParameterValues("ORegan2022"), f"{J0_NEG} (activation energy)")
    assert energy > 1e4
    assert energy == pytest.approx(expected, rel=1e-9)


def test_fixed_activation_energy_and_factor_combine():
    pv = pybamm.ParameterValues("OKane2022")
    own = pv[D_POS]
    apply_fixed(pv, {f"{D_POS} (factor)": 2.0, f"{D_POS} (activation energy)": 40_000.0, "Contact resistance [Ohm]": 0.01})
    t = 273.15
    expected = 2.0 * _value(own, 0.5, REFERENCE_TEMPERATURE_K) * math.exp(40_000.0 / R * (1 / REFERENCE_TEMPERATURE_K - 1 / t))
    assert _value(pv[D_POS], 0.5, t) == pytest.approx(expected, rel=1e-12)
    assert pv["Contact resistance [Ohm]"] == 0.01


def test_fit_problem_with_the_sets_own_energy_reproduces_the_set(realdata):
    """At the set's own activation energy the model is the set's, at 0 degC too; another energy changes it."""
    curve = Curve.from_file(realdata / WMG / "LGM50_0C_1C.csv")
    eps = "Positive electrode active material volume fraction"
    plain = VoltageProblem("OKane2022", [eps])
    arrhenius = VoltageProblem("OKane2022", [eps, f"{D_POS} (activation energy)", f"{J0_NEG} (activation energy)"])
    np.testing.assert_allclose(arrhenius.initial[1:], [25000.0, 35000.0], rtol=1e-6)
    x = plain.initial[0]
    v_plain = plain.simulate(curve, [x])
    np.testing.assert_allclose(arrhenius.simulate(curve, [x, *arrhenius.initial[1:]]), v_plain, atol=1e-5)
    # a steeper temperature dependence slows the positive particles at 0 degC: lower voltage
    assert arrhenius.simulate(curve, [x, 80_000.0, 35000.0]).mean() < v_plain.mean() - 0.005


def _design_raw(fixed: dict, varied: dict) -> dict:
    raw = copy.deepcopy(load_design("smoke").raw)
    raw.setdefault("fixed", {}).update(fixed)
    raw.setdefault("varied", {}).update(varied)
    return raw


def test_a_design_with_activation_energies_parses_and_a_discharge_solves():
    name_fixed, name_varied = f"{J0_NEG} (activation energy)", f"{D_POS} (activation energy)"
    raw = _design_raw({name_fixed: 50_000.0},
                      {name_varied: {"distribution": "uniform", "low": 20_000.0, "high": 40_000.0},
                       f"{D_POS} (factor)": {"distribution": "uniform", "low": 0.5, "high": 2.0}})
    design = parse_design(raw, "test")
    assert design.fixed[name_fixed] == 50_000.0 and name_varied in design.varied
    pv = base_parameter_values(design)
    set_inputs(pv, design.varied)
    t = 268.15
    pv.update({"Ambient temperature [K]": t, "Initial temperature [K]": t})
    sim = pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=pv, var_pts=design.mesh,
                            experiment=pybamm.Experiment(["Discharge at 1C for 10 minutes"]))
    sol = sim.solve(inputs={name_varied: 30_000.0, f"{D_POS} (factor)": 1.5})
    v = sol["Voltage [V]"].entries
    assert len(v) > 10 and 3.0 < v[-1] < 4.2
    # the same cell written out by hand: the set's functions at 298.15 K times the Arrhenius terms
    ref = pybamm.ParameterValues("OKane2022")
    d_own, j_own = ref[D_POS], ref[J0_NEG]

    def arr(e, temp):
        return pybamm.exp(e / R * (1 / REFERENCE_TEMPERATURE_K - 1 / temp))
    ref.update({D_POS: lambda sto, temp: 1.5 * d_own(sto, REFERENCE_TEMPERATURE_K) * arr(30_000.0, temp),
                J0_NEG: lambda ce, cs, cmax, temp: j_own(ce, cs, cmax, REFERENCE_TEMPERATURE_K) * arr(50_000.0, temp),
                "Ambient temperature [K]": t, "Initial temperature [K]": t})
    by_hand = pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=ref, var_pts=design.mesh,
                                experiment=pybamm.Experiment(["Discharge at 1C for 10 minutes"])).solve()
    np.testing.assert_allclose(v, by_hand["Voltage [V]"].entries, atol=1e-5)


@pytest.mark.parametrize("name, words", [
    ("Negative electrode OCP [V] (activation energy)", "an activation energy applies only to"),
    ("SEI solvent diffusivity [m2.s-1] (activation energy)", "an activation energy applies only to"),
    ("Made-up diffusivity [m2.s-1] (activation energy)", "is not a parameter of"),
])
def test_bad_activation_names_are_refused_in_one_line(name, words):
    with pytest.raises(CalibrationError, match="--fit: .*" + words) as fit_error:
        VoltageProblem("OKane2022", [name])
    assert "\n" not in str(fit_error.value)
    for section, spec in (("varied", {"distribution": "uniform", "low": 1.0, "high": 2.0}), ("fixed", 30_000.0)):
        raw = _design_raw({}, {}) if section == "fixed" else _design_raw({}, {name: spec})
        if section == "fixed":
            raw["fixed"][name] = spec
        with pytest.raises(ValueError, match=words) as design_error:
            parse_design(raw, "test")
        assert "\n" not in str(design_error.value) and f"{section}." in str(design_error.value)


def test_rest_voltage_initial_state_keeps_the_inventory_and_meets_the_rest_voltage(realdata):
    """initial_state='rest-voltage': each curve starts where the set's OCV is its measured rest voltage."""
    curve = Curve.from_file(realdata / WMG / "LGM50_10C_0.1C.csv")
    assert curve.rest_voltage_v == pytest.approx(4.1466)
    eps = "Positive electrode active material volume fraction"
    problem = VoltageProblem("OKane2022", [eps], initial_state="rest-voltage")
    state = problem.initial_concentrations(curve, [0.6])
    pv = pybamm.ParameterValues("OKane2022")
    cn, cp = state["Initial concentration in negative electrode [mol.m-3]"], state["Initial concentration in positive electrode [mol.m-3]"]
    ocv = _value(pv["Positive electrode OCP [V]"], cp / pv["Maximum concentration in positive electrode [mol.m-3]"]) \
        - _value(pv["Negative electrode OCP [V]"], cn / pv["Maximum concentration in negative electrode [mol.m-3]"])
    assert ocv == pytest.approx(curve.rest_voltage_v, abs=2e-3)

    def inventory(c_n, c_p, eps_p):
        return (pv["Negative electrode active material volume fraction"] * pv["Negative electrode thickness [m]"] * c_n
                + eps_p * pv["Positive electrode thickness [m]"] * c_p)
    expected = inventory(pv["Initial concentration in negative electrode [mol.m-3]"],
                         pv["Initial concentration in positive electrode [mol.m-3]"], 0.6)
    assert inventory(cn, cp, 0.6) == pytest.approx(expected, rel=1e-9)
    # a lower rest voltage than the set's full cell: less lithium in the negative electrode, less capacity
    assert cn < pv["Initial concentration in negative electrode [mol.m-3]"]
    assert problem.simulate(curve, [0.6]).mean() < VoltageProblem("OKane2022", [eps]).simulate(curve, [0.6]).mean()
    with pytest.raises(CalibrationError, match="initial state: 'ocv' is not allowed"):
        VoltageProblem("OKane2022", [eps], initial_state="ocv")


def test_the_shipped_across_temperature_design_loads_with_its_activation_energies():
    design = load_design("lgm50-calibrated-temperature")
    energies = [n for n in design.varied if n.endswith(" (activation energy)")]
    assert f"{J0_NEG} (activation energy)" in energies and len(energies) == 4
