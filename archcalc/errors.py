"""The one error type for bad input, carrying where it happened (file, layer, field)."""

from __future__ import annotations


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
            parts.append(self.file)
        if self.layer:
            parts.append(f"layer {self.layer!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join([*parts, self.message])
