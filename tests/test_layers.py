"""The layering contract (docs/ARCHITECTURE.md), read from the source: every import counts,
those inside functions too.

  foundation   clock, errors, netpolicy, storage, vault, config, runner and the shared
               vocabulary (addresses, forms, resolver, shaping_rules, failure_reasons,
               messages): imports nothing above it (its own commands are interfaces).
  capabilities every other package (accounts … webhooks): imports no interface module, and
               the packages import one another one way only (no cycle).
  interfaces   HTTP, CLI and the process's wiring: routers, commands, app, server, deps, http,
               web, wiring. They may import anything; nothing imports them back.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "mailhaven"
FOUNDATION = {"__init__", "clock", "errors", "netpolicy", "storage", "vault", "config",
              "runner", "addresses", "forms", "resolver", "shaping_rules", "failure_reasons",
              "messages"}
# Interface modules: these top-level modules, packages, and modules of these names anywhere.
INTERFACE_TOP = {"app", "regional", "server", "deps", "http", "openapi", "web", "cli", "wiring"}
# response: an export over HTTP; deps: FastAPI dependencies that build a request's context
# openapi: a router's answers described for /openapi.json, beside it
INTERFACE_NAMES = {"router", "cli", "response", "deps", "openapi"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def is_interface(module: str) -> bool:
    parts = module.split(".")[1:]
    return bool(parts) and (parts[0] in INTERFACE_TOP or parts[-1] in INTERFACE_NAMES)


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every mailhaven import in the file, wherever it is written; a
    `from package import name` counts as the submodule when there is one."""
    module = module_name(path)
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (SRC.parent / sub.replace(".", "/")).with_suffix(".py").exists() \
                    or (SRC.parent / sub.replace(".", "/")).is_dir()
                found.append((node.lineno, sub if is_module else base))
    return [(line, name) for line, name in found if name.split(".")[0] == "mailhaven"]


Sources = dict[str, list[tuple[int, str]]]  # module -> (line, module it imports)


def sources() -> Sources:
    return {module_name(path): imports(path) for path in sorted(SRC.rglob("*.py"))
            if "migrations" not in path.parts}


def reaching_up(found_in: Sources) -> list[str]:
    """Foundation modules that import a capability or an interface."""
    return [f"{module}:{line} imports {target}" for module, found in found_in.items()
            if package(module) in FOUNDATION and not is_interface(module)
            for line, target in found if package(target) not in FOUNDATION]


def importing_interfaces(found_in: Sources) -> list[str]:
    return [f"{module}:{line} imports {target}" for module, found in found_in.items()
            if not is_interface(module) for line, target in found if is_interface(target)]


def a_cycle(found_in: Sources) -> list[str]:
    """The imports of a cycle between packages, one line each; empty when there is none."""
    edges: dict[str, dict[str, str]] = defaultdict(dict)  # package -> {package: why}
    for module, found in found_in.items():
        if is_interface(module):
            continue
        for line, target in found:
            if package(target) != package(module) and not is_interface(target):
                edges[package(module)].setdefault(package(target), f"{module}:{line}")
    cycle = _a_cycle(edges) or []
    return [f"  {a} -> {b}  ({edges[a][b]} imports {b})" for a, b in zip(cycle, cycle[1:])]


def test_the_foundation_imports_no_capability() -> None:
    wrong = reaching_up(sources())
    assert not wrong, "the foundation reaches up:\n" + "\n".join(wrong)


def test_no_capability_imports_an_interface_module() -> None:
    wrong = importing_interfaces(sources())
    assert not wrong, "below the interfaces, an import of one:\n" + "\n".join(wrong)


def test_packages_import_one_another_one_way() -> None:
    cycle = a_cycle(sources())
    assert not cycle, "packages import one another in a cycle:\n" + "\n".join(cycle)


def test_each_rule_catches_what_it_forbids() -> None:
    """Planted violations, so that a rule that stopped seeing anything would fail here."""
    assert reaching_up({"mailhaven.vault.service": [(3, "mailhaven.delivery.queue")]})
    assert not reaching_up({"mailhaven.vault.cli": [(3, "mailhaven.services")]})
    assert importing_interfaces({"mailhaven.delivery.queue": [(5, "mailhaven.events.router")]})
    assert a_cycle({"mailhaven.sending.service": [(1, "mailhaven.delivery.queue")],
                    "mailhaven.delivery.worker": [(2, "mailhaven.sending.service")]})
    assert not a_cycle({"mailhaven.sending.service": [(1, "mailhaven.delivery.queue")],
                        "mailhaven.sending.router": [(2, "mailhaven.delivery.router")]})


def test_every_named_interface_exists() -> None:
    """A name left behind by a move would exempt whatever takes it later."""
    for name in INTERFACE_TOP:
        assert (SRC / f"{name}.py").exists() or (SRC / name).is_dir(), name
    named = {path.stem for path in SRC.rglob("*.py")}
    assert named >= INTERFACE_NAMES, INTERFACE_NAMES - named


def _a_cycle(edges: dict[str, dict[str, str]]) -> list[str] | None:
    """A path that comes back to its start, or None (depth-first search)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_check_sees_imports_inside_functions() -> None:
    """The contract would be hollow if a function-level import escaped it."""
    found = {target for _, target in imports(SRC / "server.py")}
    assert "mailhaven.dev.demo" in found  # imported inside run_server
