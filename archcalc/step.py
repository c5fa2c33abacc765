"""The moments of one training step: what is alive at each layer of the forward and of the backward.

:func:`step_moments` walks the forward in execution order and the backward in reverse, as torch's
autograd engine runs it on one device (the ready node with the highest sequence number first,
which for a graph recorded by one forward is exactly the reverse of the forward's order), and at
each moment adds up the bytes alive.  The rules, from torch's autograd (``engine.cpp``
``evaluate_function``, ``input_buffer.cpp``, ``accumulate_grad.h``):

* forward: a layer's output is allocated when it runs and freed after its last reader has run,
  unless a layer saves it for the backward (then it lives until that layer's backward has run) or
  it is the model's output or the input batch (the caller holds both);
* backward of a layer: its output's gradient (its input buffer) is alive while it runs; it
  allocates a gradient for each input that requires one (``Layer.grad_flow``: ``new``), or hands
  on the gradient itself (``same``: a sum, a reshape) or a view of part of it (``part``:
  concatenation), and one gradient per weight.  At that moment everything is alive: the saved
  tensors of every layer not yet run backward (its own included), the gradients waiting in the
  input buffers of layers not yet run (a residual's other branch), its output's gradient and what
  it allocates.  Then its output's gradient is dropped, its saved tensors are released
  (``release_variables``; a storage is freed with its last holder), the input gradients go to
  their layers' buffers (a second gradient for the same tensor is added in place into the first
  when the buffer holds the only reference to a dense tensor, else their sum is a new tensor) and
  each weight's gradient is added into its ``.grad`` (``AccumulateGrad``, which runs first: its
  sequence number is the largest) and freed.

Sizes are ``(fixed, per_sample)`` pairs; a moment's bytes are ``fixed + per_sample * batch``.
Parameters, gradients and optimizer state are the caller's to add (they are alive throughout).
Kernel workspace is what each layer's ``workspace`` says (see there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .dims import Dim, as_int, prod
from .graph import INPUT, Graph, node_table
from .layers.base import Run

CPU_RNG_STATE_BYTES = 5056
"""``torch.get_rng_state()``: the CPU generator's state (mt19937's 624 words and the rest), a uint8 tensor of 5,056 bytes."""


class Moment(NamedTuple):
    """``fixed + per_sample * batch`` bytes alive, at ``phase`` ("forward", "backward",
    "recompute") of layer ``layer``."""

    fixed: Dim
    per_sample: Dim
    phase: str
    layer: str


_Size = tuple[Dim, Dim]


class _Alive:
    """Storages alive, with their bytes, and their running total."""

    def __init__(self) -> None:
        self.bytes: dict[str, _Size] = {}
        self.refs: dict[str, int] = {}
        self.fixed: Dim = 0
        self.per: Dim = 0

    def add(self, key: str, size: _Size, refs: int = 1) -> None:
        if key in self.bytes:
            self.refs[key] = self.refs.get(key, 0) + refs
            return
        self.bytes[key] = size
        self.refs[key] = refs
        self.fixed, self.per = self.fixed + size[0], self.per + size[1]

    def drop(self, key: str) -> None:
        """Release one reference; free the storage with its last."""
        if key not in self.bytes:
            return
        self.refs[key] -= 1
        if self.refs[key] <= 0:
            f, p = self.bytes.pop(key)
            del self.refs[key]
            self.fixed, self.per = self.fixed - f, self.per - p

    def free(self, key: str) -> None:
        """Free the storage whatever holds it."""
        self.refs[key] = 1
        self.drop(key)


class _Grad(NamedTuple):
    key: str  # the storage holding it
    dense: bool  # all of its storage (a narrowed view is not: it is never added into in place)


def step_moments(
    G: Graph,
    saved: Sequence[tuple[str, Sequence[Any] | None]],
    act: int,
    outputs: Sequence[str],
    *,
    weight_elt: int,
    checkpointed: Mapping[str, str] | None = None,
    inner: Mapping[str, Mapping[str, tuple[Dim, Dim, int]]] | None = None,
    repeats: Mapping[str, tuple[Dim, _Size]] | None = None,
    device: str = "cpu",
    loss: str = "none",
    amp_low: int = 0,
    batch: Dim = 1,
    conv16: str | None = None,
    threads: int | None = None,
    fused: bool = True,
) -> list[Moment]:
    """Every moment of one training step (see the module docstring).

    ``saved``: per layer in execution order, its saved tensors (``SavedTensor``: storage, fixed,
    per_sample, first), as the training-memory pass resolved them (a checkpointed block's first
    layer lists the block's inputs, the rest of the block nothing); ``outputs``: the layers whose
    outputs the caller holds, each with a gradient the caller also holds; ``weight_elt``: bytes
    per element of a weight's gradient; ``checkpointed``: layer -> its checkpointed block;
    ``inner``: block -> every storage its layers save when it is run again (-> fixed, per
    sample, the row of its first keeper); ``repeats``: a block repeated a symbolic number of
    times -> (count, the saved bytes of one copy): its walk is one copy's, with the other copies'
    saved tensors alive; ``loss``: ``none`` (the caller calls ``output.backward(gradient)`` with a
    gradient it holds) or ``cross_entropy`` (:func:`cross_entropy_sizes`: ``F.cross_entropy`` of
    each output against int64 targets the caller holds; the log-softmax it keeps, and in its
    backward the log-softmax's gradient and the logits', which then flows into the model);
    ``amp_low``: under autocast, the bytes of its low dtype (0: no autocast); ``batch``,
    ``conv16``, ``threads`` and ``fused``: what decides the kernels torch picks and their buffers
    (:class:`archcalc.layers.base.Run`)."""
    nodes = node_table(G)
    order: list[str] = G.graph["order"]
    checkpointed = checkpointed or {}
    inner = inner or {}
    repeats = repeats or {}
    moments: list[Moment] = []
    alive = _Alive()

    memo: dict[Any, Any] = {}

    def asked(node: dict[str, Any], what: str, *args: Any) -> Any:
        """The layer's answer (memoized by its formula key, as the passes do)."""
        key = (node.get("formula_key"), what, node.get("elt"), grad_order.get(name_of.get(id(node), "")), *args)
        got = memo.get(key, memo)
        if got is memo or key[0] is None:
            layer, ins = node["layer"], node["in_shapes"]
            if what == "flow":
                got = layer.grad_flow(ins)
            elif what == "autocast":
                got = layer.autocast(device)
            elif what == "weights":
                got = [(w, prod(shape)) for w, shape in layer.weights(ins).items()]
            else:
                run = Run(node.get("elt") or act, batch, conv16, threads, grad_order.get(name_of.get(id(node), "")), fused)
                phase, input_grad, *others = args
                got = [_bytes(ws, node, act) for ws in layer.workspace(ins, node["shape"], device, phase, input_grad, run, *others)]
            memo[key] = got
        return got

    grad_order = _grad_orders(nodes, order, outputs, as_int(batch))
    name_of = {id(nodes[n]): n for n in grad_order}
    token_ids = any(nodes[n]["layer"].takes_indices for n in order if INPUT in nodes[n]["inputs"])

    def out_size(n: str) -> _Size:
        node = nodes[n]
        if n == INPUT and token_ids:  # token ids: int64
            return (0, prod(node["shape"]) * 8)
        if node["layer"].source if n != INPUT else False:
            return (0, 0)
        b = prod(node["shape"]) * (node.get("elt") or act)
        return (b, 0) if n != INPUT and node["layer"].same_for_every_sample() else (0, b)

    def grad_size(n: str) -> _Size:
        """A gradient of n's output: of the batch's shape even where the output is one tensor for the batch,
        expanded (learned positions): its readers see (N, ...), and their gradients are so (review s10 #11)."""
        f, p = out_size(n)
        return (0, f + p) if f != 0 else (f, p)

    # where each saved storage is released in the backward: the row of its first keeper (the
    # last of its keepers to run backward)
    release: dict[str, int] = {}
    release_at: dict[int, list[str]] = {}
    for i, (_name, kept) in enumerate(saved):
        for s in kept or ():
            if s.first:
                release[s.storage] = i
                release_at.setdefault(i, []).append(s.storage)
    held = {nodes[o]["storage"] for o in outputs} | {INPUT}  # the caller holds them
    readers: dict[str, int] = {}  # storage -> the last row that reads a tensor in it
    for i, n in enumerate(order):
        readers[nodes[n]["storage"]] = max(readers.get(nodes[n]["storage"], i), i)
        for src in nodes[n]["inputs"]:
            st = nodes[src]["storage"]
            readers[st] = max(readers.get(st, i), i)
    free_after: dict[int, list[str]] = {}
    for st, last in readers.items():
        if st not in release and st not in held:
            free_after.setdefault(last, []).append(st)

    first_of_block: dict[str, int] = {}
    for i, n in enumerate(order):
        block = _repeat_block(n, nodes[n])
        if block is not None and block in repeats:
            first_of_block.setdefault(block, i)

    # torch.utils.checkpoint (preserve_rng_state, its default) keeps the CPU generator's state, torch.get_rng_state(),
    # from the block's forward until its backward has run (the recomputation's closure holds it): on CPU, memory
    # of the device (review s9 #11: transformer_lm, s 64, h 64, 4 heads, V 100, 3 layers, batch 2, with
    # transformer.h.1 checkpointed measured 2,738,368 B, 4,032 more than the 2,734,336 counted without it, which counted
    # the token ids twice: now 2,738,368)
    rng_at: dict[int, str] = {}
    if device == "cpu":
        for i, n in enumerate(order):
            blk = checkpointed.get(n)
            if blk is not None and blk not in rng_at.values():
                rng_at[i] = blk
                release_at.setdefault(i, []).append("rng_state:" + blk)

    # ---- forward
    alive.add(INPUT, out_size(INPUT))
    for i, n in enumerate(order):
        node = nodes[n]
        if i in rng_at:
            alive.add("rng_state:" + rng_at[i], (CPU_RNG_STATE_BYTES, 0))
        block = _repeat_block(n, node)
        if block is not None and block in repeats and first_of_block[block] == i:
            count, (f, p) = repeats[block]
            alive.add("copies:" + block, ((count - 1) * f, (count - 1) * p))  # the other copies' saved tensors
        if node["storage"] == n:
            alive.add(n, out_size(n))
        for s in saved[i][1] or ():
            if s.first:
                alive.add(s.storage, (s.fixed, s.per_sample))
        for ws in asked(node, "ws", "forward", False, (), (), tuple(node["inputs"].index(src) for src in node["inputs"])
                        if node["layer"].workspace_reads_views else ()):
            moments.append(Moment(alive.fixed + ws[0], alive.per + ws[1], "forward", n))
        for st in free_after.get(i, ()):
            alive.free(st)

    # a weight two layers share (GPT-2's lm_head reads the token embedding's): autograd adds its
    # gradients in the input buffer of its AccumulateGrad, which runs once every user has run
    # backward: the later users' gradients wait for the first user's, then their sum is a new tensor
    first_user: dict[str, int] = {}
    for i, n in enumerate(order):
        for key, _size in _weight_keys(n, nodes[n], asked(nodes[n], "weights"), weight_elt):
            first_user.setdefault(key, i)
    waiting: dict[str, list[str]] = {}
    in_place: set[str] = set()  # shared weights whose waiting gradient is a dense tensor of its own

    # ---- the loss, and the backward
    pending: dict[str, _Grad] = {}
    if loss == "cross_entropy":
        for o in outputs:  # forward: log_softmax (kept for its backward), nll_loss (a scalar, and its total weight kept)
            log_probs, targets, scalar = cross_entropy_sizes(nodes[o], act)
            alive.add("targets:" + o, (0, targets))
            alive.add("log_softmax:" + o, (0, log_probs))
            alive.add("loss:" + o, (2 * scalar, 0))
            moments.append(Moment(alive.fixed, alive.per, "forward", "loss"))
        for o in reversed(outputs):  # backward: nll_loss's gradient (zeros, scattered), then log_softmax's
            if not nodes[o]["grad"]:
                continue
            log_probs, _, scalar = cross_entropy_sizes(nodes[o], act)
            alive.add("grad:loss:" + o, (scalar, 0))
            alive.add("grad:log_softmax:" + o, (0, log_probs))
            key = "grad:" + o
            alive.add(key, grad_size(o))
            moments.append(Moment(alive.fixed, alive.per, "backward", "loss"))
            alive.free("grad:log_softmax:" + o)
            alive.free("log_softmax:" + o)
            alive.free("grad:loss:" + o)
            pending[o] = _Grad(key, True)
    else:
        for o in outputs:
            if not nodes[o]["grad"]:
                continue
            key = "grad:" + o
            alive.add(key, grad_size(o), refs=2)  # the caller holds it too
            pending[o] = _Grad(key, True)
    recomputed: set[str] = set()
    for i in range(len(order) - 1, -1, -1):
        n = order[i]
        node = nodes[n]
        got = pending.pop(n, None)
        if got is None or not node["grad"]:
            continue
        block = checkpointed.get(n)
        if block is not None and block not in recomputed:  # its first layer to run backward: the block runs forward again
            recomputed.add(block)
            for st, (f, p, row) in inner[block].items():
                if st not in alive.bytes:  # a new tensor (the one the forward made was not kept)
                    alive.add(st, (f, p))
                    release_at.setdefault(row, []).append(st)
            moments.append(Moment(alive.fixed, alive.per, "recompute", block))
        made: list[tuple[str, _Grad]] = []
        casts: list[tuple[str, _Size]] = []
        for j, (src, how) in enumerate(zip(node["inputs"], asked(node, "flow"), strict=True)):
            if src == INPUT or not nodes[src]["grad"]:
                continue
            if how == "new":
                key = f"grad:{n}:{j}"
                alive.add(key, grad_size(src))
                made.append((src, _Grad(key, True)))
            elif amp_low and (node.get("elt") or act) != (nodes[src].get("elt") or act):
                # the gradient handed on has this layer's dtype (an add promoted to fp32) and the input's is
                # another (a linear's bf16 output): the engine casts it (validate_outputs), a new tensor
                key = f"grad:{n}:{j}:cast"
                casts.append((key, grad_size(src)))
                made.append((src, _Grad(key, True)))
            else:
                alive.add(got.key, (0, 0))  # one more reference
                made.append((src, _Grad(got.key, got.dense and how == "same")))
        wkeys = _weight_keys(n, node, asked(node, "weights"), weight_elt)
        wgrad: Dim = sum((size for _key, size in wkeys), start=0)
        cast = 0  # under autocast a layer run in the low dtype makes its weights' gradients in it, then ToCopyBackward casts them up
        if amp_low and wkeys and asked(node, "autocast") == "lower":
            cast, wgrad = wgrad, wgrad * amp_low // weight_elt
        input_grad = bool(node["inputs"]) and node["inputs"][0] != INPUT and bool(nodes[node["inputs"][0]]["grad"])
        # inputs 1, 2, ...: whether a new gradient is counted made for each
        others = tuple(f"grad:{n}:{j}" in alive.bytes for j in range(1, len(node["inputs"]))) if len(node["inputs"]) > 1 else ()
        released = node["layer"].grad_released_from
        # its output's gradient, held here alone (not by the caller, nor a view of a tensor another holds)
        alone = released is not None and got.dense and alive.refs.get(got.key) == 1 and got.key in alive.bytes
        freed_from = node["layer"].saved_released_from
        own: _Size = (0, 0)  # the saved tensors it is the last to need, which its own nodes release as they run
        if freed_from is not None:
            mine = [alive.bytes[st] for st in release_at.get(i, ()) if st in alive.bytes and st not in held and not st.startswith("rng_state:")]
            own = (sum((f for f, _ in mine), start=0), sum((p for _, p in mine), start=0))
        views: tuple[bool, ...] = ()
        aliases: tuple[int, ...] = ()
        if node["layer"].workspace_reads_views:  # which inputs its saved matmul inputs are (not copies); which are one tensor
            kept = saved[i][1] or ()
            views = tuple(any(s.saved.input == j and s.saved.merge is not None and s.storage == nodes[src]["storage"] for s in kept)
                          for j, src in enumerate(node["inputs"]))  # fmt: skip
            aliases = tuple(node["inputs"].index(src) for src in node["inputs"])
        for j, ws in enumerate(asked(node, "ws", "backward", input_grad, others, views, aliases)):
            gf, gp = alive.bytes[got.key] if alone and released is not None and j >= released else (0, 0)
            sf, sp = own if freed_from is not None and j >= freed_from else (0, 0)
            moments.append(Moment(alive.fixed + wgrad + ws[0] - gf - sf, alive.per + ws[1] - gp - sp, "backward", n))
        if casts:  # cast as the layer's backward returns, its output gradient still alive
            for key, cast_size in casts:
                alive.add(key, cast_size)
            moments.append(Moment(alive.fixed + wgrad, alive.per, "backward", n))
        alive.drop(got.key)
        for st in release_at.pop(i, ()):
            if st not in held:
                alive.free(st)
        if cast:  # ToCopyBackward runs next (its sequence number is the layer's, less one): both gradients alive
            moments.append(Moment(alive.fixed + wgrad + cast, alive.per, "backward", n))
            wgrad = cast
        for key, size in wkeys:
            if first_user[key] < i:  # waits in AccumulateGrad's buffer for the first user's
                alive.add(f"wgrad:{key}:{n}", (size, 0))
                waiting.setdefault(key, []).append(f"wgrad:{key}:{n}")
                if cast:  # ToCopyBackward's own new tensor: the next gradient is added into it in place
                    in_place.add(key)
            elif key in waiting:  # the first user: its gradient and the waiting ones are added (a transposed one: into a new tensor)
                if key not in in_place:
                    moments.append(Moment(alive.fixed + wgrad + size, alive.per, "backward", n))
                for w in waiting.pop(key):
                    alive.free(w)
        blk = _repeat_block(n, node)
        if blk is not None and blk in repeats and first_of_block[blk] == i:
            alive.free("copies:" + blk)
        for src, g in made:
            old = pending.get(src)
            if old is None:
                pending[src] = g
            elif old.dense and alive.refs.get(old.key) == 1:  # added into the buffer's tensor in place
                alive.drop(g.key)
            else:  # their sum is a new tensor
                key = f"grad:{n}:sum:{src}"
                alive.add(key, grad_size(src))
                moments.append(Moment(alive.fixed, alive.per, "backward", n))
                alive.drop(old.key)
                alive.drop(g.key)
                pending[src] = _Grad(key, True)
    return moments


def _grad_orders(
    nodes: Mapping[str, dict[str, Any]], order: Sequence[str], outputs: Sequence[str], batch: int | None = None
) -> dict[str, tuple[int, ...]]:
    """Layer -> the physical order of the per-sample axes of its output's gradient, where it is not the
    logical order (a kernel that reads the gradient in another layout copies it, flash attention's
    backward): for an output the caller holds, the output's own layout (``ones_like`` keeps its strides;
    Run.grad_order); for a tensor whose readers all reorder it the same way (a transpose back), that
    reordering (the reader's gradient, contiguous, seen through its inverse); for a tensor whose readers all hand
    it their own output's gradient as it is (``grad_flow`` "same", an add of tensors of one shape), that gradient's
    order (review s10 #11: positions and tokens summed, then transposed: the token embedding's backward copies it)."""
    readers: dict[str, list[tuple[str, int]]] = {}
    for n in order:
        for j, src in enumerate(nodes[n]["inputs"]):
            readers.setdefault(src, []).append((n, j))
    got: dict[str, tuple[int, ...]] = {}
    for n in reversed(order):  # a reader's order is known before its inputs'
        node = nodes[n]
        if n in outputs:
            perm = node.get("perm")
            if isinstance(perm, tuple) and node.get("storage") == n:
                got[n] = perm
            continue
        perms: set[tuple[int, ...] | None] = set()
        for r, j in readers.get(n, ()):
            reader = nodes[r]
            p = reader["layer"].permutation(reader["in_shapes"])
            if p is not None and batch == 1 and _mm_keeps_layout(nodes, readers.get(r, [])):
                p = None
            if p is None and r in got and reader["shape"] == node["shape"] and reader["layer"].grad_flow(reader["in_shapes"])[j] == "same":
                p = got[r]
            perms.add(None if p is None else tuple(p))
        if len(perms) == 1:
            (perm,) = perms
            if perm is not None:
                got[n] = perm
    return got


def _mm_keeps_layout(nodes: Mapping[str, dict[str, Any]], readers: Sequence[tuple[str, int]]) -> bool:
    """Whether, at batch 1, every reader of a reordered (transposed) view is a linear of a 2-D per-sample input:
    it reads the (1, A, B) view as an (A, B) matrix as it lies, and MmBackward0 makes that matrix's gradient in
    its layout (mm_mat1_backward), so the gradient reaching the tensor before the transpose is dense (measured:
    token embedding, transpose, linear, batch 1: no copy in the embedding's backward; at batch 2 linear's reshape
    copies the input, and its gradient comes back transposed)."""
    return bool(readers) and all(nodes[q]["layer"].kind == "linear" and len(nodes[q]["in_shapes"][0]) == 2 for q, _ in readers)


def cross_entropy_sizes(node: dict[str, Any], act: int) -> tuple[Dim, Dim, int]:
    """Bytes per sample of ``F.cross_entropy``'s log-softmax of a layer's output (its logits) and
    of the int64 targets, and the bytes of one of its 0-d tensors (the loss, its gradient, the
    total weight nll_loss keeps) in its dtype: the classes are the first per-sample axis (``(C,)``, or a map ``(C, H,
    W)`` as torch reads it), except for a ``(positions, vocabulary)`` output, which language models
    flatten to ``(N*positions, vocabulary)``; the log-softmax has the logits' dtype (fp32 under
    autocast, which runs it in fp32)."""
    shape = node["shape"]
    positions = shape[:-1] if len(shape) == 2 else shape[1:]
    elt = node.get("elt")  # set under autocast
    width = max(elt, 4) if elt else act
    return prod(shape) * width, prod(positions) * 8, width


def _bytes(elements: tuple[Dim, Dim], node: dict[str, Any], act: int) -> _Size:
    """A workspace's bytes (``Layer.workspace`` counts elements of the output's dtype)."""
    elt = node.get("elt") or act
    return (elements[0] * elt, elements[1] * elt)


def _repeat_block(name: str, node: dict[str, Any]) -> str | None:
    times = node.get("repeat", 1)
    if type(times) is int and times == 1:
        return None
    return name.rsplit(".*.", 1)[0]


def _weight_keys(name: str, node: dict[str, Any], weights: list[tuple[str, Dim]], elt: int) -> list[tuple[str, Dim]]:
    """The weights its backward makes gradients for, each as (the parameter: owner.weight, bytes);
    a tied weight is its owner's (``node["tied"]``: weight name -> owner layer)."""
    if not weights:
        return []
    tied = node.get("tied") or {}
    return [(f"{tied[w]}.weight" if w in tied else f"{name}.{w}", n * elt) for w, n in weights]


def upper_envelope(lines: Sequence[tuple[Dim, Dim]]) -> list[tuple[Dim, Dim]]:
    """The integer lines ``f + p*N`` that are the largest for some batch ``N >= 1``, by slope."""
    best: dict[Any, Any] = {}
    for f, p in lines:
        if p not in best or f > best[p]:
            best[p] = f
    cand = sorted((int(p), int(f)) for p, f in best.items())
    # value at N=1 decides among lines for small N; keep a line if it beats every steeper-or-equal
    # one somewhere at N >= 1: standard upper hull over x in [1, inf)
    hull: list[tuple[int, int]] = []
    for p, f in cand:
        while hull:
            p0, f0 = hull[-1]
            if f0 + p0 <= f + p:  # the new, steeper line is at least as large already at N = 1
                hull.pop()
                continue
            if len(hull) >= 2:
                p1, f1 = hull[-2]
                # hull[-1] is never the largest if the new line overtakes hull[-2] no later than hull[-1] does
                if (f1 - f) * (p0 - p1) <= (f1 - f0) * (p - p1):
                    hull.pop()
                    continue
            break
        hull.append((p, f))
    return [(f, p) for p, f in hull]


__all__ = ["Moment", "cross_entropy_sizes", "step_moments", "upper_envelope"]
