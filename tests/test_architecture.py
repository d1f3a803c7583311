"""The package's shape, read statically from its source with ``ast`` (nothing is imported).

1. The module import graph of ``gnn_scratch`` has no cycle: every ``import`` / ``from ... import``,
   absolute or relative, at module level or inside a function, is an edge.
2. Placement ("is this array on the GPU?") is decided in one place: the placement predicates, tests
   of a ``.device`` attribute and comparisons with "cpu" / "cuda" appear only in the modules of
   ``PLACEMENT_ALLOWED`` (see ``placement_checks`` for the exact patterns).
"""
import ast
import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gnn_scratch"

# Modules (paths relative to the repository, glob patterns allowed) that may ask where an array lives.
PLACEMENT_ALLOWED = (
    "gnn_scratch/device.py",             # the placement module itself
    "gnn_scratch/kernels/registry.py",   # the one dispatch decision per op call
    "gnn_scratch/kernels/*cuda*.py",     # the device kernels check that they were handed device arrays
    "gnn_scratch/graph/csr.py",          # Graph.to: an object that moves itself knows where it is
    "gnn_scratch/nn/module.py",          # Module.to: the one check that a model's layers can move there
    "gnn_scratch/cli.py",                # parses --device and says "no GPU" before loading anything
    "gnn_scratch/bench/gpu.py",          # the GPU benchmark places the *peer's* torch tensors
)
# A submodule importing a name from its own package (`from . import register` in models/gat.py, while
# models/__init__.py imports gat) is a cycle too, one that works only through the order of the
# package's imports. False ignores such imports, as ../shared/tools/import_cycles.py does.
COUNT_IMPORTS_OF_OWN_PACKAGE = True
# The placement predicates of gnn_scratch.device: calling one is deciding placement.
PLACEMENT_PREDICATES = ("is_device", "is_device_array", "device_of")
# Comparing anything with one of these strings is asking where something lives (or is to live).
DEVICE_NAMES = ("cpu", "cuda")
# hasattr(x, NAME) with one of these names tells a device array from a host one.
DEVICE_ATTRIBUTES = ("device", "__cuda_array_interface__")
# isinstance(x, CLASS) with one of these classes tells device data from host data.
DEVICE_CLASSES = ("DeviceCSR",)


# =============================================================================== the package's modules
def package_modules(package=PACKAGE):
    """{dotted module name: path} for every .py file under ``package`` (a package is its __init__)."""
    mods = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _parse(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# ================================================================================== the import graph
def imported_modules(name, path, mods, own_package=COUNT_IMPORTS_OF_OWN_PACKAGE):
    """The package modules that module ``name`` (file ``path``) imports, anywhere in its body.

    ``import a.b.c`` -> a.b.c; ``from a.b import c`` -> a.b.c if that is a module, else a.b (c is a
    name defined in a.b); relative imports resolve against the module's package. Parents that Python
    runs implicitly before a submodule are not edges: only what the source names is. With
    ``own_package`` False, an import of one of the module's own enclosing packages is not an edge.
    """
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]       # the package the module is in
    found = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert len(here) > node.level - 1, f"{path}:{node.lineno}: relative import beyond the top package"
                base = here[:len(here) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source for a in node.names]
        else:
            continue
        for target in targets:
            # the nearest enclosing module of the package; one from outside it (numpy, numba.cuda) is dropped
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name and (own_package or not name.startswith(target + ".")):
                found.add(target)
    return found


def import_graph(package=PACKAGE, own_package=COUNT_IMPORTS_OF_OWN_PACKAGE):
    mods = package_modules(package)
    return {name: imported_modules(name, path, mods, own_package) for name, path in mods.items()}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        sccs.append(sorted(component))
    return sorted(sccs)


def describe_cycle(component, graph):
    """One line per import edge inside the component, e.g. 'gnn_scratch.a -> gnn_scratch.b'."""
    members = set(component)
    edges = [f"    {m} -> {t}" for m in component for t in sorted(graph[m] & members)]
    return f"  {{{', '.join(component)}}}:\n" + "\n".join(edges)


def test_cycle_finder_on_a_known_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"g"}}
    assert cycles(graph) == [["a", "b", "c"], ["e", "f"]]


def test_import_resolution(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import f\n",
        "a.py": "import os\nfrom . import b\nfrom .sub import thing\n",
        "b.py": "def g():\n    from pkg.sub.c import h\n    import pkg.a\n",
        "sub/__init__.py": "thing = 1\n",
        "sub/c.py": "from .. import a\nfrom ..b import g\nfrom . import thing\n",
        "sub/d.py": "from pkg import f\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    assert import_graph(pkg, own_package=True) == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b", "pkg.sub"},
        "pkg.b": {"pkg.sub.c", "pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a", "pkg.b", "pkg.sub"},
        "pkg.sub.d": {"pkg"},
    }
    assert cycles(import_graph(pkg, own_package=True)) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    graph = import_graph(pkg, own_package=False)
    assert graph["pkg.sub.c"] == {"pkg.a", "pkg.b"} and graph["pkg.sub.d"] == set()


def test_module_import_graph_has_no_cycle():
    graph = import_graph()
    found = cycles(graph)
    assert not found, (f"{len(found)} import cycle(s) among gnn_scratch's modules (every import counts, "
                       f"function-local ones too; COUNT_IMPORTS_OF_OWN_PACKAGE={COUNT_IMPORTS_OF_OWN_PACKAGE}):\n"
                       + "\n".join(describe_cycle(c, graph) for c in found))


# ======================================================================================= placement
def placement_checks(path):
    """[(line, what)] for each place in the file that asks where an array lives:

    - a call of a placement predicate, ``is_device(x)`` or ``device.is_device(x)`` alike;
    - ``getattr(x, "device", ...)``, ``hasattr(x, "device")``, ``hasattr(x, "__cuda_array_interface__")``;
    - ``isinstance(x, DeviceCSR)``;
    - a comparison with a ``.device`` attribute (``x.device != "cpu"``, ``a.device == b.device``) or with
      the string "cpu" or "cuda" (``device != "cpu"``, ``check_device(d) == "cpu"``).
    Reading ``x.device`` or passing ``device`` on is not deciding, and is not listed.
    """
    found = []

    def const_str(node, values):
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in values

    def name_of(node):
        return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None

    in_a_comparison = set()      # getattr(...) == "cpu" is one place, not two
    for node in ast.walk(_parse(path)):                       # breadth first: a comparison before its operands
        if isinstance(node, ast.Call) and id(node) not in in_a_comparison:
            called, args = name_of(node.func), node.args
            if called in PLACEMENT_PREDICATES:
                found.append((node.lineno, f"{called}(...)"))
            elif called == "getattr" and len(args) >= 2 and const_str(args[1], ("device",)):
                found.append((node.lineno, 'getattr(..., "device", ...)'))
            elif called == "hasattr" and len(args) == 2 and const_str(args[1], DEVICE_ATTRIBUTES):
                found.append((node.lineno, f"hasattr(..., {args[1].value!r})"))
            elif called == "isinstance" and len(args) == 2:
                classes = args[1].elts if isinstance(args[1], ast.Tuple) else [args[1]]
                if any(name_of(c) in DEVICE_CLASSES for c in classes):
                    found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any((isinstance(o, ast.Attribute) and o.attr == "device") or const_str(o, DEVICE_NAMES)
                   for o in operands):
                found.append((node.lineno, ast.unparse(node)))
                in_a_comparison.update(id(o) for o in operands)
    return sorted(set(found))


def placement_allowed(rel):
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in PLACEMENT_ALLOWED)


def placement_outside_allowed(package=PACKAGE):
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        if not placement_allowed(rel):
            out += [(rel, line, what) for line, what in placement_checks(path)]
    return out


def test_placement_finder(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "from gnn_scratch import device\n"
        "def f(x, y, d):\n"
        "    if device.is_device(x) or is_device_array(y):\n"
        "        return device_of(x, y)\n"
        "    if x.device != 'cpu' and getattr(y, 'device', 'cpu') == 'cpu':\n"
        "        return 1\n"
        "    if hasattr(x, '__cuda_array_interface__') or isinstance(y, (int, device.DeviceCSR)):\n"
        "        return 2\n"
        "    if check_device(d) == 'cuda':\n"
        "        return 3\n"
        "    if x.name == 'cpus' or hasattr(x, 'shape'):\n"         # other strings and attributes: not placement
        "        return 4\n"
        "    z = getattr(x, 'device', None)\n"
        "    return x.device, y.to(d)\n"                             # reading it, moving: not deciding
    )
    assert placement_checks(src) == [
        (3, "is_device(...)"), (3, "is_device_array(...)"), (4, "device_of(...)"),
        (5, "getattr(y, 'device', 'cpu') == 'cpu'"), (5, "x.device != 'cpu'"),
        (7, "hasattr(..., '__cuda_array_interface__')"), (7, "isinstance(y, (int, device.DeviceCSR))"),
        (9, "check_device(d) == 'cuda'"), (13, 'getattr(..., "device", ...)')]
    assert placement_allowed("gnn_scratch/kernels/gat_cuda.py") and placement_allowed("gnn_scratch/device.py")
    assert not placement_allowed("gnn_scratch/nn/linear.py")


def test_placement_is_decided_in_one_place():
    places = placement_outside_allowed()
    modules = sorted({rel for rel, _, _ in places})
    assert not places, (f"{len(places)} placement decision(s) in {len(modules)} module(s) outside "
                        f"{PLACEMENT_ALLOWED}:\n" + "\n".join(f"  {rel}:{line}: {what}" for rel, line, what in places))
