"""The layer base class: what every layer type must say about itself.

A layer type is one pydantic model that owns *all* of its formulas, written once for ints and
sympy expressions (see :mod:`archcalc.dims`):

* ``output_shape(ins)``: per-sample output shape (channels first, no batch axis);
* ``weights(ins)``: learnable tensors by name (torch's names) -> shape; params = sum of sizes;
* ``buffers(ins)``: non-learnable state (BN running stats), reported apart from params;
* ``ops(ins, out)``: the operations it performs, by category (see ``OP_CATEGORIES``), per sample;
  conventions (:mod:`archcalc.conventions`) decide which categories count as MACs;
* ``windows(ins)``: its sliding window per spatial axis for the receptive field, or ``None`` when
  it is pointwise (relu, batchnorm, add...);
* ``mixes_positions(ins)``: True when every output reads every position (attention): its
  receptive field is the whole input; ``positions_read(ins)``: how many positions one output
  reads at most, where that is fewer than its input holds (attention inside windows);
* ``permutation(ins)`` (permute, transpose) and ``axis_windows(ins)`` (layers that name
  their axes: slice, roll, window attention): how the spatial axes move and what each reads,
  so the receptive field follows a channels-last layout;
* ``saved(ins, out)``: what autograd keeps for its backward in training mode (:class:`Saved`),
  parameters and buffers excluded; ``None`` (the default) when the type does not say, which the
  training-memory pass reports as unknown, never as zero;
* ``output_storage(ins)``: whether its output is a new tensor, or the input's storage (in place,
  a view), which decides which saved tensors are one storage;
* ``build_torch(ins)``: the equivalent ``torch.nn.Module`` (torch imported only there).

Passes never branch on the layer type: they call these methods.

The layer modules do not use ``from __future__ import annotations``: pydantic would then evaluate
every field annotation from its string when the class is created, a seventh of ``archcalc``'s
start-up time.
"""


from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, NamedTuple, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..dims import MAX_DIGITS, Dim, DimError, check_expr, known_sign, parse_dim, prod, too_big
from ..errors import SpecError
from ..functions import check_function, function_kind_error

GENERAL_FORMULA: ContextVar[bool] = ContextVar("general_formula", default=False)
"""True while a layer's formula runs on symbols to print its general form (explain): a rule the
sizes leave undecided (ceil-mode pooling's last window) then returns its expression, which the
shapes pass would refuse."""

Shape = tuple[Dim, ...]

if TYPE_CHECKING:
    # after compilation a dimension field holds an int or a sympy expression, not the spec's text
    DimIn = Any
    DimList = Any
    DimListOpt = Any
else:  # what the spec may contain (validated by pydantic)
    DimIn = int | str
    DimList = int | str | list[int | str]
    DimListOpt = int | str | list[int | str | None]

OP_CATEGORIES: dict[str, str] = {
    "mac": "multiply-accumulates of a weighted sum (conv, linear)",
    "mac_outgrid": "transposed conv: the conv formula applied on its output grid (what torchinfo and thop count instead of mac)",
    "bias": "bias additions, one per output element",
    "pool": "pooling window reads: output elements x window size",
    "norm": "batchnorm normalisation, one per element",
    "lrn": "local response normalisation, one per element",
    "lrn_functional": "LRN's functional internals: 3 elementwise ops per element + the padded average pool's input (ptflops)",
    "act": "activation function evaluations, one per element",
    "add": "elementwise additions of merged branches",
    "softmax": "softmax, one per element",
    "mul": "elementwise multiplications of merged branches (gating: squeeze-and-excitation)",
    "interp": "interpolation reads: output elements x input pixels weighed per output (nearest 1, (bi/tri)linear 2 per axis)",
    "matmul": "multiply-accumulates of a product of two activations (the matmul layer)",
    "attn_matmul": "attention's two products, q k^T and the weighted sum of v (scaled_dot_product_attention, multiheadattention)",
    "attn_scale": "attention's score scaling by 1/sqrt(d), one per score",
    "layernorm": "layer normalisation, one per element",
    "layernorm_affine": "layer normalisation's scale and shift, one per element",
    "groupnorm": "group normalisation, one per element",
    "groupnorm_affine": "group normalisation's scale and shift, one per element",
    "scale": "multiplication by a learned per-channel scale (layer scale), one per element",
    "mean": "mean over axes: one addition per input element",
    "attn_matmul_masked": "causal attention's products over masked scores: computed by the kernels, then masked (torch counts them)",
    "mask": "a causal mask's masked_fill (attention written out): one select per score, no arithmetic (no tool counts it)",
    "lookup": "embedding lookups: one table entry read per output element (no arithmetic)",
    "rmsnorm": "RMS normalisation, one per element",
    "rmsnorm_affine": "RMS normalisation's scale, one per element",
    "rotary": "rotary position embedding: one rotation (2 multiplications, an addition) per element",
    "affine_params": "a norm's scale and shift parameters, each once per sample (what torchinfo counts for a norm)",
    "mha_ptflops": (
        "what ptflops' own nn.MultiheadAttention formula adds to the projections, biases, products and softmax "
        "(q scaling, an output bias always)"
    ),
    "upsample_out": "an upsample's output elements, whatever the mode (what ptflops counts per call)",
    **{f"upsample_{m}": f"an {m} upsample's output elements (a peer's per-element rate for aten::upsample_{m})"
       for m in ("nearest1d", "nearest2d", "nearest3d", "linear1d", "bilinear2d", "trilinear3d")},
    "softmax_thop": "thop's softmax count: per softmax over n values, n exp + (n - 1) additions + n divisions",
    "avgpool_thop": "thop's adaptive average pooling count: (input/output size per axis, multiplied, + 1) x output elements, in float64, truncated",
    "thop_unmodelled": (
        "a marker (1): thop's count of this layer is not reproduced (a softmax over the batch axis, fractional pooling "
        "windows on a symbolic size); the thop convention refuses it"
    ),
    "linear_params": "a linear layer's weight and bias elements, each once per sample, however many tokens (what torchinfo counts)",
}


SAVED_DTYPES: dict[str, str] = {
    "act": "the activations' dtype (--dtype)",
    "float32": "4 bytes whatever the activations' dtype (flash attention's logsumexp)",
    "int64": "8 bytes (max pooling's argmax indices)",
    "bool": "1 byte",
    "dropout_mask": "dropout's mask: the activations' dtype on CPU (input * (bernoulli / (1-p))), 1 byte (bool) on CUDA (native_dropout)",
    "act_fp32": (
        "the activations' dtype, but 4 bytes (fp32) when they are 16-bit: attention's math path computes in fp32 "
        "(torch's _scaled_dot_product_attention_math casts half and bfloat16 q, k, v up)"
    ),
    "attn_dropout_mask": "attention dropout's mask in the math path: the dtype of act_fp32 on CPU, 1 byte (bool) on CUDA",
    "norm_stats": (
        "batch and layer norm's mean and 1/std: fp32 on CUDA (the accumulation type) and under autocast (fp32 weights), "
        "the activations' dtype on CPU when weights and activations are both 16-bit"
    ),
}


BATCH_SECOND = -1
"""``Saved.merge`` of an input read transposed, batch axis second (see :class:`Saved`)."""


class Run(NamedTuple):
    """What decides which kernel torch runs a layer with, beyond the layer and its shapes: ``width``,
    the bytes per element of its output; ``batch``, an int, or a symbol (then every batch from 1
    counts); ``conv16``, how the CPU runs 16-bit (bf16, fp16) convolutions: ``"onednn"`` (torch's
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``, or ``_fp16_``, is True: AVX-512 or AMX),
    ``"slow"`` (it is False: torch's own im2col kernel) or None (not known: both are counted);
    ``threads``, torch's CPU threads (``torch.get_num_threads()``), where a kernel allocates a
    buffer per thread (flash attention), or None (not known: one thread's counted, and the rest said
    not counted); ``grad_order``, the physical order of the per-sample axes of the gradient that
    reaches the layer's output, where it is known to differ from the output's logical order (the
    gradient through a transpose back, or of an output laid out so), else None (contiguous); ``fused``,
    whether fused kernels run (``--attention fused``: flash attention), else the math path."""

    width: int = 4
    batch: Dim = 1
    conv16: str | None = None
    threads: int | None = None
    grad_order: tuple[int, ...] | None = None
    fused: bool = True


DEFAULT_RUN = Run()


class Saved(NamedTuple):
    """One tensor a layer's backward keeps (what ``torch.autograd.graph.saved_tensors_hooks`` sees).

    Build one with :meth:`of_input`, :meth:`of_output` or :meth:`new`.  ``tensor`` says which
    storage it is: ``"input"`` (input ``input`` of the layer: the storage of the layer that made
    it, shared with whoever else saves it), ``"output"`` (the layer's own output), or the name of a
    tensor the forward makes only for the backward (``"indices"``, ``"mask"``, ``"save_mean"``),
    whose per-sample ``shape`` (``batched``) or whole shape, and ``dtype`` (a key of
    ``SAVED_DTYPES``), are given.  ``why`` says what the backward needs it for.

    ``merge`` (an input only): torch.matmul's reshape of the input to 3-D for ``bmm`` (or linear's
    to 2-D), the batch axis merged with the input's first ``merge`` per-sample axes, expanded to
    ``shape`` (the broadcast shape): the input's own storage when that reshape is a view (``merge``
    0, or the input laid out densely with those axes outermost and no broadcast), else a copy of
    ``shape``.  ``BATCH_SECOND`` (-1): read transposed, (L, N, ...), and flattened (multi-head
    attention's input projection): a view only of a tensor laid out so (a multi-head attention's
    output).
    ``fp32_copy``: computed in fp32 when the activations are 16-bit (attention's math path): then
    the backward keeps an fp32 copy of this per-sample shape instead of the tensor itself.
    ``if_grad`` (an input only): kept only where that input requires grad, by an op on it alone
    that autograd records only then (F.pad before a conv with padding_mode 'reflect').
    ``fp32_on``: the devices whose autocast runs that op in fp32 (CPU's fp32 list has reflection_pad
    and replication_pad): under autocast there it keeps an fp32 cast of a 16-bit input.
    """

    tensor: str
    why: str
    input: int = 0
    shape: "Shape" = ()
    dtype: str = "act"
    batched: bool = True
    param: str | None = None
    merge: int | None = None
    fp32_copy: "Shape | None" = None
    if_grad: bool = False
    fp32_on: tuple[str, ...] = ()

    @staticmethod
    def of_input(why: str, index: int = 0, if_grad: bool = False, fp32_on: tuple[str, ...] = ()) -> "Saved":
        return Saved("input", why, input=index, if_grad=if_grad, fp32_on=fp32_on)

    @staticmethod
    def of_matmul_input(why: str, index: int, shape: "Shape", merge: int, fp32: bool = False) -> "Saved":
        """Input ``index`` as ``torch.matmul`` hands it to ``bmm`` (see ``merge``); ``fp32``: cast up
        first when the activations are 16-bit (a new fp32 copy of ``shape``)."""
        return Saved("input", why, input=index, shape=tuple(shape), merge=merge, fp32_copy=tuple(shape) if fp32 else None)

    @staticmethod
    def of_output(why: str) -> "Saved":
        return Saved("output", why)

    @staticmethod
    def of_param(name: str, why: str) -> "Saved":
        """A parameter the backward keeps (a conv's weight): no memory of its own, except under
        autocast, where the layer keeps the low-precision copy it computed with."""
        return Saved(f"{name} (cast)", why, param=name)

    @staticmethod
    def new(name: str, shape: "Shape", why: str, dtype: str = "act", batched: bool = True, fp32_copy: "Shape | None" = None) -> "Saved":
        return Saved(name, why, shape=tuple(shape), dtype=dtype, batched=batched, fp32_copy=None if fp32_copy is None else tuple(fp32_copy))

    @property
    def is_new(self) -> bool:
        return self.tensor not in ("input", "output") and self.param is None


STORAGES = ("new", "inplace", "view", "strided", "reshape", "param", "new_strided", "like_input")
"""``Layer.output_storage(ins)`` values, in training mode: ``new`` a fresh tensor; ``new_strided`` a
fresh tensor whose per-sample block is not contiguous (multi-head attention returns a transposed
view of its (L, B, E) result); ``like_input`` a fresh tensor laid out as input 0 (torch's CPU flash
attention takes its query's strides: ``Layer.output_storage_fused``); ``inplace`` written
into input 0 (``ReLU(inplace=True)``); ``view`` a view of input 0 (contiguous if it was);
``strided`` a view of input 0 whose per-sample block is not contiguous (a slice of a spatial axis:
crop, subsample); ``reshape`` a view of input 0 when its per-sample block is contiguous, else a new
copy (flatten); ``param`` a parameter read in forward (a class token, expanded over the batch):
parameter memory, so a layer that saves it keeps nothing new.  Contiguity is per sample: a channel range (chunk along dim 1) is a ``view``, its
batch stride aside, and flatten (start_dim >= 1) never merges the batch axis."""


class DimSpec:
    """Marks a field whose value is a dimension (int or symbolic string) resolved at compile time."""

    def __init__(self, minimum: int = 1, literals: tuple[str, ...] = ()) -> None:
        self.minimum = minimum
        self.literals = literals


def check_dim_value(v: Any, minimum: int = 0, what: str = "") -> Any:
    """Load-time check of one dimension: an int at least ``minimum``, or a whitelisted expression."""
    if type(v) is int and too_big(v):
        raise ValueError(f"a size of {len(str(abs(v)))} digits; archcalc's limit is {MAX_DIGITS}")
    if type(v) is int and v < minimum:
        raise ValueError(f"{what + ' ' if what else ''}must be {'positive' if minimum == 1 else f'at least {minimum}'}, got {v}")
    if isinstance(v, str):
        try:
            check_expr(v)
        except DimError as e:
            raise ValueError(str(e)) from None
    return v


RESERVED_WORDS = frozenset({"same", "valid", "full", "none", "null", "true", "false", "auto", "zeros", "reflect", "replicate", "circular"})
"""Words torch uses for modes (padding='same', padding_mode='reflect'): in a size field they are a
mistake, not a symbol (a maxpool2d with "padding": "same" silently became a symbol named same)."""


def _reserved_message(word: str, field: str, literals: tuple[str, ...]) -> str:
    takes = f"{', '.join(map(repr, literals))}, whole numbers or size expressions" if literals else "whole numbers or size expressions"
    if field == "padding" and word in ("same", "valid", "full") and not literals:
        return (
            f"padding {word!r} is not a size: this layer's padding takes {takes}; only torch's convolutions take 'same' or 'valid' "
            "(none takes 'full'): 'valid' is 0, 'same' at stride 1 is (kernel_size - 1)//2 for an odd kernel"
        )
    if field == "padding" and word == "full":
        return f"padding 'full' is not a size: this field takes {takes} (torch has no padding='full')"
    return f"{word!r} is a torch keyword, not a size: {field} takes {takes}"


def _dim_checker(minimum: int, literals: tuple[str, ...]) -> Any:
    """Validate a dim field at load time: int ranges now, expression syntax now, values later."""

    def check(v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, str) and v in literals:
            return v
        if isinstance(v, str) and v.strip().lower() in literals:  # "Same" would otherwise be a symbol named Same
            raise ValueError(f"{v!r} is not a size; did you mean {v.strip().lower()!r}? (lowercase)")
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, str) and x.strip().lower() in RESERVED_WORDS:
                raise ValueError(_reserved_message(x.strip().lower(), info.field_name or "this field", literals))
        if isinstance(v, list):
            if not v:
                raise ValueError("needs at least one value")
            return [check_dim_value(x, minimum) for x in v]
        return check_dim_value(v, minimum)

    return AfterValidator(check)


def dim_field(minimum: int = 1, literals: tuple[str, ...] = ()) -> tuple[DimSpec, Any]:
    return DimSpec(minimum, literals), _dim_checker(minimum, literals)


def _has_text(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and any(isinstance(x, str) for x in v))


@dataclass(frozen=True)
class Window:
    """A sliding window along one spatial axis (for the receptive field).

    ``upsample`` > 1: the window slides on a grid ``upsample`` times finer than the input, on which
    input pixel i sits at position i*upsample and the positions between are empty (zero insertion):
    kernel, stride, pad_before and dilation are then in units of that finer grid.  A transposed
    convolution of stride s is ``Window(k, 1, d*(k-1) - p, d, upsample=s)``; the receptive field
    pass counts only the input pixels a window actually reads.
    """

    kernel: Dim
    stride: Dim = 1
    pad_before: Dim = 0
    dilation: Dim = 1
    upsample: Dim = 1
    # torch's adaptive pooling of n positions to o, where o does not divide n: output i reads
    # floor(i*n/o) .. ceil((i+1)*n/o) - 1 (kernel and stride then say the longest window and n // o,
    # which is no sliding window: the receptive field pass maps these windows themselves)
    adaptive: tuple[Dim, Dim] | None = None

    @property
    def extent(self) -> Dim:
        return extent(self.kernel, self.dilation)


@dataclass(frozen=True)
class Partition:
    """Non-overlapping windows along one axis (Swin's window attention, Liu et al. 2021): the axis
    is cut into blocks of ``size`` positions starting at ``offset`` (0 <= offset < size; the blocks
    before it and at the end are cut short), and every output reads exactly the positions of its
    own block: output o reads size*floor((o - offset)/size) + offset .. that + size - 1."""

    size: Dim
    offset: Dim = 0


def extent(kernel: Dim, dilation: Dim) -> Dim:
    """Input span of a dilated window: d*(k - 1) + 1, which is k itself when d = 1."""
    return kernel if dilation == 1 else dilation * (kernel - 1) + 1


class Spec(BaseModel):
    """Project base model: unknown fields are errors."""

    # strict: "bias": "yes" or "kernel_size": 3.0 are errors, not silently coerced
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class Layer(Spec):
    """Fields common to every layer."""

    # a layer type's validator is built the first time a spec uses it (see spec._validate_entry)
    model_config = ConfigDict(defer_build=True)

    name: str | None = Field(default=None, description="Unique layer name (torch's qualified name reads best).")
    inputs: list[str] | None = Field(
        default=None,
        description="Names of the layers feeding this one; default: the layer before it. 'input' is the network's (or block's) input.",
    )
    when: str | None = Field(default=None, description="Inside a block: keep this layer only if this block parameter is true.")
    unless: str | None = Field(default=None, description="Inside a block: keep this layer only if this block parameter is false.")
    training_only: bool = Field(default=False, description="Runs only in training (auxiliary heads): left out of totals unless asked for.")
    function: Annotated[str, AfterValidator(check_function)] | None = Field(
        default=None,
        description="The function the model computes this layer with instead of a module, as it spells it: 'F.relu' "
        "(torch.nn.functional), 'torch.relu', 'Tensor.relu' (the method x.relu()), 'torch.add'. archcalc import writes it where "
        "a peer that counts modules (thop, ptflops, torchinfo) counts the call differently from the module; those conventions "
        "then count what the tool counts for that call (thop and torchinfo 0, ptflops its patched functions), and the model "
        "built from the spec makes the same call. Only the spellings archcalc knows (archcalc/functions.py): a spec "
        "names no code to run.",
    )

    @field_validator("function")
    @classmethod
    def _function_computes_this_type(cls, function: str | None) -> str | None:
        """A layer's ``function`` must compute a layer of its type (review s9 #5: a conv2d "function": "F.relu"
        was 0 MACs under ptflops and thop, exit 0, and refused only by verify)."""
        if function is None:
            return None
        field = cls.model_fields.get("type")
        kinds = get_args(field.annotation) if field is not None else ()
        if len(kinds) == 1:
            error = function_kind_error(function, str(kinds[0]))
            if error is not None:
                raise ValueError(error)
        return function

    n_inputs: ClassVar[tuple[int, int | None]] = (1, 1)  # (min, max) number of inputs
    source: ClassVar[bool] = False  # produces a tensor without reading one (a learned tensor): no default input, no receptive field
    takes_indices: ClassVar[bool] = False  # its input holds integer indices (token ids: an embedding), not values
    input_names: ClassVar[tuple[str, ...] | None] = None  # what its inputs are called, in order (attention's q, k, v): explain's symbols L_q, F_k
    grad_released_from: ClassVar[int | None] = None  # backward workspace moments from this index on come after the
    # module's first autograd node has consumed its output's gradient (multi-head attention's out projection): the
    # walk leaves that gradient out of them where nothing else holds it
    saved_released_from: ClassVar[int | None] = None  # backward workspace moments from this index on come after the
    # module's autograd nodes have released what they saved (multi-head attention's in projection's weight gradient
    # slices concatenated): the walk leaves out the saved tensors this layer is the last to need
    workspace_reads_views: ClassVar[bool] = False  # its workspace depends on which of its saved matmul inputs are the
    # inputs themselves, not copies (the walk passes ``views``: torch's linear on a contiguous input is one addmm)
    reads_sequences: ClassVar[bool] = False  # its inputs are (heads..., L, F) token sequences (attention): so explain names them
    _dim_fields: ClassVar[dict[str, DimSpec]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._dim_fields = {n: m for n, f in cls.model_fields.items() for m in f.metadata if isinstance(m, DimSpec)}

    @property
    def kind(self) -> str:
        return str(self.__dict__["type"])  # every concrete layer type declares its `type` tag

    # ----- binding symbolic strings to values -------------------------------------------------
    def bind(self, env: dict[str, Any]) -> "Layer":
        """A copy with every dimension string evaluated in ``env`` and range-checked."""
        updates: dict[str, Any] = {}
        values = self.__dict__
        for fname, spec in self._dim_fields.items():
            raw = values[fname]
            if not _has_text(raw):  # ints were range-checked when the spec was loaded
                continue
            try:
                val = self._bind_value(raw, env, spec)
            except (DimError, SpecError) as e:
                raise SpecError(str(e) if isinstance(e, DimError) else e.message, layer=self.name, field=fname) from None
            if val is not raw:
                updates[fname] = val
        return self.model_copy(update=updates) if updates else self

    @staticmethod
    def _bind_value(raw: Any, env: dict[str, Any], spec: DimSpec) -> Any:
        if raw is None:
            return None
        if isinstance(raw, list):
            return [Layer._bind_value(x, env, spec) for x in raw]
        if isinstance(raw, str):
            if raw in spec.literals:
                return raw
            val = parse_dim(raw, env)
            if isinstance(val, bool):
                raise SpecError(f"{raw!r} is a true/false block parameter, not a size")
        else:
            val = raw
        sign = known_sign(val - (spec.minimum - 1))  # > 0 iff val >= minimum
        if sign is not None and sign <= 0:
            what = "positive" if spec.minimum == 1 else f"at least {spec.minimum}"
            raise SpecError(f"must be {what}, got {val}")
        return val

    # ----- formulas (overridden by each layer type) ------------------------------------------
    def output_shape(self, ins: list[Shape]) -> Shape:
        return ins[0]

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        return {}

    def buffers(self, ins: list[Shape]) -> dict[str, Shape]:
        return {}

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {}

    def windows(self, ins: list[Shape]) -> list[Window] | None:
        return None

    def mixes_positions(self, ins: list[Shape]) -> bool:
        """True when every output reads every position of its input (attention, a mean over
        tokens): the receptive field pass gives every output the whole input."""
        return False

    def mixed_axes(self, ins: list[Shape]) -> tuple[int, ...]:
        """Per-sample axes (0-based) along which every output reads every position of its input: a
        softmax over ``dim``, a norm's statistics, a linear's input features.  Where such an axis
        holds a spatial axis, the receptive field pass makes the field whole along it (a spatial
        softmax, GroupNorm over (C/G, H, W), MLP-Mixer's linear over the patches); a feature axis
        (a token's D) changes nothing.  () for none: the default."""
        return ()

    def sees_prefix(self, ins: list[Shape]) -> bool:
        """For a layer that mixes positions: True when output i reads only positions 0..i (causal
        attention), so that only the last output sees the whole input."""
        return False

    def reads_pair(self, ins: list[Shape]) -> bool:
        """For a layer that mixes positions: True when each output reads just two of them (entry
        (i, j) of attention's scores q k^T reads query i and key j): the field of the widest pair is
        the whole input's hull, but not every output sees the whole input."""
        return False

    def positions_read(self, ins: list[Shape]) -> Dim | None:
        """For a layer that mixes positions: the most input positions one output can read (the
        keys of attention), or None for all of them.  Where the map before it had more positions
        (attention inside hand-partitioned windows), the whole-input field is an upper bound and
        the receptive field pass marks it approximate."""
        return None

    def axis_windows(self, ins: list[Shape]) -> "dict[int, Window | Partition | None] | None":
        """What the layer reads along each per-sample axis it names (0-based): a sliding
        :class:`Window`, a :class:`Partition` into windows, or None where it moves positions in a
        way the receptive field cannot follow (a cyclic roll); axes it does not name are
        pointwise.  None (the default): the layer's ``windows`` apply to axes 1.. of a
        (C, *spatial) input."""
        return None

    def note(self, ins: list[Shape]) -> str | None:
        """Something about this layer a reader of the table should know (shown with the row)."""
        return None

    def cached_per_position(self, ins: list[Shape]) -> Dim:
        """Elements this layer keeps per position for decoding one token at a time (attention's
        keys and values: the KV cache); 0 for every layer that keeps nothing."""
        return 0

    def weights_read(self, ins: list[Shape], batch: Dim) -> Dim | None:
        """Elements of its weights one forward of ``batch`` samples on ``ins`` reads, where that is
        fewer than all of them (an embedding gathers one row per id); None (the default): every
        weight.  What a decode step's bytes count (archcalc.inference)."""
        return None

    def tied_weights(self) -> dict[str, str]:
        """Weights this layer uses but does not own: its weight name -> the layer whose ``weight``
        it shares (GPT-2's output head uses the token embedding's).  Counted once, by their owner."""
        return {}

    def in_place(self) -> bool:
        """True when the output is the input tensor itself (``inplace=True``, identity): no new memory."""
        return bool(self.__dict__.get("inplace", False))

    def same_for_every_sample(self) -> bool:
        """True when the output does not depend on the sample (learned positions ``wpe(arange(L))``):
        user code may hold it once, without a batch axis, and let torch broadcast it."""
        return False

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved] | None:
        """The tensors autograd keeps for this layer's backward in a training-mode forward, every
        input requiring grad (parameters and buffers excluded: they are counted as such).  ``[]``
        when it keeps none; ``None`` (the default) when this layer type does not say: the
        training-memory pass reports it as unknown.  Found with
        ``torch.autograd.graph.saved_tensors_hooks`` (see archcalc.torch.saved)."""
        return None

    def saved_fused(self, ins: list[Shape], out: Shape) -> list[Saved] | None:
        """What it keeps when a fused kernel runs it, if that differs from :meth:`saved` (the
        unfused, "math" path): flash attention keeps its inputs, output and an fp32 logsumexp per
        query instead of the s x s probabilities.  ``None`` (the default): no fused variant.  The
        training-memory pass uses it unless asked for the math path (``--attention math``)."""
        return None

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        """How its backward hands the output's gradient to each input, one word per input: ``new``
        (it allocates a gradient of the input's size: the default, every op that computes one),
        ``same`` (the output's gradient itself or a view of all of it, nothing allocated: a sum, a
        reshape, a permute, the identity) or ``part`` (a view of a slice of it: concatenation).
        The training step's memory walk (archcalc.step) follows it; torch's derivatives.yaml says
        it for each op (``add``: ``grad``; ``cat``: ``cat_tensors_backward``, narrowed views)."""
        return ("new",) * len(ins)

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """Elements (of the activations' dtype) its kernel allocates and frees inside itself while
        it runs on ``device`` (``phase``: "forward" or "backward"; ``input_grad``: whether the
        backward computes its input's gradient; ``other_grads``: for inputs 1, 2, ... in order, whether
        the walk counts a gradient made for each; ``views``, where ``workspace_reads_views``: for each
        input, whether its saved matmul input is the input itself, not a copy, and ``aliases``, for each
        input the index of the first input that is the same tensor), beyond its output and gradients, as ``(fixed,
        per sample)``: one pair per moment of the kernel worth walking (the training step counts
        each; a pair may be negative where that moment comes before a gradient the walk counts is
        made), ``[(0, 0)]`` by default.  ``run`` says what else decides the kernel torch picks (the
        output's width, the batch, how the CPU runs 16-bit convs).  Measured with torch.profiler's
        allocator events (archcalc.torch.peak)."""
        return [(0, 0)]

    def workspace_uncounted(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        """What its kernel may allocate on ``device`` that :meth:`workspace` does not count (it
        depends on what the machine has, such as its thread count), said in the training memory's
        assumptions; ``None`` (the default): nothing."""
        return None

    @staticmethod
    def matmul16_uncounted(device: str, run: Run) -> str | None:
        """For the layers whose kernel is a matrix product (linear, matmul, attention): in 16 bits on a CPU
        whose oneDNN runs 16-bit kernels (AVX-512 BF16, AMX; ``run.conv16`` "onednn", or not known), oneDNN's
        matmul allocates packing scratchpads through torch's allocator, whose size follows its blocking, not
        the shapes alone (measured, torch 2.14 on AVX-512 BF16: 30 to 92 KB in the backward of transformer_lm's
        64-wide layers, 1.3% and 6% above the peak counted); AVX2's 16-bit products allocate none."""
        if device != "cpu" or run.width != 2 or run.conv16 == "slow":
            return None
        return ("oneDNN's packing scratchpads for 16-bit matrix products on a CPU that runs them in oneDNN (AVX-512 BF16, AMX; "
                "--cpu-conv16 slow says the CPU does not)")

    def workspace_depends(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        """Where the kernel torch picks depends on what is not known here (the CPU's 16-bit support,
        a symbolic batch, the thread count), what :meth:`workspace` counts instead (the larger of the
        candidates, moment by moment), said in the training memory's assumptions; ``None`` (the
        default): the kernel is known."""
        return None

    def autocast(self, device: str) -> str | None:
        """How ``torch.autocast`` on ``device`` ("cpu", "cuda") runs it: ``lower`` (in the low
        dtype: conv, linear, matmul), ``float32`` (cast up: softmax on CUDA, 3-D pooling on CPU),
        ``same`` (in its inputs' dtype, the default), ``promote`` (on no list, but an fp32 parameter
        promotes a 16-bit input: the output is fp32, the input kept as it is), or ``None`` when that
        is not known (the training memory under --amp is then reported as unknown)."""
        return "same"

    def output_storage(self, ins: list[Shape]) -> str:
        """Where the output lives in training mode (one of ``STORAGES``): by default a new tensor,
        or input 0's storage when :meth:`in_place` says so."""
        return "inplace" if self.in_place() else "new"

    def output_storage_fused(self, ins: list[Shape]) -> str | None:
        """Where the output lives when the fused kernel of :meth:`saved_fused` runs, if that
        differs from :meth:`output_storage` (``None``, the default: it does not)."""
        return None

    def permutation(self, ins: list[Shape]) -> tuple[int, ...] | None:
        """For a view that only reorders the per-sample axes (permute, transpose): output axis i is
        input axis ``p[i]``.  The saved-tensors pass follows it to tell when a later reshape is a
        view (a transpose undone) rather than a copy; the receptive field pass, to know where the
        spatial axes are (channels-last maps).  ``None`` (the default): not a reordering."""
        return None

    def build_torch(self, ins: list[Shape]) -> Any:
        raise NotImplementedError(f"no torch module for layer type {self.kind!r}")

    # ----- helpers ----------------------------------------------------------------------------
    def fail(self, message: str, field: str | None = None) -> SpecError:
        return SpecError(message, layer=self.name, field=field)


def numel(shape: Shape) -> Dim:
    return prod(shape)


def per_axis(value: Any, n: int, field: str, layer: Layer) -> tuple[Any, ...]:
    """Expand an int-or-list field to one value per spatial axis (torch's ``_pair``/``_ntuple``)."""
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise layer.fail(f"needs {n} values (one per spatial axis), got {len(value)}", field)
        return tuple(value)
    return (value,) * n


def spatial_axes(shape: Shape, layer: Layer, want: int) -> Shape:
    """Check a (C, *spatial) input has ``want`` spatial axes and return them."""
    if len(shape) != want + 1:
        raise layer.fail(
            f"expects a (C, {', '.join('HW'[:want] if want <= 2 else 'DHW')}) input, got shape {shape_str(shape)}",
            "inputs",
        )
    return shape[1:]


def shape_str(shape: Shape) -> str:
    """A shape for a message or note: 1×(H + 2)×(W + 2), a symbolic sum bracketed so that '×' cannot bind
    into it (review s10 §11: a circular padding's note read "1×H + 2×W + 2")."""
    return "\u00d7".join(f"({d})" if getattr(d, "is_Add", False) else str(d) for d in shape)


__all__ = [
    "DEFAULT_RUN",
    "OP_CATEGORIES",
    "SAVED_DTYPES",
    "STORAGES",
    "DimIn",
    "DimList",
    "DimListOpt",
    "Layer",
    "Run",
    "Saved",
    "Shape",
    "Spec",
    "Window",
    "dim_field",
    "numel",
    "per_axis",
    "shape_str",
    "spatial_axes",
]


class Traits(NamedTuple):
    """What a layer type says at class level that the compiler and the passes read once per layer:
    whether it overrides Layer's axis_windows, mixes_positions, permutation, mixed_axes and
    tied_weights, whether it is a learned tensor (``source``), and whether it overrides any of the
    four receptive-field hooks (else the field passes through it unchanged, unless it has windows)."""

    axis_windows: bool
    mixes_positions: bool
    permutation: bool
    mixed_axes: bool
    tied_weights: bool
    source: bool
    field_hooks: bool
    padding_mode: bool  # has a padding_mode field (a conv): "circular" wraps the receptive field


_TRAITS: dict[type, Traits] = {}


def traits(kind: type[Layer]) -> Traits:
    """``kind``'s :class:`Traits`, read once per type: a pydantic model class's attribute lookup
    goes through its metaclass's ``__getattr__`` hook (~500 instructions), too slow per layer."""
    got = _TRAITS.get(kind)
    if got is None:
        aw, mp, pm, ma = (getattr(kind, h) is not getattr(Layer, h) for h in ("axis_windows", "mixes_positions", "permutation", "mixed_axes"))
        got = _TRAITS[kind] = Traits(
            aw, mp, pm, ma, kind.tied_weights is not Layer.tied_weights, bool(kind.source), aw or mp or pm or ma, "padding_mode" in kind.model_fields
        )
    return got
