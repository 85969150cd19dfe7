"""The readers' one error: :class:`ReaderError`.

It is a :class:`~pybamm_factory.errors.FactoryError` (the CLI prints it as one line and exits
2) and a ``ValueError`` (bad input). Its message is one line, ``"<path>: <what was expected>"``;
the readers raise it through ``_fail(path, msg)``.
"""

from __future__ import annotations

from ..errors import FactoryError


class ReaderError(FactoryError, ValueError):
    """A file could not be read; the message is one line naming file and expectation."""


def _fail(path, msg):
    raise ReaderError(f"{path}: {msg}")
