"""Writing results: stdout or a file replaced atomically, and the format an output file's name asks for.

Below both the CLI and the torch commands (``archcalc.torch.*``): library code imports this module,
never ``archcalc.cli``. Every file archcalc writes goes through :func:`atomic_write`, so a full disk
or a crash leaves the previous file whole, never a truncated one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence

from .errors import SpecError

EXTENSIONS = {".txt": "text", ".md": "markdown", ".tex": "latex", ".csv": "csv", ".json": "json", ".html": "html", ".htm": "html"}


def format_for(output: str | None, allowed: Sequence[str]) -> str:
    """The format an output file's extension asks for (table.md: markdown), if allowed; else text."""
    fmt = EXTENSIONS.get(os.path.splitext(output or "")[1].lower(), "text")
    return fmt if fmt in allowed else "text"


def _new_file_mode() -> int:
    """What open() would give a new file under the current umask (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, field: str = "--output") -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    A temp file in the same folder is written, flushed to disk (fsync), given the mode of the file it
    replaces (or the mode open() would give a new one) and renamed over ``path``. Through a symlink the
    target is replaced and the link stays; a path that exists but is no regular file (/dev/null, a pipe)
    is written to, never replaced. Failures (a full disk, a read-only folder) remove the temp file and
    raise :class:`SpecError` naming ``path`` and ``field``; the old file is untouched.
    """
    atomic_write_all([(path, data)], field=field)


def atomic_write_all(files: Sequence[tuple[str | os.PathLike[str], str | bytes]], *, field: str = "--output") -> None:
    """Write several files as :func:`atomic_write` does, all or none: every temp file is written and
    synced first, and only when all are on disk are they renamed into place, in the order given (so the
    last one, an index, appears last). A failure while writing (a full disk) leaves every old file as it was.
    """
    staged: list[tuple[str, str]] = []  # (temp file, final path), in order
    through: list[tuple[str, bytes, str]] = []  # non-regular targets (/dev/null, a pipe): written, never replaced
    shown = ""
    try:
        try:
            for path, data in files:
                shown = os.fspath(path)
                if not shown:
                    raise SpecError("empty output path", field=field)
                if os.path.isdir(shown):
                    raise SpecError(f"{shown} is a directory", field=field)
                real = os.path.realpath(shown)  # through a symlink: its target is replaced, the link stays
                blob = data.encode("utf-8") if isinstance(data, str) else data
                if os.path.exists(real) and not os.path.isfile(real):
                    through.append((real, blob, shown))
                    continue
                mode = os.stat(real).st_mode & 0o7777 if os.path.exists(real) else _new_file_mode()
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(real), prefix=".archcalc-", suffix=".tmp")
                staged.append((tmp, real))
                try:
                    os.fchmod(fd, mode)
                    view = memoryview(blob)
                    while view:  # os.write may write less than asked
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)  # on disk before the rename: a crash leaves the old file or the whole new one
                finally:
                    os.close(fd)
            for tmp, real in staged:
                shown = real
                os.replace(tmp, real)
            for real, blob, name in through:
                shown = name
                with open(real, "wb") as f:
                    f.write(blob)
        except OSError as e:
            raise SpecError(f"cannot write {shown}: {e.strerror or e}", field=field) from None
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    for folder in sorted({os.path.dirname(real) for _, real in staged}):  # the renames themselves reach the disk
        with contextlib.suppress(OSError):
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def write_output(text: str, path: str | None, field: str = "--output") -> None:
    """Print ``text``, or write it to ``path`` atomically (``None`` or ``-``: stdout); ``field``: the
    flag that named ``path``, for errors.

    Standard output is flushed here, so that a reader that closed the pipe early (``archcalc check
    ... | head -1``) is met now: that is quiet, and the command goes on to its own exit status (a
    wrong claim is still 1).  A full disk (``> /dev/full``) raises OSError, one error line in main."""
    if path is None or path == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            drop_stream(sys.stdout)
        return
    atomic_write(path, text, field=field)


def drop_stream(stream: object) -> None:
    """Point a standard stream's file descriptor at /dev/null, so that what is still buffered for a
    closed pipe or a full disk is dropped at exit, not written again (a second error, or a
    traceback and exit 120)."""
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file (tests capture it): nothing to protect
        pass


__all__ = ["EXTENSIONS", "atomic_write", "atomic_write_all", "drop_stream", "format_for", "write_output"]
