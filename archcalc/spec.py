"""The spec format: pydantic models for an architecture, its layers and its reusable blocks.

A spec is JSON::

    {"name": "alexnet", "input": [3, 227, 227], "layers": [{"name": "conv1", "type": "conv2d", ...}, ...]}

* ``layers`` run in order; a layer's input is the one before it unless it names ``inputs``.
* ``blocks`` defines reusable parameterised blocks; a ``{"type": "block"}`` entry in ``layers``
  calls one, ``repeat`` times, with ``args`` (and ``first`` overriding args on the first copy).
  Expanded layers are named ``<call>.<i>.<layer>`` when the call gives ``repeat`` (torchvision's
  ``layer1.0.conv1``), ``<call>.<layer>`` when it doesn't (torchvision's ``Mixed_5b.branch1x1``).
* Any integer field may be a symbolic string (``"C"``, ``"2*planes"``); see :mod:`archcalc.dims`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter, ValidationError, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from .dims import MAX_DIGITS
from .errors import SpecError
from .layers import TYPE_NAMES
from .layers.base import Layer, Spec, check_dim_value

MAX_REPEAT = 100_000
MAX_SPEC_BYTES = 16 * 1024 * 1024
MAX_TITLE = 200  # characters of a spec's title: a display name, not a description
"""The largest spec file read (16 MiB; ResNet-152 written out layer by layer is under 1 MiB)."""
MAX_RANK = 64
"""The most axes a tensor may have (per sample; torch's own kernels stop at 25 on CUDA)."""

ParamValue = int | str | bool | None


class BlockCall(Spec):
    """Use of a block defined under ``blocks``: its layers, ``repeat`` times in sequence."""

    type: Literal["block"]
    name: str = Field(
        description="Name of this use; expanded layers are named '<name>.<i>.<layer>' when repeat is given, '<name>.<layer>' when not."
    )
    block: str = Field(description="Which block definition to expand.")
    repeat: Annotated[int | str, Field(description="How many copies, chained one after another.")] = 1
    args: dict[str, ParamValue] = Field(default_factory=dict, description="Values for the block's parameters.")
    first: dict[str, ParamValue] = Field(default_factory=dict, description="Overrides of args for the first copy only.")
    inputs: list[str] | None = None
    when: str | None = None
    unless: str | None = None
    training_only: bool = False

    @field_validator("repeat")
    @classmethod
    def _repeat_ok(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= MAX_REPEAT:
            raise ValueError(f"repeat must be between 1 and {MAX_REPEAT}, got {v}")
        return check_dim_value(v, 1)  # type: ignore[no-any-return]


ENTRY_TYPES: dict[str, type[Layer] | type[BlockCall]] = {**TYPE_NAMES, "block": BlockCall}


def _validate_entry(value: Any) -> Layer | BlockCall:
    """Validate one entry of ``layers`` with the model its ``type`` names.

    This is the discriminated union on ``type``, dispatched by hand so that pydantic builds the
    validator of a layer type the first time a spec uses it (layer models are ``defer_build``),
    not all ~60 at import: that halves the start-up time of every command.  Errors keep their
    locations (``layers.3.kernel_size``).
    """
    if type(value) is dict:  # the usual case, first: a type whose validator is built
        tag = value.get("type")
        validate = _VALIDATORS.get(tag) if type(tag) is str else None
        if validate is not None:
            return validate(value)  # type: ignore[no-any-return]
    if isinstance(value, Layer | BlockCall):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("model_type", "Input should be an object with a 'type'")
    tag = value.get("type")
    if tag is None:
        raise PydanticCustomError("union_tag_not_found", "Unable to extract tag using discriminator 'type'")
    validate = _VALIDATORS.get(tag) if isinstance(tag, str) else None
    if validate is None:
        cls = ENTRY_TYPES.get(tag) if isinstance(tag, str) else None
        if cls is None:
            raise PydanticCustomError("union_tag_invalid", "Input tag {tag} found using 'type' does not match any of the expected tags", {"tag": tag})
        if not cls.__pydantic_complete__:
            cls.model_rebuild()
        validate = _VALIDATORS[tag] = cls.__pydantic_validator__.validate_python  # (model_validate, without its wrapper)
    return validate(value)  # type: ignore[no-any-return]


_VALIDATORS: dict[str, Any] = {}  # type tag -> the built validator of its model


@functools.cache
def _union_adapter() -> TypeAdapter[Any]:
    """The union written out, for the JSON Schema only (``archcalc schema``)."""
    union = functools.reduce(operator.or_, ENTRY_TYPES.values())
    return TypeAdapter(Annotated[union, Field(discriminator="type")])  # type: ignore[arg-type]


class _Entry:
    """Pydantic hooks of a ``layers`` entry: validated by :func:`_validate_entry`, described in
    the JSON Schema as the discriminated union of every layer type and the block call."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_validate_entry)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(_union_adapter().core_schema)


if TYPE_CHECKING:
    AnyLayer = Layer | BlockCall
else:  # one layer type or a block call, chosen by "type"
    AnyLayer = _Entry


class BlockDef(Spec):
    """A reusable block: parameters with defaults (null = required) and its layers."""

    params: dict[str, ParamValue] = Field(default_factory=dict, description="Parameter names and defaults; null means required.")
    layers: list[AnyLayer] = Field(min_length=1)
    output: str | None = Field(default=None, description="Layer whose output is the block's output (default: the last).")


class SymbolInfo(Spec):
    """What is known about a size symbol beyond being a positive integer."""

    multiple_of: int = Field(default=1, ge=1, description="The symbol is a multiple of this (ViT's H and W: of the patch size 16).")


class Architecture(Spec):
    """A whole network."""

    name: str
    title: str | None = Field(
        default=None,
        description="Display name for captions and headers (\"AlexNet (Krizhevsky et al. 2012)\"); without it, captions use name.",
    )
    description: str | None = None
    source: str | None = Field(default=None, description="Where the architecture is published (paper, table, code).")
    input: list[Annotated[int | str, Field()]] = Field(
        min_length=1, max_length=MAX_RANK, description=f"Per-sample input shape (C, H, W); no batch axis; at most {MAX_RANK} axes."
    )
    blocks: dict[str, BlockDef] = Field(default_factory=dict)
    layers: list[AnyLayer] = Field(min_length=1)
    symbols: dict[str, SymbolInfo] = Field(
        default_factory=dict,
        description="Facts about size symbols, used when they are left free: {\"H\": {\"multiple_of\": 16}} lets floor(H/16) read H/16.",
    )

    @field_validator("title")
    @classmethod
    def _title_ok(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("a blank title: give the network's display name, or leave title out (captions then use name)")
        if v is not None and len(v) > MAX_TITLE:
            raise ValueError(f"a title of {len(v):,} characters: at most {MAX_TITLE} (it heads every caption)")
        return v

    @field_validator("input")
    @classmethod
    def _input_ok(cls, v: list[int | str]) -> list[int | str]:
        return [check_dim_value(x, 1, what="input sizes") for x in v]


def _loc_to_layer(data: Any, loc: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """Turn a pydantic error location into (layer name, field name) for the one-line error."""
    node, layer_dict, layer, prev = data, None, None, None
    skip_tag = False
    for key in loc:
        if skip_tag and layer_dict is not None and key == layer_dict.get("type"):
            skip_tag = False  # pydantic puts the union tag after the list index
            continue
        skip_tag = False
        if isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
            if isinstance(node, dict):
                layer_dict, layer = node, str(node.get("name") or f"{prev}[{key}]")
                skip_tag = True
            elif prev in ("layers", "input"):
                layer = layer if prev == "input" else f"{prev}[{key}]"
        elif isinstance(node, dict) and key in node:
            if node is layer_dict or (layer_dict is None and prev != "blocks" and key not in ("layers", "blocks")):
                return layer, str(key)
            if prev == "blocks":
                layer = f"block {key}"
            node = node[key]
        elif isinstance(key, str) and key not in TYPE_NAMES and key != "block":
            return layer, key  # a missing field
        prev = key
    return layer, None


# what people write for a type in a spec (the quick stacks' words, 2-D where a rank is implied)
TYPE_WORDS = {
    "conv": "conv2d",
    "fc": "linear",
    "dense": "linear",
    "pool": "maxpool2d",
    "maxpool": "maxpool2d",
    "avgpool": "avgpool2d",
    "gap": "adaptiveavgpool2d",
    "globalavgpool": "adaptiveavgpool2d",
    "bn": "batchnorm2d",
    "batchnorm": "batchnorm2d",
    "lrn": "localresponsenorm",
    "cat": "concat",
    "leaky": "leakyrelu",
    "sdpa": "scaled_dot_product_attention",
}


def unknown_type_message(tag: Any) -> str:
    """One line for a type that is not a layer type: the closest known types, not the list of all."""
    import difflib

    known = sorted([*TYPE_NAMES, "block"])
    text = str(tag)
    low = text.lower().replace("_", "").replace("-", "").replace(" ", "").replace(".", "")
    squeezed = {t.replace("_", ""): t for t in known}
    near = [squeezed[low]] if low in squeezed else [TYPE_WORDS[low]] if low in TYPE_WORDS else []
    if not near:  # (a case or underscore slip has one answer)
        near = difflib.get_close_matches(low, list(squeezed), n=3, cutoff=0.6)
    near = [squeezed.get(t, t) for t in near][:3]
    shown = repr(tag) if isinstance(tag, str) else f"{tag!r} (a type is a name in quotes, such as 'conv2d')"
    if not near:
        return f"unknown layer type {shown} (`archcalc schema` lists the {len(known)} types)"
    others = f" (or {', '.join(map(repr, near[1:]))})" if len(near) > 1 else ""
    return f"unknown layer type {shown}; did you mean {near[0]!r}{others}?"


def _pydantic_message(err: dict[str, Any]) -> str:
    if err["type"] == "union_tag_invalid":
        return unknown_type_message(err["ctx"]["tag"])
    if err["type"] == "union_tag_not_found":
        return "missing 'type' (the layer type, e.g. 'conv2d')"
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "too_long" and tuple(err["loc"]) == ("input",):
        return f"the input has {err['ctx']['actual_length']:,} axes; archcalc's limit is {err['ctx']['max_length']}"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _holder(data: Any, loc: tuple[Any, ...]) -> tuple[Any, str | None, Any]:
    """The object that holds the field at ``loc``: its JSON, what to call it ('conv2d', 'the spec',
    'a block definition') and its model; or (None, None, None)."""
    node: Any = data
    model: Any = Architecture
    what: str | None = "the spec"
    for i, key in enumerate(loc[:-1]):
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None, None, None
        parent = loc[i - 1] if i else None
        if parent == "layers":
            tag = node.get("type") if isinstance(node, dict) else None
            model = ENTRY_TYPES.get(tag) if isinstance(tag, str) else None
            what = tag
        elif parent == "blocks":
            model, what = BlockDef, "a block definition"
        elif parent == "symbols":
            model, what = SymbolInfo, "a symbol"
        else:
            model, what = None, None
    return (node, what, model) if isinstance(node, dict) and model is not None else (None, None, None)


def _squeeze(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _unknown_field(data: Any, loc: tuple[Any, ...]) -> tuple[str, str | None]:
    """The message for an unknown field, and the field it is most likely a slip for (a case or
    underscore slip, else difflib's closest): 'out_channel' -> 'out_channels'.  Never the field
    itself, nor one the object already gives."""
    import difflib

    node, what, model = _holder(data, loc)
    if model is None:
        return "unknown field", None
    field = str(loc[-1])
    fields = [f for f in model.model_fields if f != field]
    squeezed = {_squeeze(f): f for f in fields}
    absent = [f for f in fields if f not in node]
    near = [squeezed[_squeeze(field)]] if _squeeze(field) in squeezed else []
    near = [f for f in near if f in absent] or difflib.get_close_matches(field, absent, n=1, cutoff=0.75)  # (one it gives already is no slip)
    of = f" of {what}" if what else ""
    if near:
        return f"unknown field{of}; did you mean {near[0]!r}?", near[0]
    return f"unknown field{of}; its fields: {', '.join(model.model_fields)}", None


def parse_spec(data: Any, file: str | None = None) -> Architecture:
    """Validate already-decoded JSON into an :class:`Architecture`, or raise :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError('a spec must be a JSON object: {"name": ..., "input": [C, H, W], "layers": [...]}', file=file)
    try:
        return Architecture.model_validate(data)
    except ValidationError as e:
        errs = e.errors()
        # a missing/unknown 'type' makes pydantic report nothing else useful: report it first; then
        # an unknown field, most often the slip behind a 'missing' one (out_channel for out_channels)
        tag = next((x for x in errs if x["type"].startswith("union_tag")), None)
        err = tag or next((x for x in errs if x["type"] == "extra_forbidden"), errs[0])
        layer, field = _loc_to_layer(data, tuple(err["loc"]))
        message, meant = _pydantic_message(dict(err)), None
        if err["type"] == "extra_forbidden":
            message, meant = _unknown_field(data, tuple(err["loc"]))
        slip = (*tuple(err["loc"])[:-1], meant)  # missing only because of the slip: not another place
        places = {_loc_to_layer(data, tuple(x["loc"])) for x in errs if not (x["type"] == "missing" and tuple(x["loc"]) == slip)}
        n = len(places) - 1
        more = f" (and errors in {n} more place{'s' if n > 1 else ''})" if n else ""  # (a union reports one per member)
        if err["type"].startswith("union_tag"):
            field = field or "type"
        if tuple(err["loc"])[:1] == ("symbols",):  # symbols.H.multiple_of, not 'symbols'
            field = ".".join(map(str, err["loc"]))
        raise SpecError(message + more, layer=layer, field=field, file=file) from None


def spec_symbols(arch: Architecture) -> set[str]:
    """Every name the spec's expression strings refer to (input sizes, layer fields, block
    parameters, arguments and repeat counts): what ``--set`` may bind."""
    from .dims import names_in

    names: set[str] = set()

    def text(v: Any) -> None:
        if isinstance(v, str):
            with contextlib.suppress(Exception):  # a literal like "same" is a name too; bad text is reported elsewhere
                names.update(names_in(v))
        elif isinstance(v, list):
            for x in v:
                text(x)

    def entries(layers: list[Any]) -> None:
        for e in layers:
            if isinstance(e, BlockCall):
                for v in (e.repeat, *e.args.values(), *e.first.values()):
                    text(v)
            else:
                for f in e._dim_fields:
                    text(e.__dict__[f])

    text(list(arch.input))
    entries(arch.layers)
    for block in arch.blocks.values():
        for v in block.params.values():
            text(v)
        entries(block.layers)
    return names


def _json_int(text: str) -> int:
    """json's reader of integers, bounded: past :data:`~archcalc.dims.MAX_DIGITS` digits it refuses
    before converting (CPython's conversion is quadratic in the digits)."""
    digits = len(text) - text.startswith("-")
    if digits > MAX_DIGITS:
        raise _TooManyDigits(digits)
    return int(text)


class _TooManyDigits(ValueError):
    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def read_spec_text(path: str | Path) -> str:
    """A spec file's text: at most :data:`MAX_SPEC_BYTES` read (``/dev/zero`` is refused, not read
    until memory runs out), UTF-8."""
    shown = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", file=shown) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"spec is larger than {MAX_SPEC_BYTES // 2**20} MiB (archcalc's limit); is this a spec file?", file=shown)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"not UTF-8 text: byte 0x{e.object[e.start]:02x} at offset {e.start} (save the spec as UTF-8)", file=shown) from None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: a key given twice in one object is refused (json keeps
    the last silently, and the table would answer for one of two values without a word); the error
    names the layer (the object's ``name``, where it has one) and the key."""
    out = dict(pairs)
    if len(out) == len(pairs):  # the usual case, in C
        return out
    out = {}
    for key, value in pairs:
        if key in out:
            names = [v for k, v in pairs if k == "name" and isinstance(v, str)]
            types = [v for k, v in pairs if k == "type" and isinstance(v, str)]
            where = names[0] if names and types else None  # a layer: it has a type and a name
            whose = f" in a {types[0]} layer" if types else (f" in the object named {names[0]!r}" if names else " in an object")
            both = f"given twice ({json.dumps(out[key])} and {json.dumps(value)}): JSON would keep only the last; say it once"
            if where is not None:
                raise SpecError(both, layer=where, field=key)
            raise SpecError(f"{key!r} {both.replace('given twice', 'given twice' + whose, 1)}")
        out[key] = value
    return out


def decode_json(text: str, file: str | None) -> Any:
    """``json.loads`` with one-line errors: bad JSON, integers past the digit limit, nesting too deep."""
    if not text.strip():  # (json says 'Expecting value at line 1, column 1')
        raise SpecError('the file is empty: a spec is a JSON object, {"name": ..., "input": [C, H, W], "layers": [...]}', file=file)
    try:
        return json.loads(text, parse_int=_json_int, object_pairs_hook=unique_keys)
    except SpecError as e:
        raise e.located(file=file) from None
    except _TooManyDigits as e:
        why = f"no network has a size of 10^{MAX_DIGITS}"
        raise SpecError(f"an integer of {e.digits} digits; archcalc reads at most {MAX_DIGITS} ({why})", file=file) from None
    except json.JSONDecodeError as e:
        raise SpecError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", file=file) from None
    except RecursionError:
        raise SpecError("JSON nested too deeply (thousands of brackets)", file=file) from None


def load_spec(path: str | Path) -> Architecture:
    """Read and validate a spec file; errors name the file, layer and field."""
    data = decode_json(read_spec_text(path), str(path))
    try:
        return parse_spec(data, file=str(path))
    except RecursionError:
        raise SpecError("spec nested too deeply", file=str(path)) from None


def json_schema() -> dict[str, Any]:
    return Architecture.model_json_schema()
