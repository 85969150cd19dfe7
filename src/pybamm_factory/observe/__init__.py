"""The measurement layer: noise, offsets, gain errors, drift, ADC steps, sensor lag and EIS
noise on a finished dataset (`pybamm-factory observe`). See docs/observe.md."""

from .apply import (
    PROFILE_COLUMN,
    Channel,
    channel_errors,
    first_order_lag,
    kk_failure_share,
    measure_discharge,
    noisy_spectrum,
    observe_sample_curves,
    observe_sample_spectra,
    quantise,
    sample_rng,
)
from .core import (
    FIGURE,
    OUT_FOLDER,
    RECORD,
    Observation,
    ObserveError,
    card_section,
    compare,
    figure,
    observe,
    observed_profiles,
    read_observed,
)
from .profiles import Profile, ProfileError, load_profile, packaged_profiles, parse_profile

__all__ = ["FIGURE", "OUT_FOLDER", "PROFILE_COLUMN", "RECORD", "Channel", "Observation", "ObserveError", "Profile",
           "ProfileError", "card_section", "channel_errors", "compare", "figure", "first_order_lag", "kk_failure_share",
           "load_profile", "measure_discharge", "noisy_spectrum", "observe", "observe_sample_curves",
           "observe_sample_spectra", "observed_profiles", "packaged_profiles", "parse_profile", "quantise", "read_observed",
           "sample_rng"]
