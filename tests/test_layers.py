"""DESIGN.md's layering, checked on the source with `ast`: module size, import cycles, imports
that point up, and the replica boundary. Every import counts, including ones inside functions
and under TYPE_CHECKING: a lazy import still couples the two modules.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

MAX_LINES = 400

# The layers, top to bottom. A module imports from its own layer and the layers below it, never
# from one above. Entries are the first name under `modelfleet` (a module or a whole package).
LAYERS = [
    ("interface",   ["cli", "__main__"]),   # thin: parse -> client -> print
    ("client",      ["client"]),            # Fleet and one module per resource; HTTP only; the launcher
    ("fleet files", ["fleetfile"]),         # load, plan, apply, export: over the client's operations
    ("server",      ["server"]),            # control (loop), dataplane (gateway), http (API), telemetry
    ("assets",      ["assets", "monitoring"]),  # what people register: models, environments, computes;
                                                # data assets, monitor runs and their scheduler
    ("store",       ["store"]),             # the only SQL and artifact file I/O
    ("envbuild",    ["envbuild"]),          # virtualenvs built with uv: a build tool
    ("backends",    ["backends"]),          # where replicas run: the protocol, router, local, shared, ray
    ("datastores",  ["datastores"]),        # blob stores and the node cache: read by the server and every node
    ("runtime",     ["runtime", "collection"]),  # what runs inside replica and worker processes; rows -> Parquet
    # Below the replicas on purpose: typed specs travel down to the backends.
    ("schema",      ["schema"]),            # every contract: documents, settings, wire bodies, records
    ("files",       ["files", "ports"]),    # atomic writes and locks, sha256s, log lines; free ports
    ("domain",      ["domain"]),            # pure rules: names, traffic, placement, model types, errors
    ("base",        ["version"]),
]

# DESIGN.md's own sentences, kept whatever the order above becomes: (importer, never imports).
# The client side (cli/, client/, fleetfile/) reaches the server only over HTTP: of the package it
# imports only itself, schema/, domain/ and files/.
SERVER_SIDE = ["server", "store", "datastores", "assets", "monitoring", "collection", "backends", "runtime", "envbuild"]
# The one exception: `fleet workspace migrate` moves a stopped server's rows on its own machine.
NEVER_EXCEPT = {("cli.workspaces", "server.database_move")}
NEVER = [
    ("cli",       SERVER_SIDE),
    ("client",    SERVER_SIDE),
    ("fleetfile", SERVER_SIDE),
    ("server",    ["cli", "client", "fleetfile"]),            # the server never reaches back up
    ("store",     ["assets", "client", "server", "cli"]),     # the store knows rows, not their users
    ("runtime",   ["server", "store", "assets", "client", "cli"]),  # replicas run without the control plane
]

# The replica boundary: routing and the control loop know replicas only through the handle protocol.
BOUNDARY = (["server.dataplane.gateway", "server.dataplane.routing", "server.control.controller"],
            ["backends.local", "backends.shared", "runtime.protocol", "runtime.worker"])

ROOT = "modelfleet"
SRC = Path(__file__).resolve().parents[1] / "src" / ROOT


@dataclass(frozen=True)
class Import:
    source: str   # importing module, e.g. "server.api" ("" is the package root)
    target: str   # imported module, same form
    line: int

    def __str__(self) -> str:
        return f"{_path(self.source)}:{self.line} imports {ROOT}{'.' + self.target if self.target else ''}"


def _path(module: str) -> str:
    return str(MODULES[module].relative_to(SRC.parents[1]))


def _modules() -> dict[str, Path]:
    """Every module under the package, keyed by its dotted name below `modelfleet` ("" = root)."""
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _known(dotted: str) -> str:
    """The longest name in `dotted` that is one of our modules (`store.schema.models` -> `store.schema`)."""
    parts = dotted.split(".") if dotted else []
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts)


def _imports_of(module: str, path: Path) -> list[Import]:
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = [p for p in package if p]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    found.append(Import(module, _known(alias.name[len(ROOT) + 1:]), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            elif node.module == ROOT or (node.module or "").startswith(ROOT + "."):
                base = node.module[len(ROOT) + 1:]
            else:
                continue
            for alias in node.names:  # `from .. import traffic` imports a module; `__version__` does not
                sub = f"{base}.{alias.name}" if base else alias.name
                found.append(Import(module, sub if sub in MODULES else _known(base), node.lineno))
    return found


IMPORTS = [imp for module, path in sorted(MODULES.items()) for imp in _imports_of(module, path)]


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _rank(module: str) -> int:
    for i, (_name, members) in enumerate(LAYERS):
        if _top(module) in members:
            return i
    raise KeyError(module)


def _is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


# -- the tests ---------------------------------------------------------------------------------


def test_the_import_scan_sees_known_edges():
    """Guards the scanner itself: a scanner that finds nothing would pass every rule below."""
    edges = {(i.source, i.target) for i in IMPORTS}
    assert ("assets.models", "store.models") in edges
    assert ("server.http.api", "domain.traffic") in edges   # `from ...domain import traffic as traffic_rules`
    assert ("cli.common", "client") in edges                # an import inside a function
    assert ("server.control.stores", "store.serving") in edges


def test_no_module_is_too_long():
    long = {_path(m): n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if m and not any(_top(m) in members for _, members in LAYERS))
    assert not missing, f"add these modules to LAYERS in {Path(__file__).name}: {missing}"


def test_nothing_imports_the_package_root():
    up = [str(i) for i in IMPORTS if i.target == "" and i.source != ""]
    assert not up, "import from the module that defines it (e.g. modelfleet.version), not the root:\n" + "\n".join(up)


def test_no_import_points_up():
    up = [f"{i} (layer {LAYERS[_rank(i.source)][0]} -> {LAYERS[_rank(i.target)][0]})" for i in IMPORTS
          if i.source and i.target and _rank(i.target) < _rank(i.source)]
    assert not up, "imports that point up a layer:\n" + "\n".join(up)


@pytest.mark.parametrize(("importer", "forbidden"), NEVER, ids=[n for n, _ in NEVER])
def test_never_rules(importer, forbidden):
    bad = [str(i) for i in IMPORTS if _is_under(i.source, importer) and (i.source, i.target) not in NEVER_EXCEPT
           and any(_is_under(i.target, f) for f in forbidden)]
    assert not bad, f"{importer} must import nothing from {', '.join(forbidden)}:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in IMPORTS:
        if i.target != i.source:
            graph[i.source].add(i.target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    shown = [" -> ".join(f"{ROOT}.{m}" if m else ROOT for m in c) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(shown)


def test_routing_and_control_know_replicas_only_by_their_handle():
    sources, targets = BOUNDARY
    bad = [str(i) for i in IMPORTS if i.source in sources and any(_is_under(i.target, t) for t in targets)]
    assert not bad, "the gateway, routing and controller must not know the local backend or the wire:\n" + \
        "\n".join(bad)


def test_optional_backend_features_are_protocol_methods():
    """Outside backends/, a backend or a replica handle is used through its protocol (a method
    with a default for what only some backends do), never probed with getattr or hasattr."""
    bad = []
    for module, path in MODULES.items():
        if _is_under(module, "backends"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and node.args and re.search(r"backend|handle", ast.unparse(node.args[0]))):
                bad.append(f"{_path(module)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "use a protocol method of backends/base.py instead:\n" + "\n".join(bad)
