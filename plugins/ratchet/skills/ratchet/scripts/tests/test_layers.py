"""The floor plan holds: each layer folder of ratchetlib imports only from the
folders above it (core, io, measure, learn, keep, present, verbs, cli, in
that order; cli, the flags and one handler per verb, is the outermost and
nothing imports it), and no two modules import each other round a cycle.
Read from the source with `ast`, so an import inside a function counts as
much as one at the top: a lazy import cannot hide a cycle or an upward
dependency."""

import ast
import os
import unittest

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ratchetlib")
ORDER = ("core", "io", "measure", "learn", "keep", "present", "verbs", "cli")


def _modules() -> dict:
    """{dotted name under ratchetlib: path} of every module (packages as their __init__)."""
    out = {}
    for folder, _, files in os.walk(LIB):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), LIB)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith("__init__") else rel] = os.path.join(folder, name)
    return out


def _imports(name: str, path: str, mods: dict) -> set:
    """The ratchetlib modules `name` imports (relative imports, anywhere in the file)."""
    package = name.split(".") if path.endswith("__init__.py") else name.split(".")[:-1]
    found = set()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
        prefix = ".".join(base)
        found.add(prefix)
        found.update(f"{prefix}.{a.name}" if prefix else a.name for a in node.names)
    return {m for m in found if m in mods and not mods[m].endswith("__init__.py")}


def public_names() -> dict:
    """{public top-level function or class name: [modules defining it]}, the
    checker for issue 19's name collisions (`python3 -m tests.test_layers names`
    prints the names defined in two or more modules)."""
    out = {}
    for name, path in sorted(_modules().items()):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                kind = "class" if isinstance(node, ast.ClassDef) else "def"
                out.setdefault(node.name, []).append((name, kind))
    return out

# A public function name defined in two or more modules is allowed only among
# true peers: modules that offer the same operation on different things, so a
# reader who knows one knows the other. Every other reuse is a collision.
PEERS = {
    "run": ({"io.exec_ray", "io.exec_slurm", "io.executor", "io.runner", "measure.guard", "measure.holdout"},
            "run one command to its end: a trial on each executor, the guard, the holdout"),
    **{n: ({"io.exec_ray", "io.exec_slurm"}, "the two cluster executors' one interface")
       for n in ("cancel", "check_options", "is_submitter", "jobs_named", "listed", "submit", "where")},
    "load": ({"io.gitguard", "io.harness", "io.unclean", "learn.bandit", "learn.ideas", "measure.holdout"},
             "each module owns one .ratchet/ file and reads it"),
    "verify": ({"io.gitguard", "io.harness", "io.seal", "verbs.session"},
               "the pins and seals check their bytes; verbs.session.verify is the `verify` verb"),
    "pin": ({"io.gitguard", "io.harness"}, "the two pins: git's own files and the harness"),
    "restore": ({"io.gitguard", "io.harness"}, "the two pins put their bytes back"),
    "main": ({"cli.main", "verbs.demo", "verbs.loop.headless"},
             "entry points: the CLI, the demo script, the loop verb"),
    "judge": ({"core.decision", "core.pareto", "keep.judge"},
              "the decision rules (mean, Pareto) and keep.judge, which applies the run's one"),
    "recover": ({"io.store_best", "keep.paired", "keep.recover"},
                "each part's recovery after a kill; keep.recover calls the others"),
    "snapshot": ({"io.artifacts", "io.startup"}, "what a trial may change, noted before it runs"),
    "changed": ({"io.seal", "io.startup"}, "what changed since the snapshot or seal"),
    "undo": ({"io.carry", "io.startup"}, "put back what a trial changed outside its diff"),
    "written": ({"io.artifacts", "io.carry"}, "what a trial wrote, as record fields"),
    "summary": ({"io.artifacts", "io.lineage"}, "one `status` line each"),
    "describe": ({"verbs.chain", "verbs.ship"}, "a verb's result as text"),
    "human": ({"verbs.detect", "verbs.doctor"}, "a verb's result as text"),
    "measure": ({"keep.paired", "keep.strategy"}, "strategy.measure is the one entry; paired.measure its paired rule"),
    "render": ({"learn.program", "verbs.loop.prompt"}, "the agent's two documents: program.md and the loop prompt"),
    "settings": ({"core.escalation", "learn.hints"}, "each reads its own settings from the run config"),
}


class LayersTest(unittest.TestCase):
    def setUp(self):
        self.mods = _modules()
        self.graph = {m: _imports(m, p, self.mods) for m, p in self.mods.items()}

    def test_every_module_sits_in_a_layer_folder(self):
        loose = [m for m in self.mods if m and m.split(".")[0] not in ORDER]
        self.assertEqual(loose, [], "modules outside the layer folders")

    def test_imports_only_from_layers_above(self):
        upward = [f"{m} -> {d}" for m, deps in self.graph.items() if m
                  for d in deps if ORDER.index(d.split(".")[0]) > ORDER.index(m.split(".")[0])]
        self.assertEqual(upward, [])

    def test_no_import_cycle(self):
        state, cycles = {}, []

        def visit(m, path):
            state[m] = "open"
            for d in sorted(self.graph.get(m, ())):
                if state.get(d) == "open":
                    cycles.append(" -> ".join(path[path.index(d):] + [d]))
                elif d not in state:
                    visit(d, path + [d])
            state[m] = "done"

        for m in sorted(self.graph):
            if m not in state:
                visit(m, [m])
        self.assertEqual(cycles, [])

    def test_no_class_name_is_defined_twice(self):
        twice = {n: [m for m, _ in where] for n, where in public_names().items()
                 if len(where) > 1 and any(kind == "class" for _, kind in where)}
        self.assertEqual(twice, {})

    def test_modules_and_functions_stay_small(self):
        """No module over 400 lines, no function over 60 (issue 19): a module
        that grows past them has two jobs, and gets split by job."""
        big, long = [], []
        for name, path in self.mods.items():
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if text.count("\n") > 400:
                big.append(f"{name}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                    long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
        self.assertEqual((big, long), ([], []))

    def test_a_function_name_is_reused_only_by_peers(self):
        reused = {n: {m for m, _ in where} for n, where in public_names().items() if len(where) > 1}
        odd = {n: sorted(mods) for n, mods in reused.items() if not mods <= PEERS.get(n, (set(), ""))[0]}
        self.assertEqual(odd, {}, "a public name in two modules that are not peers: rename one, or add the "
                                  "group to PEERS with why they are peers")


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["names"]:
        for n, where in sorted(public_names().items(), key=lambda kv: (-len(kv[1]), kv[0])):
            if len(where) > 1:
                print(f"{n}: {', '.join(m for m, _ in where)}  ({PEERS.get(n, (None, 'NOT PEERS'))[1]})")
    else:
        unittest.main()
