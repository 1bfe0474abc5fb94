"""Which files a Bash command line would write, read from its text (best effort).

Why: the PreToolUse hook denies a shell command that writes to the harness,
`.ratchet/` or `.git/` *before* it runs, and names the file; the CLI's SHA-256
check of the harness stays the guarantee behind it. This module only reads
the command's text: it never runs, expands or evaluates anything.

Contract: `writes(command, cwd)` returns a list of `Write(path, how, tree)`:
`path` absolute and normalised (symlinks not resolved), `how` the construct
that writes it (">> redirection", "sed -i", "rm", "git checkout", ...), `tree`
True when the command can change everything *under* the path too (rm -r, mv,
git clean). It never raises; on text it cannot tokenize it falls back to a
plain whitespace split.

What it understands: `;` `&&` `||` `|` `&`, newlines, subshells, `$( )` and
backticks (their content is parsed as commands), here-documents (skipped),
leading `VAR=value`, the wrappers sudo/env/command/exec/nohup/nice/time/
timeout/stdbuf, `bash|sh|zsh|dash -c STRING` and `eval STRING` (parsed
recursively), `cd DIR` (later paths are relative to it), `git -C DIR`, `~`,
and globs that match files. Writers: redirections `>` `>>` `>|` `&>` `<>`;
tee; sed -i / perl -i; cp, mv, install, ln (destination; mv also its sources);
rm, rmdir, unlink, shred, truncate, touch; dd of=; git checkout/restore
(paths), git rm/mv, git clean (the tree), and git commands that move refs or
the index (commit, reset, switch, stash, rebase, merge, ...: they write
`.git/`).

Out of reach, by design (a program can write any file): interpreters running
code (`python -c`, `node -e`, scripts, make targets), paths held in variables
or produced by command substitution, `xargs`, `find -delete`/`-exec`,
archives extracted over files, and anything the command's own programs do.
"""

import glob
import os
import re
import shlex
from collections import namedtuple

Write = namedtuple("Write", "path how tree")

_PUNCT = ";&|()<>\n`"
_WRAPPERS = {"sudo", "command", "builtin", "exec", "nohup", "time", "stdbuf", "doas"}
_KEYWORDS = {"{", "}", "!", "then", "do", "else", "elif", "if", "while", "until", "fi", "done", "esac"}
_SHELLS = {"bash", "sh", "zsh", "dash", "ksh"}
_SUBST = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")
# options of removers/creators that take a value (so the value is not a path)
_VALUE_OPTS = {"truncate": {"-s", "-r", "--size", "--reference"}, "shred": {"-n", "-s", "--iterations", "--size"},
               "touch": {"-d", "-t", "-r", "--date", "--reference"}, "install": {"-m", "-o", "-g", "-S", "--mode"},
               "cp": {"-S", "--suffix"}, "mv": {"-S", "--suffix"}, "ln": {"-S", "--suffix"}}
_REMOVERS = {"rm": True, "rmdir": True, "unlink": False, "shred": False, "truncate": False, "touch": False}
_GIT_REFS = {"commit", "reset", "switch", "stash", "rebase", "merge", "cherry-pick", "revert", "am",
             "update-ref", "tag", "pull", "notes", "replace", "filter-branch", "gc", "prune", "worktree"}


def _tokens(command):
    lexer = shlex.shlex(command, posix=True, punctuation_chars=_PUNCT)
    lexer.whitespace = " \t\r"
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: the shell would refuse it too; still look
        return command.split()


def _is_sep(tok):
    return bool(tok) and all(c in ";&|()`\n" for c in tok)


def _segments(tokens):
    """Simple commands as token lists, here-document bodies dropped."""
    out, cur, heredocs, i = [], [], [], 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("<<", "<<-") and i + 1 < len(tokens):
            heredocs.append(tokens[i + 1])
            i += 2
            continue
        if tok == "\n" and heredocs:
            out.append(cur)
            cur = []
            while heredocs and i < len(tokens):  # skip each body up to its delimiter line
                delim = heredocs.pop(0)
                i += 1
                while i < len(tokens) and not (tokens[i] == delim and (i + 1 == len(tokens) or tokens[i + 1] == "\n")
                                               and tokens[i - 1] == "\n"):
                    i += 1
                i += 1
            continue
        if _is_sep(tok):
            out.append(cur)
            cur = []
        elif tok != "$":
            cur.append(tok)
        i += 1
    out.append(cur)
    return [s for s in out if s]


def _redirections(seg):
    """(argv without redirections, [(target, op)] of the writing ones)."""
    argv, targets, i = [], [], 0
    while i < len(seg):
        tok = seg[i]
        if tok and set(tok) <= set("<>&|") and (">" in tok or "<" in tok):
            target = seg[i + 1] if i + 1 < len(seg) else None
            if target is not None and ">" in tok and not (tok.endswith("&") and re.fullmatch(r"\d+|-", target)):
                targets.append((target, tok))
            elif target is not None and tok == "<>":
                targets.append((target, tok))
            i += 2
            continue
        argv.append(tok)
        i += 1
    return argv, targets


def _strip_prefix(argv):
    """argv without leading assignments, keywords and wrappers (their options too)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if _ASSIGN.match(word) or word in _KEYWORDS:
            i += 1
        elif word in _WRAPPERS or word == "env":
            i += 1
            while i < len(argv) and (argv[i].startswith("-") or (word == "env" and _ASSIGN.match(argv[i]))):
                i += 2 if argv[i] in ("-u", "-C", "-S", "-o", "-e", "-g") else 1
        elif word == "nice":
            i += 1
            if i < len(argv) and argv[i] == "-n":
                i += 2
            elif i < len(argv) and argv[i].startswith("-"):
                i += 1
        elif word == "timeout":
            i += 1
            while i < len(argv) and argv[i].startswith("-"):
                i += 2 if argv[i] in ("-s", "-k", "--signal", "--kill-after") else 1
            i += 1  # the duration
        else:
            break
    return argv[i:]


def _positional(args, value_opts=()):
    out, i, ended = [], 0, False
    while i < len(args):
        a = args[i]
        if ended or not a.startswith("-") or a == "-":
            out.append(a)
        elif a == "--":
            ended = True
        elif a in value_opts:
            i += 1
        i += 1
    return out


def _inplace_files(args, arg_opts):
    """sed/perl: the files edited in place, or [] when there is no -i."""
    inplace, script_given, files, i = False, False, [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("--in-place") or a == "-i":
            inplace = True
        elif a.startswith("--"):
            if a in ("--expression", "--file"):
                script_given, i = True, i + 1
            elif a.startswith(("--expression=", "--file=")):
                script_given = True
        elif a.startswith("-") and len(a) > 1:
            cluster = a[1:]
            head = cluster.split("i", 1)[0]
            inplace = inplace or "i" in cluster
            if head and head[-1] in arg_opts:
                script_given, i = True, i + 1
        else:
            files.append(a)
        i += 1
    if not inplace:
        return []
    return files if script_given else files[1:]


def _dest(args, value_opts):
    """cp/mv/install/ln: (sources, destination, into_dir)."""
    target_dir = None
    rest, i = [], 0
    while i < len(args):
        a = args[i]
        if a in ("-t", "--target-directory"):
            target_dir, i = (args[i + 1] if i + 1 < len(args) else None), i + 1
        elif a.startswith("--target-directory="):
            target_dir = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    pos = _positional(rest, value_opts)
    if target_dir is not None:
        return pos, target_dir, True
    if len(pos) < 2:
        return [], pos[0] if pos else None, False
    return pos[:-1], pos[-1], None


def _git(args, cwd):
    """(writes, cwd) for a git command line (after `git`)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] == "-C" and i + 1 < len(args):
            cwd = os.path.join(cwd, os.path.expanduser(args[i + 1]))
            i += 2
        elif args[i] in ("-c", "--git-dir", "--work-tree", "--namespace"):
            i += 2
        else:
            i += 1
    if i >= len(args):
        return [], cwd
    sub, rest = args[i], args[i + 1:]
    if sub in ("checkout", "restore"):
        value_opts = {"-s", "--source", "-b", "-B", "--orphan", "--conflict", "--pathspec-from-file"}
        if "--" in rest:
            paths = _positional(rest[rest.index("--") + 1:])
            return [("git " + sub, p, False) for p in paths], cwd
        pos = _positional(rest, value_opts)
        paths = pos if sub == "restore" else [p for p in pos if os.path.lexists(os.path.join(cwd, p))]
        branchy = sub == "checkout" and (len(paths) < len(pos) or not pos or "-b" in rest or "-B" in rest)
        return [("git " + sub, p, False) for p in paths] + ([("git checkout", ".git", False)] if branchy else []), cwd
    if sub in ("rm", "mv"):
        return [("git " + sub, p, True) for p in _positional(rest)], cwd
    if sub == "clean" and any(a.startswith("-") and "f" in a.lstrip("-") or a == "--force" for a in rest):
        paths = _positional(rest, {"-e", "--exclude"}) or ["."]
        return [("git clean", p, True) for p in paths], cwd
    if sub in _GIT_REFS or (sub == "branch" and any(a in ("-d", "-D", "-f", "-m", "-M", "--force", "--delete")
                                                   for a in rest)):
        return [("git " + sub, ".git", False)], cwd
    return [], cwd


def _expand(word, cwd):
    """Paths a word stands for: `~` expanded, globs that match replaced by their matches."""
    word = os.path.expanduser(word)
    full = os.path.normpath(os.path.join(cwd, word))
    if any(c in word for c in "*?[") and "$" not in word:
        found = sorted(glob.glob(full))
        if found:
            return [os.path.normpath(f) for f in found]
    return [full]


def _command(argv, cwd, depth):
    """(writes as (how, word, tree), new cwd or None, nested command strings)."""
    if not argv:
        return [], None, []
    name, args = os.path.basename(argv[0]), argv[1:]
    if name in ("cd", "pushd"):
        pos = _positional(args)
        return [], (pos[0] if pos else "~"), []
    if name in _SHELLS and "-c" in args and args.index("-c") + 1 < len(args):
        return [], None, [args[args.index("-c") + 1]]
    if name == "eval":
        return [], None, [" ".join(args)]
    if name == "tee":
        return [("tee", p, False) for p in _positional(args)], None, []
    if name == "sed":
        return [("sed -i", p, False) for p in _inplace_files(args, "ef")], None, []
    if name == "perl":
        return [("perl -i", p, False) for p in _inplace_files(args, "eEMmI")], None, []
    if name in _REMOVERS:
        recursive = _REMOVERS[name] and (name == "rmdir" or any(
            a in ("--recursive",) or (a.startswith("-") and not a.startswith("--") and set("rR") & set(a))
            for a in args))
        return [(name, p, recursive) for p in _positional(args, _VALUE_OPTS.get(name, ()))], None, []
    if name in ("cp", "mv", "install", "ln"):
        sources, dest, into_dir = _dest(args, _VALUE_OPTS.get(name, ()))
        out = [(name, s, True) for s in sources] if name == "mv" else []
        if dest is not None:  # the file inside a destination folder first: it is the one the reason names
            if into_dir is not False:
                out += [(name, os.path.join(dest, os.path.basename(s.rstrip("/"))), name == "mv") for s in sources]
            out.append((name, dest, False))
        return out, None, []
    if name == "dd":
        return [("dd", a[3:], False) for a in args if a.startswith("of=")], None, []
    if name == "git":
        found, new_cwd = _git(args, cwd)
        return found, None, []
    return [], None, []


def writes(command, cwd, _depth=0):
    """Every file `command` would write, as far as its text shows (see the module docstring)."""
    if not isinstance(command, str) or _depth > 3:
        return []
    out = []
    for seg in _segments(_tokens(command)):
        argv, redirects = _redirections(seg)
        for target, op in redirects:
            out += [Write(p, op + " redirection", False) for p in _expand(target, cwd)]
        argv = _strip_prefix(argv)
        git_cwd = cwd
        if argv and os.path.basename(argv[0]) == "git":
            _, git_cwd = _git(argv[1:], cwd)
        found, new_cwd, nested = _command(argv, cwd, _depth)
        for how, word, tree in found:
            if "$" in word:
                continue  # a variable: out of reach
            out += [Write(p, how, tree) for p in _expand(word, git_cwd)]
        nested += ["".join(m) for word in seg for m in _SUBST.findall(word)]  # "$(...)" / `...` inside quotes
        for text in nested:
            out += writes(text, cwd, _depth + 1)
        if new_cwd is not None and "$" not in new_cwd:
            cwd = os.path.normpath(os.path.join(cwd, os.path.expanduser(new_cwd)))
    return out
