"""Draws a pipeline DAG three ways: Mermaid and Graphviz DOT text for the `graph` command, SVG for the report.

The SVG is drawn with matplotlib (already a dependency) using a layered layout by topological depth, so
no Graphviz binary is needed anywhere.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# fill, border, text: one palette shared by every rendering and by the HTML report
STATUS_COLORS: Mapping[str, tuple[str, str, str]] = {
    "success": ("#d3f0d6", "#2e7d32", "#1b5e20"),
    "failed": ("#fbd5d5", "#c62828", "#8e0000"),
    "running": ("#d6e6fb", "#1565c0", "#0d3c75"),
    "skipped": ("#ececec", "#8a8a8a", "#555555"),
    "pending": ("#ffffff", "#9e9e9e", "#424242"),
}
DEFAULT_STATUS = "pending"


class GraphError(ValueError):
    """The nodes and edges given do not form a DAG."""


@dataclass(frozen=True)
class Layout:
    """Layers by topological depth, each an ordered tuple of slots.

    A slot is a node name, or a waypoint ``("edge", a, b, k)`` where an edge a -> b that skips layers passes
    through this layer, so long edges are routed between the boxes instead of across them.
    """

    slots: tuple[tuple[object, ...], ...]

    @property
    def layers(self) -> tuple[tuple[str, ...], ...]:
        """The real nodes of each layer, in drawing order."""
        return tuple(tuple(s for s in layer if isinstance(s, str)) for layer in self.slots)

    def position(self, node: str) -> tuple[int, int]:
        """(layer, index among the real nodes of that layer)."""
        for depth, layer in enumerate(self.layers):
            if node in layer:
                return depth, layer.index(node)
        raise KeyError(node)


def _normalise(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> tuple[list[str], list[tuple[str, str]]]:
    """Nodes in given order plus any only named by an edge; edges de-duplicated, order kept."""
    all_nodes = list(dict.fromkeys(nodes))
    seen = set(all_nodes)
    uniq: list[tuple[str, str]] = []
    for a, b in edges:
        for n in (a, b):
            if n not in seen:
                seen.add(n)
                all_nodes.append(n)
        if (a, b) not in uniq:
            uniq.append((a, b))
    return all_nodes, uniq


def _depths(all_nodes: list[str], uniq: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path depth of every node (Kahn's algorithm); raises GraphError on a cycle."""
    preds: dict[str, list[str]] = {n: [] for n in all_nodes}
    succs: dict[str, list[str]] = {n: [] for n in all_nodes}
    for a, b in uniq:
        preds[b].append(a)
        succs[a].append(b)
    indeg = {n: len(preds[n]) for n in all_nodes}
    ready = [n for n in all_nodes if indeg[n] == 0]
    depth: dict[str, int] = {}
    while ready:
        n = ready.pop(0)
        depth[n] = max((depth[p] + 1 for p in preds[n]), default=0)
        for nxt in succs[n]:
            indeg[nxt] -= 1
            if indeg[nxt] == 0:
                ready.append(nxt)
    if len(depth) != len(all_nodes):
        stuck = [n for n in all_nodes if n not in depth]
        raise GraphError(f"the graph has a cycle through: {', '.join(stuck)}")
    return depth


def layered_layout(nodes: Sequence[str], edges: Iterable[tuple[str, str]], sweeps: int = 6) -> Layout:
    """Layer = longest path from a source; order within layers by barycenter sweeps (fewer crossings)."""
    all_nodes, uniq = _normalise(nodes, edges)
    depth = _depths(all_nodes, uniq)
    n_layers = max(depth.values(), default=-1) + 1
    layers: list[list[object]] = [[] for _ in range(n_layers)]
    for n in all_nodes:
        layers[depth[n]].append(n)
    # chain every edge through one waypoint per skipped layer
    up: dict[object, list[object]] = {}
    down: dict[object, list[object]] = {}
    for a, b in uniq:
        chain: list[object] = [a]
        for k, d in enumerate(range(depth[a] + 1, depth[b])):
            way = ("edge", a, b, k)
            layers[d].append(way)
            chain.append(way)
        chain.append(b)
        for u, v in zip(chain, chain[1:], strict=False):
            down.setdefault(u, []).append(v)
            up.setdefault(v, []).append(u)

    def reorder(layer: list[object], neighbours: dict[object, list[object]], rank: dict[object, int]) -> None:
        def key(item: object) -> float:
            near = [rank[x] for x in neighbours.get(item, []) if x in rank]
            return sum(near) / len(near) if near else rank.get(item, 0)
        layer.sort(key=key)

    for sweep in range(sweeps):
        order = range(1, n_layers) if sweep % 2 == 0 else range(n_layers - 2, -1, -1)
        for d in order:
            other = layers[d - 1] if sweep % 2 == 0 else layers[d + 1]
            rank = {item: i for i, item in enumerate(other)}
            current = {item: i for i, item in enumerate(layers[d])}
            reorder(layers[d], up if sweep % 2 == 0 else down, {**current, **rank})
    return Layout(tuple(tuple(layer) for layer in layers))


def _status(statuses: Mapping[str, str] | None, node: str) -> str:
    status = (statuses or {}).get(node, DEFAULT_STATUS)
    return status if status in STATUS_COLORS else DEFAULT_STATUS


_MERMAID_ID = re.compile(r"[^A-Za-z0-9_]")


def to_mermaid(nodes: list[str], edges: list[tuple[str, str]], statuses: dict[str, str] | None = None) -> str:
    """Mermaid flowchart (left to right); with statuses, a classDef per status colours the nodes."""
    all_nodes, uniq = _normalise(nodes, edges)
    ids = {n: "n_" + _MERMAID_ID.sub("_", n) for n in all_nodes}
    lines = ["flowchart LR"]
    for n in all_nodes:
        label = n.replace('"', "#quot;")
        lines.append(f'    {ids[n]}["{label}"]')
    for a, b in uniq:
        lines.append(f"    {ids[a]} --> {ids[b]}")
    if statuses:
        used = sorted({_status(statuses, n) for n in all_nodes})
        for st in used:
            fill, stroke, text = STATUS_COLORS[st]
            lines.append(f"    classDef {st} fill:{fill},stroke:{stroke},color:{text}")
        for st in used:
            members = ",".join(ids[n] for n in all_nodes if _status(statuses, n) == st)
            lines.append(f"    class {members} {st}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(nodes: list[str], edges: list[tuple[str, str]], statuses: dict[str, str] | None = None,
           *, name: str = "pipeline") -> str:
    """Graphviz DOT digraph (left to right); nodes filled by status when statuses are given."""
    all_nodes, uniq = _normalise(nodes, edges)
    lines = [f"digraph {_dot_quote(name)} {{", "    rankdir=LR;",
             '    node [shape=box, style="rounded,filled", fontname="Helvetica", fillcolor="#ffffff"];']
    for n in all_nodes:
        attrs = ""
        if statuses:
            fill, stroke, text = STATUS_COLORS[_status(statuses, n)]
            attrs = (f' [fillcolor={_dot_quote(fill)}, color={_dot_quote(stroke)}, fontcolor={_dot_quote(text)},'
                     f' tooltip={_dot_quote(_status(statuses, n))}]')
        lines.append(f"    {_dot_quote(n)}{attrs};")
    for a, b in uniq:
        lines.append(f"    {_dot_quote(a)} -> {_dot_quote(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(nodes: list[str], edges: list[tuple[str, str]], statuses: dict[str, str] | None = None) -> str:
    """An SVG picture of the DAG, left to right, each node coloured by its status, with a legend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.path import Path as MplPath

    layout = layered_layout(nodes, edges)
    _, uniq = _normalise(nodes, edges)
    all_nodes = [n for layer in layout.layers for n in layer]
    longest = max((len(n) for n in all_nodes), default=4)
    box_w = max(1.2, 0.095 * longest + 0.35)  # inches; ~0.095 in per 10 pt character
    box_h, gap_x, gap_y, way_h, margin, legend_h = 0.42, 0.6, 0.2, 0.22, 0.15, 0.4

    def slot_h(item: object) -> float:
        return box_h if isinstance(item, str) else way_h

    col_heights = [sum(slot_h(i) for i in layer) + gap_y * max(len(layer) - 1, 0) for layer in layout.slots]
    body_h = max(col_heights, default=box_h)
    n_layers = max(len(layout.slots), 1)
    width = max(margin * 2 + n_layers * box_w + (n_layers - 1) * gap_x, 3.0)
    height = margin * 2 + body_h + (legend_h if statuses else 0.0)

    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y grows downwards like the page
    ax.axis("off")

    centres: dict[object, tuple[float, float]] = {}
    for d, layer in enumerate(layout.slots):
        y = margin + (body_h - col_heights[d]) / 2
        x = margin + d * (box_w + gap_x)
        for item in layer:
            centres[item] = (x + box_w / 2, y + slot_h(item) / 2)
            y += slot_h(item) + gap_y
    for n in all_nodes:
        cx, cy = centres[n]
        fill, stroke, text = STATUS_COLORS[_status(statuses, n)]
        ax.add_patch(FancyBboxPatch((cx - box_w / 2, cy - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0,rounding_size=0.08",
                                    facecolor=fill, edgecolor=stroke, linewidth=1.4, zorder=3))
        ax.text(cx, cy, n, ha="center", va="center", fontsize=10, color=text, zorder=4)

    depth_of = {n: d for d, layer in enumerate(layout.layers) for n in layer}
    for a, b in uniq:
        ways = [centres[("edge", a, b, k)] for k in range(depth_of[b] - depth_of[a] - 1)]
        # right side of a -> through each waypoint (straight across its column) -> left side of b
        points = [(centres[a][0] + box_w / 2, centres[a][1])]
        for wx, wy in ways:
            points += [(wx - box_w / 2, wy), (wx + box_w / 2, wy)]
        points.append((centres[b][0] - box_w / 2, centres[b][1]))
        verts, codes = [points[0]], [MplPath.MOVETO]
        for i in range(len(points) - 1):
            (x1, y1), (x2, y2) = points[i], points[i + 1]
            if i % 2 == 1:  # across a waypoint's column
                verts.append((x2, y2))
                codes.append(MplPath.LINETO)
            else:  # between columns: an S-curve with horizontal ends
                mid = (x1 + x2) / 2
                verts += [(mid, y1), (mid, y2), (x2, y2)]
                codes += [MplPath.CURVE4] * 3
        ax.add_patch(FancyArrowPatch(path=MplPath(verts, codes), arrowstyle="-|>", mutation_scale=10,
                                     color="#607080", linewidth=1.0, zorder=2))
    shown = [st for st in STATUS_COLORS if any(_status(statuses, n) == st for n in all_nodes)]
    if statuses and shown:
        handles = [Patch(facecolor=STATUS_COLORS[st][0], edgecolor=STATUS_COLORS[st][1], label=st)
                   for st in shown]
        fig.legend(handles=handles, loc="lower left", ncol=len(handles), frameon=False, fontsize=8,
                   bbox_to_anchor=(0, 0), handlelength=1.2)
    return figure_to_svg(fig)


def figure_to_svg(fig) -> str:
    """Serialise a matplotlib figure as an inline-able <svg> element (no XML prolog, no timestamp)."""
    import matplotlib

    buf = io.StringIO()
    # text stays text (smaller, selectable, no glyph <defs> whose ids would repeat across inline SVGs)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, facecolor="white")
    text = buf.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text
