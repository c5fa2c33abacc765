"""Cross-check a spec's analytic numbers against torch: ``archcalc verify``.

For every layer, archcalc's formulas (convention ``torch``) are compared with what torch measures
(:mod:`archcalc.torch.measure`): the output shape, the parameter count and the MACs
(FlopCounterMode FLOPs / 2); then the totals (the network's output shape, every parameter the
model holds, the MACs of one eval forward).  The result points at the first wrong layer.

Two ways to get the torch side:

* **from the spec** (default): the module is built from the spec, one submodule per spec layer
  (:func:`~archcalc.torch.build.build_module`, on the ``meta`` device: no memory), so every spec
  layer has exactly one measured counterpart, auxiliary training-only heads included (they are
  measured in eval mode).  This checks archcalc's formulas against torch.

* **against your model** (``module=``, ``--module pkg.mod:factory``): the spec is matched to the
  model's *leaf* modules (modules without children) in the order they run in one eval forward.
  Activations and pools the model runs as functions in its own code (``F.relu``,
  ``torch.sigmoid``, ``F.max_pool2d``, ``F.adaptive_avg_pool2d``: what ``archcalc import`` reads
  as layers) count as calls too, at the point they run, named after the function.
  The matching rule, layer by layer:

  1. the spec layer and the next module call are of the same type (torch's class name
     lowercased is the spec type: ``nn.Conv2d`` is ``conv2d``; subclasses count as their base):
     they are matched and compared;
  2. otherwise, a spec layer of a type that user code usually writes as a plain function or
     expression (``add``, ``concat``, ``identity``, ``flatten``, ``subsample``, ``channelpad``:
     ``out + identity``, ``torch.cat``, ``torch.flatten``, ``x[:, :, ::2, ::2]``, ``F.pad``; and
     ``mul``, ``chunk``, ``crop``, ``channelshuffle``, ``zeropad*``, ``upsample``: see
     :data:`OPTIONAL_TYPES`) is
     matched only if the model has a module there; if not, it is listed as *not compared*
     (not an error: its work, if any, still shows in the totals);
  3. otherwise, a model module that computes nothing at inference (``nn.Identity``,
     ``nn.Dropout`` without parameters; a module of a class archcalc does not know with neither
     parameters nor MACs, such as a window partition made of views) and has no spec layer is
     listed as not compared;
  4. otherwise, a module of a class archcalc does not know (a custom leaf module) is matched to
     the spec layer and their numbers are compared;
  5. otherwise the types disagree.  If the model's next call matches the spec layer, this module
     is reported as an **extra module** in the model; else, if the spec's next layer matches
     this module (looking past optional types), the spec layer is reported as **missing from the model**; else the two are
     compared anyway and a **type** mismatch is reported with their numbers.

  When the counts differ, the spec layers left over at the end are reported as missing from the
  model and the model calls left over as extra modules (each a mismatch); optional types
  (rule 2) and inference no-ops (rule 3) left over are only listed as not compared.
  Training-only spec layers (auxiliary heads) are not compared per layer: an eval forward does
  not run them.  A module called several times (torchvision's shared ``relu``) is matched once
  per call; its parameters are counted on its first call only.  The totals are always compared,
  so work done outside modules (a functional ``F.linear``) is never silently missed.
  The rule follows execution order: parallel branches must run in the order the spec lists them
  (a model that computes its shortcut projection before the main path needs a spec that lists
  ``downsample`` first; otherwise the branches are compared crosswise and reported as mismatches).

Settings that no count shows are compared too (:func:`archcalc.torch.measure.settings_of`): a
convolution's or pool's window, a ``causal_mask``'s mask (the model's ``masked_fill`` mask, its
values read) and fill value, sdpa's ``is_causal`` and ``enable_gqa``, and a ``rotary`` layer's ``base``: against archcalc's Rotary module
where the model has one, else against the bases the model holds (:func:`_rotary_bases`).  An
upsample's ``mode`` and ``align_corners``, a convolution's ``padding_mode``, and ``inplace`` where the layer type has it, likewise;
a softmax's ``dim``, a norm's ``normalized_shape``, ``num_groups``, LRN's ``size`` and a batch norm's
``track_running_stats``, a Swin window's ``shift_size``, and the drop probabilities (dropout's
``p``, attention's ``dropout_p`` / ``dropout``, a drop-path's ``p`` and mode) too; a permute's or transpose's axes
against the model's own calls that reorder axes outside its modules, in any spelling (:func:`archcalc.torch.measure.reorder_of`;
:func:`_functional_axes`), each such call then that layer's output in the wiring.  A select's index and a
slice's start are not read from a model's indexing: those layers are listed as not compared.

The wiring is compared (:func:`_wiring`): each matched layer's inputs, read through the spec layers
without counterpart, against the model calls its input tensors come from (tensor identity,
followed through the operations not compared), and the network output's.

A torch error while running (torch rejects a layer archcalc accepted) is a mismatch of the layer
that was running (quantity ``runs``).  When your model runs without the measuring and fails only
under it (torch's FlopCounterMode raises on some valid models), nothing was checked: that is an
error (exit 2) naming the cause, not a mismatch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dims import as_int
from ..errors import SpecError, UserExit, user_failure
from ..layers.base import shape_str
from ..options import check_set_names, parse_input, parse_set
from ..output import format_for, write_output
from ..spec import Architecture, load_spec, parse_spec

if TYPE_CHECKING:
    from torch import nn

    from ..report import Report, Row
    from .measure import LayerMeasure, Reorder

OPTIONAL_TYPES = frozenset({
    "add", "concat", "identity", "flatten", "unflatten", "subsample", "channelpad",
    # parameter-free ops that user code also writes inline: x * gate, x.chunk(), slicing,
    # channel_shuffle(), F.pad, F.interpolate
    "mul", "chunk", "crop", "channelshuffle", "zeropad1d", "zeropad2d", "zeropad3d", "upsample",
    # what import reads from a model's own forward: views, indexing, arithmetic, learned tensors
    # (x.permute, x[:, 0], q * scale, self.class_token, self.layer_scale * x), drop-path, token means
    # and attention products (matched when verify records the call: matmul, layer_norm, sdpa...)
    "sub", "div", "scalar", "permute", "transpose", "reshape", "view", "select", "slice", "roll", "parameter", "positionbias", "layerscale",
    "stochasticdepth", "droppath", "mean", "matmul", "scaled_dot_product_attention",
    # rotary embeddings written inline (q * cos + rotate_half(q) * sin: archcalc.torch.idioms)
    "rotary",
})
"""Spec layer types matched only if the model has a module there (rule 2)."""
INFERENCE_NOOPS = frozenset({"identity", "dropout", "stochasticdepth", "droppath"})
"""Model module types skipped when they have no spec layer (rule 3)."""
QUANTITIES = ("output_shape", "params", "macs")
NOT_SETTINGS = frozenset({*QUANTITIES, "inputs", "layer", "type", "runs"})
SETTING_KINDS = {
    **{f: "window" for f in ("kernel_size", "stride", "padding", "dilation", "groups", "ceil_mode", "output_padding")},
    "mode": "interpolation", "align_corners": "interpolation", "padding_mode": "padding mode", "inplace": "inplace",
    "base": "rotary base", "is_causal": "attention flags", "enable_gqa": "attention flags", "mask": "causal mask", "value": "causal mask",
    "dim": "softmax axis", "normalized_shape": "normalized axes", "num_groups": "norm groups", "size": "norm window",
    "track_running_stats": "norm statistics", "shift_size": "window shift", "axes": "permuted axes",
    "p": "drop probability", "dropout_p": "drop probability", "dropout": "drop probability", "drop_mode": "drop probability",
}  # fmt: skip
"""What the OK line calls each setting verify compares (:func:`archcalc.torch.measure.settings_of`)."""
TOTAL = "(total)"
CONVENTION = "torch"


@dataclass(frozen=True)
class VerifyRow:
    """One compared value: spec layer ``name``, ``quantity``, archcalc's value, torch's value."""

    name: str
    quantity: str
    """``output_shape``, ``params``, ``macs``; or ``layer`` (a spec layer or model module without
    counterpart), ``type`` (matched by position but of another type), ``runs`` (torch raised)."""
    analytic: Any
    measured: Any
    ok: bool
    module: str | None = None
    """The model module it was matched to (module mode)."""
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "quantity": self.quantity,
            "analytic": _jsonable(self.analytic),
            "measured": _jsonable(self.measured),
            "ok": self.ok,
        }
        if self.module is not None:
            out["module"] = self.module
        if self.note:
            out["note"] = self.note
        return out

    def describe(self) -> str:
        """``layer 'conv2': params is 307,392 in the spec, 614,592 in torch``."""
        if self.name == TOTAL:
            where = "total"
        elif self.quantity == "layer" and self.analytic is None:  # a model module without spec layer
            where = f"module {self.module or self.name!r}"
        else:
            where = f"layer {self.name!r}"
        if self.module is not None and self.module != self.name:
            where += f" (module {self.module!r})"
        if self.quantity == "layer":
            text = self.note or "no counterpart"
        elif self.quantity == "runs":
            text = f"torch raised {self.measured}"
        else:
            text = f"{_label(self.quantity)} is {_fmt(self.analytic)} in the spec, {_fmt(self.measured)} in torch"
            if self.note:
                text += f" ({self.note})"
        return f"{where}: {text}"


@dataclass(frozen=True)
class LayerCheck:
    """The checks of one table line: a spec layer (or a model module without spec layer)."""

    name: str
    type: str | None
    module: str | None
    rows: list[VerifyRow]
    analytic: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    """Why it was not compared, or extra information."""
    compared: tuple[str, ...] = ()
    """What else was compared, beside its rows (which hold only the wrong ones of these): the
    settings (:func:`archcalc.torch.measure.settings_of`) by name, and ``inputs``, its wiring."""

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)


@dataclass(frozen=True)
class VerifyResult:
    name: str
    file: str | None
    mode: str
    """``spec`` (the module built from the spec) or ``module`` (the user's model)."""
    model: str
    """What was measured: ``built from the spec`` or the model's class name."""
    input_shape: tuple[int, ...]
    batch: int
    device: str
    layers: list[LayerCheck]
    totals: LayerCheck
    output_wiring: bool = False
    """Whether the network output's wiring was compared (what it is computed from: an ``add`` at the end)."""

    @property
    def rows(self) -> list[VerifyRow]:
        """Every compared value, layers in order, then the totals."""
        return [r for lc in (*self.layers, self.totals) for r in lc.rows]

    @property
    def mismatches(self) -> list[VerifyRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def first_mismatch(self) -> VerifyRow | None:
        """The first wrong value, in layer order (the totals last); None when all match."""
        return next((r for r in self.rows if not r.ok), None)

    @property
    def ok(self) -> bool:
        return self.first_mismatch is None

    @property
    def not_compared(self) -> list[LayerCheck]:
        return [lc for lc in self.layers if not lc.rows]

    # ----- rendering --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        from .measure import COUNTING_PATH

        first = self.first_mismatch
        return {
            "name": self.name,
            "file": self.file,
            "mode": self.mode,
            "model": self.model,
            "input_shape": list(self.input_shape),
            "batch": self.batch,
            "convention": CONVENTION,
            "device": self.device,
            "counting_path": COUNTING_PATH,
            "ok": self.ok,
            "first_mismatch": first.to_json() if first else None,
            "compared": self.compared(),
            "rows": [r.to_json() for r in self.rows],
            "not_compared": [{"name": lc.name, "type": lc.type, "module": lc.module, "reason": lc.note} for lc in self.not_compared],
        }

    def compared(self) -> dict[str, Any]:
        """What was compared, by kind: ``counts`` (layers compared in output shape, params and
        MACs), ``settings`` (layers with settings compared) and ``setting_kinds`` (which, in words,
        :data:`SETTING_KINDS`), ``wiring`` (layers whose inputs were compared) and ``output_wiring``."""
        counts = settings = wiring = 0
        kinds: dict[str, None] = {}
        for lc in self.layers:
            quantities = {r.quantity for r in lc.rows}
            counts += bool(quantities & set(QUANTITIES))  # (not a rotary layer whose base alone is compared)
            names = [f for f in (*lc.compared, *quantities) if f not in NOT_SETTINGS]
            settings += bool(names)
            kinds.update((SETTING_KINDS.get(f, f), None) for f in names)
            wiring += "inputs" in lc.compared or "inputs" in quantities
        return {"counts": counts, "settings": settings, "setting_kinds": sorted(kinds), "wiring": wiring, "output_wiring": self.output_wiring}

    def summary(self) -> str:
        first = self.first_mismatch
        if first is None:
            c = self.compared()
            line = f"OK: {c['counts']} layers match torch in output shape, params and MACs"
            if c["settings"]:
                line += f"; settings match on {c['settings']} ({', '.join(c['setting_kinds'])})"
            if c["wiring"] or c["output_wiring"]:
                line += f"; inputs match on {c['wiring']}" + (" and the output" if c["output_wiring"] else "")
            return line + "; totals match"
        bad = self.mismatches
        n_layers = len({r.name for r in bad if r.name != TOTAL})
        where = [f"{n_layers} layer{'s' if n_layers != 1 else ''}"] if n_layers else []
        if any(r.name == TOTAL for r in bad):
            where.append("the totals")
        return f"MISMATCH: first wrong value at {first.describe()}; {len(bad)} wrong value{'s' if len(bad) != 1 else ''} in {' and '.join(where)}"

    def render_text(self) -> str:
        """The diff table: one line per layer (the spec's values), ``>>`` at the first wrong layer."""
        from .measure import COUNTING_PATH

        src = f" ({self.file})" if self.file else ""
        against = "the torch module built from the spec" if self.mode == "spec" else f"model {self.model}"
        lines = [
            f"verify {self.name}{src} against {against}",
            f"input {shape_str(self.input_shape)}, batch {self.batch}, MACs = FlopCounterMode FLOPs / 2 (convention {CONVENTION!r})",
            f"measured on {self.device}; attention, where the model has any: {COUNTING_PATH}",
            "",
        ]
        first = self.first_mismatch
        show_module = self.mode == "module"
        header = ["", "layer", "type", *(["module"] if show_module else []), "output shape", "params", "MACs", "check"]
        table: list[list[str]] = []
        for lc in (*self.layers, self.totals):
            a = lc.analytic
            marker = ">>" if first is not None and first in lc.rows else ""
            if not lc.rows:
                check = f"not compared: {lc.note}"
            elif lc.ok:
                check = "ok" + (f" ({lc.note})" if lc.note else "")
            else:
                check = "; ".join(_short(r) for r in lc.rows if not r.ok)
            table.append([
                marker,
                lc.name,
                lc.type or "",
                *([lc.module or ""] if show_module else []),
                _fmt(a["output_shape"]) if "output_shape" in a else "",
                _fmt(a["params"]) if "params" in a else "",
                _fmt(a["macs"]) if "macs" in a else "",
                check,
            ])
        lines += _table(header, table)
        lines += ["", self.summary()]
        return "\n".join(lines) + "\n"

    def failure_message(self, limit: int = 25) -> str:
        """A readable message for an assertion: the first wrong layer, then every wrong value."""
        if self.ok:
            return self.summary()
        against = "the module built from it" if self.mode == "spec" else f"model {self.model}"
        bad = self.mismatches
        lines = [
            f"archcalc spec {self.name!r}{f' ({self.file})' if self.file else ''} does not match {against} "
            f"(input {shape_str(self.input_shape)}, convention {CONVENTION!r}):",
            f"  first mismatch: {bad[0].describe()}",
        ]
        if len(bad) > 1:
            lines.append(f"  all {len(bad)} wrong values:")
            lines += [f"    {r.describe()}" for r in bad[:limit]]
            if len(bad) > limit:
                lines.append(f"    ... and {len(bad) - limit} more")
        skipped = self.not_compared
        if skipped:
            lines.append(f"  not compared: {', '.join(lc.name for lc in skipped[:10])}{' ...' if len(skipped) > 10 else ''}")
        return "\n".join(lines)


def render_results(results: Sequence[VerifyResult], fmt: str = "text") -> str:
    """Text (one table per spec) or JSON (``{"ok": ..., "results": [...]}``)."""
    if fmt == "json":
        return json.dumps({"ok": all(r.ok for r in results), "results": [r.to_json() for r in results]}, indent=2) + "\n"
    if fmt == "text":
        return "\n".join(r.render_text() for r in results)
    raise SpecError(f"unknown format {fmt!r}; choose text or json", field="--format")


# ----- formatting helpers -------------------------------------------------------------------------
def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    return v


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return shape_str(v) if v else "scalar"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _label(quantity: str) -> str:
    return {"output_shape": "output shape", "macs": "MACs"}.get(quantity, quantity)


def _short(r: VerifyRow) -> str:
    if r.quantity == "layer":
        return r.note or "no counterpart"
    if r.quantity == "runs":
        return f"torch raised {r.measured}"
    return f"{_label(r.quantity)}: torch {_fmt(r.measured)}" + (f" (spec {_fmt(r.analytic)})" if r.quantity == "type" else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    widths[0] = 2  # the ">>" marker of the first mismatch
    widths[-1] = 0  # the last column is free text

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = ["", *("-" * w for w in widths[1:-1]), "-" * len(header[-1])]
    return [fmt(header), fmt(rule), *(fmt(r) for r in rows)]


# ----- the comparison ---------------------------------------------------------------------------
def _need_numbers(report: Report, repeats: Sequence[str] = ()) -> None:
    """Refuse a spec whose numbers stay symbolic, naming every symbol left (one --set each, a block's
    symbolic repeat count too), not one per run."""
    from ..dims import is_symbolic

    left: dict[str, str] = {}  # symbol -> the first layer it appears in
    for row in report.rows:
        for v in (*row.output_shape, row.params, row.macs):
            if is_symbolic(v):
                for sym in sorted(str(x) for x in v.free_symbols):  # type: ignore[union-attr]
                    left.setdefault(sym, row.name)
    if left:
        names = sorted({*left, *repeats}, key=str.lower)
        first = min(left.values(), key=[r.name for r in report.rows].index)
        raise SpecError(
            f"the spec's numbers are symbolic (in {', '.join(names)}); verify needs numbers: "
            + " ".join(f"--set {n}=N" for n in names),
            layer=first,
            field="--set",
        )


def _analytic(row: Row) -> dict[str, Any]:
    shape = tuple(as_int(d) for d in row.output_shape)
    values = {"output_shape": shape, "params": as_int(row.params), "macs": as_int(row.macs)}
    if any(d is None for d in shape) or values["params"] is None or values["macs"] is None:
        raise SpecError("the spec's numbers are symbolic; verify needs numbers (give --input and --set values)", layer=row.name)
    return values


def _compare(name: str, analytic: Mapping[str, Any], lm: LayerMeasure, module: str | None = None,
             spec_window: Mapping[str, Any] | None = None) -> list[VerifyRow]:
    measured = {"output_shape": lm.output_shape, "params": lm.params, "macs": lm.macs}
    rows = []
    for q in QUANTITIES:
        note = None
        if q == "params" and lm.call > 1:
            note = f"call {lm.call} of a shared module: its parameters are counted on its first call"
        rows.append(VerifyRow(name, q, analytic[q], measured[q], analytic[q] == measured[q], module, note))
    for f, theirs in lm.window.items() if spec_window else ():  # a setting that differs though shapes, params and MACs agree (dilation 2, padding 2)
        mine = spec_window.get(f)  # type: ignore[union-attr]
        if mine is not None and mine != theirs:
            rows.append(VerifyRow(name, f, _setting(mine, f), _setting(theirs, f), False, module, SETTING_WHY.get(f, WINDOW_WHY)))
    return rows


WINDOW_WHY = "the window differs: its receptive field and lecture MACs would too"
SETTING_WHY = {
    "mask": "the mask differs: attention would read other keys (archcalc's causal_mask hides exactly the keys after each query)",
    "value": "masked scores are set to another value (archcalc's causal_mask sets them to -inf: weight 0 after the softmax)",
    "base": "rotary's base differs: the angles p / base^(2i/d) would too (no count shows it)",
    "is_causal": "causal or not: which keys each query reads (a decoder's or an encoder's attention; torch counts every score either way)",
    "enable_gqa": "grouped-query attention or not: whether k and v may have fewer heads than q",
    "mode": "the interpolation differs: which pixels each output reads (its receptive field) and the peers' counts (fvcore, thop) would too",
    "align_corners": "the sample points differ: which pixels each output reads would too",
    "inplace": "in place or not: whether the output is a new tensor (training memory would differ)",
    "padding_mode": "the padded values differ, and any mode but zeros convolves a padded copy (F.pad) that training keeps",
    "dim": "the softmax runs over another axis: the receptive field and thop's count (3n - 1 per softmax of n values) would differ",
    "axes": "other axes are swapped: which positions each later window reads (the receptive field) would differ, with the same "
            "shapes, params and MACs",
    "normalized_shape": "the norm runs over other axes: which positions each output reads and the statistics training keeps would too",
    "num_groups": "the norm's groups differ: which channels each output reads and the statistics training keeps would too",
    "size": "LRN's window differs: which channels each output reads and ptflops' count (its zero-padded average pool) would too",
    "track_running_stats": "running statistics or the batch's own: without, each output reads the whole batch (its field), and no buffers",
    "shift_size": "the windows are shifted otherwise: which positions each output reads (its receptive field) would too",
    "p": "the drop probability differs: p = 0 keeps no mask in training, any other p one (training memory would differ)",
    "dropout_p": "the attention dropout differs: 0 keeps no mask of the weights in training, any other one (training memory would differ)",
    "dropout": "the attention dropout differs: 0 keeps no mask of the weights in training, any other one (training memory would differ)",
    "drop_mode": "one branch dropped per sample (row) or for the whole batch: the noise training keeps differs in size",
}
"""Why a setting that no count shows matters, per setting (:func:`archcalc.torch.measure.settings_of`)."""


def _setting(v: Any, f: str = "") -> Any:
    """A window setting as written: (3, 3) as 3 (another, a LayerNorm's (8, 8), as it is)."""
    return v[0] if f in SETTING_KINDS and SETTING_KINDS[f] == "window" and isinstance(v, tuple) and len(set(v)) == 1 else v


def _load(spec: Architecture | Mapping[str, Any] | str | Path) -> tuple[Architecture, str | None]:
    if isinstance(spec, Architecture):
        return spec, None
    if isinstance(spec, Mapping):
        return parse_spec(dict(spec)), None
    return load_spec(spec), str(spec)


def _shape_arg(input_shape: Sequence[int | str] | str | None) -> list[int | str] | None:
    if input_shape is None:
        return None
    if isinstance(input_shape, str):
        from ..quick import parse_shape

        return parse_shape(input_shape)
    return list(input_shape)


def verify_spec(
    spec: Architecture | Mapping[str, Any] | str | Path,
    module: nn.Module | None = None,
    input_shape: Sequence[int | str] | str | None = None,
    *,
    values: Mapping[str, int] | None = None,
    batch: int = 1,
    device: str | None = None,
    output_key: str | None = None,
) -> VerifyResult:
    """Compare the spec's analytic numbers (convention ``torch``) with torch's, layer by layer.

    ``spec``: a path, an :class:`~archcalc.spec.Architecture` or a spec dict.  ``module``: your
    own ``nn.Module`` to check (matched as the module docstring says); default: the module built
    from the spec.  ``input_shape`` (``(3, 224, 224)`` or ``"3,224,224"``) and ``values`` (symbol
    numbers) override the spec's input.  ``device``: where the built module runs (default
    ``meta``, then CPU if an op has no meta kernel); for ``module``, where the input is made
    (default: the device of the model's parameters).  ``output_key``: for a ``module`` whose
    forward returns a dict (``{"out": ..., "aux": ...}``), the key of the tensor that is the spec's
    output (default: the dict's only tensor), as ``archcalc import --output-key`` reads it.
    Raises :class:`SpecError` for an invalid spec or a spec whose numbers stay symbolic.
    """
    prepared = prepare(spec, input_shape, values=values, batch=batch)
    return _verify_prepared(prepared, module, device=device, output_key=output_key)


@dataclass(frozen=True)
class Prepared:
    """A spec read, compiled and counted for verify, before torch is imported (:func:`prepare`)."""

    G: Any
    report: Report
    analytic: dict[str, dict[str, Any]]
    file: str | None
    in_shape: tuple[int, ...]
    batch: int


def prepare(spec: Architecture | Mapping[str, Any] | str | Path, input_shape: Sequence[int | str] | str | None = None, *,
            values: Mapping[str, int] | None = None, batch: int = 1) -> Prepared:
    """Everything of :func:`verify_spec` that needs no torch: the spec read, compiled and counted,
    its numbers required (a symbolic spec refused naming every symbol), sizes within torch's int64.
    Raises :class:`SpecError`."""
    from ..graph import compile_spec
    from ..report import report_from_graph
    from .limits import check_int64

    arch, file = _load(spec)
    try:
        G = compile_spec(arch, values=values, input_shape=_shape_arg(input_shape))
        report = report_from_graph(G, convention=CONVENTION, batch=batch)
        _need_numbers(report, [str(rep.times) for rep in G.graph.get("symbolic_repeats", ())])
        for rep in G.graph.get("symbolic_repeats", ()):  # every row numeric, yet its copies are not counted out
            raise SpecError(f"block {rep.block!r} repeats {rep.times} times, a symbol; verify needs numbers (--set {rep.times}=N)",
                            layer=rep.call, field="repeat")
        analytic = {row.name: _analytic(row) for row in report.rows}
        in_shape = tuple(as_int(d) for d in G.graph["input_shape"])
        if any(d is None for d in in_shape):
            raise SpecError("the input shape is symbolic; verify needs numbers (--input / --set)", field="input")
        check_int64(report)  # before torch sees a size it cannot hold
    except SpecError as e:
        raise e.located(file=file) from None
    return Prepared(G, report, analytic, file, in_shape, batch)  # type: ignore[arg-type]


def _verify_prepared(p: Prepared, module: nn.Module | None, *, device: str | None = None, output_key: str | None = None) -> VerifyResult:
    G, report, analytic, file, in_shape, batch = p.G, p.report, p.analytic, p.file, p.in_shape, p.batch
    if module is None:
        if output_key is not None:
            raise SpecError("--output-key picks the output of your own model (--module); the module built from a spec returns one tensor",
                            field="--output-key", file=file)
        return _verify_built(G, report, analytic, file, in_shape, batch, device or "meta")
    from .build import reads_token_ids

    shared = frozenset(n for n in G.graph["order"] if G.nodes[n]["layer"].same_for_every_sample())
    from .measure import settings_of

    def shape_in(n: str) -> tuple[int, ...] | None:
        ins = G.nodes[n]["inputs"]
        try:
            dims = [as_int(d) for d in G.nodes[ins[0]]["shape"]] if ins else [None]
        except (TypeError, ValueError, SpecError):
            return None
        return tuple(d for d in dims if d is not None) if None not in dims else None

    windows = {n: w for n in G.graph["order"] if (w := settings_of(G.nodes[n]["layer"], G.nodes[n]["layer"].kind, shape_in(n)))}
    return _verify_module(module, report, analytic, G.graph["output"], file, in_shape, batch, device,
                          reads_token_ids(G), shared, output_key, windows)


TRAINING_ONLY_PARAMS = "params (training only)"


def _totals(report: Report, analytic: Mapping[str, Mapping[str, Any]], output: str, shape: Any, params: int, macs: int,
            module: str | None = None, not_run: Mapping[str, int] | None = None) -> LayerCheck:
    """The totals compared.  ``not_run`` (your own model): the modules its eval forward never called,
    with their params.  When either side has such parameters (a model with auxiliary heads, a spec
    with training-only layers) they are compared apart, like with like: the spec's eval-path params
    against the params of the modules that ran, its training-only params against those of the
    modules that did not."""
    all_params = as_int(sum((r.params for r in report.rows), start=0))
    want = {"output_shape": analytic[output]["output_shape"], "params": all_params, "macs": as_int(report.totals["macs"])}
    got = {"output_shape": shape, "params": params, "macs": macs}
    spec_aux = as_int(sum((r.params for r in report.rows if r.training_only), start=0)) or 0
    model_aux = sum((not_run or {}).values())
    if not_run is None or (spec_aux == 0 and model_aux == 0):
        rows = [VerifyRow(TOTAL, q, want[q], got[q], want[q] == got[q], module) for q in QUANTITIES]
        return LayerCheck(TOTAL, None, module, rows, want, "params: all layers, training-only included; MACs: one eval forward")
    want["params"], got["params"] = all_params - spec_aux, params - model_aux  # type: ignore[operator]
    rows = [VerifyRow(TOTAL, q, want[q], got[q], want[q] == got[q], module) for q in QUANTITIES]
    heads = sorted({name.split(".")[0] for name in not_run})
    where = f"modules the eval forward never calls: {', '.join(heads)}" if heads else "the model's eval forward calls every module"
    layers = [r.name for r in report.rows if r.training_only]
    spec_side = f"training-only layers {', '.join(layers[:3])}{'...' if len(layers) > 3 else ''}" if layers else "no training-only layer"
    rows.insert(2, VerifyRow(TOTAL, TRAINING_ONLY_PARAMS, spec_aux, model_aux, spec_aux == model_aux, module, f"spec: {spec_side}; torch: {where}"))
    want[TRAINING_ONLY_PARAMS] = spec_aux
    note = "params: the eval path and the training-only layers (auxiliary heads) compared apart; MACs: one eval forward"
    return LayerCheck(TOTAL, None, module, rows, want, note)


def _verify_built(G: Any, report: Report, analytic: dict[str, dict[str, Any]], file: str | None, in_shape: tuple[int, ...],
                  batch: int, device: str) -> VerifyResult:
    from .measure import TorchRunError, measure_spec

    layers: list[LayerCheck] = []
    try:
        m = measure_spec(G, batch=batch, device=device)
    except TorchRunError as e:
        failed = False
        for row in report.rows:
            if failed:
                layers.append(LayerCheck(row.name, row.type, None, [], analytic[row.name], "not run: torch failed on an earlier layer"))
            elif row.name == e.layer:
                failed = True
                runs = VerifyRow(row.name, "runs", "ok", e.message, False)
                layers.append(LayerCheck(row.name, row.type, None, [runs], analytic[row.name]))
            else:
                layers.append(LayerCheck(row.name, row.type, None, [], analytic[row.name], "ran, but the run failed later: no numbers"))
        if not failed:
            layers.append(LayerCheck(TOTAL, None, None, [VerifyRow(TOTAL, "runs", "ok", e.message, False)]))
        totals = LayerCheck(TOTAL, None, None, [], {}, "not measured: torch failed")
        return VerifyResult(report.name, file, "spec", "built from the spec", in_shape, batch, "cpu", layers, totals)
    for row in report.rows:
        lm = m.layers[row.name]
        note = "training only: measured in eval mode" if row.training_only else None
        layers.append(LayerCheck(row.name, row.type, None, _compare(row.name, analytic[row.name], lm), analytic[row.name], note))
    totals = _totals(report, analytic, G.graph["output"], m.output_shape, m.total_params, m.total_macs)
    return VerifyResult(report.name, file, "spec", "built from the spec", in_shape, batch, m.device, layers, totals)


def _compatible(spec_type: str, lm: LayerMeasure) -> bool:
    return lm.kind is None or lm.kind == spec_type


def _verify_module(model: nn.Module, report: Report, analytic: dict[str, dict[str, Any]], output: str, file: str | None,
                   in_shape: tuple[int, ...], batch: int, device: str | None, token_ids: bool = False,
                   shared: frozenset[str] = frozenset(), output_key: str | None = None,
                   windows: Mapping[str, Mapping[str, Any]] | None = None) -> VerifyResult:
    """``token_ids``: the input is token ids (made as int64); ``shared``: spec layers whose output is
    the same for every sample, which the model may hold without a batch axis (learned positions)."""
    import torch
    from torch import nn

    from .measure import LayerMeasure, TorchRunError, measure_module

    if not isinstance(model, nn.Module):
        raise SpecError(f"expected a torch.nn.Module to verify against, got {type(model).__name__}", field="module", file=file)
    model_name = type(model).__name__
    try:
        m = measure_module(model, in_shape, batch=batch, device=device, functional=True, input_dtype=torch.long if token_ids else None,
                            output_key=output_key)
    except SpecError as e:  # (a dict output without the key that picks the spec's output)
        raise e.located(file=file) from None
    except TorchRunError as e:
        from .measure import failure_cause

        cause = failure_cause(model, in_shape, batch=batch, device=device, input_dtype=torch.long if token_ids else None)
        if cause is not None:  # nothing found wrong in the spec: could not check (exit 2), not a mismatch (exit 1)
            raise SpecError(f"cannot verify against {model_name}: {cause}", field="--module", file=file) from None
        row = VerifyRow(e.layer or model_name, "runs", "ok", e.message, False, e.layer)
        failed = [LayerCheck(e.layer or model_name, None, e.layer, [row], {}, None)]
        return VerifyResult(report.name, file, "module", model_name, in_shape, batch, str(device or "cpu"), failed,
                            LayerCheck(TOTAL, None, None, [], {}, "not measured: torch failed"))

    spec_rows = report.rows
    calls = m.calls
    layers: list[LayerCheck] = []

    pairs: dict[str, str] = {}  # model call label -> the spec layer matched to it

    def matched(row: Row, lm: LayerMeasure, type_ok: bool) -> None:
        pairs[lm.label] = row.name
        rows = _compare(row.name, analytic[row.name], lm, lm.label, (windows or {}).get(row.name))
        if row.name in shared and lm.full_shape == analytic[row.name]["output_shape"]:  # held once, broadcast over the batch
            rows = [VerifyRow(r.name, r.quantity, r.analytic, lm.full_shape, True, r.module,
                              "held once for the whole batch (no batch axis): torch broadcasts it where it is used")
                    if r.quantity == "output_shape" else r for r in rows]
        note = None
        if not type_ok:
            rows.insert(0, VerifyRow(row.name, "type", row.type, lm.kind or lm.cls, False, lm.label, "matched by position"))
        elif lm.kind is None:
            note = f"module class {lm.cls} is not a known layer type: matched by position"
        mine = (windows or {}).get(row.name) or {}
        layers.append(LayerCheck(row.name, row.type, lm.label, rows, analytic[row.name], note,
                                 tuple(f for f in lm.window if mine.get(f) is not None)))

    def missing(row: Row) -> None:
        if row.type in OPTIONAL_TYPES:
            layers.append(LayerCheck(row.name, row.type, None, [], analytic[row.name], FUNCTIONAL_OP))
        else:
            note = "no module in the model for this spec layer"
            layers.append(LayerCheck(row.name, row.type, None, [VerifyRow(row.name, "layer", row.type, None, False, None, note)],
                                     analytic[row.name]))

    def extra(lm: LayerMeasure) -> None:
        label = lm.label
        if (lm.kind in INFERENCE_NOOPS or lm.kind is None) and lm.params == 0 and lm.flops == 0:
            layers.append(LayerCheck(label, None, label, [], {}, f"{lm.cls} in the model with no spec layer (no params, no MACs)"))
        else:
            note = f"{lm.cls} in the model with no spec layer (output {_fmt(lm.output_shape)}, {lm.params:,} params, {lm.macs:,} MACs)"
            layers.append(LayerCheck(label, None, label, [VerifyRow(label, "layer", None, lm.kind or lm.cls, False, label, note)], {}))

    def next_required_type(k: int) -> str | None:
        """The type of the first spec layer from k on that the model must have a call for (optional types skipped)."""
        while k < len(spec_rows) and spec_rows[k].type in OPTIONAL_TYPES:
            k += 1
        return spec_rows[k].type if k < len(spec_rows) else None

    i = j = 0
    while i < len(spec_rows) or j < len(calls):
        s = spec_rows[i] if i < len(spec_rows) else None
        lm = calls[j] if j < len(calls) else None
        if s is not None and s.training_only:
            layers.append(LayerCheck(s.name, s.type, None, [], analytic[s.name], "training only: an eval forward does not run it"))
            i += 1
        elif s is None:
            assert lm is not None
            extra(lm)
            j += 1
        elif lm is None:
            missing(s)
            i += 1
        elif lm.kind == s.type:
            matched(s, lm, True)
            i, j = i + 1, j + 1
        elif lm.kind is None and s.type in OPTIONAL_TYPES and lm.params and lm.params == analytic[s.name]["params"]:
            matched(s, lm, True)  # a module of an unknown class holding just this layer's weights (timm's Scale: a layerscale)
            i, j = i + 1, j + 1
        elif s.type in OPTIONAL_TYPES and lm.kind is None and lm.params == 0 and lm.flops == 0:
            extra(lm)  # a module of no known type that computes nothing (a helper making rotary's cos and sin) goes
            j += 1  # first: the calls after it may be the spec's
        elif s.type in OPTIONAL_TYPES:
            missing(s)
            i += 1
        elif (lm.kind in INFERENCE_NOOPS or lm.kind is None) and lm.params == 0 and lm.flops == 0:
            extra(lm)  # a module that computes nothing countable (dropout; a view such as a window partition)
            j += 1
        elif lm.kind is None:
            matched(s, lm, True)
            i, j = i + 1, j + 1
        elif j + 1 < len(calls) and _compatible(s.type, calls[j + 1]):
            extra(lm)
            j += 1
        elif lm.kind == next_required_type(i + 1):  # the module belongs further on (past optional layers): s has none
            missing(s)
            i += 1
        else:
            matched(s, lm, False)
            i, j = i + 1, j + 1
    reorders = m.permutes or ()
    layers, paired, alike = _functional_axes(layers, m.permutes, _readers(calls, reorders, m.output_sources), windows or {},
                                             {r.name: r.inputs for r in spec_rows}, output)
    pairs.update(paired)  # a reorder paired with a spec layer is that layer's output, in the wiring too (review s10 #7)
    nodes = [LayerMeasure(r.label, None, r.called, 1, None, 0, 0, sources=r.sources) for r in reorders]
    layers, output_wired = _wiring(layers, spec_rows, [*calls, *nodes], pairs, (output, m.output_sources), alike)
    if any(lc.type == "rotary" and not lc.rows for lc in layers):
        layers = _rotary_bases(model, layers, windows or {})
    totals = _totals(report, analytic, output, m.output_shape, m.total_params, m.total_macs, not_run=m.not_run)
    return VerifyResult(report.name, file, "module", model_name, in_shape, batch, m.device, layers, totals, output_wired)


FUNCTIONAL_OP = "no module in the model (a functional op there)"


def _readers(calls: Sequence[LayerMeasure], reorders: Sequence[Reorder], output: frozenset[str] | None) -> dict[str, list[str]]:
    """Label -> the calls and reorders (and :data:`THE_OUTPUT`) that read its output, in the model's dataflow."""
    out: dict[str, list[str]] = {}
    for label, came in [*((c.label, c.sources) for c in calls), *((r.label, r.sources) for r in reorders), (THE_OUTPUT, output)]:
        for src in came or ():
            out.setdefault(src, []).append(label)
    return out


THE_OUTPUT = "<output>"


def _composed(first: tuple[int, ...] | None, then: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The one reorder that two in a row make (each a tuple of where each output axis comes from)."""
    if first is None or then is None or len(first) != len(then):
        return None
    return tuple(first[a] for a in then)


def _identity(axes: tuple[int, ...] | None) -> bool:
    return axes is not None and axes == tuple(range(len(axes)))


def _model_reorders(reorders: Sequence[Reorder], readers: Mapping[str, Sequence[str]]) -> list[tuple[str, str, tuple[int, ...] | None]]:
    """The model's reorders as verify pairs them: (label, what was called, axes), in order; a reorder whose output only
    the next reorders (``x.mT.movedim(1, 3)``, ``x.transpose(2, 3).contiguous().permute(0, 2, 3, 1)``) is one with it,
    as the spec's one permute for both (review s10 #2); a chain that reorders nothing (a transpose and its undoing) none."""
    made: dict[str, tuple[str, tuple[int, ...] | None]] = {}  # label -> (called, axes so far), chains included
    counted: dict[str, None] = {}
    for r in reorders:
        called, axes = r.called, r.axes
        if r.after is not None and r.after in made and list(readers.get(r.after, ())) == [r.label]:
            before, first = made[r.after]
            counted.pop(r.after, None)
            called, axes = f"{before}, then {r.called.removeprefix('function ')}", _composed(first, r.axes)
        made[r.label] = (called, axes)
        if not _identity(axes):
            counted[r.label] = None
    return [(label, *made[label]) for label in counted]


def _spec_reorders(layers: Sequence[LayerCheck], open_: Sequence[int], settings: Mapping[str, Mapping[str, Any]],
                   inputs: Mapping[str, Sequence[str]], output: str) -> tuple[list[tuple[int, list[str], tuple[int, ...] | None]], list[int]]:
    """The spec's open reorders as verify pairs them: (the index of the last layer, the chain's names, its axes), in
    order, a permute or transpose read only by the next one (``p1`` then ``p2`` on p1 alone) one with it, as the model's
    calls (:func:`_model_reorders`); and the indices of chains that reorder nothing."""
    name_at = {layers[i].name: i for i in open_}
    read_by: dict[str, list[str]] = {}
    for name, ins in inputs.items():
        for src in ins:
            read_by.setdefault(src, []).append(name)
    chains: dict[str, tuple[int, list[str], tuple[int, ...] | None]] = {}
    for i in open_:
        name = layers[i].name
        axes = settings.get(name, {}).get("axes")
        mine = tuple(axes) if axes is not None else None
        ins = list(inputs.get(name, ()))
        prev = ins[0] if len(ins) == 1 else None
        if prev in chains and prev in name_at and prev != output and read_by.get(prev, []) == [name]:
            _, names, first = chains.pop(prev)
            chains[name] = (i, [*names, name], _composed(first, mine))
        else:
            chains[name] = (i, [name], mine)
    kept = [c for c in chains.values() if not _identity(c[2])]
    return kept, [name_at[n] for c in chains.values() if _identity(c[2]) for n in c[1]]


def _functional_axes(layers: list[LayerCheck], permutes: Sequence[Reorder] | None, readers: Mapping[str, Sequence[str]],
                     settings: Mapping[str, Mapping[str, Any]], inputs: Mapping[str, Sequence[str]],
                     output: str) -> tuple[list[LayerCheck], dict[str, str], list[frozenset[str]]]:
    """The spec's permute and transpose layers that no module computes, against the model's own calls that reorder
    axes outside its modules (:attr:`Measurement.permutes`), in order, as one form (the axis each output axis comes
    from): a model that swaps other axes has other receptive fields, with the same shapes, params and MACs (review s9
    #7: ``x.permute(0, 3, 2, 1)`` for the spec's ``(0, 2, 3, 1)``).  Reorders in a row are one on either side
    (:func:`_model_reorders`, :func:`_spec_reorders`).  Paired only where both have as many; else they stay not
    compared, and the note says why.  Also returns the pairs whose axes were read (model label -> spec layer): the
    wiring treats each such call as that layer's output (review s10 #7: a transpose on the other branch passed); and
    the sets of those calls whose layers have the same axes as they: which is which is read from the wiring
    (:func:`_wiring`), not from call order (a model making k's transpose before q's is the spec that lists q's first)."""
    open_ = [i for i, lc in enumerate(layers) if lc.type in ("permute", "transpose") and lc.module is None and lc.note == FUNCTIONAL_OP]
    if not open_ or permutes is None:
        return layers, {}, []
    out = list(layers)
    groups, undone = _spec_reorders(layers, open_, settings, inputs, output)
    for i in undone:
        out[i] = replace(layers[i], note=f"{FUNCTIONAL_OP}; with the reorders next to it, it reorders no axes: nothing to compare")
    ours = _model_reorders(permutes, readers)
    ranks = [(len(mine or ()), len(theirs)) for (_, _, mine), (_, _, theirs) in zip(groups, ours, strict=False) if theirs is not None]
    index = {lc.name: i for i, lc in enumerate(layers)}
    members = [index[n] for _, chain_names, _ in groups for n in chain_names]
    if len(ours) != len(groups) or any(a != b for a, b in ranks):
        note = (f"{FUNCTIONAL_OP}; its axes are not compared: the model reorders the axes of tensors made from its input "
                f"{len(ours)} time{'s' if len(ours) != 1 else ''} outside its modules, the spec {len(groups)} time{'s' if len(groups) != 1 else ''}"
                + ("" if len(ours) != len(groups) else ", of other ranks in order"))
        for i in members:
            out[i] = replace(layers[i], note=note)
        return out, {}, []
    names = [layers[g[0]].name for g in groups]
    chain = all(_reads_from(inputs, later, earlier) for earlier, later in pairwise(names))
    if not chain and len({g[2] for g in groups}) > 1:
        # different reorders on parallel branches: paired in call order, branches that run theirs in the other order with
        # the axes swapped between them would read OK; which call is which layer's is not followed, so none is compared
        note = (f"{FUNCTIONAL_OP}; its axes are not compared: the spec has {len(groups)} such layers with different axes on "
                "separate branches, and which of the model's reorders outside its modules is which layer's is not followed")
        for i in members:
            out[i] = replace(layers[i], note=note)
        return out, {}, []
    paired: dict[str, str] = {}
    alike: dict[tuple[int, ...], set[str]] = {}
    for (i, chain_names, mine), (label, called, theirs) in zip(groups, ours, strict=True):
        lc = layers[i]
        for n in chain_names[:-1]:  # the earlier layers of a chain: compared as one with the last
            out[index[n]] = replace(layers[index[n]], note=f"{FUNCTIONAL_OP}; its axes are compared as one reorder with {lc.name!r}'s")
        if mine is None or theirs is None:
            out[i] = replace(lc, note=f"{FUNCTIONAL_OP}; its axes could not be read" + (f" ({called})" if theirs is None else ""))
            continue
        paired[label] = lc.name
        if mine == theirs:
            alike.setdefault(mine, set()).add(label)
        whys = [f"the spec's {', '.join(chain_names)} in a row, as one reorder"] if len(chain_names) > 1 else []
        why = "; ".join([*whys, *([] if mine == theirs else [SETTING_WHY["axes"]])]) or None
        # (a row of its own: a layer without rows reads "not compared")
        out[i] = replace(lc, module=called, note=None, rows=[VerifyRow(lc.name, "axes", _axes(mine), _axes(theirs), mine == theirs, called, why)])
    return out, paired, [frozenset(labels) for labels in alike.values() if len(labels) > 1]


def _reads_from(inputs: Mapping[str, Sequence[str]], name: str, source: str) -> bool:
    """Whether layer ``name`` is computed from layer ``source`` (through any path of the spec's inputs)."""
    todo, seen = list(inputs.get(name, ())), set()
    while todo:
        n = todo.pop()
        if n == source:
            return True
        if n not in seen:
            seen.add(n)
            todo.extend(inputs.get(n, ()))
    return False


def _axes(perm: tuple[int, ...]) -> str:
    """A permutation as torch's permute takes it: (0, 2, 3, 1)."""
    return f"({', '.join(map(str, perm))})"


WIRING_WHY = "the receptive fields and training memory would differ (shapes, params and MACs cannot show it)"


def _wiring(layers: list[LayerCheck], spec_rows: Sequence[Row], calls: Sequence[LayerMeasure], pairs: Mapping[str, str],
            output: tuple[str, frozenset[str] | None], alike: Sequence[frozenset[str]] = ()) -> tuple[list[LayerCheck], bool]:
    """Each matched layer's inputs against the model's dataflow (quantity ``inputs``; a layer whose
    inputs were compared says ``inputs`` in :attr:`LayerCheck.compared`), and whether the output's were.

    Both sides are read as "the nearest compared layers this layer's input is computed from": in the
    spec, its ``inputs``, looking through the layers that have no counterpart in the model (an
    ``add`` or ``flatten`` written inline); in the model, the calls whose output tensors reach the
    call's arguments through operations that are not compared (``b + a``, a view: followed by
    tensor identity during the forward, :attr:`LayerMeasure.sources`), looking through calls that
    have no spec layer (a dropout); the network's output too (an ``add`` at the end), as a row of
    its own.  ``input`` is the network's input.  Learned tensors (a spec's
    ``parameter`` layer, a model's ``nn.Parameter``) feed nothing on either side; a call whose output
    is its input tensor itself, unchanged (``nn.Identity``; not an in-place ReLU), is looked through
    on both sides.  Not compared where
    the model's call reads no tracked tensor (positions made by ``torch.arange``): the spec may say
    what the call reads the size of."""
    from ..graph import INPUT
    from ..layers import TYPE_NAMES
    from .measure import FROM_INPUT

    by_label = {c.label: c for c in calls}
    spec_of = {r.name: r for r in spec_rows}
    # a call whose output is its input itself, unchanged (nn.Identity), is looked through on both
    # sides: the calls after it read the same tensor as the call before it
    looked_through = {label for label, c in by_label.items() if c.alias}
    compared = {name for label, name in pairs.items() if label not in looked_through}
    model_memo: dict[str, frozenset[str] | None] = {}
    spec_memo: dict[str, frozenset[str]] = {}

    def model_side(label: str) -> frozenset[str] | None:
        """The spec names of the compared calls ``label`` stands for (itself, or what feeds it); None if unknown."""
        if label == FROM_INPUT:
            return frozenset({INPUT})
        if label in pairs and label not in looked_through:
            return frozenset({pairs[label]})
        if label in model_memo:
            return model_memo[label]
        model_memo[label] = None  # (a cycle cannot happen in one forward; guard anyway)
        c = by_label.get(label)
        got: frozenset[str] | None = None
        if c is not None and c.sources is not None:
            parts = [model_side(s) for s in c.sources]
            got = None if any(p is None for p in parts) else frozenset().union(*(p for p in parts if p is not None))
        model_memo[label] = got
        return got

    def spec_side(name: str) -> frozenset[str]:
        if name == INPUT:
            return frozenset({INPUT})
        if name in compared:
            return frozenset({name})
        if name not in spec_memo:
            spec_memo[name] = frozenset()
            row = spec_of.get(name)
            if row is not None and row.inputs and not TYPE_NAMES[row.type].source:  # (a learned tensor feeds nothing)
                spec_memo[name] = frozenset().union(*(spec_side(i) for i in row.inputs))
        return spec_memo[name]

    def fed_by(label: str) -> frozenset[str] | None:
        """The spec names of the compared calls that feed call ``label``; None if unknown."""
        c = by_label.get(label)
        parts = [model_side(s) for s in c.sources] if c is not None and c.sources is not None else [None]
        return None if any(p is None for p in parts) else frozenset().union(*(p for p in parts if p is not None))

    pairs = _alike_by_wiring(pairs, alike, fed_by, spec_side, spec_of)
    model_memo.clear()
    label_of = {v: k for k, v in pairs.items()}
    out = []
    for lc in layers:
        label = label_of.get(lc.name) if lc.type is not None else None
        c = by_label.get(label) if label is not None else None
        row = spec_of.get(lc.name)
        if c is None or c.sources is None or row is None:
            out.append(lc)
            continue
        parts = [model_side(s) for s in c.sources]
        if any(p is None for p in parts):
            out.append(lc)
            continue
        theirs = frozenset().union(*(p for p in parts if p is not None))
        mine = frozenset().union(*(spec_side(i) for i in row.inputs)) if row.inputs else frozenset()
        if not theirs:
            out.append(lc)
            continue
        if mine == theirs:
            out.append(replace(lc, compared=(*lc.compared, "inputs")))
            continue
        wrong = VerifyRow(lc.name, "inputs", ", ".join(sorted(mine)) or "nothing", ", ".join(sorted(theirs)), False, lc.module,
                          "fed from other layers: " + WIRING_WHY)
        out.append(LayerCheck(lc.name, lc.type, lc.module, [*lc.rows, wrong], lc.analytic, lc.note))
    name, came = output
    output_wired = False
    if came is not None and name not in set(pairs.values()):  # a last layer without counterpart (an add): what it is computed from
        parts = [model_side(s) for s in came]
        theirs = frozenset().union(*(p for p in parts if p is not None))
        mine = spec_side(name)
        output_wired = all(p is not None for p in parts) and bool(theirs)
        if output_wired and mine != theirs:
            note = f"the output ({name!r}) is computed from other layers: " + WIRING_WHY
            wrong = VerifyRow(name, "inputs", ", ".join(sorted(mine)) or "nothing", ", ".join(sorted(theirs)), False, None, note)
            out.append(LayerCheck(f"{name} (the output)", None, None, [wrong], {}, None))
    return out, output_wired


def _alike_by_wiring(pairs: Mapping[str, str], alike: Sequence[frozenset[str]], fed_by: Callable[[str], frozenset[str] | None],
                     spec_side: Callable[[str], frozenset[str]], spec_of: Mapping[str, Row]) -> dict[str, str]:
    """``pairs`` with the model's reorders of each ``alike`` set (paired in call order with spec layers of the same axes
    as theirs) given the layer among them whose inputs are theirs: the same operation on other tensors, so a model that
    makes k's transpose before q's is the spec that lists q's first.  Those left keep their layers in call order."""
    out = dict(pairs)
    for labels in alike:
        order = [label for label in pairs if label in labels]
        free = [pairs[label] for label in order]
        given: dict[str, str] = {}
        for label in order:
            c = fed_by(label)
            hit = next((n for n in free if c and frozenset().union(*(spec_side(i) for i in spec_of[n].inputs)) == c), None)
            if hit is not None:
                given[label] = hit
                free.remove(hit)
        for label in order:
            out[label] = given.get(label) or free.pop(0)
    return out


def _rotary_bases(model: nn.Module, layers: list[LayerCheck], settings: Mapping[str, Mapping[str, Any]]) -> list[LayerCheck]:
    """The ``base`` of each rotary layer the model applies inline (no module to match: ``q * cos +
    rotate_half(q) * sin``) against the bases the model holds (:func:`archcalc.torch.idioms.held_bases`:
    its frequencies buffer's values, or its base / rope_theta).  One base in the model: every rotary
    layer must have it.  Several (rotary embeddings of two bases): each layer's must be one of them,
    and the note says that which layer uses which is not checked.  A base the model holds but that
    cannot be read fails the row with the reason; a model that holds none leaves the rows not compared."""
    from .idioms import held_bases

    held = held_bases(model)
    known = sorted({b for b in held.values() if isinstance(b, int)})
    unknown = {name: why for name, why in held.items() if isinstance(why, str)}
    where = ", ".join(repr(n) if n else "the model itself" for n in held)
    out = []
    for lc in layers:
        mine = settings.get(lc.name, {}).get("base")
        if lc.type != "rotary" or lc.rows or mine is None:
            out.append(lc)
            continue
        if not held:
            out.append(LayerCheck(lc.name, lc.type, lc.module, [], lc.analytic, f"{lc.note}; its base: the model holds no rotary frequencies "
                                  "(an inv_freq buffer, a rope_theta) to compare it with"))
            continue
        if unknown:
            name, why = next(iter(unknown.items()))
            row = VerifyRow(lc.name, "base", mine, f"unknown ({why})", False, name, f"the rotary base of {name!r} cannot be read")
        elif len(known) == 1:
            why = SETTING_WHY["base"] if mine != known[0] else f"read from the frequencies of {where}"
            row = VerifyRow(lc.name, "base", mine, known[0], mine == known[0], None, why)
        else:
            row = VerifyRow(lc.name, "base", mine, " or ".join(str(b) for b in known), mine in known, None,
                            f"the model holds rotary frequencies of {len(known)} bases ({where}): which layer uses which is not checked")
        out.append(LayerCheck(lc.name, lc.type, lc.module, [row], lc.analytic, "base only: applied inline, no module to compare shapes and counts"))
    return out


# ----- the CLI ------------------------------------------------------------------------------------
def add_verify_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``verify SPEC... [--module pkg.mod:factory] [--input C,H,W] [--set S=N] [--format text|json] [-o FILE]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="cross-check the spec's numbers against torch (needs archcalc[torch])",
        description="Compare every layer's output shape, params and MACs (convention 'torch') with what torch measures: "
        "on the module built from the spec, or on your own model (--module). Exit 0 when all match, 1 on a mismatch, "
        "2 on invalid input.",
    )
    p.add_argument("spec", nargs="+", help="spec file(s) (JSON)")
    p.add_argument("--module", metavar="PKG.MOD:FACTORY",
                   help="check your own model: an nn.Module, an nn.Module class or a no-argument factory, importable "
                        "(the current directory is on the import path)")
    p.add_argument("--input", help="override the input shape, e.g. 3,224,224")
    p.add_argument("--set", action="append", default=[], metavar="SYM=VALUE", help="give a symbol a number (repeatable)")
    p.add_argument("--output-key", metavar="KEY",
                   help="for a --module whose forward returns a dict (torchvision's segmentation models: {'out': ...}), the key of the "
                        "tensor that is the spec's output (default: the only tensor-valued key), as in archcalc import")
    p.add_argument("--format", choices=("text", "json"), help="default: json for -o *.json, else text")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=run_verify)
    return p


def check_target(target: str, field: str = "--module") -> None:
    """What can be checked of ``pkg.mod:factory`` without importing it (nor torch): its form, and
    that its top-level package exists (the current directory is on the import path, as for
    :func:`load_module`)."""
    import importlib.util

    mod_name, sep, attr = target.partition(":")
    if not sep or not mod_name or not attr:
        raise SpecError(f"the model must be given as PKG.MODULE:FACTORY, got {target!r}", field=field)
    top = mod_name.partition(".")[0]
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = True  # (let the import say what is wrong)
    finally:
        if added:
            sys.path.remove(cwd)
    if not found:
        raise SpecError(f"cannot import {mod_name!r}: ModuleNotFoundError: No module named {top!r}", field=field)


def load_module(target: str, field: str = "--module", command: str = "verify") -> nn.Module:
    """``pkg.mod:factory`` -> an ``nn.Module``: the attribute itself, or what calling it with no arguments returns."""
    from ..usercode import user_code

    with user_code():  # its top level and factory: no os._exit, no print into archcalc's output
        return _load_module(target, field, command)


def _load_module(target: str, field: str, command: str) -> nn.Module:
    mod_name, sep, attr = target.partition(":")
    if not sep or not mod_name or not attr:
        raise SpecError(f"the model must be given as PKG.MODULE:FACTORY, got {target!r}", field=field)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SpecError(f"{command} needs torch: pip install 'archcalc[torch]'", field=field) from None
    from torch import nn

    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    # user code runs from here on (the module's top level, its attributes, the factory): whatever it
    # raises, and an exit (sys.exit(0), builtins:exit), is an error naming it, never archcalc's own exit
    try:
        mod = importlib.import_module(mod_name)
    except (Exception, SystemExit) as e:  # an import can fail in any way; it is the user's input
        raise SpecError(f"cannot import {mod_name!r}: {user_failure(e)}", field=field) from None
    finally:
        if added:
            sys.path.remove(cwd)
    obj: Any = mod
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(f"module {mod_name!r} has no attribute {attr!r}", field=field) from None
        except (Exception, SystemExit) as e:  # a module __getattr__ or a property is user code too
            raise SpecError(f"reading {target!r} failed: {user_failure(e)}", field=field) from None
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise SpecError(f"{target!r} is neither an nn.Module nor callable", field=field)
        try:
            obj = obj()
        except (Exception, SystemExit) as e:
            raise SpecError(f"calling {target!r} {'exited' if isinstance(e, SystemExit) else 'failed'}: {user_failure(e)}", field=field) from None
    if not isinstance(obj, nn.Module):
        raise SpecError(f"{target!r} gave a {type(obj).__name__}, not a torch.nn.Module", field=field)
    return obj


def run_verify(args: argparse.Namespace) -> int:
    """Run ``archcalc verify``: print the diff table(s); 0 when every spec matches, 1 on any mismatch.

    Raises :class:`SpecError` for invalid input (bad spec, unimportable ``--module``, no torch).
    """
    import importlib.util

    if importlib.util.find_spec("torch") is None:  # (not imported: the refusals that need no torch come first)
        raise SpecError("verify needs torch: pip install 'archcalc[torch]'")

    values = parse_set(getattr(args, "set", None) or [])
    if getattr(args, "input", None):
        parse_input(args.input)  # a bad size is named, as the flag, before any model is built
    fmt = getattr(args, "format", None) or format_for(getattr(args, "output", None), ("text", "json"))
    if fmt not in ("text", "json"):
        raise SpecError(f"unknown format {fmt!r}; choose text or json", field="--format")
    specs = args.spec if isinstance(args.spec, list | tuple) else [args.spec]
    target = getattr(args, "module", None)
    output_key = getattr(args, "output_key", None)
    if target:
        check_target(target)
    prepared = []
    for path in specs:  # every spec read and counted before torch is imported (seconds and ~650 MB)
        if values:
            check_set_names(values, load_spec(path), str(path), args)
        prepared.append(prepare(path, getattr(args, "input", None), values=values))
        if output_key is not None and not target:
            raise SpecError("--output-key picks the output of your own model (--module); the module built from a spec returns one tensor",
                            field="--output-key", file=str(path))
    results = []
    for path, p in zip(specs, prepared, strict=True):
        model = load_module(target) if target else None
        try:
            results.append(_verify_prepared(p, model, output_key=output_key))
        except UserExit as e:  # the model's forward exited: nothing was checked
            raise SpecError(f"the model from {target!r} {e.message}", field="--module", file=str(path)) from None
        except SpecError as e:  # (building the spec's module: a layer's function it cannot call; review s9 #5)
            raise e.located(file=str(path)) from None
    text = render_results(results, fmt)
    write_output(text, getattr(args, "output", None))  # (stdout for none or '-'; a closed pipe keeps the verdict below)
    return 0 if all(r.ok for r in results) else 1


__all__ = [
    "INFERENCE_NOOPS",
    "OPTIONAL_TYPES",
    "LayerCheck",
    "VerifyResult",
    "VerifyRow",
    "add_verify_parser",
    "check_target",
    "load_module",
    "render_results",
    "run_verify",
    "verify_spec",
]
