"""Which tensor of a model's output is the spec's output: one rule for ``import`` and ``verify``.

torchvision's segmentation models return ``{"out": ..., "aux": ...}``; a model may return a dict
of one tensor.  ``--output-key KEY`` names the key; without it, the dict's only tensor-valued key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import SpecError

FIELD = "--output-key"


def dict_output_key(out: Mapping[Any, Any], output_key: str | None, is_tensor: Callable[[Any], bool], where: str = "") -> tuple[Any, str | None]:
    """(the key of ``out`` that is the spec's output, a note saying so when it was not asked for).

    ``is_tensor`` tells which values are tensors (a traced node for import, a ``torch.Tensor``
    for verify); ``where`` is added to the error (`` (node 'output')``).  Raises
    :class:`SpecError` (field ``--output-key``) for a key the dict lacks, or for a dict of several
    tensors without a key."""
    if output_key is not None:
        if output_key not in out:
            raise SpecError(f"the model returns a dict with keys {list(out)}; it has no key {output_key!r}", field=FIELD)
        return output_key, None
    keys = [k for k, x in out.items() if is_tensor(x)]
    if len(keys) == 1:
        return keys[0], f"the model returns a dict; its only tensor, {keys[0]!r}, is the spec's output"
    raise SpecError(
        f"the model returns a dict of {len(keys)} tensors ({', '.join(repr(k) for k in keys)}); pick the spec's output with "
        f"--output-key KEY{where}",
        field=FIELD,
    )


def model_output(out: Any, output_key: str | None, is_tensor: Callable[[Any], bool]) -> Any:
    """The value of ``out`` that is the spec's output: ``out`` itself, or its tensor under
    :func:`dict_output_key` when the model returns a dict.  A key given for a model that does not
    return a dict is an error (it would be silently ignored)."""
    if isinstance(out, Mapping):
        return out[dict_output_key(out, output_key, is_tensor)[0]]
    if output_key is not None:
        raise SpecError(f"the model returns a {type(out).__name__}, not a dict: --output-key {output_key} has nothing to pick", field=FIELD)
    return out
