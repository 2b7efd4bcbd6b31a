"""The constraint engine's errors: typed, with what to do in `hint`, and which option (`param`)
and which schema keyword or construct (`keyword`) they are about."""
from __future__ import annotations

from ..errors import InvalidParameter


class ConstraintError(InvalidParameter):
    """A regex, grammar, choice list or schema the engine refuses, up front, before any token."""

    hint = "Simplify the constraint; docs/structured-output.md lists what is supported."

    def __init__(self, message: str, hint: str | None = None, *, param: str = "", keyword: str = ""):
        super().__init__(message, hint, param=param or None)
        self.param = param
        self.keyword = keyword


class UnsupportedSchema(ConstraintError):
    """A JSON Schema keyword (or use of one) the engine cannot enforce: refused, never half-enforced."""

    hint = ("Remove or rewrite that keyword; docs/structured-output.md has the table of supported and "
            "refused JSON Schema keywords.")
