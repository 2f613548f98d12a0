"""jfr's imports stay one-way: no module of jfr imports (directly or through others) itself.

Walks the ``import``/``from ... import`` statements of every module under ``jfr/`` (static,
module level and inside functions) and fails on any cycle, naming it.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
  modules = {_module_name(p): p for p in (ROOT / "jfr").rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    edges = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
      targets = []
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
          base = base.strip(".")
        targets = [base] + [f"{base}.{a.name}" for a in node.names]
      for target in targets:
        while target and target not in modules:
          target = target.rpartition(".")[0]
        if target and target != name and target.startswith("jfr"):
          # importing a package's submodule also runs the package's __init__, but an
          # __init__ that only has a docstring adds no edge worth following
          edges.add(target)
    graph[name] = edges
  return graph


def _cycles(graph):
  state, stack, found = {}, [], []

  def visit(node):
    state[node] = 1
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        found.append(stack[stack.index(nxt) :] + [nxt])
      elif nxt not in state:
        visit(nxt)
    stack.pop()
    state[node] = 2

  for node in sorted(graph):
    if node not in state:
      visit(node)
  return found


def test_no_import_cycles_in_jfr():
  graph = _graph()
  assert "jfr.methods.registry" in graph
  cycles = [c for c in _cycles(graph) if not _package_init_only(c)]
  assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _package_init_only(cycle):
  """A package __init__ re-exporting its own submodules (``jfr.report`` -> ``jfr.report.x``)
  is not a cycle of code depending on itself."""
  return all(a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(cycle, cycle[1:]))


def test_cycle_finder_finds_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
  assert _cycles({"a": {"b"}, "b": set()}) == []


def test_methods_do_not_import_each_other_except_recognition():
  graph = _graph()
  for name, edges in graph.items():
    if not name.startswith("jfr.methods."):
      continue
    own = ".".join(name.split(".")[:3])
    for target in edges:
      if target.startswith("jfr.methods.") and target != "jfr.methods.registry":
        other = ".".join(target.split(".")[:3])
        assert other in (own, "jfr.methods.recognition"), f"{name} imports {target}"
