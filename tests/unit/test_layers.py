"""Imports point down (docs/architecture.md, "Layers"): every import in the project goes
from a layer to one below it, siblings do not import each other, and no two parts import
each other. grimp reads the imports from the source without running them; imports made
only for type checking are left out, since they never run."""

from __future__ import annotations

import grimp

PACKAGES = ("switchboard", "schema", "resolvers", "loaders", "domain", "tasks")

# Top to bottom. A part may import the parts of any later line, never an earlier line nor
# another part of its own line.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("switchboard.cli",),
    # The processes: `serve`'s supervisor and gateway processes, the job worker
    ("switchboard.processes", "tasks.worker"),
    ("switchboard.app",),  # a gateway process's endpoints and routes
    ("switchboard.bootstrap",),  # the one composition root: what each process holds, wired
    ("switchboard.graphiql",),
    ("switchboard.live",),  # subscriptions and their transports
    ("switchboard.edge",),  # HTTP, admission, auth, limits, persisted queries
    ("switchboard.execution",),
    ("schema.schema",),  # the root types, joining resolvers to the vocabulary
    ("resolvers",),
    ("loaders", "tasks", "switchboard.skill_search", "switchboard.devdata"),
    ("schema",),  # the vocabulary: types, scalars, inputs and payloads
    ("domain.store",),  # the write side's SQL
    ("switchboard.infra",),  # database, Redis breaker, audit, embedded servers
    ("switchboard.observability",),
    ("domain",),  # the rules: standard library only (tests/unit/test_imports.py)
    ("switchboard.settings",),
)
RANK = {part: rank for rank, line in enumerate(LAYERS) for part in line}


def part_of(module: str) -> str:
    """The most specific part of LAYERS that holds `module`."""
    name = module
    while name not in RANK:
        name, dot, _ = name.rpartition(".")
        assert dot, f"{module} is in no layer: add it to LAYERS"
    return name


def imports(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    """(importer's part, imported part) of every import across parts."""
    return {
        (part_of(importer), part_of(imported))
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if part_of(importer) != part_of(imported)
    }


def upward_or_sideways(crossings: set[tuple[str, str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, b in crossings if RANK[a] >= RANK[b])


def test_every_import_points_down() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=True)
    crossings = imports(graph)
    assert len(crossings) > 30  # the graph was read
    assert upward_or_sideways(crossings) == []


def test_the_rule_sees_an_import_that_points_up() -> None:
    assert upward_or_sideways({("loaders", "resolvers"), ("resolvers", "loaders")}) == [
        "loaders -> resolvers"
    ]
    assert upward_or_sideways({("tasks", "loaders")}) == ["tasks -> loaders"]
    assert part_of("switchboard.edge.http") == "switchboard.edge"
    assert part_of("schema.schema") == "schema.schema"
    assert part_of("schema.types") == "schema"
