"""The command lines of `status`, `history` and `tail`, read without argparse.

These verbs are called hundreds of times a night and argparse (with the
flag table it is built from) is a fifth of what they cost (issue 18). So the
plain forms are read here, to the same values argparse gives (the flags of
cli/flags.py's `_json`, `_history` and `_tail`: tests/test_fast_paths.QuickArgs checks
each against the real parser); anything else (help, an abbreviation,
`--flag=value`, a value that is not a plain number, an unknown word) returns
None and argparse reads it, so its usage errors stay exactly as they are.
"""


from __future__ import annotations

# verb -> {flag: (dest, kind)}; kind "flag" is store_true, "int" a whole number
_SPECS = {
    "status": {"--json": ("json", "flag")},
    "history": {"--last": ("last", "int"), "--all": ("all", "flag"), "--json": ("json", "flag")},
    "tail": {"--iter": ("iteration", "int"), "--trial": ("trial", "int"), "--lines": ("lines", "int"),
             "--guard": ("guard", "flag")},
}
_DEFAULTS = {"status": {"json": False}, "history": {"last": None, "all": False, "json": False},
             "tail": {"iteration": None, "trial": None, "lines": 80, "guard": False}}


class Args:
    """What argparse's Namespace gives a handler: the parsed values as attributes."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


def _value(argv: list, i: int) -> str | None:
    """The value after a flag at `i`, when it is one argparse takes as a value too."""
    return argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else None


def read_argv(argv: list) -> Args | None:
    """`[-C DIR]... VERB [its flags]` for the three read verbs, else None."""
    values, i = {"cwd": "."}, 0
    while i < len(argv) and argv[i] == "-C" and _value(argv, i) is not None:
        values["cwd"], i = argv[i + 1], i + 2
    verb = argv[i] if i < len(argv) else None
    if verb not in _SPECS:
        return None
    values.update(verb=verb, **_DEFAULTS[verb])
    spec, i = _SPECS[verb], i + 1
    while i < len(argv):
        word = argv[i]
        if word == "-C" and _value(argv, i) is not None:
            values["cwd"], i = argv[i + 1], i + 2
        elif spec.get(word, ("", ""))[1] == "flag":
            values[spec[word][0]], i = True, i + 1
        elif spec.get(word, ("", ""))[1] == "int":
            text = _value(argv, i)
            if text is None or not (text.isascii() and text.isdigit()):
                return None
            values[spec[word][0]], i = int(text), i + 2
        else:
            return None
    return Args(values)
