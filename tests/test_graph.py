"""Compiling specs into the graph: blocks, repeats, conditional layers, references, order."""

from __future__ import annotations

import pytest
import sympy
from conftest import SPECS, conv, net

from archcalc import SpecError, analyze, parse_spec
from archcalc.graph import compile_spec

BLOCK = {
    "params": {"width": None, "stride": 1, "project": False},
    "layers": [
        conv("width", 3, name="conv", stride="stride", padding=1, bias=False),
        {
            "name": "proj",
            "type": "conv2d",
            "inputs": ["input"],
            "out_channels": "width",
            "kernel_size": 1,
            "stride": "stride",
            "bias": False,
            "when": "project",
        },
        {"name": "skip", "type": "identity", "inputs": ["input"], "unless": "project"},
        {"name": "add", "type": "add", "inputs": ["conv", "proj"], "when": "project"},
        {"name": "add", "type": "add", "inputs": ["conv", "skip"], "unless": "project"},
    ],
}


def stage(repeat: int = 3, **first: object) -> dict:
    return {
        "name": "s",
        "input": [8, 16, 16],
        "blocks": {"res": BLOCK},
        "layers": [{"name": "stage", "type": "block", "block": "res", "repeat": repeat, "args": {"width": 16}, "first": first}],
    }


def test_repeat_names_first_and_conditionals() -> None:
    rep = analyze(parse_spec(stage(3, stride=2, project=True)))
    names = [r.name for r in rep.rows]
    assert names == [
        "stage.0.conv",
        "stage.0.proj",
        "stage.0.add",
        "stage.1.conv",
        "stage.1.skip",
        "stage.1.add",
        "stage.2.conv",
        "stage.2.skip",
        "stage.2.add",
    ]
    assert rep.row("stage.0.add").inputs == ["stage.0.conv", "stage.0.proj"]
    assert rep.row("stage.1.conv").inputs == ["stage.0.add"]  # copies chain one after another
    assert rep.row("stage.0.conv").output_shape == (16, 8, 8)  # stride 2 only on the first copy
    assert rep.row("stage.2.add").output_shape == (16, 8, 8)
    # params: 3x3 convs 8->16 then 16->16 twice, plus the 1x1 projection 8->16
    assert rep.totals["params"] == 16 * 8 * 9 + 2 * 16 * 16 * 9 + 16 * 8


def test_block_call_name_refers_to_its_output() -> None:
    data = stage(2, project=True)
    data["layers"].append({"name": "head", "type": "relu", "inputs": ["stage"]})
    assert analyze(parse_spec(data)).row("head").inputs == ["stage.1.add"]


def test_symbolic_block_arguments() -> None:
    data = stage(2, project=True)
    data["input"] = ["C", 16, 16]
    data["layers"][0]["args"] = {"width": "2*C"}
    rep = analyze(parse_spec(data))
    C = sympy.Symbol("C", integer=True, positive=True)
    # 3x3 C->2C, 1x1 C->2C, then 3x3 2C->2C
    assert rep.totals["params"] == 2 * C * C * 9 + 2 * C * C + 2 * C * 2 * C * 9


def test_nested_blocks_and_output() -> None:
    data = {
        "name": "n",
        "input": [4, 8, 8],
        "blocks": {
            "pair": {"layers": [conv(4, 3, name="a", padding=1), conv(4, 3, name="b", padding=1)], "output": "a"},
            "twice": {"layers": [{"name": "p", "type": "block", "block": "pair", "repeat": 2}]},
        },
        "layers": [{"name": "t", "type": "block", "block": "twice"}, {"name": "out", "type": "relu"}],
    }
    rep = analyze(parse_spec(data))
    # 't' is called once without `repeat`: no copy index; 'p' says repeat 2: indexed copies
    assert [r.name for r in rep.rows][:4] == ["t.p.0.a", "t.p.0.b", "t.p.1.a", "t.p.1.b"]
    assert rep.row("t.p.1.a").inputs == ["t.p.0.a"]  # the block's output is 'a', not its last layer
    assert rep.row("out").inputs == ["t.p.1.a"]


def test_forward_references_are_ordered_topologically() -> None:
    layers = [
        {"name": "sum", "type": "add", "inputs": ["a", "b"]},
        conv(4, 3, name="a", padding=1, inputs=["input"]),
        conv(4, 1, name="b", inputs=["input"]),
    ]
    rep = net(layers, (3, 8, 8))
    assert [r.name for r in rep.rows] == ["a", "b", "sum"]


def test_graph_is_a_networkx_digraph_with_one_node_per_layer() -> None:
    from archcalc.spec import load_spec

    G = compile_spec(load_spec(SPECS / "resnet50.json"))
    assert G.number_of_nodes() == len(G.graph["order"]) + 1  # + the input node
    assert set(G.predecessors("layer1.0.add")) == {"layer1.0.bn3", "layer1.0.downsample.1"}


def test_layer_graph_is_the_networkx_graph_without_networkx() -> None:
    from archcalc.graph import LayerGraph, compile_graph
    from archcalc.spec import load_spec

    arch = load_spec(SPECS / "inception_v3.json")  # branches, concat, a training-only head
    L, G = compile_graph(arch), compile_spec(arch)
    assert isinstance(L, LayerGraph)
    assert L.graph == G.graph
    assert list(L) == list(G.nodes)
    assert {n: d for n, d in L.nodes.items()} == dict(G.nodes(data=True))
    assert sorted(L.edges()) == sorted(G.edges())
    for n in ("Mixed_5b.cat", "AuxLogits.conv1.conv", "fc"):
        assert list(L.predecessors(n)) == list(G.predecessors(n)) != []
        assert sorted(L.successors(n)) == sorted(G.successors(n))


def test_topological_order_keeps_declaration_order_where_it_can() -> None:
    from archcalc.graph import compile_graph

    # "late" reads "c", declared after it: c must move before late; the rest keep their places
    layers = [
        conv(4, 3, name="a", padding=1),
        {"name": "late", "type": "relu", "inputs": ["c"]},
        conv(4, 1, name="b", inputs=["a"]),
        {"name": "c", "type": "add", "inputs": ["a", "b"]},
        {"name": "d", "type": "add", "inputs": ["late", "c"]},
    ]
    G = compile_graph(parse_spec({"name": "t", "input": [3, 8, 8], "layers": layers}))
    assert G.graph["order"] == ["a", "b", "c", "late", "d"]


def test_a_three_layer_cycle_is_named_from_its_first_declared_layer() -> None:
    layers = [
        conv(4, 3, name="stem", padding=1),
        {"name": "x", "type": "add", "inputs": ["stem", "z"]},
        {"name": "y", "type": "relu", "inputs": ["x"]},
        {"name": "z", "type": "relu", "inputs": ["y"]},
    ]
    with pytest.raises(SpecError, match=r"cycle: x -> y -> z -> x") as e:
        compile_spec(parse_spec({"name": "t", "input": [3, 8, 8], "layers": layers}))
    assert e.value.layer == "x" and e.value.field == "inputs"


def test_training_only_head_does_not_take_over_the_chain() -> None:
    # an auxiliary head is a side branch: the next layer without `inputs` follows the main path
    layers = [
        conv(4, 3, name="trunk", padding=1),
        {"name": "aux", "type": "linear", "out_features": 10, "training_only": True},
        conv(4, 3, name="next", padding=1),
    ]
    rep = net(layers, (3, 8, 8))
    assert rep.row("next").inputs == ["trunk"]
    assert rep.row("aux").training_only
    assert rep.totals["params"] == (4 * 3 * 9 + 4) + (4 * 4 * 9 + 4)  # the aux head is not in the totals
    with_aux = net(layers, (3, 8, 8), include_training_only=True)
    assert with_aux.totals["params"] == rep.totals["params"] + 8 * 10 + 10  # linear acts on the last axis (8)


class _NoTemplates(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: object, value: object) -> None:
        pass  # every block copy takes the full expansion path


def _compiled(arch: object, monkeypatch: pytest.MonkeyPatch | None = None) -> dict[str, tuple[object, ...]]:
    from archcalc import graph

    if monkeypatch is not None:
        init = graph._Compiler.__init__

        def no_templates(self: graph._Compiler, *a: object) -> None:
            init(self, *a)  # type: ignore[arg-type]
            self.templates = _NoTemplates()

        monkeypatch.setattr(graph._Compiler, "__init__", no_templates)
    G = graph.compile_graph(arch)  # type: ignore[arg-type]
    return {n: (d["layer"], tuple(d["inputs"]), d["training_only"], d["index"]) for n, d in G.nodes.items()} | {"@order": tuple(G.graph["order"])}


@pytest.mark.parametrize("name", ["resnet152", "inception_v3", "densenet121", "googlenet", "unet", "mobilenet_v2", "resnet56"])
def test_repeated_blocks_laid_out_once_give_the_same_graph(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from archcalc.spec import load_spec

    arch = load_spec(SPECS / f"{name}.json")
    fast = _compiled(arch)
    with monkeypatch.context() as m:
        slow = _compiled(arch, m)
    assert fast == slow


def test_block_copies_keep_forward_global_and_input_references(monkeypatch: pytest.MonkeyPatch) -> None:
    block = {
        "params": {"proj": False},
        "layers": [
            {"name": "sum", "type": "add", "inputs": ["a", "b"]},  # forward references, inside the block
            conv(4, 3, name="a", padding=1, inputs=["input"]),
            conv(4, 1, name="b", inputs=["stem"], when="proj"),  # a global name
            conv(4, 1, name="b", inputs=["input"], unless="proj"),
            {"name": "aux", "type": "relu", "training_only": True},
            {"name": "out", "type": "relu", "inputs": ["sum"]},
        ],
    }
    spec = {
        "name": "t",
        "input": [4, 8, 8],
        "blocks": {"blk": block},
        "layers": [
            conv(4, 3, name="stem", padding=1),
            {"name": "s", "type": "block", "block": "blk", "repeat": 3, "first": {"proj": True}},
            {"name": "r", "type": "block", "block": "blk", "repeat": 2},
        ],
    }
    arch = parse_spec(spec)
    fast = _compiled(arch)
    with monkeypatch.context() as m:
        slow = _compiled(arch, m)
    assert fast == slow
    G = compile_spec(arch)
    assert list(G.predecessors("s.0.b")) == ["stem"] and list(G.predecessors("s.2.b")) == ["s.1.out"]
    assert list(G.predecessors("r.1.sum")) == ["r.1.a", "r.1.b"] and list(G.predecessors("r.1.a")) == ["r.0.out"]
    assert list(G.predecessors("s.1.aux")) == ["s.1.b"]  # the entry before the side branch
    assert G.graph["order"].index("s.1.sum") > G.graph["order"].index("s.1.b")


def test_block_defaults_see_the_calls_own_parameters() -> None:
    # width defaults to 2*planes: 2*16 = 32 channels for one call, 2*64 = 128 for the other (was a free symbol 'planes')
    data = {
        "name": "n",
        "input": [3, 8, 8],
        "blocks": {"b": {"params": {"planes": None, "width": "2*planes"}, "layers": [conv("width", 1, name="c")]}},
        "layers": [
            {"name": "x", "type": "block", "block": "b", "args": {"planes": 16}},
            {"name": "y", "type": "block", "block": "b", "args": {"planes": 64}},
        ],
    }
    rep = analyze(parse_spec(data))
    assert rep.row("x.c").output_shape == (32, 8, 8) and rep.row("y.c").output_shape == (128, 8, 8)
