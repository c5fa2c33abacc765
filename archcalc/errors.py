"""The one error type for bad input, carrying where it happened (file, layer, field)."""

from __future__ import annotations


def escape_control(text: str) -> str:
    """``text`` with control characters and line breaks escaped as Python writes them (a newline
    as \\n, ESC as \\x1b): a layer or file name then stays on its line and cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class SpecError(ValueError):
    """Invalid spec or flags. The CLI prints it as one line and exits 2."""

    def __init__(self, message: str, *, layer: str | None = None, field: str | None = None, file: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.layer = layer
        self.field = field
        self.file = file

    def located(self, *, layer: str | None = None, field: str | None = None, file: str | None = None) -> SpecError:
        """Fill in location parts that are still unknown (inner context wins)."""
        self.layer = self.layer or layer
        self.field = self.field or field
        self.file = self.file or file
        return self

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(escape_control(self.file))
        if self.layer:
            parts.append(f"layer {self.layer!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join([*parts, escape_control(self.message)])


class UserExit(SpecError):
    """User code (a model's forward) called ``sys.exit``: an error (exit 2), never archcalc's own exit status."""


def user_failure(e: BaseException) -> str:
    """How user code failed, for a one-line error: ``ValueError: no weights``, or ``SystemExit(0): ...``
    for an exit (whose text alone would be just its code)."""
    if isinstance(e, SystemExit):
        return f"SystemExit({e.code!r}): user code may not exit"
    return f"{type(e).__name__}: {e}"
