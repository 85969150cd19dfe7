"""Choices of the calibration commands, apart from the code that needs PyBaMM, so the CLI
can build its options (and ``--help``) without importing it."""

THERMAL_MODES = ("ambient", "mean", "measured", "lumped")
INITIAL_STATES = ("set", "rest-voltage")
OPTIMISERS = ("least-squares", "pybop-minimize", "pybop-xnes")
# a cell of another size: scale the set when measured / model capacity is beyond this factor
CAPACITY_SCALING = {"auto": 1.5, "on": 1.0, "off": None}
