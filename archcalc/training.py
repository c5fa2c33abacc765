"""Training memory: what one training step keeps, per layer and in total, as numbers or formulas in the batch.

:func:`training_memory` runs the passes (shapes, params, compute, saved tensors) and adds up

* ``saved_bytes``: every tensor autograd keeps for the backward pass (distinct storages; see
  :mod:`archcalc.passes.saved`), proved equal to ``torch.autograd.graph.saved_tensors_hooks``;
* ``param_bytes``, ``grad_bytes`` (one gradient per parameter, in the parameters' dtype) and
  ``optimizer_bytes`` (SGD none, momentum one buffer, Adam/AdamW two, plus Adam's ``step``, a
  0-d float32 tensor per parameter tensor, which lives in CPU memory unless the optimizer is
  ``capturable`` or ``fused``);
* ``peak_bytes``: all of them at once, with the model's output and its gradient (the assumptions
  are stated with it, see :data:`PEAK_ASSUMPTIONS`); with checkpointing, the largest of the
  backward's moments: its start, and each checkpointed block's own backward, when the tensors
  saved after the block are freed and the block's own are recomputed.

Every total is ``a + b*N`` in the batch ``N`` (the per-channel statistics of batch norm and the
weights do not grow with the batch); the peak is the largest of such lines (``peak_lines``), so
:func:`max_batch` solves ``a + b*N <= memory`` exactly for each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .conventions import dtype_bytes, get_convention
from .dims import Dim, as_int, expand, prod, simplify, to_json
from .errors import SpecError
from .graph import Graph, compile_graph, node_table
from .layers.base import Run, Saved
from .passes import compute, params, saved_tensors, shapes
from .passes.saved import SavedTensor, keep_once
from .spec import Architecture, load_spec, parse_spec
from .step import Moment, step_moments, upper_envelope

LARGEST = "the largest moment at batch"
LOSSES = ("none", "cross_entropy")
OPTIMIZER_STATES: dict[str, int] = {"none": 0, "sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
"""Per parameter, the optimizer's state tensors of the parameter's size (torch.optim)."""

DEVICES = ("cpu", "cuda")
CPU_CONV16 = ("onednn", "slow")
MAX_THREADS = 65_536
"""The most CPU threads ``--cpu-threads`` takes (the largest servers have a few thousand)."""
"""How a CPU runs 16-bit convolutions (archcalc.layers.base.Run.conv16): in oneDNN, or in torch's slow kernel."""
CHECKPOINT_INPUT = Saved.of_input("kept by torch.utils.checkpoint to run the block again in the backward")
INTEGER_DTYPES = ("int8",)
TOTALS = ("saved_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "peak_bytes")

PEAK_ASSUMPTIONS = (
    "peak = the largest moment of one training step, walked layer by layer as torch's autograd runs it (archcalc.step): in the "
    "forward, the tensors saved so far, the outputs still to be read and the running layer's output and workspace; in the "
    "backward, the saved tensors of the layers not yet run backward, the gradients waiting for their layer (a residual's other "
    "branch, a shared weight's), the running layer's output gradient, the input and weight gradients it makes and its workspace; "
    "with parameters, gradients (last step's, still allocated: optimizer.zero_grad(set_to_none=False)), optimizer state, buffers "
    "and the input batch alive throughout",
    "workspace: on CPU, conv's oneDNN copies into blocked layouts (measured; where the copies vary with the shape, their largest; "
    "channels padded to 16 as on an AVX-512 CPU, unless --cpu-conv16 slow says the CPU is not one), "
    "or where torch runs a conv with its own slow kernel (16-bit on a CPU whose oneDNN lacks them, float32 at batch 1 on small "
    "maps: Convolution.cpp's use_mkldnn), its im2col columns, C_in*k*k x H_out*W_out per sample (measured to the byte); "
    "measured against torch.profiler's allocator events on CPU (archcalc.torch.peak): ResNet-18, ResNet-50, VGG-16, ViT-B/16, "
    "GPT-2 and U-Net at or above the measured peak by at most 0.3%; below it where oneDNN's convolution backward keeps scratch "
    "copies which this rule does not model (their number grows with the CPU threads): for small 3x3 convs this figure "
    "was measured below the peak (batch 2, 2 threads) by 61.7% with 4 channels on 8x8 maps (21.2% on 1 thread), 33.6% with 3 "
    "channels on 64x64, 4.4% and 7.1% with 8 and 12 channels, 0.6% and 1.9% with 32 and 64; 3-D convs too: by 15.9% for a "
    "conv3d of 2 to 4 channels on 6x7x8 (README, 'Measured'); such convs are said not counted below (the peak is then a "
    "floor), unless --cpu-threads 1 says torch runs on one thread and they have 8 channels or more in or out",
    "not counted, each of which can raise the real peak above this figure: the loss's own tensors (cross-entropy keeps its "
    "log-softmax, the size of the output in fp32, and makes its gradient), the optimizer step's temporaries, cuDNN's workspace "
    "on CUDA, the allocator's rounding (CUDA rounds blocks up to 512 bytes) and the CUDA context",
)


@dataclass
class MemoryRow:
    name: str
    type: str
    output_shape: tuple[Dim, ...]
    saved_bytes: Dim | None  # None: the layer type does not say what it saves
    saved: list[SavedTensor] | None
    batch: Dim
    checkpointed: bool = False
    training_only: bool = False
    repeat: Dim = 1  # copies of a block repeated a symbolic number of times: the row is one copy's, the totals count it repeat times

    def describe(self, size: Any) -> str:
        """What is kept, e.g. 'input 784 KB; indices (int64) 392 KB; output (counted at relu1)'."""
        if self.saved is None:
            return "unknown: what its backward saves is not worked out for this layer type (under --amp: for autocast)"
        if self.checkpointed:
            return "recomputed in the backward (checkpointed)"
        parts = []
        for s in self.saved:
            what = s.saved.tensor
            if s.saved.is_new and s.saved.dtype not in ("act",):
                what += f" ({s.saved.dtype.replace('dropout_mask', 'mask')})"
            parts.append(f"{what} {size(s.nbytes(self.batch))}" if s.first else f"{what} (shared: counted at {s.counted_at})")
        return "; ".join(parts) if parts else "nothing"


@dataclass
class TrainingMemory:
    name: str
    input_shape: tuple[Dim, ...]
    dtype: str
    batch: Dim
    optimizer: str
    amp: bool
    device: str
    checkpoint: list[str]
    rows: list[MemoryRow]
    totals: dict[str, Dim | None]
    fixed: dict[str, Dim]  # the part of each total that does not grow with the batch
    per_sample: dict[str, Dim]  # ... and its part per sample (total = fixed + per_sample * batch)
    unknown: list[str]
    params: Dim
    param_tensors: Dim
    recompute_flops: Dim = 0  # per sample: one more forward of the checkpointed blocks
    peak_lines: list[tuple[Dim, Dim]] = field(default_factory=list)  # the peak is the largest of these (fixed, per sample)
    saved_without_checkpoint: Dim | None = None
    assumptions: list[str] = field(default_factory=list)
    per_copy: dict[str, tuple[Dim, Dim | None]] = field(default_factory=dict)  # block repeated l times -> (l, saved bytes of one copy)
    peak_where: dict[tuple[Dim, Dim], str] = field(default_factory=dict)  # each peak line -> the moment of the step it is
    title: str | None = None  # the spec's display name, for captions (as the table's)
    weight_bytes: Dim = 0  # alive throughout the step: parameters, gradients, optimizer state, buffers
    moment_lines: list[tuple[Dim, Dim, str]] = field(default_factory=list)  # every moment of the step: (fixed, per sample, its layer)
    first_copy: dict[str, Dim] = field(default_factory=dict)  # block repeated l times -> the saved bytes of its first copy, where they differ
    not_counted: dict[str, str] = field(default_factory=dict)  # layer -> what its kernel allocates that the peak does not count

    @property
    def display_name(self) -> str:
        """What captions call the network: its title, else its name (as Report.display_name)."""
        return self.title if self.title and self.title.strip() else self.name

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "input_shape": [to_json(d) for d in self.input_shape],
            "dtype": self.dtype,
            "batch": to_json(self.batch),
            "optimizer": self.optimizer,
            "amp": self.amp,
            "device": self.device,
            "checkpoint": self.checkpoint,
            "layers": [
                {
                    "name": r.name,
                    "type": r.type,
                    "output_shape": [to_json(d) for d in r.output_shape],
                    "saved_bytes": None if r.saved_bytes is None else to_json(r.saved_bytes),
                    "saved": None
                    if r.saved is None
                    else [
                        {
                            "tensor": s.saved.tensor,
                            "storage": s.storage,
                            "bytes": to_json(simplify(s.nbytes(self.batch))),
                            "counted_here": s.first,
                            "why": s.saved.why,
                        }
                        for s in r.saved
                    ],
                    **({"repeat": to_json(r.repeat)} if not (type(r.repeat) is int and r.repeat == 1) else {}),
                    **({"checkpointed": True} if r.checkpointed else {}),
                    **({"training_only": True} if r.training_only else {}),
                    **({"workspace_not_counted": self.not_counted[r.name]} if r.name in self.not_counted else {}),
                }
                for r in self.rows
            ],
            "totals": {k: None if v is None else to_json(v) for k, v in self.totals.items()},
            "unknown_layers": self.unknown,
            "assumptions": self.assumptions,
        }
        if self.checkpoint:
            doc["recompute_flops"] = to_json(simplify(self.recompute_flops * self.batch))
            doc["saved_without_checkpoint"] = None if self.saved_without_checkpoint is None else to_json(self.saved_without_checkpoint)
        if self.per_copy:
            doc["repeated_blocks"] = [
                {
                    "name": b,
                    "repeat": to_json(n),
                    "saved_bytes_per_copy": None if v is None else to_json(v),
                    **({"saved_bytes_first_copy": to_json(self.first_copy[b])} if b in self.first_copy else {}),  # the others: per copy
                }
                for b, (n, v) in self.per_copy.items()
            ]
        return doc

    def render(self, fmt: str = "text") -> str:
        from .render.training import render_memory

        return render_memory(self, fmt)

    def __str__(self) -> str:
        return self.render("text")


def _segments(G: Graph, names: Sequence[str], convention: str = "lecture") -> dict[str, str]:
    """node -> the --checkpoint name whose block holds it (a block call's name prefixes its layers; a
    stage ``table --depth 1`` names, such as ``stem`` or VGG-16's ``stage3``, holds its rows)."""
    order = G.graph["order"]
    where: dict[str, str] = {}
    for seg in names:
        inside = [n for n in order if n == seg or n.startswith(seg + ".")]
        if not inside and (seg in ("stem", "head") or (seg.startswith("stage") and seg[5:].isdigit())):
            from .report import report_from_graph
            from .summary import stage

            rows = stage(report_from_graph(G, convention=convention), seg) or []
            inside = [r.name for r in rows if r.name in G.nodes]
        if not inside:
            import difflib

            blocks = sorted({n.rsplit(".", k)[0] for n in order for k in range(1, n.count(".") + 1)})
            near = difflib.get_close_matches(seg, blocks, n=3)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else (f" (blocks: {', '.join(blocks[:8])}...)" if blocks else "")
            raise SpecError(f"no layer or block named {seg!r} to checkpoint{hint}", field="--checkpoint")
        for n in inside:
            if n in where and where[n] != seg:
                raise SpecError(f"{seg!r} overlaps {where[n]!r}: checkpoint blocks must not nest", field="--checkpoint")
            where[n] = seg
    return where


def training_memory_from_graph(
    G: Graph,
    *,
    expand: Callable[[Mapping[str, int]], Graph] | None = None,
    **kw: Any,
) -> TrainingMemory:
    """Training memory of a compiled graph; keywords as :func:`_from_graph`.  A block repeated a
    symbolic number of times ``l`` is laid out once, whose first copy reads the block's input and
    not a copy's output: its totals are worked out from the network laid out with ``l`` = 1..4
    (``expand``: the graph compiled with the count given a number) by :func:`_repeated`."""
    reps = G.graph.get("symbolic_repeats") or []
    if not reps:
        return _batch_one(_from_graph(G, **kw), lambda: _from_graph(G, **{**kw, "batch": 1}))
    if expand is None:
        raise SpecError("a block repeated a symbolic number of times: give the count a number with --set", field="repeat")
    return _batch_one(_repeated(G, expand, kw), lambda: _repeated(G, expand, {**kw, "batch": 1}))


def _batch_one(m: TrainingMemory, at_one: Callable[[], TrainingMemory]) -> TrainingMemory:
    """``m`` with a symbolic batch N, whose figures hold from N = 2 (torch picks its conv kernels by
    the batch, Convolution.cpp: float32 convs on small maps run its slow kernel at batch 1; multi-head
    attention's transposed input is a view at batch 1), its peak made piecewise where batch 1's
    (``at_one``) differs."""
    batch = m.batch
    if as_int(batch) is not None or m.totals["peak_bytes"] is None:
        return m
    import sympy

    one = at_one().totals["peak_bytes"]
    peak = sympy.sympify(m.totals["peak_bytes"])
    if one is None or expand(peak.subs(batch, 1) - sympy.sympify(one)) == 0:
        return m
    m.totals["peak_bytes"] = sympy.Piecewise((one, sympy.Eq(batch, 1)), (peak, True))
    m.assumptions.append(
        f"at batch 1 torch runs some layers otherwise (float32 convs on small maps: its slow kernel, Convolution.cpp, use_mkldnn; "
        f"multi-head attention's in projection reads its (L, 1, E) input without a copy): "
        f"the peak there is {format(one, ',') if isinstance(one, int) else one} bytes; the lines hold from batch 2"
    )
    return m


def _from_graph(
    G: Graph,
    *,
    dtype: str | None = None,
    batch: Dim = 1,
    optimizer: str = "sgd",
    amp: bool = False,
    device: str = "cpu",
    checkpoint: Sequence[str] = (),
    convention: str = "lecture",
    attention: str = "fused",
    loss: str = "none",
    cpu_conv16: str | None = None,
    cpu_threads: int | None = None,
) -> TrainingMemory:
    if cpu_threads is not None and (isinstance(cpu_threads, bool) or not isinstance(cpu_threads, int) or not 1 <= cpu_threads <= MAX_THREADS):
        raise SpecError(f"--cpu-threads must be a whole number from 1 to {MAX_THREADS:,}, got {cpu_threads!r}", field="--cpu-threads")
    if cpu_conv16 not in (None, *CPU_CONV16):
        raise SpecError(f"unknown --cpu-conv16 {cpu_conv16!r}; choose from {', '.join(CPU_CONV16)}", field="--cpu-conv16")
    if loss not in LOSSES:
        raise SpecError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}", field="--loss")
    if optimizer not in OPTIMIZER_STATES:
        raise SpecError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZER_STATES)}", field="--optimizer")
    if device not in DEVICES:
        raise SpecError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}", field="--device")
    chosen = dtype is None and amp
    if dtype is None:  # --amp alone: torch.autocast's own default, float16 on CUDA, bfloat16 on CPU
        dtype = ("float16" if device == "cuda" else "bfloat16") if amp else "float32"
    act = dtype_bytes(dtype)
    if dtype in INTEGER_DTYPES:
        raise SpecError(
            f"a training step in {dtype} cannot run: torch computes no gradients of integer tensors (only floating-point ones can "
            "require grad); choose float32, float16, bfloat16 or float64 (table and inference price int8)",
            field="--dtype",
        )
    if amp and act != 2:
        raise SpecError(f"--amp runs the activations in 16 bits: --dtype is float16 or bfloat16, not {dtype}", field="--dtype")
    shapes(G)
    params(G)
    if attention not in ("fused", "math"):
        raise SpecError(f"unknown attention kernel {attention!r}; choose fused or math", field="--attention")
    saved_tensors(G, act, 1, device, amp, attention == "fused", step_batch=batch)
    nodes = node_table(G)
    order = G.graph["order"]
    seg_of = _segments(G, checkpoint, convention)
    repeated = [n for n in seg_of if nodes[n].get("repeat", 1) != 1]
    if repeated:
        raise SpecError(
            f"{repeated[0]!r} is one copy of a block repeated a symbolic number of times: give the count a number with --set to checkpoint it",
            field="--checkpoint",
        )

    # saved tensors: every storage once, at the first layer that keeps it; a checkpointed block keeps
    # only its inputs (torch.utils.checkpoint saves them to rerun the block in the backward)
    seen: dict[str, str] = {}  # storage -> the layer that counts it
    rows: list[MemoryRow] = []
    unknown: list[str] = []
    fixed: Dim = 0
    per: Dim = 0
    plain_fixed: Dim = 0  # the same without checkpointing
    plain_per: Dim = 0
    seg_inputs_done: set[str] = set()
    seg_internal: dict[str, dict[str, tuple[Dim, Dim, int]]] = {}  # block -> storage its layers save -> (bytes, first keeper row)
    seg_last: dict[str, int] = {}  # block -> index of its last row
    cumulative: list[tuple[Dim, Dim]] = []  # saved bytes counted at rows 0..i (with checkpointing)
    counted_at_row: dict[str, int] = {}  # storage -> the row that counts it (with checkpointing)
    per_copy: dict[str, tuple[Dim, Dim | None]] = {}
    copy_saved: dict[str, tuple[Dim, tuple[Dim, Dim]]] = {}  # block repeated a symbolic number of times -> (count, one copy's saved bytes)
    for name in order:
        node = nodes[name]
        kept: list[SavedTensor] | None = node["saved"]
        if kept is None:
            unknown.append(name)
        else:
            for s in kept:
                if s.first:
                    plain_fixed, plain_per = plain_fixed + s.fixed * node.get("repeat", 1), plain_per + s.per_sample * node.get("repeat", 1)
        seg = seg_of.get(name)
        row_fixed: Dim = 0
        row_per: Dim = 0
        resolved: list[SavedTensor] | None
        if seg is not None and kept is not None:
            inner = seg_internal.setdefault(seg, {})
            for s in kept:
                inner.setdefault(s.storage, (s.fixed, s.per_sample, len(rows)))
            seg_last[seg] = len(rows)
            resolved = []
            if seg not in seg_inputs_done:
                seg_inputs_done.add(seg)
                inputs = [nodes[src]["storage"] for src in _segment_inputs(G, seg, seg_of)]
                resolved, _ = keep_once(name, [(CHECKPOINT_INPUT, st, 0, prod(nodes[st]["shape"]) * act) for st in inputs], seen, 0)
        elif kept is not None:
            resolved, _ = keep_once(name, [(s.saved, s.storage, s.fixed, s.per_sample) for s in kept], seen, 0)
        else:
            resolved = None
        for st in resolved or ():
            if st.first:
                row_fixed, row_per = row_fixed + st.fixed, row_per + st.per_sample
                counted_at_row[st.storage] = len(rows)
        times = node.get("repeat", 1)  # a block repeated a symbolic number of times: this row stands for each copy
        fixed, per = fixed + row_fixed * times, per + row_per * times
        cumulative.append((fixed, per))
        if not (type(times) is int and times == 1):
            block = name.rsplit(".*.", 1)[0]
            count, so_far = per_copy.get(block, (times, 0))
            per_copy[block] = (count, None if so_far is None or resolved is None else so_far + row_fixed + row_per * batch)
            _, (cf, cp) = copy_saved.get(block, (times, (0, 0)))
            copy_saved[block] = (times, (cf + row_fixed, cp + row_per))
        rows.append(
            MemoryRow(
                name,
                node["layer"].kind,
                node["shape"],
                None if resolved is None else simplify(row_fixed + row_per * batch),
                resolved,
                batch,
                checkpointed=seg is not None,
                training_only=node["training_only"],
                repeat=times,
            )
        )

    n_params: Dim = sum((nodes[n]["params"] * nodes[n].get("repeat", 1) for n in order), start=0)
    n_tensors: Dim = sum((len(nodes[n]["weights"]) * nodes[n].get("repeat", 1) for n in order), start=0)
    pbytes = 4 if amp else act
    param_bytes = n_params * pbytes
    opt_bytes = OPTIMIZER_STATES[optimizer] * param_bytes
    if optimizer in ("adam", "adamw") and device == "cpu":
        opt_bytes = opt_bytes + 4 * n_tensors  # state['step']: a 0-d float32 tensor per parameter tensor
    # the model's outputs (its output, and in training the auxiliary heads' that nothing reads) stay
    # alive through the backward (the caller holds them, the loss reads them), and each one's gradient
    # is made before the backward reaches the layer that made it
    used = {i for n in order for i in nodes[n]["inputs"]}
    outs = [G.graph["output"], *(n for n in order if nodes[n]["training_only"] and n not in used and n != G.graph["output"])]
    out_storage: dict[str, tuple[str, Dim]] = {}  # output -> (its storage, that storage's bytes per sample; the output may be a view)
    out_grad: dict[str, Dim] = {}  # output -> its gradient's bytes per sample
    for o in outs:
        node_o = nodes[o]
        store = nodes.get(node_o["storage"], node_o)
        out_storage[o] = (node_o["storage"], prod(store["shape"]) * (store.get("elt") or act))
        out_grad[o] = prod(node_o["shape"]) * (node_o.get("elt") or act) if node_o["grad"] else 0

    recompute_flops: Dim = 0
    buffer_bytes: Dim = 0  # batch norm's running statistics (in the parameters' dtype) and its int64 step counter
    for n in order:
        if nodes[n].get("buffers"):
            for bname, shape in nodes[n]["layer"].buffers(nodes[n]["in_shapes"]).items():
                buffer_bytes = buffer_bytes + prod(shape) * (8 if bname == "num_batches_tracked" else pbytes) * nodes[n].get("repeat", 1)
    weights: Dim = param_bytes + param_bytes + opt_bytes + buffer_bytes
    if checkpoint:
        conv = get_convention(convention)
        compute(G, conv, 1)
        recompute_flops = sum((nodes[n]["flops"] for n in order if n in seg_of), start=0)  # per sample
    # the peak is the largest moment of the step: each layer's forward and backward, and each
    # checkpointed block's recomputation (archcalc.step walks them)
    moments: list[Moment] = []
    if not unknown:
        moments = step_moments(
            G,
            [(r.name, r.saved) for r in rows],
            act,
            outs,
            weight_elt=pbytes,
            checkpointed=seg_of,
            inner=seg_internal,
            repeats=copy_saved,
            device=device,
            loss=loss,
            amp_low=act if amp else 0,
            batch=batch,
            conv16=cpu_conv16,
            threads=cpu_threads,
            fused=attention == "fused",
        )
    lines: list[tuple[Dim, Dim]] = [(weights + m.fixed, m.per_sample) for m in moments] or [(weights + fixed, per)]
    numeric = all(isinstance(f, int) and isinstance(p, int) for f, p in lines)
    lines = upper_envelope(lines) if numeric else _undominated(_distinct(lines))
    moment_of: dict[tuple[Dim, Dim], str] = {}
    for m in moments:
        key = (simplify(weights + m.fixed), simplify(m.per_sample))
        if key not in moment_of:
            moment_of[key] = f"block {m.layer} run forward again" if m.phase == "recompute" else f"the {m.phase} of {m.layer}"
    fixed_t = {
        "saved_bytes": fixed,
        "param_bytes": param_bytes,
        "grad_bytes": param_bytes,
        "optimizer_bytes": opt_bytes,
    }
    per_t: dict[str, Dim] = {"saved_bytes": per, "param_bytes": 0, "grad_bytes": 0, "optimizer_bytes": 0}
    fixed_t["peak_bytes"], per_t["peak_bytes"] = _largest(lines, batch)
    totals: dict[str, Dim | None] = {k: expand(fixed_t[k] + per_t[k] * batch) for k in TOTALS}
    if len(lines) > 1 and not isinstance(totals["peak_bytes"], int):  # which moment is largest depends on the symbols
        import sympy

        totals["peak_bytes"] = sympy.Max(*(expand(f + p * batch) for f, p in lines))
    if unknown:
        totals["saved_bytes"] = totals["peak_bytes"] = None
    kept_outs = [o for o in outs if out_storage[o][0] in counted_at_row]
    plural = len(outs) > 1
    if loss == "cross_entropy":
        out_what = (
            f"counted: the model's output{'s' if plural else ''} ({', '.join(outs)}), held by the caller through the step, and "
            f"F.cross_entropy of {'each' if plural else 'it'} against int64 targets the caller holds: the log-softmax it keeps (the "
            "logits' size, fp32 under --amp), and in its backward the log-softmax's gradient and the logits' gradient, which "
            "flows into the model and is freed after the output layer's backward (classes: the first per-sample axis, or the last "
            "of a (positions, vocabulary) output, as language models flatten it)"
        )
    else:
        out_what = (
            f"counted: the model's output{'s' if plural else ''} ({', '.join(outs)}) and "
            f"{'their gradients' if plural else 'its gradient'}, alive through the backward (a loss that keeps only the output "
            "and calls output.backward(gradient); --loss cross_entropy counts cross-entropy's own tensors)"
            + (f" ({', '.join(kept_outs)} kept by a layer: among the saved tensors, not counted twice)" if kept_outs else "")
        )
    not_counted = PEAK_ASSUMPTIONS[2]
    if loss == "cross_entropy":
        not_counted = not_counted.replace(
            "the loss's own tensors (cross-entropy keeps its log-softmax, the size of the output in fp32, and makes its gradient), ", ""
        )
    assumptions = [PEAK_ASSUMPTIONS[0], out_what, PEAK_ASSUMPTIONS[1], not_counted]
    peak_line = (simplify(fixed_t["peak_bytes"]), simplify(per_t["peak_bytes"]))
    if isinstance(totals["peak_bytes"], int) and peak_line in moment_of:
        assumptions.insert(2, f"{LARGEST} {batch}: {moment_of[peak_line]}")
    if checkpoint:
        assumptions.append(
            "checkpointed blocks (torch.utils.checkpoint) keep only their inputs (proved with use_reentrant=True); each is run "
            "forward again when its backward starts, the tensors saved by the layers after it already freed: the walk adds its "
            "saved tensors back then and frees them as its layers run backward (the recomputed outputs no layer keeps are not "
            "counted; measured with use_reentrant=False on ResNet-18, at or above torch.profiler's peak by at most 0.5%)"
            + ("; each block also keeps the CPU generator's state (preserve_rng_state, torch's default: torch.get_rng_state(), "
               "5,056 bytes) from its forward until its backward has run" if device == "cpu" else "")
        )
    def run_of(n: str) -> Run:
        return Run(nodes[n].get("elt") or act, batch, cpu_conv16, cpu_threads, None, attention == "fused")

    ws_uncounted: dict[str, str] = {}  # layer -> what the peak does not count of its kernel's workspace
    for ask, lead in (
        ("workspace_uncounted", "not counted, and it can raise the real peak far above this figure: in the backward of"),
        ("workspace_depends", "counted as the larger, moment by moment, of the kernels torch may run"),
    ):
        said: dict[str, list[str]] = {}  # what is said -> the layers it is said of
        for n in order:
            if nodes[n]["grad"]:
                what = getattr(nodes[n]["layer"], ask)(nodes[n]["in_shapes"], nodes[n]["shape"], device, run_of(n))
                if what:
                    said.setdefault(what, []).append(n)
                    if ask == "workspace_uncounted":
                        ws_uncounted[n] = what
        for what, small in said.items():
            assumptions.append(f"{lead} {', '.join(small[:4])}" + (f" and {len(small) - 4} more" if len(small) > 4 else "") + f": {what}")
    if cpu_threads is not None and device == "cpu":
        assumptions.append(
            f"--cpu-threads {cpu_threads}: the buffers kernels allocate per CPU thread (flash attention's, FlashAttentionKernel.cpp) "
            f"counted for {cpu_threads} threads, and its row sums for each thread that runs (torch.profiler sees the calling "
            "thread's only: the figure is above its measurement by qSplit x 4 bytes per other thread)"
        )
    masks = [n for n in order if nodes[n]["layer"].type == "causal_mask" and nodes[n]["layer"].buffer_size is None]
    if masks:  # review s8 #9: nanoGPT's written-out attention measured 2.2% (64 tokens) to 13.6% (6 of 16) below without it
        assumptions.append(
            f"not counted, and it raises the real peak above this figure: a causal mask the model keeps as a buffer ({masks[0]}: "
            "nanoGPT's `bias`, tril(ones(block_size, block_size)) in fp32, 4 * block_size^2 bytes, 16,384 at a block of 64); "
            "the spec's causal_mask makes its mask from the scores' L and S: give its buffer_size (the block size) to count it"
        )
    if optimizer in ("adam", "adamw"):
        where = "counted (CPU)" if device == "cpu" else "not counted: torch keeps it in CPU memory unless capturable or fused"
        assumptions.append(f"Adam's step: one 0-d float32 tensor per parameter tensor ({n_tensors}), {where}")
    if device == "cuda":
        assumptions.append("on CUDA dropout keeps a bool mask (native_dropout), 1 byte per element; proved on CPU only")
    if amp:
        default_note = f" (its default on {device}, as no --dtype was given)" if chosen else ""
        assumptions.append(
            f"--amp: torch.autocast({device!r}, {dtype}{default_note}) over fp32 parameters, gradients and optimizer state; conv and linear layers "
            "run in 16 bits, keep 16-bit copies of their weights and of any fp32 input, and make their weights' gradients in 16 bits, "
            "cast to fp32 right after; a gradient an fp32 layer hands to a 16-bit output (a residual add's to a linear) is cast to "
            "16 bits, a new tensor, as autograd's engine does; proved against autograd on CPU (bfloat16), "
            "the peak measured at or above torch.profiler's by at most 1%"
            + ("" if device == "cpu" else "; CUDA's autocast lists differ (softmax runs in fp32 there): modelled, not proved")
        )
    return TrainingMemory(
        G.graph["name"],
        tuple(G.graph["input_shape"]),
        dtype,
        batch,
        optimizer,
        amp,
        device,
        list(checkpoint),
        rows,
        totals,
        fixed_t,
        per_t,
        unknown,
        simplify(n_params),
        n_tensors,
        simplify(recompute_flops),
        [(simplify(f), simplify(p)) for f, p in lines],
        simplify(plain_fixed + plain_per * batch) if not unknown else None,
        assumptions,
        {b: (n, None if v is None else expand(v)) for b, (n, v) in per_copy.items()},
        {(simplify(f), simplify(p)): moment_of.get((simplify(f), simplify(p)), "") for f, p in lines},
        G.graph.get("title"),
        simplify(weights),
        [(simplify(weights + m.fixed), simplify(m.per_sample), m.layer) for m in moments],
        not_counted=ws_uncounted,
    )


def _repeated(G: Graph, compile_at: Callable[[Mapping[str, int]], Graph], kw: Mapping[str, Any]) -> TrainingMemory:
    """Training memory of a network with one block repeated a symbolic number of times ``l``.

    Copies differ: the first reads the block's input (the network's input, held by the caller, or
    a tensor no earlier layer keeps), the others the previous copy's output (already alive, often
    already saved), and the last one's output goes to the rest of the network.  So the totals come
    from the network laid out with ``l`` = 3: its moments before the block and in its first copy
    grow with ``l`` by one copy's weights (parameters, gradients, optimizer state, buffers), its
    moments in the later copies and after the block also by one copy's saved tensors (a middle
    copy's moments are the last middle copy's, less its saved tensors per copy between them).  The
    formula is checked against the network laid out with ``l`` = 1, 2 and 4; where it differs at
    1 or 2 the total is piecewise; where it differs at 4 the count must be given a number."""
    import sympy

    reps = G.graph["symbolic_repeats"]
    counts = {r.times for r in reps}
    if len(reps) != 1 or len(counts) != 1 or not getattr(reps[0].times, "is_Symbol", False):
        raise SpecError(
            f"{reps[0].call!r}: the training memory of blocks repeated a symbolic number of times is worked out for one block "
            "repeated l times (one plain symbol), not several or nested ones: give the counts numbers with --set",
            layer=reps[0].call,
            field="repeat",
        )
    rep = reps[0]
    sym = rep.times
    base = _from_graph(G, **kw)  # the rows: one copy laid out, each row standing for every copy
    nodes = node_table(G)
    for n in G.graph["order"]:
        node = nodes[n]
        if sym in sympy.sympify(sum(node["shape"], start=0) + node["params"]).free_symbols:
            raise SpecError(
                f"{rep.call!r} is repeated {sym} times and {sym} is also a size of {n!r}: give {sym} a number with --set",
                layer=rep.call,
                field="repeat",
            )
    at = {k: _from_graph(compile_at({str(sym): k}), **kw) for k in (1, 2, 3, 4)}
    if any(m.totals["peak_bytes"] is None for m in at.values()):
        return base
    batch = base.batch

    def total(m: TrainingMemory, key: str) -> tuple[Dim, Dim]:
        return (m.fixed[key], m.per_sample[key])

    def sub(a: tuple[Dim, Dim], b: tuple[Dim, Dim]) -> tuple[Dim, Dim]:
        return (expand(a[0] - b[0]), expand(a[1] - b[1]))

    d_saved = sub(total(at[3], "saved_bytes"), total(at[2], "saved_bytes"))
    d_weights = (expand(at[3].weight_bytes - at[2].weight_bytes), 0)
    grow = (expand(d_saved[0] + d_weights[0]), d_saved[1])
    prefix = f"{rep.call}.0."
    first_row = next((i for i, n in enumerate(at[3].rows) if n.name.startswith(prefix)), None)
    if first_row is None:
        raise SpecError(f"{rep.call!r}: its copies are not found laid out: give {sym} a number with --set", layer=rep.call, field="repeat")
    before = {r.name for r in at[3].rows[:first_row]}
    constant: list[tuple[Dim, Dim]] = []
    growing: list[tuple[Dim, Dim]] = []
    for f, p, layer in at[3].moment_lines:
        (constant if layer in before or layer.startswith(prefix) else growing).append((f, p))

    def envelope(lines: list[tuple[Dim, Dim]]) -> list[tuple[Dim, Dim]]:
        if all(isinstance(f, int) and isinstance(p, int) for f, p in lines):
            return upper_envelope(lines)
        return _undominated(_distinct(lines))

    def le(x: Dim, y: Dim) -> bool:
        return _nonnegative(expand(y - x))

    g_env = envelope(growing)
    c_env = [c for c in envelope(constant) if not any(le(c[0] + c[1], g[0] + g[1]) and le(c[1], g[1]) for g in g_env)]
    steps = sym - 3
    lines = [(expand(f + steps * grow[0]), expand(p + steps * grow[1])) for f, p in g_env]
    lines += [(expand(f + steps * d_weights[0]), p) for f, p in c_env]

    def value(ls: list[tuple[Dim, Dim]]) -> Any:
        vals = list(dict.fromkeys(expand(f + p * batch) for f, p in ls))
        return vals[0] if len(vals) == 1 else sympy.Max(*vals)

    def same(k: int) -> bool:
        mine = [(sympy.sympify(f).subs(sym, k), sympy.sympify(p).subs(sym, k)) for f, p in lines]
        mine = [(int(f) if f.is_Integer else f, int(p) if p.is_Integer else p) for f, p in mine]
        theirs = at[k].totals["peak_bytes"]
        got = value(envelope(mine))
        return bool(expand(sympy.sympify(got) - sympy.sympify(theirs)) == 0) or set(envelope(mine)) == set(at[k].peak_lines)

    if not same(4):
        raise SpecError(
            f"{rep.call!r}: the peak of a training step with {sym} copies is not one formula here: give {sym} a number with --set",
            layer=rep.call,
            field="repeat",
        )
    peak: Any = value(lines)
    special = [k for k in (2, 1) if not same(k)]
    if special:
        peak = sympy.Piecewise(*((at[k].totals["peak_bytes"], sympy.Eq(sym, k)) for k in sorted(special)), (peak, True))
    saved = (expand(at[1].fixed["saved_bytes"] + (sym - 1) * d_saved[0]), expand(at[1].per_sample["saved_bytes"] + (sym - 1) * d_saved[1]))
    for k in (2, 4):  # a copy after the first keeps the same storages as the next
        if sub(total(at[k], "saved_bytes"), total(at[1], "saved_bytes")) != ((k - 1) * d_saved[0], (k - 1) * d_saved[1]):
            raise SpecError(
                f"{rep.call!r}: the saved tensors of {sym} copies are not one formula here: give {sym} a number with --set", field="repeat"
            )
    fixed = dict(base.fixed)
    per = dict(base.per_sample)
    fixed["saved_bytes"], per["saved_bytes"] = saved
    fixed["peak_bytes"], per["peak_bytes"] = _largest(lines, batch)
    totals = dict(base.totals)
    totals["saved_bytes"] = expand(saved[0] + saved[1] * batch)
    totals["peak_bytes"] = peak
    one = expand(d_saved[0] + d_saved[1] * batch)
    first = expand(sum((r.saved_bytes or 0 for r in at[2].rows if r.name.startswith(prefix)), start=0))
    no_ckpt = base.saved_without_checkpoint
    return replace(
        base,
        totals=totals,
        fixed=fixed,
        per_sample=per,
        peak_lines=lines,
        peak_where={},
        saved_without_checkpoint=None if no_ckpt is None else totals["saved_bytes"],
        per_copy={rep.call: (sym, one)},
        first_copy={} if expand(first - one) == 0 else {rep.call: first},
        moment_lines=[],
    )


def _distinct(lines: list[tuple[Dim, Dim]]) -> list[tuple[Dim, Dim]]:
    """The lines without repeats (the same expressions), in their first order."""
    return list(dict.fromkeys((expand(f), expand(p)) for f, p in lines))


def _undominated(lines: list[tuple[Dim, Dim]]) -> list[tuple[Dim, Dim]]:
    """The lines ``fixed + per*N`` that some batch N >= 1 makes the largest (a line no larger than
    another at N = 1 and growing no faster is dropped; with symbols, only where sympy can tell)."""

    def le(x: Dim, y: Dim) -> bool:
        return _nonnegative(expand(y - x))

    if len(lines) > 8:  # first against the few that hold most at a large point: most lines are beaten by one of them
        lines = _beaten_by_leaders(lines, le)
    out: list[tuple[Dim, Dim]] = []
    for i, (f, p) in enumerate(lines):
        beaten = any(le(f + p, g + q) and le(p, q) and (j < i or not (le(g + q, f + p) and le(q, p))) for j, (g, q) in enumerate(lines) if j != i)
        if not beaten:
            out.append((f, p))
    return out


def _beaten_by_leaders(lines: list[tuple[Dim, Dim]], le: Any) -> list[tuple[Dim, Dim]]:
    """The lines, less those proved no larger at N = 1 and growing no faster than a line kept
    before them, taken in the order of their size at a point where every symbol is large (so that
    a line is compared first with those likely to beat it); which lines are dropped changes
    nothing, as each is beaten by one that stays."""
    import sympy

    symbols = sorted(set().union(*(sympy.sympify(f + p).free_symbols for f, p in lines)), key=str)
    point = {x: 1009 + 7 * i for i, x in enumerate(symbols)}
    size = [float(sympy.sympify(f + p * 1000).xreplace(point)) for f, p in lines]
    kept: list[tuple[Dim, Dim]] = []
    for i in sorted(range(len(lines)), key=lambda i: -size[i]):
        f, p = lines[i]
        if not any(le(f + p, g + q) and le(p, q) for g, q in kept):
            kept.append((f, p))
    return kept


def _largest(lines: list[tuple[Dim, Dim]], batch: Dim) -> tuple[Dim, Dim]:
    """The line largest at ``batch`` (for a symbolic batch, the one that grows fastest); with symbolic
    sizes, one sympy proves no smaller than the others, else the first (the total is then their Max)."""
    keys = [_at(fp, batch) for fp in lines]
    if all(isinstance(k, int) for k in keys):
        return lines[max(range(len(lines)), key=lambda i: keys[i])]
    for i, k in enumerate(keys):
        if all(_nonnegative(expand(k - other)) for j, other in enumerate(keys) if j != i):
            return lines[i]
    return lines[0]


def _nonnegative(d: Dim) -> bool:
    """Whether ``d >= 0`` is proved (an int, or a sympy expression sympy can decide): an expanded
    sum of positive terms (products of positive sizes) with nonnegative coefficients is, at once."""
    if isinstance(d, int):
        return d >= 0
    terms = d.as_coefficients_dict()
    if all(c >= 0 for c in terms.values()) and all(t == 1 or t.is_positive for t in terms):
        return True
    return d.is_nonnegative is True


def _at(fp: tuple[Dim, Dim], batch: Dim) -> Any:
    """For choosing the largest block: its bytes at ``batch``, or per sample when symbolic."""
    v = fp[0] + fp[1] * batch
    return v if isinstance(v, int) else fp[1] * 10**6 + fp[0]


def _segment_inputs(G: Graph, seg: str, seg_of: Mapping[str, str]) -> list[str]:
    nodes = node_table(G)
    out: list[str] = []
    for n in G.graph["order"]:
        if seg_of.get(n) != seg:
            continue
        for src in nodes[n]["inputs"]:
            if seg_of.get(src) != seg and src not in out:
                out.append(src)
    return out


def training_memory(
    spec: Architecture | Mapping[str, Any] | str | Path,
    *,
    values: Mapping[str, int] | None = None,
    input_shape: Sequence[int | str] | None = None,
    **kw: Any,
) -> TrainingMemory:
    """Training memory of a spec (model, dict or path); keywords as :func:`training_memory_from_graph`.

    >>> m = training_memory("specs/resnet18.json", batch=2)
    >>> m.totals["saved_bytes"]
    44398080
    """
    from .report import gc_paused

    with gc_paused():
        if isinstance(spec, Mapping):
            spec = parse_spec(dict(spec))
        arch = spec if isinstance(spec, Architecture) else load_spec(spec)
        G = compile_graph(arch, values=values, input_shape=input_shape)
        at = lambda more: compile_graph(arch, values={**(values or {}), **more}, input_shape=input_shape)
        return training_memory_from_graph(G, expand=at, **kw)


def parse_memory(text: str) -> int:
    """'24GiB' -> 25769803776; units B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (1024)."""
    import re
    from fractions import Fraction

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", text)
    if not m:
        hint = ""
        slip = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT])([iI]?)([bB]?)\s*", text)
        if slip and not slip.group(3) and not slip.group(4):  # 24G: GiB or GB?
            n, u = slip.group(1), slip.group(2).upper()
            hint = f": write {n}{u}iB (powers of 1024) or {n}{u}B (powers of 1000)"
        elif slip and not (slip.group(2).isupper() and not slip.group(3) and slip.group(4) == "b"):  # 24gib, 80gb; not 24Gb (bits)
            hint = f"; did you mean {slip.group(1)}{slip.group(2).upper()}{slip.group(3).lower()}B?"
        raise SpecError(f"--memory needs a size such as 24GiB, 80GB or 1500000000 (bytes), got {text!r}{hint}", field="--memory")
    unit = m.group(2) or "B"
    scale = 1 if unit == "B" else (1024 if "i" in unit else 1000) ** ("KMGT".index(unit[0]) + 1)
    value = Fraction(m.group(1)) * scale
    if value.denominator != 1:
        raise SpecError(f"--memory {text!r} is not a whole number of bytes", field="--memory")
    if value <= 0:
        raise SpecError("--memory must be positive", field="--memory")
    return int(value)


@dataclass
class Fit:
    memory: int
    max_batch: int
    peak_bytes: int  # at max_batch
    headroom_bytes: int
    fixed_bytes: Dim
    per_sample_bytes: Dim
    report: TrainingMemory
    without_checkpoint: Fit | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.report.name,
            "memory": self.memory,
            "max_batch": self.max_batch,
            "peak_bytes": self.peak_bytes,
            "headroom_bytes": self.headroom_bytes,
            "fixed_bytes": to_json(self.fixed_bytes),
            "per_sample_bytes": to_json(self.per_sample_bytes),
            "dtype": self.report.dtype,
            "optimizer": self.report.optimizer,
            "amp": self.report.amp,
            "device": self.report.device,
            "checkpoint": self.report.checkpoint,
            "assumptions": self.report.assumptions,
        }
        if self.report.not_counted:  # the peak counted is a lower bound: max_batch is an upper bound, and may not fit
            doc["peak_is_lower_bound"] = True
            doc["workspace_not_counted"] = dict(self.report.not_counted)
        if self.without_checkpoint is not None:
            doc["without_checkpoint"] = {"max_batch": self.without_checkpoint.max_batch, "peak_bytes": self.without_checkpoint.peak_bytes}
            doc["recompute_flops"] = to_json(self.report.recompute_flops * self.max_batch)
        return doc


def max_batch(m: TrainingMemory, memory: int) -> Fit:
    """The largest batch N with fixed + per_sample*N <= memory (0 when even the fixed part does not fit)."""
    if m.totals["peak_bytes"] is None:
        raise SpecError(
            f"cannot fit: layers {', '.join(m.unknown[:3])} keep tensors not worked out for their type (or, under --amp, for autocast)",
            field="--memory",
        )
    lines = m.peak_lines or [(m.fixed["peak_bytes"], m.per_sample["peak_bytes"])]
    if not all(isinstance(a, int) and isinstance(b, int) for a, b in lines):
        raise SpecError("cannot fit a network with symbolic sizes: give every size a number (--input, --set)", field="--memory")
    ints = [(int(a), int(b)) for a, b in lines]
    n = min(((memory - a) // b if b > 0 else (0 if a > memory else 2**63) for a, b in ints))
    n = max(0, n) if n < 2**63 else 0
    a, b = max(ints, key=lambda ab: (ab[0] + ab[1] * max(n, 1), ab[1]))
    peak = a + b * n
    at = m.peak_where.get((a, b))
    if at and n > 0:  # the moment of the step that holds most, at the batch found
        kept = [x for x in m.assumptions if not x.startswith(LARGEST)]
        m = replace(m, assumptions=[*kept[:2], f"{LARGEST} {n}: {at}", *kept[2:]])
    return Fit(memory, n, peak, memory - peak, a, b, m)


__all__ = [
    "DEVICES",
    "OPTIMIZER_STATES",
    "Fit",
    "MemoryRow",
    "TrainingMemory",
    "max_batch",
    "parse_memory",
    "training_memory",
    "training_memory_from_graph",
]
