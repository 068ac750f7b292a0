"""rix's layers, read from the code: the import graph of ``src/rix`` and the order of its parts.

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``. A part
(a package, or one of the few top-level modules) may import only parts below it in
``ORDER``; inside a part, modules may import each other but never in a cycle. The README's
architecture picture (``docs/architecture.svg``) is drawn from the same table:

    .venv/bin/python -m tests.architecture.layers docs/architecture.svg
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Bottom to top: each layer a row of the picture, each part a box; a part imports only parts
# in rows below it, or earlier in its own row.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("settings, errors, UIDs, times", ("errors", "uids", "times", "config")),
    ("bytes and what they say", ("store", "dataset")),
    ("the index and the region", ("index", "archive", "region")),
    ("who, what happened, what is due", ("audit", "auth", "jobs", "access")),
    ("in and out", ("ingest", "retrieve")),
    ("what the region does with images", ("routing", "sharing", "workflow", "admin")),
    ("front ends", ("hl7", "dicom", "web")),
    ("composition", ("serve", "cli")),
)
ORDER: tuple[str, ...] = tuple(part for _, parts in LAYERS for part in parts)
RANK = {part: n for n, part in enumerate(ORDER)}


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    line: int


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of ``rix`` by dotted name (packages by their ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted((src / "rix").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(known: dict[str, Path]) -> Iterator[Import]:
    """Each import of one rix module by another, wherever in the module it is written."""
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if not target.startswith("rix."):
                    continue
                resolved = _resolve(target, known)
                if resolved is not None and resolved != module:
                    yield Import(module, resolved, node.lineno)


def part_of(module: str) -> str:
    """The part a module belongs to: its package below ``rix``, or the top-level module."""
    return module.split(".")[1] if "." in module else module


def upward(found: list[Import]) -> list[Import]:
    """Imports of a part from a part that is not below it."""
    return [
        i
        for i in found
        if part_of(i.importer) != part_of(i.imported)
        and RANK[part_of(i.imported)] >= RANK[part_of(i.importer)]
    ]


def cycles(found: list[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for i in found:
        graph[i.importer].add(i.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in list(graph):
        if node not in index:
            visit(node)
    return groups


def part_edges(found: list[Import]) -> set[tuple[str, str]]:
    return {
        (part_of(i.importer), part_of(i.imported))
        for i in found
        if part_of(i.importer) != part_of(i.imported)
    }


def reduced(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The transitive reduction: an edge a → c is left out when a reaches c through another
    part, so the picture shows the spine of the dependencies, not every one of them."""
    below: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        below[a].add(b)

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(below[start])
        while todo:
            part = todo.pop()
            if part not in seen:
                seen.add(part)
                todo.extend(below[part])
        return seen

    return {(a, b) for a, b in edges if not any(b in reach(c) for c in below[a] if c != b)}


def svg(found: list[Import]) -> str:
    """The layers as boxes, bottom to top, with the reduced imports drawn as arrows."""
    box_w, box_h, gap_x, row_h, label_w = 104, 34, 14, 70, 270
    width = label_w + max(len(p) for _, p in LAYERS) * (box_w + gap_x) + 20
    height = len(LAYERS) * row_h + 30
    centre: dict[str, tuple[float, float]] = {}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8a9bb0"/>'
        "</marker></defs>",
    ]
    for row, (label, parts) in enumerate(reversed(LAYERS)):
        y = 20 + row * row_h
        out.append(f'<text x="10" y="{y + 22}" fill="#444">{label}</text>')
        for n, part in enumerate(parts):
            x = label_w + n * (box_w + gap_x)
            centre[part] = (x + box_w / 2, y + box_h / 2)
    boxes = []
    for part, (cx, cy) in centre.items():
        x, y = cx - box_w / 2, cy - box_h / 2
        name = f"{part}/" if (SRC / "rix" / part).is_dir() else f"{part}.py"
        boxes.append(
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="5" '
            f'fill="#e8f0fa" stroke="#36587a"/><text x="{cx}" y="{cy + 4}" '
            f'text-anchor="middle">{name}</text>'
        )
    for a, b in sorted(reduced(part_edges(found))):
        (x1, y1), (x2, y2) = centre[a], centre[b]
        if y1 == y2:  # same row: an arc above the boxes
            y1 = y2 = y1 - box_h / 2
            out.append(
                f'<path d="M{x1},{y1} Q{(x1 + x2) / 2},{y1 - 16} {x2},{y2}" fill="none" '
                'stroke="#8a9bb0" stroke-width="0.8" marker-end="url(#a)"/>'
            )
        else:
            out.append(
                f'<line x1="{x1}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 - box_h / 2}" '
                'stroke="#8a9bb0" stroke-width="0.9" '
                'marker-end="url(#a)"/>'
            )
    out.extend(boxes)
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(svg(list(imports(modules()))))
