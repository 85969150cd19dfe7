"""The factory's one error base class.

Every error a user can cause and fix (a bad design, file, flag or output directory, a fit
the data cannot support, an untrusted model file, a full disk) is a :class:`FactoryError`;
the CLI prints it as one line and exits 2, and a notebook can catch them all with one
``except``. Each keeps its built-in base too (``ValueError`` for bad input, ``RuntimeError``
for a conflicting run), so code that caught those still does.
"""


class FactoryError(Exception):
    """An error the user can fix; its message is one line naming the file, field or flag."""
