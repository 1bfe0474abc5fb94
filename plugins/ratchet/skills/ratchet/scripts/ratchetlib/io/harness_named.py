"""Which tracked files a command names (`python3 bench.py`, `python -m
pkg.bench`, `--config=conf.yaml`): the harness a run protects by default
when `--protect` is not given (harness.commands_name, at `init`).

Read as the shell would, without running it: comments dropped, the command
split into simple commands, a `cd DIR` honoured for the words after it. A
guess that misses a file only leaves it unprotected by default (the user can
name it with `--protect`); a file outside the repository is never named.
"""

import os
import shlex

from . import gitops
from ..core.errors import RatchetError


def _strip_comment(line: str) -> str:
    """`line` without its shell comment: a `#` that starts a word, outside quotes."""
    quote, prev, i = None, " ", 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c == "#" and (prev.isspace() or prev in ";&|()"):
            return line[:i]
        prev = c
        i += 1
    return line


def _simple_commands(command: str) -> list:
    """The shell's simple commands in `command`, each a list of words:
    comments dropped, split at `&&`, `||`, `;`, `|`, `&` and parentheses."""
    out, words = [], []
    for line in command.splitlines() or [""]:
        lex = shlex.shlex(_strip_comment(line), posix=True, punctuation_chars=True)
        lex.whitespace_split, lex.commenters = True, ""
        try:
            tokens = list(lex)
        except ValueError:  # an unclosed quote: no file can be named reliably
            return out
        for tok in tokens:
            if tok and all(c in "();<>|&" for c in tok):
                out.append(words) if words else None
                words = []
            else:
                words.append(tok)
        out.append(words) if words else None
        words = []
    return out


def named_files(command: str, repo: str) -> list:
    """Tracked files of the repository that `command` names as arguments:
    `python3 bench.py` -> ['bench.py'], `python -m pkg.bench` -> ['pkg/bench.py'],
    `--config=conf.yaml` -> ['conf.yaml']. The run command's harness, usually.
    Read as the shell would: comments are dropped (`python3 bench.py  # fast`)
    and a `cd DIR` (or `pushd DIR`) makes later words relative to DIR
    (`cd sub && python3 bench.py` -> ['sub/bench.py'])."""
    root = os.path.realpath(repo)
    wanted, here = [], root
    for words in _simple_commands(command):
        if words[0] in ("cd", "pushd") and len(words) == 2:
            target = os.path.realpath(os.path.join(here, words[1]))
            here = target if os.path.isdir(target) and os.path.commonpath([target, root]) == root else here
            continue
        prev = None
        for tok in words:
            options = [tok]
            if tok.startswith("-") and "=" in tok:
                options = [tok.split("=", 1)[1]]
            if prev == "-m":
                options.append(tok.replace(".", "/") + ".py")
            prev = tok
            for opt in options:
                if not opt or opt.startswith("-"):
                    continue
                for base in dict.fromkeys((here, root)):
                    full = os.path.realpath(os.path.join(base, opt))
                    if os.path.isfile(full) and os.path.commonpath([full, root]) == root:
                        wanted.append(os.path.relpath(full, root).replace(os.sep, "/"))
                        break
    if not wanted:
        return []
    try:
        tracked = set(gitops.git(repo, "ls-files", "-z", "--", *dict.fromkeys(wanted)).split("\0")) - {""}
    except RatchetError:  # not a git work tree: nothing is tracked
        return []
    return [p for p in dict.fromkeys(wanted) if p in tracked]
