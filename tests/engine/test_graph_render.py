"""DAG rendering: layered layout, Mermaid, DOT and the SVG picture coloured by status."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from engine.graph_render import STATUS_COLORS, GraphError, layered_layout, to_dot, to_mermaid, to_svg

NODES = ["raw", "trade", "quote", "trade_ma", "enriched"]
EDGES = [("raw", "trade"), ("raw", "quote"), ("trade", "trade_ma"), ("quote", "enriched"), ("trade_ma", "enriched")]
STATUSES = {"raw": "success", "trade": "success", "quote": "failed", "trade_ma": "running", "enriched": "skipped"}


def longest_path_depth(nodes, edges):
    """Independent depth: repeated relaxation of depth[b] >= depth[a] + 1."""
    depth = dict.fromkeys(nodes, 0)
    for _ in nodes:
        for a, b in edges:
            depth[b] = max(depth[b], depth[a] + 1)
    return depth


def test_layers_follow_longest_path():
    layout = layered_layout(NODES, EDGES)
    expected = longest_path_depth(NODES, EDGES)
    for node, d in expected.items():
        assert layout.position(node)[0] == d
    assert sorted(n for layer in layout.layers for n in layer) == sorted(NODES)


def test_cycle_is_reported():
    with pytest.raises(GraphError, match="cycle"):
        layered_layout(["a", "b"], [("a", "b"), ("b", "a")])


def test_mermaid_lists_every_node_edge_and_status_class():
    text = to_mermaid(NODES, EDGES, STATUSES)
    assert text.startswith("flowchart LR\n")
    for a, b in EDGES:
        assert f"n_{a} --> n_{b}" in text
    for node, status in STATUSES.items():
        assert re.search(rf"class [a-z_,]*n_{node}\b[a-z_,]* {status}", text)
        assert f"classDef {status} fill:{STATUS_COLORS[status][0]}" in text
    assert "classDef" not in to_mermaid(NODES, EDGES)


def test_dot_is_well_formed():
    text = to_dot(NODES, EDGES, STATUSES)
    assert text.startswith('digraph "pipeline" {') and text.rstrip().endswith("}")
    assert text.count("->") == len(EDGES)
    assert f'"quote" [fillcolor="{STATUS_COLORS["failed"][0]}"' in text
    assert '"a\\"b"' in to_dot(['a"b'], [])  # quotes are escaped


def test_svg_colours_nodes_by_status():
    svg = to_svg(NODES, EDGES, STATUSES)
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag.endswith("svg")
    for node in NODES:
        assert f">{node}<" in svg
    for status in set(STATUSES.values()):
        assert STATUS_COLORS[status][0] in svg.lower()  # the fill colour of that status is used


def test_svg_with_edge_only_node_and_no_statuses():
    svg = to_svg(["a"], [("a", "b")])
    assert ">b<" in svg and STATUS_COLORS["pending"][1] in svg.lower()


def test_long_edges_get_a_waypoint_in_each_skipped_layer():
    layout = layered_layout(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    assert layout.layers == (("a",), ("b",), ("c",), ("d",))
    assert [sorted(map(str, layer)) for layer in layout.slots[1:3]] == [
        ["('edge', 'a', 'd', 0)", "b"], ["('edge', 'a', 'd', 1)", "c"]]
