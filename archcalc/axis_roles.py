"""What each axis of a tensor holds, for the names ``explain`` gives it.

A per-sample shape is ``(C, *spatial)`` in a conv net, ``(L, F)`` for a token sequence, ``(heads,
L, F)`` inside attention and ``[L]`` for token ids (DESIGN.md).  Ranks alone cannot tell a
``(C, L)`` map of a 1-D conv net from an ``(L, F)`` sequence, so the roles are followed through the
graph from the input, asking each layer only what every layer says (``takes_indices``,
``permutation``) and comparing sizes:

* the input: token ids ``[L]`` when a layer reads it as indices (an embedding); an ``(L, F)``
  sequence when it has two axes and no layer slides a window over it; else ``(C, *spatial)``;
* an embedding appends a features axis to its ids' axes; a permute moves the roles;
* a layer that keeps the rank keeps the roles, each output axis taking the role of the same axis
  of an input of that size (``q @ k^T``: (heads, L, F) by (heads, F, L) gives (heads, L, L));
* a layer that changes the rank (flatten, reshape, select, mean) is matched by sizes: axes kept
  keep their role; spatial axes (or tokens) merged into one are tokens (ViT's flattened patches),
  other merges are features; features split in two are (heads, features per head);
* a learned tensor (a class token, position embeddings) takes the roles of the layer it feeds.

An axis whose role cannot be told is ``None``; a tensor with one gets the image names by rank.
"""

from __future__ import annotations

from typing import Any

from .dims import known_sign, prod
from .graph import INPUT, Graph, node_table

Roles = tuple[str | None, ...]

SPATIAL = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
# role -> (what the axis is called in "output ...", the letter of its symbol)
NAMES = {
    "channels": ("channels", "C"),
    "features": ("features", "F"),
    "tokens": ("tokens", "L"),
    "heads": ("heads", "A"),
    "L": ("L", "L"),
    "H": ("H", "H"),
    "W": ("W", "W"),
    "D": ("D", "D"),
}
WINDOWS = {"H": "windows_H", "W": "windows_W", "D": "windows_D", "L": "windows_L"}  # a spatial axis cut into windows
NAMES.update({
    "windows": ("windows", "N"),
    "groups": ("groups", "G"),
    **{w: (f"windows along {a}", f"N{a.lower()}") for a, w in WINDOWS.items()},
})
SECOND = {"L": "S"}  # a second axis of the same letter in one tensor (scores: L queries by S keys, torch's names)


def image_roles(rank: int) -> Roles:
    """(C, *spatial) names by rank; a vector is features."""
    if rank == 1:
        return ("features",)
    return ("channels", *SPATIAL.get(rank - 1, (None,) * (rank - 1)))


def sequence_roles(rank: int) -> Roles:
    """(heads..., tokens, features): what attention reads, whatever made the tensor (a learned key
    or value table reshaped into heads has no roles the graph can follow)."""
    return ("heads",) * (rank - 2) + ("tokens", "features") if rank >= 2 else ("features",)


def known(roles: Roles | None, rank: int) -> bool:
    """Whether ``roles`` name every axis of a tensor of this rank."""
    return roles is not None and len(roles) == rank and None not in roles


def input_is_sequence(G: Graph) -> bool:
    """Whether the network's input is an ``(L, F)`` sequence of float vectors (two axes, read as
    token and features: no layer slides a window over it as over a ``(C, L)`` map, none reads it
    as token ids).  The receptive field pass then follows positions along its first axis."""
    nodes = node_table(G)
    shape_in = tuple(nodes[INPUT]["shape"])
    if len(shape_in) != 2:
        return False
    if any((layer := nodes[n].get("layer")) is not None and layer.takes_indices for n in G.successors(INPUT)):
        return False
    return not _slid_over(G, nodes)


def _slid_over(G: Graph, nodes: dict[str, Any]) -> bool:
    """Whether a layer slides a window over the 2-axis input, or over a 2-axis tensor made from it
    by layers that keep the rank (a batchnorm1d before the first conv1d): a (C, L) map, not tokens."""
    todo, seen = list(G.successors(INPUT)), set()
    while todo:
        name = todo.pop()
        if name in seen or nodes[name].get("layer") is None:
            continue
        seen.add(name)
        node = nodes[name]
        if any(len(s) == 2 and _slides(node["layer"], tuple(s)) for s in node["in_shapes"]):
            return True
        if len(node["shape"]) == 2 and node["layer"].permutation(node["in_shapes"]) is None:
            todo += list(G.successors(name))
    return False


def _slides(layer: Any, shape: tuple[Any, ...]) -> bool:
    """Whether the layer slides a window over the axes after the first (a conv or pool reads (C, L))."""
    try:  # (a layer that names its axes, a chunk of the features, takes entries along one: no window over a map)
        return layer.windows([shape]) is not None and layer.axis_windows([shape]) is None
    except Exception:  # (a layer that cannot read this shape says nothing about it)
        return False


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) or known_sign(a - b) == 0


def axis_roles(G: Graph) -> dict[str, Roles | None]:
    """Node name (and ``input``) -> the roles of its output's axes (None: unknown); computed once per graph."""
    cached: dict[str, Roles | None] | None = G.graph.get("axis_roles")
    if cached is not None:
        return cached
    nodes = node_table(G)
    shape_in = tuple(nodes[INPUT]["shape"])
    readers = [nodes[n]["layer"] for n in G.successors(INPUT) if nodes[n].get("layer") is not None]
    roles: dict[str, Roles | None] = {}
    if any(r.takes_indices for r in readers) and len(shape_in) == 1:
        roles[INPUT] = ("tokens",)
    elif len(shape_in) == 2 and not _slid_over(G, nodes):
        roles[INPUT] = ("tokens", "features")
    else:
        roles[INPUT] = image_roles(len(shape_in))
    sources = []
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        if layer.source:
            roles[name] = None
            sources.append(name)
            continue
        roles[name] = _through(layer, node["in_shapes"], [roles.get(i) for i in node["inputs"]], tuple(node["shape"]))
    for name in sources:  # a learned tensor: the roles of the output of a layer it feeds, of its rank
        rank = len(nodes[name]["shape"])
        roles[name] = next((r for n in G.successors(name) if (r := roles.get(n)) is not None and len(r) == rank), None)
    G.graph["axis_roles"] = roles
    return roles


def _through(layer: Any, ins: list[tuple[Any, ...]], in_roles: list[Roles | None], out: tuple[Any, ...]) -> Roles | None:
    known = [(s, r) for s, r in zip(ins, in_roles, strict=True) if r is not None]
    if not known:
        return None
    if layer.takes_indices:
        shape, r = known[0]
        return (*r, "features") if len(out) == len(shape) + 1 else None
    perm = layer.permutation(ins) if len(known) == len(ins) else None
    if perm is not None:
        return tuple(known[0][1][p] for p in perm)
    same_rank = [(s, r) for s, r in known if len(s) == len(out)]
    if same_rank:  # each axis: the role of that axis of an input of the same size there (input 0 first)
        picked = []
        for axis, size in enumerate(out):
            role = next((r[axis] for s, r in same_rank if _same(s[axis], size)), same_rank[0][1][axis])
            picked.append(role)
        return tuple(picked)
    shape, r = known[0]
    return _regrouped(shape, r, out)


def _regrouped(shape: tuple[Any, ...], roles: Roles, out: tuple[Any, ...]) -> Roles | None:
    """Roles after a reshape: axes grouped where their sizes' products agree; else the output as a
    part of the input (select, mean: the axes left keep their roles)."""
    if len(out) == 1:
        return ("features",)
    groups = _groups(shape, out, roles)
    if groups is not None:
        result: list[str | None] = []
        for ins, outs in groups:
            merged = [roles[i] for i in ins]
            if len(ins) == 1 and len(outs) == 1:
                result.append(merged[0])
            elif len(outs) == 1:
                if all(m in WINDOWS.values() for m in merged):
                    result.append("windows")
                elif len(merged) == 2 and merged[0] in WINDOWS.values() and WINDOWS.get(str(merged[1])) == merged[0]:
                    result.append(merged[1])  # windows along H, then H within one: the map's H again
                elif len(sized := [roles[k] for k in ins if not _same(shape[k], 1)]) == 1:
                    result.append(sized[0])  # an axis and ones: the axis
                elif all(m in ("H", "W", "D", "L", "tokens") for m in merged):
                    result.append("tokens")  # positions in a row: ViT's patches, a window's pixels
                else:
                    result.append("features" if None not in merged else None)
            elif len(ins) == 1 and len(outs) == 2 and merged[0] in WINDOWS:  # a window partition: (windows along H, H within one)
                result += [WINDOWS[str(merged[0])], merged[0]]
            elif len(ins) == 1 and merged[0] in ("windows", "tokens") and len(outs) in (2, 3):  # a grid of windows, a map of positions
                axes = SPATIAL[len(outs)]
                result += [WINDOWS[a] for a in axes] if merged[0] == "windows" else list(axes)
            elif len(ins) == 1 and len(outs) == 2 and merged[0] in ("features", "channels"):
                last = ins[0] == len(shape) - 1  # features split last: heads of attention; channels first: groups (a shuffle)
                result += ["heads", "features"] if last else ["groups", "channels"]
            else:
                result += [None] * len(outs)
        return tuple(result)
    kept: list[str | None] = []
    i = 0
    for size in out:  # the output's axes, found in order among the input's
        while i < len(shape) and not _same(shape[i], size):
            i += 1
        if i == len(shape):
            return None
        kept.append(roles[i])
        i += 1
    return tuple(kept)


def _groups(shape: tuple[Any, ...], out: tuple[Any, ...], roles: Roles | None = None) -> list[tuple[list[int], list[int]]] | None:
    """Consecutive input axes and output axes whose sizes have the same product, each group as
    small as it can be (``(s, h) -> (s, a, h/a)``: s alone, then h to a, h/a), or None."""
    groups = []
    i = j = 0
    while i < len(shape) and j < len(out):
        sizes = sorted(((a, b) for a in range(1, len(shape) - i + 1) for b in range(1, len(out) - j + 1)), key=sum)
        found = next(((a, b) for a, b in sizes if _same(prod(shape[i : i + a]), prod(out[j : j + b]))), None)
        if found is None:
            return None
        a, b = found
        # ones belong with the axis before them: a 1 x 1 grid of windows is one axis of 1; MaxViT's grid on a 7 x 7 map cuts
        # each axis into 7 windows of 1, and joins them again
        if a == b == 1 or _same(prod(shape[i : i + a]), 1):
            while i + a < len(shape) and _same(shape[i + a], 1) and not (j + b < len(out) and _same(out[j + b], 1)):
                a += 1
            cut = roles is not None and roles[i] in WINDOWS
            while (cut or _same(prod(shape[i : i + a]), 1)) and j + b < len(out) and _same(out[j + b], 1) and not (
                i + a < len(shape) and _same(shape[i + a], 1)
            ):
                b += 1
        groups.append((list(range(i, i + a)), list(range(j, j + b))))
        i, j = i + a, j + b
    if i != len(shape) or j != len(out):
        return None
    return groups


def _known_or_image(roles: Roles | None, rank: int) -> Roles:
    """The roles found for a tensor of this rank, else an image's (channels, H, W)."""
    return roles if known(roles, rank) else image_roles(rank)  # type: ignore[return-value]


def axis_symbols(roles: Roles | None, rank: int, suffix: str) -> list[str]:
    """Symbol names for a tensor's axes (``L_in``, ``F_in``), distinct within the tensor."""
    use = _known_or_image(roles, rank)
    letters: list[str] = []
    for k, role in enumerate(use):
        letter = NAMES[role][1] if role in NAMES else f"N{k}"
        if role == "channels" and _tokens_before(use, k):
            letter = "F"
        if letter in letters:
            letter = SECOND.get(letter, f"{letter}{letters.count(letter) + 1}")
        letters.append(letter)
    return [f"{x}{suffix}" for x in letters]


def axis_labels(roles: Roles | None, rank: int) -> list[str]:
    """What "output ..." calls each axis: channels, H, W; tokens, features; heads."""
    use = _known_or_image(roles, rank)
    out: list[str] = []
    for k, role in enumerate(use):
        label = NAMES[role][0] if role in NAMES else f"axis {k}"
        if role == "channels" and _tokens_before(use, k):
            label = "features"
        if role == "features" and "heads" in use[:k]:
            label = "features per head"
        if label in out:  # attention's scores: one axis per query, one per key
            first = out.index(label)
            out[first] = "queries" if label == "tokens" else f"{label} (queries)"
            label = "keys" if label == "tokens" else f"{label} (keys)"
        out.append(label)
    return out


def _tokens_before(roles: Roles, k: int) -> bool:
    """A channels axis after the tokens axis is the sequence's features (ViT's patches, channels last)."""
    return "tokens" in roles[:k]
