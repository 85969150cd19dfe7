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

from .spec import MAX_SAMPLES, Design, DesignError

ID_COLUMNS = ("sample_id", "cell_design_id", "sample_index")


def factor_columns(design: Design) -> list[str]:
    """The protocols' sampled factors, in order of first appearance (one column each)."""
    names: list[str] = []
    for protocol in design.protocols:
        names += [n for n in protocol.factors if n not in names]
    return names


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


def _conditions(design: Design, factors: list[str], samples: int, seed: int) -> list:
    """(protocol, {factor: value, NaN where the protocol lacks it}, temperature) per sample.

    ``lhs``: one Latin hypercube over protocol index, every factor and temperature index
    (a design of cccv-cc protocols only draws protocol, charge rate, discharge rate,
    temperature, as before protocol kinds existed). ``factorial``: every combination of
    protocol, factor levels and temperature in a fixed order, repeated to ``samples``.
    """
    temps = design.ambient_temperatures_k
    if design.conditions_sampler == "factorial":
        import itertools

        grid = []
        for protocol in design.protocols:
            names = list(protocol.factors)
            levels = [protocol.factors[n].values or (protocol.factors[n].low,) for n in names]
            for combo in itertools.product(*levels):
                for temperature in temps:
                    values = {n: math.nan for n in factors}
                    values.update({n: float(v) for n, v in zip(names, combo)})
                    grid.append((protocol, values, temperature))
        return [grid[i % len(grid)] for i in range(samples)]
    unit = _lhs(samples, 2 + len(factors), seed + 1_000_003)
    out = []
    for u in unit:
        protocol = design.protocols[min(int(u[0] * len(design.protocols)), len(design.protocols) - 1)]
        values = {name: (float(protocol.factors[name].ppf(u[1 + j])) if name in protocol.factors else math.nan)
                  for j, name in enumerate(factors)}
        out.append((protocol, values, temps[min(int(u[-1] * len(temps)), len(temps) - 1)]))
    return out


def cell_design_count(design: Design, samples: int) -> int:
    return max(1, math.ceil(samples / design.conditions_per_cell_design))


def check_request(design: Design, samples: int, seed: int) -> None:
    """Refuse, in one line, a sample count or seed the manifest cannot be built from:
    1..MAX_SAMPLES samples (a million manifest rows are about a GB in memory) and a seed
    numpy's generators take (a non-negative integer)."""
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 1 <= samples <= MAX_SAMPLES:
        raise DesignError(f"{design.source}: samples (-n/--samples): expected an integer in 1..{MAX_SAMPLES:,} "
                          f"(samples per dataset), got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DesignError(f"{design.source}: seed (--seed): expected a non-negative integer, got {seed!r}")


def build_manifest(design: Design, samples: int, seed: int) -> pd.DataFrame:
    """One row per sample: ids, varied parameter values and operating conditions.

    With the ``sobol`` sampler the number of samples is rounded up to a complete
    Saltelli design (N * (D + 2) cell designs), which SALib's analysis requires. A design's
    ``correlations`` are drawn as described in :func:`_cell_values`.
    """
    check_request(design, samples, seed)
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
    # conditions: protocol index, one column per protocol factor, temperature index (a
    # design of cccv-cc protocols only: protocol, charge rate, discharge rate, temperature)
    factors = factor_columns(design)
    conditions = _conditions(design, factors, samples, seed)
    rows = []
    for i in range(samples):
        cell = i // design.conditions_per_cell_design
        protocol, levels, temperature = conditions[i]
        params = {name: float(cell_values[name][cell]) for name in names}
        cell_key = [design.parameter_set, design.model, sorted(design.fixed.items())]
        cell_key += [f"{name}={params[name]:.12g}" for name in names]
        row = {
            "sample_id": "s-" + _digest(design.content_hash, seed, i),
            "cell_design_id": "c-" + _digest(*cell_key),
            "sample_index": i,
            **params,
            "protocol_id": protocol.protocol_id,
            **levels,
            "ambient_temperature_k": float(temperature),
        }
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["sample_index"] = frame["sample_index"].astype("int64")
    if design.failures:  # rare failures: a stated share of cell designs in named scenarios (design/failures.py)
        from .failures import assign

        frame = assign(frame, design.failures, seed)
    return frame


def varied_columns(manifest: pd.DataFrame) -> list[str]:
    """The manifest's varied-parameter columns.

    Convention: varied parameters keep their PyBaMM names, which always contain a space
    ("Positive electrode active material volume fraction", "SEI solvent diffusivity
    [m2.s-1]"); ids, ``protocol_id``, the protocol factors and ``ambient_temperature_k``
    are snake_case identifiers without one.
    """
    return [c for c in manifest.columns if c not in ID_COLUMNS and " " in c]


def condition_columns(manifest: pd.DataFrame) -> list[str]:
    """``protocol_id``, the protocol factors and ``ambient_temperature_k``."""
    return [c for c in manifest.columns if c not in ID_COLUMNS and " " not in c]
