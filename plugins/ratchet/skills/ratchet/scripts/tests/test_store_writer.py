"""Only io/store* writes under `.ratchet/`, and FORMATS.md lists what is there.

What the scan sees: every call in ratchetlib/ (outside io/store*.py) that
writes, moves, links, removes or creates a file or folder with a standard
library primitive: `open`/`os.fdopen` with a mode that writes, `os.open`
with a write flag, `os.replace/rename/remove/unlink/rmdir/makedirs/mkdir/
symlink/link/chmod/truncate/utime`, `shutil.copy*/move/rmtree`, and
`.write_text/.write_bytes` on anything but a store module. Each such call
must sit in a function listed in ELSEWHERE with the place it writes, which is
not `.ratchet/` (the working tree, .git, a temporary folder, the key folder),
and its arguments must not name the store (`store`, `.root`, `DIRNAME`,
`.ratchet`). A write of a new kind, or a new function that writes, fails the
test until it goes through io/store* or is listed here with its reason.

What it cannot see: where a path an argument holds points at run time (a
listed function handed a `.ratchet/` path by its caller would pass; none is
today), writes through a name the scan does not know (an alias such as
`from os import replace`, `pathlib` methods other than write_text/
write_bytes, `subprocess` with a redirection), writes by a subprocess (git,
the user's command: a trial's outputs are opened by `store_files.capture`
and handed to it), and code outside ratchetlib/ (the plugin's Stop hook
writes `.ratchet/stop-hook.json` itself; FORMATS.md says so).
"""

import ast
import os
import re
import unittest

from ratchetlib.io import store

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(os.path.dirname(HERE), "ratchetlib")
FORMATS = os.path.join(os.path.dirname(HERE), "..", "..", "..", "FORMATS.md")

ELSEWHERE = {  # "module:function" -> where its writes go (never .ratchet/)
    "verbs/demo.py:_make_repo": "the demo's own temporary repository",
    "verbs/demo.py:main": "the demo's own temporary repository",
    "verbs/doctor.py:_put_back": "the user's report file, back into the working tree",
    "verbs/doctor.py:doctor": "doctor's temporary folder",
    "verbs/doctor.py:_executor_check": "doctor's temporary folder (inside the repository, for the cluster's nodes)",
    "verbs/ship.py:plan": "ship's temporary folder",
    "io/artifacts.py:discard": "the working tree (files the trials created)",
    "io/carry.py:undo": "the working tree (a file a trial wrote outside its diff)",
    "io/carry.py:_restore_user_file": "the working tree (an untracked file put back)",
    "io/fresh.py:switched": "the working tree (bytecode caches, mtimes)",
    "io/gitguard.py:restore": "the repository's git configuration (.git/config, hooks, info/exclude)",
    "io/gitpatch.py:_put_head": "the working tree",
    "io/gitpatch.py:prune_empty_dirs": "the working tree",
    "io/gitops.py:ensure_excluded": ".git/info/exclude",
    "io/swapfiles.py:write_side": "the working tree (a paired side's files written back)",
    "io/swapfiles.py:clear_temps": "the working tree (a killed swap write's temporary file)",
    "io/swapfiles.py:_write": "the working tree (one file of a paired side, through a rename)",
    "io/harness.py:_remove": "the working tree (a protected path put back)",
    "io/harness.py:_prune": "the working tree (a protected path put back)",
    "io/harness.py:restore": "the working tree (a protected path put back)",
    "io/seal.py:_write_key_file": "the seal key folder outside the repository (~/.local/state/ratchet/keys)",
    "io/startup.py:undo": "the working tree and site folders (Python startup hooks put back)",
    "measure/holdout.py:_link_untracked": "the holdout's temporary worktree",
    "measure/holdout.py:_evaluate": "the holdout's temporary folder",
    "keep/paired.py:_unstage": "the working tree (the candidate's checkpoints put back)",
    "keep/recheck.py:_remove": "the working tree (files only the other commit has)",
}

_PRIMITIVES = {("os", n) for n in ("replace", "rename", "renames", "remove", "unlink", "rmdir", "removedirs",
                                   "makedirs", "mkdir", "symlink", "link", "chmod", "truncate", "utime")} | \
              {("shutil", n) for n in ("copy", "copy2", "copyfile", "copytree", "copyfileobj", "move", "rmtree",
                                       "copystat", "copymode")}
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC")
_STORE_WORDS = re.compile(r"\bstore\b|\bstore_root\b|\.root\b|DIRNAME|\.ratchet")


def _writes_mode(call: ast.Call, pos: int) -> bool:
    mode = call.args[pos] if len(call.args) > pos else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(c in mode.value for c in "wax+")
    return True  # a mode computed at run time: counted as a write


def _kind(call: ast.Call):
    """The write primitive `call` is, or None."""
    f = call.func
    if isinstance(f, ast.Name):
        return "open" if f.id == "open" and _writes_mode(call, 1) else None
    if not isinstance(f, ast.Attribute):
        return None
    owner = f.value.id if isinstance(f.value, ast.Name) else None
    if (owner, f.attr) in _PRIMITIVES:
        return f"{owner}.{f.attr}"
    if owner == "os" and f.attr == "open":
        flags = ast.unparse(call.args[1]) if len(call.args) > 1 else ""
        return "os.open" if any(w in flags for w in _WRITE_FLAGS) or not flags.startswith("os.") else None
    if owner == "os" and f.attr == "fdopen":
        return "os.fdopen" if _writes_mode(call, 1) else None
    if f.attr in ("write_text", "write_bytes") and not (owner or "").startswith("store"):
        return f.attr
    return None


def write_sites(path: str) -> list:
    """[(function qualname, primitive, line, argument text)] of `path`."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out = []

    def walk(node, scope):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                walk(child, scope + [child.name])
                continue
            if isinstance(child, ast.Call):
                kind = _kind(child)
                if kind:
                    args = " ".join(ast.unparse(a) for a in child.args)
                    out.append((".".join(scope) or "<module>", kind, child.lineno, args))
            walk(child, scope)
    walk(tree, [])
    return out


def _modules():
    for folder, _, files in os.walk(LIB):
        for name in sorted(files):
            if name.endswith(".py"):
                full = os.path.join(folder, name)
                yield os.path.relpath(full, LIB).replace(os.sep, "/"), full


def _is_store(rel: str) -> bool:
    return rel.startswith("io/store") and rel.endswith(".py")


class StoreIsTheOnlyWriterTest(unittest.TestCase):
    def test_no_module_outside_the_store_writes_under_it(self):
        unknown, named, seen = [], [], set()
        for rel, full in _modules():
            if _is_store(rel):
                continue
            for func, kind, line, args in write_sites(full):
                key = f"{rel}:{func}"
                seen.add(key)
                if key not in ELSEWHERE:
                    unknown.append(f"{rel}:{line} {func}: {kind}({args})")
                elif _STORE_WORDS.search(args):
                    named.append(f"{rel}:{line} {func}: {kind}({args})")
        self.assertEqual(unknown, [], "a module outside io/store* writes a file: go through io/store_files "
                                      "(or, when it is not under .ratchet/, list it in ELSEWHERE with where)")
        self.assertEqual(named, [], "a write outside io/store* names the store in its arguments")
        self.assertEqual(sorted(set(ELSEWHERE) - seen), [], "ELSEWHERE lists a function that no longer writes")

    def test_the_scan_sees_each_kind_of_write(self):
        """The scanner itself: each primitive it claims to see, seen; reads not."""
        import tempfile
        src = ("import os, shutil\n"
               "def w(p, q, m):\n"
               "    open(p, 'w'); open(p, 'ab'); open(p, m); os.open(p, os.O_WRONLY | os.O_CREAT)\n"
               "    os.replace(p, q); os.makedirs(p); shutil.copyfile(p, q); shutil.rmtree(p)\n"
               "    os.fdopen(3, 'wb'); q.write_text('x'); store_files.write_text(p, 'x', 'y')\n"
               "def r(p):\n"
               "    open(p); open(p, 'rb'); os.open(p, os.O_RDONLY); os.fdopen(3, 'rb')\n")
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(src)
        try:
            found = write_sites(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual({s[0] for s in found}, {"w"})
        self.assertEqual([s[1] for s in found],
                         ["open", "open", "open", "os.open", "os.replace", "os.makedirs", "shutil.copyfile",
                          "shutil.rmtree", "os.fdopen", "write_text"])


def _formats_rows() -> list:
    """The paths in the first column of FORMATS.md's table of `.ratchet/`."""
    with open(FORMATS, encoding="utf-8") as f:
        text = f.read()
    table = text.split("| path |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        first = line.split("|")[1]
        if "(outside the repository)" in first or first.strip().startswith("("):
            continue
        rows.append([p for p in re.findall(r"`([^`]+)`", first) if not p.startswith(".")])  # `.err`: an extension
    return rows


class FormatsTableTest(unittest.TestCase):
    def test_formats_lists_every_entry_of_the_store_table_and_nothing_else(self):
        names = {v.rstrip("/") for v in store.FILES.values()}
        rows = _formats_rows()
        listed = [p for row in rows for p in row]
        self.assertTrue(listed)
        strays = [p for p in listed if not any(p == n or p.startswith(n + "/") or p.startswith(n + ".")
                                               for n in names)]
        self.assertEqual(strays, [], "FORMATS.md lists a path store.FILES does not name")
        missing = sorted(n for n in names if not any(p == n or p.startswith(n + "/") or p == n + "/"
                                                     for p in listed))
        self.assertEqual(missing, [], "store.FILES names a path FORMATS.md's table does not list")

    def test_every_row_names_its_writer_module_and_format(self):
        with open(FORMATS, encoding="utf-8") as f:
            text = f.read()
        header = next(line for line in text.splitlines() if line.startswith("| path |"))
        self.assertEqual([c.strip() for c in header.strip("|").split("|")][:4],
                         ["path", "written by", "writer module", "format"])
        table = text.split("| path |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
        for line in table:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            with self.subTest(row=cells[0]):
                self.assertRegex(cells[2], r"`(io|hooks)/[a-z_/]+")
                self.assertTrue(cells[3], "a format cell is empty")


if __name__ == "__main__":
    unittest.main()
