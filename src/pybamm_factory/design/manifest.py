"""Design of experiments: turn a validated design and a seed into a manifest frame.

Cell designs (the varied PyBaMM parameters) and operating conditions (protocol,
C-rates, ambient temperature) are sampled separately. Each cell design is run under
``conditions_per_cell_design`` conditions, so several samples share one
``cell_design_id``. Identifiers are content hashes: the same design file and seed give
the same ids and a byte-identical manifest, whatever runs the samples later.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
from scipy.stats import norm, qmc

from .spec import Design, DesignError

CONDITION_COLUMNS = ("protocol_id", "charge_c_rate", "discharge_c_rate", "ambient_temperature_k")


def _digest(*parts) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def _lhs(n: int, d: int, seed: int) -> np.ndarray:
    if d == 0:
        return np.zeros((n, 0))
    return qmc.LatinHypercube(d=d, rng=np.random.default_rng(seed)).random(n)


def _correlated_draw(design: Design, names: list[str], unit: np.ndarray) -> np.ndarray:
    """Values for uniform rows through a Gaussian copula: the correlated columns' normal
    scores are mixed by the Cholesky factor of the matrix; a normal parameter then takes
    mean + std * score (untruncated, bounds applied by the caller), any other its own ppf."""
    block = design.correlations
    columns = [names.index(n) for n in block.names]
    scores = norm.ppf(np.clip(unit[:, columns], 1e-12, 1 - 1e-12)) @ np.linalg.cholesky(np.array(block.matrix)).T
    values = np.column_stack([design.varied[n].ppf(unit[:, j]) for j, n in enumerate(names)])
    for k, j in enumerate(columns):
        dist = design.varied[names[j]]
        values[:, j] = dist.mean + dist.std * scores[:, k] if dist.kind == "normal" else dist.ppf(norm.cdf(scores[:, k]))
    return values


def _cell_values(design: Design, names: list[str], n: int, seed: int) -> np.ndarray:
    """One row of varied-parameter values per cell design. Independent parameters map one
    Latin hypercube through their own distributions. Correlated ones are a truncated
    multivariate normal (copula): rows with a normal outside its bounds are rejected, so
    the truncation keeps the correlation structure (a fitted value near a physical ceiling
    does not bias the combinations the fit pinned down)."""
    if not design.correlations:
        unit = _lhs(n, len(names), seed)
        return np.column_stack([design.varied[m].ppf(unit[:, j]) for j, m in enumerate(names)]) if names else unit
    low = np.array([design.varied[m].low for m in names])
    high = np.array([design.varied[m].high for m in names])
    draws = n
    while True:
        values = _correlated_draw(design, names, _lhs(draws, len(names), seed))
        inside = np.all((values >= low) & (values <= high), axis=1)
        if inside.sum() >= n:
            return values[inside][:n]
        if draws > 1000 * n:
            raise DesignError(f"{design.source}: field 'correlations': the normals' low/high bounds keep under 0.1 % "
                              "of the correlated distribution")
        draws *= 4


def _sobol_cell_designs(design: Design, n_designs: int, seed: int) -> np.ndarray:
    """Saltelli-style samples (SALib) in the unit cube, one row per cell design."""
    from SALib.sample import sobol as salib_sobol

    d = len(design.varied)
    problem = {"num_vars": d, "names": list(design.varied), "bounds": [[0.0, 1.0]] * d}
    base = 2 ** max(0, math.ceil(math.log2(max(1, n_designs) / (d + 2))))
    return salib_sobol.sample(problem, base, calc_second_order=False, seed=seed)


def cell_design_count(design: Design, samples: int) -> int:
    return max(1, math.ceil(samples / design.conditions_per_cell_design))


def build_manifest(design: Design, samples: int, seed: int) -> pd.DataFrame:
    """One row per sample: ids, varied parameter values and operating conditions.

    With the ``sobol`` sampler the number of samples is rounded up to a complete
    Saltelli design (N * (D + 2) cell designs), which SALib's analysis requires. A design's
    ``correlations`` are drawn as described in :func:`_cell_values`.
    """
    if samples < 1:
        raise ValueError("samples must be >= 1")
    names = list(design.varied)
    n_designs = cell_design_count(design, samples)
    if design.sampler == "sobol" and names:
        unit_cells = _sobol_cell_designs(design, n_designs, seed)
        n_designs = len(unit_cells)
        samples = n_designs * design.conditions_per_cell_design
        cell_values = {name: design.varied[name].ppf(unit_cells[:, j]) for j, name in enumerate(names)}
    else:
        cell_rows = _cell_values(design, names, n_designs, seed)
        cell_values = {name: cell_rows[:, j] for j, name in enumerate(names)}
    # conditions: protocol index, charge rate, discharge rate, temperature index
    unit_cond = _lhs(samples, 4, seed + 1_000_003)
    rows = []
    for i in range(samples):
        cell = i // design.conditions_per_cell_design
        u = unit_cond[i]
        protocol = design.protocols[min(int(u[0] * len(design.protocols)), len(design.protocols) - 1)]
        temps = design.ambient_temperatures_k
        temperature = temps[min(int(u[3] * len(temps)), len(temps) - 1)]
        params = {name: float(cell_values[name][cell]) for name in names}
        cell_key = [design.parameter_set, design.model, sorted(design.fixed.items())]
        cell_key += [f"{name}={params[name]:.12g}" for name in names]
        row = {
            "sample_id": "s-" + _digest(design.content_hash, seed, i),
            "cell_design_id": "c-" + _digest(*cell_key),
            "sample_index": i,
            **params,
            "protocol_id": protocol.protocol_id,
            "charge_c_rate": float(protocol.charge_c_rate.ppf(u[1])),
            "discharge_c_rate": float(protocol.discharge_c_rate.ppf(u[2])),
            "ambient_temperature_k": float(temperature),
        }
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["sample_index"] = frame["sample_index"].astype("int64")
    return frame


def varied_columns(manifest: pd.DataFrame) -> list[str]:
    """The manifest's varied-parameter columns (PyBaMM names, with units)."""
    fixed = {"sample_id", "cell_design_id", "sample_index", *CONDITION_COLUMNS}
    return [c for c in manifest.columns if c not in fixed]
