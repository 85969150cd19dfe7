"""Print what each protocol kind does on the smoke cell (SPMe, OKane2022 at its own rates).

    python scripts/protocol_check.py

For every kind: the RPT capacities, days and throughput after two aging cycles, and (with
pulses at 20/50/80 % SOC in the RPT) the 0.1 s and 10 s resistances at 10 and 25 degC.
"""

from __future__ import annotations

import copy
import time

import yaml

from pybamm_factory.design import parse_design
from pybamm_factory.design.spec import packaged_designs
from pybamm_factory.simulate.aging import AgingEngine

PROTOCOLS = {
    "cccv-cc + rest": {"id": "c", "charge_c_rate": 0.5, "discharge_c_rate": 1.0, "rest": {"soc": 0.3, "hours": 1}},
    "soc-window 70-85 %": {"id": "w", "kind": "soc-window", "depth_of_discharge": 0.15, "mean_soc": 0.775,
                           "charge_c_rate": 0.3, "discharge_c_rate": 1.0, "rest_min": 0},
    "multistep-charge": {"id": "m", "kind": "multistep-charge", "discharge_c_rate": 1.0,
                         "stages": [{"c_rate": 1.0, "until_soc": 0.3}, {"c_rate": 0.5, "until_v": 4.1}]},
    "calendar 80 %, 7-day periods": {"id": "s", "kind": "calendar", "storage_soc": 0.8, "days_per_cycle": 7},
}


def main():
    raw = yaml.safe_load(packaged_designs()["smoke"].read_text())
    raw["varied"] = {}
    raw["aging"].update({"max_cycles": 2, "rpt_interval_cycles": 2,
                         "rpt_pulse": {"socs": [0.2, 0.5, 0.8], "c_rate": 1.0, "rest_min": 30}})
    print(f"{'protocol':30s} {'T degC':>6s} {'capacity A.h':>20s} {'days':>12s} {'throughput A.h':>16s}  "
          "R0.1s / R10s at 20/50/80 % SOC [mOhm] (last RPT)  wall s")
    for label, block in PROTOCOLS.items():
        r = copy.deepcopy(raw)
        r["protocols"] = [block]
        design = parse_design(r, label)
        for temperature_c in (10, 25):
            engine = AgingEngine(design, design.protocols[0], temperature_c + 273.15)
            t0 = time.perf_counter()
            run = engine.run({})
            wall = time.perf_counter() - t0
            if run.status != "ok":
                print(f"{label:30s} {temperature_c:6d} {run.status}: {run.failure_reason}")
                continue
            s = run.snapshots
            caps = " ".join(f"{x.discharged_ah[-1]:.4f}" for x in s)
            days = " ".join(f"{(x.elapsed_s - s[0].elapsed_s) / 86400:.2f}" for x in s)
            tp = " ".join(f"{x.summary.get('throughput_ah', float('nan')):.1f}" for x in s)
            pulses = " ".join(f"{a * 1e3:.1f}/{b * 1e3:.1f}" for _, a, b in s[-1].pulses)
            print(f"{label:30s} {temperature_c:6d} {caps:>20s} {days:>12s} {tp:>16s}  {pulses:48s} {wall:6.1f}")


if __name__ == "__main__":
    main()
