"""The one exception a user sees: what went wrong, where, and how to fix it."""

from __future__ import annotations


class LayerwiseError(Exception):
    """A user-actionable error.

    ``str(err)`` is one short message: ``<where>: <what>. Fix: <fix>``. The CLI prints it and exits
    with status 2, without a traceback.
    """

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what = what.rstrip(".")
        self.where = where
        self.fix = fix
        super().__init__(self._format())

    def _format(self) -> str:
        msg = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            msg += f". Fix: {self.fix}"
        return msg
