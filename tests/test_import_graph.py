"""The import graph (imports inside functions included): no cycle within a package, the core below the rest.

Needs grimp (``pip install import-linter`` brings it); skipped where it is not installed.
"""

import pytest

grimp = pytest.importorskip("grimp")

PACKAGES = ("akd_tf", "latency_db", "search", "devicefarm")
ABOVE_THE_CORE = ("latency_db", "search", "devicefarm")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES)


def _package_modules(graph, package: str) -> set[str]:
    return {m for m in graph.modules if m == package or m.startswith(package + ".")}


def cycles_within(graph, package: str) -> list[set[str]]:
    """Each set of ``package``'s modules that import one another in a cycle (Tarjan's strongly connected components)."""
    modules = _package_modules(graph, package)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & modules) for m in modules}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or v not in component:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
            if len(component) > 1 or v in edges[v]:
                found.append(component)

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return found


@pytest.mark.parametrize("package", ["akd_tf", "search", "devicefarm"])
def test_no_import_cycle_within(graph, package):
    assert cycles_within(graph, package) == []


@pytest.mark.xfail(reason="latency_db.farm -> jobs -> measure -> farm, left to the restructuring of those modules",
                   strict=False)
def test_no_import_cycle_within_latency_db(graph):
    assert cycles_within(graph, "latency_db") == []


def test_the_core_imports_nothing_above_it(graph):
    """akd_tf (the CLI, which sits on top of everything, aside) imports neither the store, the search nor the farm."""
    core = {m for m in _package_modules(graph, "akd_tf") if not (m == "akd_tf.cli" or m.startswith("akd_tf.cli."))}
    upward = sorted((m, i) for m in core for i in graph.find_modules_directly_imported_by(m)
                    if i.split(".")[0] in ABOVE_THE_CORE)
    assert upward == []
