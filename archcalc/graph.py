"""Compile a spec into a layer graph: expand blocks, bind symbols, validate, order.

:func:`compile_spec` returns a ``networkx.DiGraph``; :func:`compile_graph` returns the same graph as
a :class:`LayerGraph`, plain dicts shaped like the DiGraph where the passes touch it (``G.graph``,
``G.nodes[name]``), so that analysing a spec never imports networkx (its import alone costs more
than the whole ResNet-50 analysis).  The passes and ``report_from_graph`` take either.

One node per layer (plus the ``input`` node).  Node attributes:

* ``layer``: the layer model with every dimension string evaluated (int or sympy);
* ``inputs``: its input node names, in order (a DiGraph cannot hold repeated edges, so the
  ordered list lives on the node; edges carry the structure for graph algorithms);
* ``index``: declaration order; ``training_only``: True for auxiliary heads;
* ``scope``: the block calls the layer sits in, outermost first (``()`` at the top level); a call
  with ``repeat`` contributes its name and then its copy's (``("layer3", "layer3.5")``);
* ``repeat`` (only where it is not 1): how many times the layer runs, a symbol, for the layers of a
  block called with a symbolic repeat count (``"repeat": "l"``): the block is laid out once, its
  layers named ``<call>.*.<layer>`` (scope ``("<call>", "<call>.*")``), and the totals count each
  of them ``l`` times.

Graph attributes: ``name``, ``input_shape``, ``order`` (topological order, computed once here),
``output`` (the last layer), ``repeats`` (call name -> copies, for the calls that say ``repeat``;
a symbol for a symbolic count), ``symbolic_repeats`` (one :class:`SymbolicRepeat` per block call
with a symbolic count, innermost first; the shapes pass checks that each maps its input shape to
itself).  Everything about names, references and acyclicity is checked here, once; the passes can
rely on it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from .dims import Dim, DimError, as_int, dim_text, is_symbolic, known_sign, parse_dim
from .errors import SpecError
from .layers.base import Layer, traits
from .spec import MAX_RANK, Architecture, BlockCall, BlockDef

if TYPE_CHECKING:
    import networkx as nx

INPUT = "input"
MAX_LAYERS = 1_000_000


class LayerGraph:
    """A compiled network as plain dicts: ``graph`` (graph attributes) and ``nodes`` (name -> node
    attributes, the ``input`` node first, then declaration order).  Edges are the nodes' ``inputs``.

    It reads like the ``networkx.DiGraph`` that :meth:`to_networkx` returns (``G.graph["order"]``,
    ``G.nodes[name]["shape"]``, ``G.predecessors(name)``, ``G.edges()``), so passes written for one
    run on the other.
    """

    __slots__ = ("graph", "nodes")

    def __init__(self, graph: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> None:
        self.graph = graph
        self.nodes = nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __repr__(self) -> str:
        return f"LayerGraph({self.graph.get('name')!r}, {len(self.nodes)} nodes)"

    def predecessors(self, name: str) -> Iterator[str]:
        return iter(dict.fromkeys(self.nodes[name]["inputs"]))

    def successors(self, name: str) -> Iterator[str]:
        return (n for n, d in self.nodes.items() if name in d["inputs"])

    def edges(self) -> Iterator[tuple[str, str]]:
        """(source, layer) pairs, once each (a layer that reads one input twice has one edge)."""
        for name, d in self.nodes.items():
            for src in dict.fromkeys(d["inputs"]):
                yield src, name

    def to_networkx(self) -> nx.DiGraph[str]:
        """The same graph as a ``networkx.DiGraph`` (node attribute dicts copied, values shared)."""
        import networkx as nx

        G: nx.DiGraph[str] = nx.DiGraph(**self.graph)
        G.add_nodes_from(self.nodes.items())
        G.add_edges_from(self.edges())
        return G


Graph: TypeAlias = "LayerGraph | nx.DiGraph[str]"


def _param_value(raw: Any, env: Mapping[str, Any], where: str, call: str) -> Any:
    if isinstance(raw, str):
        try:
            return parse_dim(raw, env)  # (a value past MAX_DIGITS digits is an error here: p1 = p0*p0 ...)
        except DimError as e:
            raise SpecError(str(e), layer=call, field=where) from None
    return raw


def _unaddressable(name: str) -> str | None:
    """Why ``check`` and ``explain`` could not name this layer (``total.params`` is the network's
    total, ``a..b.params`` a range of layers), or None."""
    if name == "total":
        return "'total' is reserved for the network's total (check total.params); rename the layer"
    if ".." in name or name.startswith(".") or name.endswith("."):
        return "'..' marks a range of layers (check first..last.params), and '.' joins a block's name to its layers; rename the layer"
    return None


def _env_key(env: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(env.items()))


def _repeat_value(call: BlockCall, env: Mapping[str, Any], full: str | None = None) -> Dim:
    """The call's repeat count: an int in range, or a symbolic count known to be at least 1."""
    where = full or call.name
    v = _param_value(call.repeat, env, "repeat", where)
    n = as_int(v) if not isinstance(v, bool) else None
    if n is None and not isinstance(v, bool) and known_sign(v) == 1:  # a symbol: "l", "2*l" (positive integers: at least 1)
        return v
    if n is None or not 1 <= n <= MAX_LAYERS:
        extra = "" if isinstance(call.repeat, int) else " (or a symbol, which is at least 1)"
        raise SpecError(f"repeat must be a number between 1 and {MAX_LAYERS}{extra}, got {call.repeat!r}", layer=where, field="repeat")
    return n


def _repeat_count(call: BlockCall, env: Mapping[str, Any]) -> int:
    """How many copies expansion lays out: the count, or one for a symbolic count (see :class:`SymbolicRepeat`)."""
    n = _repeat_value(call, env)
    return n if type(n) is int else 1


class SymbolicRepeat(NamedTuple):
    """A block call whose repeat count is a symbol: its block laid out once and run ``count`` times.

    ``start`` is the node the first copy reads, ``output`` the block's output node, ``members`` its
    layers (nested calls' layers included), in declaration order.  Each copy must map its input
    shape to itself (checked by the shapes pass), so that every copy costs the same."""

    call: str
    block: str
    times: Dim
    start: str
    output: str
    members: tuple[str, ...]
    reads_outside: bool  # some member reads a layer outside the block (other than its input)


def _kept(entry: Layer | BlockCall, env: Mapping[str, Any], name: str) -> bool:
    if entry.when is None and entry.unless is None:
        return True
    for attr, want in (("when", True), ("unless", False)):
        flag = getattr(entry, attr)
        if flag is None:
            continue
        if flag not in env or not isinstance(env[flag], bool):
            raise SpecError(f"{flag!r} is not a true/false parameter of the enclosing block", layer=name, field=attr)
        if env[flag] is not want:
            return False
    return True


class _Template(NamedTuple):
    """A leaf block's layout in one environment: (local name, bound layer, input refs, training only,
    a learned tensor (``Layer.source``)) per kept layer, refs being None (the layer before) or
    (local name, True) / (global name, False) / (None, True) for the block's input."""

    layers: list[tuple[str, Layer, list[tuple[str | None, bool]] | None, bool, bool]]
    forward: bool  # every copy reads only layers declared before the reader (see _Compiler.forward)


def _template(pending: list[tuple[str, Layer, list[str] | None, bool]], local: Mapping[str, str], forward: bool) -> _Template:
    names = {full: name for name, full in local.items() if name != INPUT}
    layers = []
    for full, bound, refs, training in pending:
        kinds: list[tuple[str | None, bool]] | None = None
        if refs is not None:
            kinds = [(None, True) if r == INPUT else (r, True) if r in local else (r, False) for r in refs]
            forward = forward and all(local_ref for _, local_ref in kinds)  # a global name: check each copy
        layers.append((names[full], bound, kinds, training, bound.source))
    return _Template(layers, forward)


class _Compiler:
    def __init__(self, arch: Architecture, env: dict[str, Any]) -> None:
        self.arch = arch
        self.env = env
        self.nodes: dict[str, dict[str, Any]] = {}  # name -> node attributes (see the module docstring)
        self.aliases: dict[str, str] = {}  # block-call name -> its output node
        # repeated block copies bind the same entry in the same environment: bind once, share
        self.bound: dict[tuple[int, tuple[tuple[str, Any], ...]], Layer] = {}
        # ... and a block without nested calls expands the same way each time: keep its layout
        self.templates: dict[tuple[int, tuple[tuple[str, Any], ...]], _Template] = {}
        # every layer reads only layers declared before it: declaration order is then topological
        self.forward = True
        self.counts: dict[tuple[int, tuple[tuple[str, Any], ...]], int] = {}  # (entries, env) -> layers they expand to
        self.repeats: dict[str, Dim] = {}  # call name -> copies, for calls that say `repeat` (a symbol: see SymbolicRepeat)
        self.symbolic: list[SymbolicRepeat] = []
        self.ties = False  # some bound layer uses another layer's weight (tie_weight): see _resolve_ties
        self.circular = False  # some bound layer pads circularly (graph attribute ``circular``: the receptive-field pass follows rings)

    # -- size guard: count what expansion would produce, without expanding --------------------
    def count(self, entries: Sequence[Layer | BlockCall], env: Mapping[str, Any], stack: tuple[str, ...], prefix: str = "") -> int:
        """The number of layers ``entries`` expand to in ``env``, computed with the values expansion
        binds (a call's args, its first-copy overrides, then the block's defaults): a block whose
        default n=1 is called with n=10000 counts 10000.  Past :data:`MAX_LAYERS`, an error."""
        key = (id(entries), _env_key(env))
        known = self.counts.get(key)
        if known is not None:
            return known
        total = 0
        for i, e in enumerate(entries):
            d = e.__dict__  # (a pydantic model's attributes, read without its __getattr__ hook)
            full = prefix + (d["name"] or f"{d['type'] if isinstance(e, Layer) else 'block'}{i}")
            if (d["when"] is not None or d["unless"] is not None) and not _kept(e, env, full):
                continue
            if isinstance(e, BlockCall):
                block = self.block(e)
                if e.block in stack:
                    raise SpecError(f"block {e.block!r} uses itself ({' -> '.join([*stack, e.block])})", layer=e.name, field="block")
                reps = _repeat_count(e, env)
                inner = self.count(block.layers, self.call_env(e, block, env, full, 0), (*stack, e.block), full + ".")
                if reps > 1 and e.first:  # the first copy differs: count the others with the plain args
                    inner += (reps - 1) * self.count(block.layers, self.call_env(e, block, env, full, 1), (*stack, e.block), full + ".")
                else:
                    inner *= reps
                total += inner
            else:
                total += 1
            if total > MAX_LAYERS:
                raise SpecError(f"expands to more than {MAX_LAYERS:,} layers; refusing to expand", layer=full, field="repeat")
        self.counts[key] = total
        return total

    def call_env(self, call: BlockCall, block: BlockDef, env: Mapping[str, Any], full: str, r: int) -> dict[str, Any]:
        """The environment copy ``r`` of a block call expands in: the global ``--set`` values, the
        caller's args (and, for copy 0, ``first``) evaluated in the caller's scope, then the block's
        defaults evaluated in the block's scope ({"width": "2*planes"} sees this call's planes)."""
        unknown = (set(call.args) | set(call.first)) - set(block.params)
        if unknown:
            raise SpecError(
                f"block {call.block!r} has no parameter {sorted(unknown)[0]!r} (parameters: {', '.join(block.params)})", layer=full, field="args"
            )
        given = {**call.args, **(call.first if r == 0 else {})}
        missing = [k for k, v in {**block.params, **given}.items() if v is None]
        if missing:
            raise SpecError(f"block {call.block!r} needs a value for parameter {missing[0]!r}", layer=full, field="args")
        inner = dict(self.env)
        inner.update({k: _param_value(v, env, f"args.{k}", full) for k, v in given.items()})
        for k, v in block.params.items():
            if k not in given:
                inner[k] = _param_value(v, inner, f"params.{k}", full)
        return inner

    def block(self, call: BlockCall) -> BlockDef:
        if call.block not in self.arch.blocks:
            known = ", ".join(sorted(self.arch.blocks)) or "none defined"
            raise SpecError(f"unknown block {call.block!r} (blocks: {known})", layer=call.name, field="block")
        return self.arch.blocks[call.block]

    # -- expansion ---------------------------------------------------------------------------
    def expand(self, entries: Sequence[Layer | BlockCall], env: dict[str, Any], prefix: str, scope_input: str, scope: tuple[str, ...] = ()) -> str:
        """Add the nodes of ``entries``; return the name of the scope's last node."""
        env_key = _env_key(env)
        template = self.templates.get((id(entries), env_key))
        if template is not None:
            return self.instantiate(template, prefix, scope_input, scope)
        local: dict[str, str] = {INPUT: scope_input}
        pending: list[tuple[str, Layer, list[str] | None, bool]] = []
        prev = scope_input
        nodes = self.nodes
        for i, entry in enumerate(entries):
            d = entry.__dict__  # (a pydantic model's attributes, read without its __getattr__ hook: a 100,000-layer spec reads 500,000)
            local_name = d["name"] or f"{d['type'] if isinstance(entry, Layer) else 'block'}{i}"
            full = prefix + local_name
            if (d["when"] is not None or d["unless"] is not None) and not _kept(entry, env, full):
                continue
            if local_name == INPUT:
                raise SpecError(f"{INPUT!r} is reserved for the network's (or block's) input", layer=full, field="name")
            unreachable = (local_name == "total" or "." in local_name) and _unaddressable(local_name)
            if unreachable:
                raise SpecError(f"layer name {local_name!r}: {unreachable}", layer=full, field="name")
            if local_name in local:
                raise SpecError(f"duplicate layer name {full!r}", layer=full, field="name")
            if isinstance(entry, BlockCall):
                start = self.resolve_one(entry.inputs[0], local, full) if entry.inputs else prev
                if entry.inputs and len(entry.inputs) != 1:
                    raise SpecError("a block takes exactly one input", layer=full, field="inputs")
                out = self.expand_call(entry, env, full, start, scope)
                self.aliases[full] = out
                local[local_name] = out
                if not entry.training_only:  # an auxiliary head is a side branch: the chain goes on past it
                    prev = out
                continue
            key = (id(entry), env_key)
            cached = self.bound.get(key) if prefix else None  # (the network's own layers are bound once: no cache)
            if cached is not None:
                bound = cached
            else:
                try:
                    bound = entry.bind(env)
                except SpecError as e:
                    raise e.located(layer=full) from None
                if prefix:
                    self.bound[key] = bound
            kind = traits(type(bound))
            if kind.tied_weights and bound.tied_weights():
                self.ties = True
            if kind.padding_mode and bound.__dict__["padding_mode"] == "circular":
                self.circular = True
            local[local_name] = full
            training = d["training_only"]
            pending.append((full, bound, d["inputs"], training))
            if full in nodes:  # a name written out that a block call also expands to ('b.r' and block 'b' with layer 'r')
                raise SpecError(f"duplicate layer name {full!r} (a block call expands to the same name)", layer=full, field="name")
            # default input: the previous entry of this scope (auxiliary heads are side branches)
            source = kind.source  # a learned tensor: no input unless it names one, and not on the chain
            nodes[full] = {"layer": bound, "inputs": [] if source else [prev], "training_only": training, "index": len(nodes), "scope": scope}
            if not training and not source:
                prev = full
        forward = True
        for full, bound, refs, _ in pending:  # forward references resolve after the scope
            attrs = self.nodes[full]
            if refs is not None:
                attrs["inputs"] = [self.resolve_one(r, local, full) for r in refs]
                forward = forward and self._reads_earlier(attrs)
            ins = attrs["inputs"]
            lo, hi = bound.n_inputs
            if len(ins) < lo or (hi is not None and len(ins) > hi):
                want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
                raise SpecError(f"takes {want} input(s), got {len(ins)}", layer=full, field="inputs")
        self.forward = self.forward and forward
        if prefix and not any(isinstance(e, BlockCall) for e in entries):
            self.templates[id(entries), env_key] = _template(pending, local, forward)
        return prev

    def _reads_earlier(self, attrs: dict[str, Any]) -> bool:
        return all(src == INPUT or self.nodes[src]["index"] < attrs["index"] for src in attrs["inputs"])

    def instantiate(self, template: _Template, prefix: str, scope_input: str, scope: tuple[str, ...]) -> str:
        """Another copy of a block laid out before: the same bound layers under a new prefix."""
        nodes = self.nodes
        prev = scope_input
        made: dict[str, str] = {}  # local name -> this copy's node name (the key string itself, hashed once for every later lookup)
        for local_name, bound, refs, training, source in template.layers:
            full = prefix + local_name
            if full in nodes:
                raise SpecError(f"duplicate layer name {full!r} (a block call expands to the same name)", layer=full, field="name")
            if refs is None:
                ins = [] if source else [prev]
            else:
                ins = [scope_input if r is None else (made.get(r) or prefix + r) if local else self.resolve_one(r, {}, full) for r, local in refs]
            made[local_name] = full
            nodes[full] = attrs = {"layer": bound, "inputs": ins, "training_only": training, "index": len(nodes), "scope": scope}
            if not template.forward and self.forward:
                self.forward = self._reads_earlier(attrs)
            if not training and not source:
                prev = full
        return prev

    def expand_call(self, call: BlockCall, env: dict[str, Any], full: str, start: str, scope: tuple[str, ...], one_copy: bool = False) -> str:
        block = self.block(call)
        out = start
        # '<call>.<i>.<layer>' when the call says how many copies (torchvision's layer1.0.conv1),
        # '<call>.<layer>' for a single use without `repeat` (torchvision's Mixed_5b.branch1x1)
        indexed = "repeat" in call.model_fields_set and not one_copy
        copies = 1 if one_copy else _repeat_value(call, env, full)
        if indexed:
            self.repeats[full] = copies
        if type(copies) is not int:
            return self.expand_symbolic(call, env, full, start, copies, scope)
        for r in range(copies):
            inner = self.call_env(call, block, env, full, r)
            prefix = f"{full}.{r}." if indexed else f"{full}."
            inner_scope = (*scope, full, f"{full}.{r}") if indexed else (*scope, full)
            out = self.expand(block.layers, inner, prefix, out, inner_scope)
            if block.output is not None:
                target = prefix + block.output
                if target not in self.nodes and target not in self.aliases:
                    raise SpecError(f"block output {block.output!r} is not a layer of block {call.block!r}", layer=full, field="output")
                out = self.aliases.get(target, target)
        if call.training_only:
            for name, attrs in self.nodes.items():
                if name.startswith(full + "."):
                    attrs["training_only"] = True
        return out

    def expand_symbolic(self, call: BlockCall, env: dict[str, Any], full: str, start: str, count: Dim, scope: tuple[str, ...]) -> str:
        """A block called ``count`` times, ``count`` a symbol: one copy, named ``<call>.*.<layer>``,
        whose layers carry the multiplier (node attribute ``repeat``)."""
        if call.first:
            raise SpecError(
                f"'first' changes the first copy, but a symbolic repeat ({call.repeat!r}) needs identical copies; "
                f"give {call.repeat!r} a number with --set to expand them",
                layer=full,
                field="first",
            )
        if call.training_only:
            raise SpecError(f"a training-only block cannot repeat a symbolic number of times ({call.repeat!r})", layer=full, field="repeat")
        before = len(self.nodes)
        out = self.expand_call(call, env, full + ".*", start, (*scope, full), one_copy=True)
        members = tuple(list(self.nodes)[before:])
        for name in members:
            attrs = self.nodes[name]
            attrs["repeat"] = attrs.get("repeat", 1) * count
        self.symbolic.append(SymbolicRepeat(full, call.block, count, start, out, members, False))
        return out

    def resolve_one(self, ref: str, local: Mapping[str, str], who: str) -> str:
        if ref in local:
            return local[ref]
        if ref in self.nodes or ref == INPUT:
            return ref
        if ref in self.aliases:
            return self.aliases[ref]
        import difflib

        near = difflib.get_close_matches(ref, list(dict.fromkeys([*local, *self.nodes])), n=3)
        hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
        raise SpecError(f"unknown reference {ref!r} in inputs{hint}", layer=who, field="inputs")


def compile_spec(
    arch: Architecture,
    *,
    values: Mapping[str, int] | None = None,
    input_shape: Sequence[int | str] | None = None,
) -> nx.DiGraph[str]:
    """Build the validated layer graph of ``arch`` as a ``networkx.DiGraph``.

    ``values`` binds symbols to numbers (``--set H=224``); ``input_shape`` replaces the spec's
    input (``--input 3,224,224``).
    """
    return compile_graph(arch, values=values, input_shape=input_shape).to_networkx()


def compile_graph(
    arch: Architecture,
    *,
    values: Mapping[str, int] | None = None,
    input_shape: Sequence[int | str] | None = None,
) -> LayerGraph:
    """:func:`compile_spec` without networkx: the same nodes and attributes as a :class:`LayerGraph`."""
    env: dict[str, Any] = dict(values or {})
    raw_input = list(input_shape) if input_shape is not None else list(arch.input)
    if len(raw_input) > MAX_RANK:
        raise SpecError(f"the input has {len(raw_input):,} axes; archcalc's limit is {MAX_RANK}", field="input")
    shape: list[Dim] = []
    for x in raw_input:
        try:
            v = parse_dim(x, env) if isinstance(x, str) else x
        except DimError as e:
            raise SpecError(str(e), field="input") from None
        if isinstance(v, bool) or (as_int(v) is not None and as_int(v) <= 0):  # type: ignore[operator]
            raise SpecError(f"input sizes must be positive, got {x!r}", field="input")
        shape.append(v)
    if input_shape is not None:
        _bind_input_symbols(arch, shape, env)

    c = _Compiler(arch, env)
    try:
        c.count(arch.layers, env, ())
        output = c.expand(arch.layers, env, "", INPUT)
    except RecursionError:  # blocks calling blocks, hundreds deep
        raise SpecError("blocks nested too deeply (each block calls the next, hundreds of levels)", field="blocks") from None

    nodes: dict[str, dict[str, Any]] = {INPUT: {"layer": None, "inputs": [], "training_only": False, "index": -1, "scope": ()}, **c.nodes}
    G = LayerGraph(
        {"name": arch.name, "title": arch.title, "input_shape": tuple(shape), "output": output, "repeats": c.repeats, "circular": c.circular}, nodes
    )
    if c.symbolic:
        G.graph["symbolic_repeats"] = _check_symbolic(c.symbolic, nodes)
    tied = _resolve_ties(c, nodes)
    if tied:
        G.graph["tied"] = tied
    multiples = {k: s.multiple_of for k, s in arch.symbols.items() if s.multiple_of > 1 and k not in env}
    if multiples:
        G.graph["multiples"] = multiples
    G.graph["order"] = list(c.nodes) if c.forward else _topological_order(nodes)
    return G


def _bind_input_symbols(arch: Architecture, shape: list[Dim], env: dict[str, Any]) -> None:
    """``--input`` over a spec whose input names a symbol (transformer_lm's ``["s"]``): the layers
    that use the symbol (a reshape to ``[s, a, -1]``, a table of ``s`` positions) get the size
    given, as ``--set s=512`` would; it was left free, giving ``s×a×512*h/(a*s)`` and totals
    mixing s and 512.  A ``--set`` that says otherwise is an error."""
    if len(shape) != len(arch.input):
        return
    for raw, given in zip(arch.input, shape, strict=True):
        if not isinstance(raw, str) or not raw.isidentifier():
            continue
        if raw in env:
            if known_sign(env[raw] - given) != 0:
                raise SpecError(
                    f"--input gives {dim_text(given)} where the spec's input has {raw}, but --set {raw}={dim_text(env[raw])}",
                    field="--input",
                )
            continue
        if not (is_symbolic(given) and str(given) == raw):  # (--input s on a spec of s: nothing to bind)
            env[raw] = given


def _resolve_ties(c: _Compiler, nodes: dict[str, dict[str, Any]]) -> list[str]:
    """Node attribute ``tied`` (weight name -> the node that owns it) for layers that use another
    layer's weight (``tie_weight``); the params pass counts such a weight once, at its owner.
    Returns those layers' names."""
    if not c.ties:  # (every layer is bound in expand, which noted any that ties: most networks have none)
        return []
    base = Layer.tied_weights
    ties_of: dict[int, dict[str, str]] = {id(None): {}}  # per bound layer (the copies of a block share theirs)
    tied_nodes = []
    for name, attrs in nodes.items():
        layer = attrs["layer"]
        ties = ties_of.get(id(layer))  # (a pydantic class's attributes cost ~170 ns each: asked once per layer object)
        if ties is None:
            ties = ties_of[id(layer)] = {} if type(layer).tied_weights is base else layer.tied_weights()
        if not ties:
            continue
        tied = {}
        for wname, ref in ties.items():
            try:
                src = c.resolve_one(ref, {}, name)
            except SpecError as e:
                raise SpecError(e.message.replace(" in inputs", ""), layer=name, field="tie_weight") from None
            if src in (name, INPUT) or nodes[src].get("repeat", 1) != 1 or attrs.get("repeat", 1) != 1:
                why = f"cannot share the weight of {ref!r}: it must be another layer, outside any symbolic repeat"
                raise SpecError(why, layer=name, field="tie_weight")
            tied[wname] = src
        attrs["tied"] = tied
        tied_nodes.append(name)
    return tied_nodes


def _check_symbolic(reps: list[SymbolicRepeat], nodes: dict[str, dict[str, Any]]) -> list[SymbolicRepeat]:
    """Layers outside a symbolically repeated block may read only its output (its other layers
    stand for every copy at once); note which blocks read layers outside themselves."""
    out = []
    for rep in reps:
        members = set(rep.members)
        for name, attrs in nodes.items():
            if name in members:
                continue
            for src in attrs["inputs"]:
                if src in members and src != rep.output:
                    raise SpecError(
                        f"reads {src!r}, a layer inside block call {rep.call!r}, whose symbolic repeat ({rep.times}) stands for "
                        f"every copy at once: only its output can be read from outside",
                        layer=name,
                        field="inputs",
                    )
        outside = any(src not in members and src != rep.start for m in rep.members for src in nodes[m]["inputs"])
        out.append(rep._replace(reads_outside=outside))
    return out


def node_table(G: Graph) -> dict[str, dict[str, Any]]:
    """Node name -> attribute dict (the graph's own dicts: writes land on the graph).

    A plain dict lookup is several times cheaper than networkx's ``G.nodes[name]`` in the passes' loops.
    """
    nodes = G.nodes
    return nodes if type(nodes) is dict else dict(nodes(data=True))  # type: ignore[operator,arg-type]


def _topological_order(nodes: dict[str, dict[str, Any]]) -> list[str]:
    """For a graph with forward references: the topological order that keeps declaration order
    where it can (Kahn's algorithm, ready layers taken by declaration index); a cycle is an error."""
    index = {n: d["index"] for n, d in nodes.items()}
    waiting = {n: len(set(d["inputs"])) for n, d in nodes.items()}
    readers: dict[str, list[str]] = {n: [] for n in nodes}
    for n, d in nodes.items():
        for src in dict.fromkeys(d["inputs"]):
            readers[src].append(n)
    ready = [(index[n], n) for n, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for r in readers[n]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, (index[r], r))
    if len(order) < len(nodes):
        raise _cycle_error(nodes, {n for n, k in waiting.items() if k > 0}, index)
    return [n for n in order if n != INPUT]


def _cycle_error(nodes: dict[str, dict[str, Any]], stuck: set[str], index: dict[str, int]) -> SpecError:
    """Every layer left waiting reads another waiting layer: walking back through those reads from
    any of them must come round to a layer already seen, and that loop is a cycle."""
    seen: dict[str, int] = {}
    path: list[str] = []
    n = min(stuck, key=index.__getitem__)
    while n not in seen:
        seen[n] = len(path)
        path.append(n)
        n = next(src for src in nodes[n]["inputs"] if src in stuck)
    loop = path[seen[n] :][::-1]  # walked against the data flow: turn it round
    first = min(range(len(loop)), key=lambda i: index[loop[i]])
    cycle = loop[first:] + loop[:first]
    return SpecError(f"the layers form a cycle: {' -> '.join([*cycle, cycle[0]])}", layer=cycle[0], field="inputs")
