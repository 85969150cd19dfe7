"""A design's reference test set to a measured cell's (#21): the RPT voltage window in a
real run, its design rules, and `predict --rpt-design` writing it from a real cycler file."""

from __future__ import annotations

import copy

import pytest

from pybamm_factory.design import parse_design
from pybamm_factory.design.spec import DesignError
from tests.physics_designs import BASE, row_for, tiny_design


def _with_aging(**aging):
    raw = copy.deepcopy(BASE)
    raw["aging"].update(aging)
    return raw


@pytest.mark.parametrize("aging, words", [
    ({"rpt_lower_voltage_v": 2.0}, "outside the parameter set's cut-offs"),
    ({"rpt_upper_voltage_v": 4.4}, "outside the parameter set's cut-offs"),
    ({"rpt_upper_voltage_v": 3.5, "rpt_lower_voltage_v": 3.6}, "would be 3.6-3.5 V: lower must be < upper"),
    ({"rpt_lower_voltage_v": 4.2}, "protocol 'cccv-cc' would be 4.2-4.2 V"),  # against the protocol's own 4.2 V
])
def test_rpt_window_rules(aging, words):
    with pytest.raises(DesignError, match=words):
        parse_design(_with_aging(**aging), "w.yaml")


def test_an_rpt_window_is_kept_and_carded():
    from pybamm_factory.dataset.card import _rpt_window

    design = parse_design(_with_aging(rpt_lower_voltage_v=3.0, rpt_upper_voltage_v=4.1), "w.yaml")
    assert (design.aging.rpt_lower_voltage_v, design.aging.rpt_upper_voltage_v) == (3.0, 4.1)
    assert _rpt_window(design.aging) == "between 4.1 V and 3 V"
    assert _rpt_window(parse_design(copy.deepcopy(BASE), "b.yaml").aging) == "between each protocol's voltage limits"


@pytest.mark.slow
def test_a_narrower_rpt_window_ends_the_reference_discharge_at_its_limit():
    from pybamm_factory.simulate.sample import simulate_sample

    full = tiny_design(cycles=2, interval=2)
    raw = copy.deepcopy(full.raw)
    raw["aging"].update({"rpt_lower_voltage_v": 3.4, "rpt_upper_voltage_v": 4.1})
    narrow = parse_design(raw, "narrow.yaml")
    out = {}
    for name, design in (("full", full), ("narrow", narrow)):
        tables = simulate_sample(design, row_for(design, **{"SEI solvent diffusivity [m2.s-1]": 1e-19}))
        assert tables["solver_log"]["status"].iloc[0] == "ok", tables["solver_log"]["failure_reason"].iloc[0]
        out[name] = tables
    curves = {k: t["curves"][t["curves"]["cycle"] == 0] for k, t in out.items()}
    assert curves["narrow"]["voltage_v"].min() == pytest.approx(3.4, abs=0.02)
    assert curves["narrow"]["voltage_v"].max() < 4.1
    assert curves["full"]["voltage_v"].min() == pytest.approx(2.5, abs=0.02)
    cap = {k: t["labels"].loc[t["labels"]["cycle"] == 0, "capacity_ah"].iloc[0] for k, t in out.items()}
    assert cap["narrow"] < 0.95 * cap["full"]
