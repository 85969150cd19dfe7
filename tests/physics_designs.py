"""Tiny designs for physics tests, built from the smoke design with overrides."""

from __future__ import annotations

import copy

import yaml

from pybamm_factory.design import build_manifest, parse_design
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
SEI_ONLY = {"SEI": "solvent-diffusion limited"}


def tiny_design(options=None, varied=None, cycles=6, interval=2, eis=False, temperatures=(25,),
                charge=(0.5, 0.5001), name="physics"):
    raw = copy.deepcopy(BASE)
    raw["name"] = name
    raw["model_options"] = dict(SEI_ONLY if options is None else options)
    raw["varied"] = varied or {"SEI solvent diffusivity [m2.s-1]": {"distribution": "log-uniform", "low": 1e-20, "high": 1e-18}}
    raw["aging"].update({"max_cycles": cycles, "rpt_interval_cycles": interval, "stop_soh": 0.5})
    raw["eis"]["enabled"] = eis
    raw["ambient_temperatures_c"] = list(temperatures)
    raw["protocols"][0]["charge_c_rate"] = {"low": charge[0], "high": charge[1]}
    raw["protocols"][0]["discharge_c_rate"] = {"low": 1.0, "high": 1.0001}
    raw["conditions_per_cell_design"] = 1
    return parse_design(raw, f"{name}.yaml")


def row_for(design, temperature_c=25.0, charge_c_rate=0.5, discharge_c_rate=1.0, **params):
    """A manifest row with chosen values (ids from the real manifest builder)."""
    row = build_manifest(design, 1, 0).iloc[0].to_dict()
    row.update(params)
    row.update({"ambient_temperature_k": temperature_c + 273.15, "charge_c_rate": charge_c_rate,
                "discharge_c_rate": discharge_c_rate})
    return row
