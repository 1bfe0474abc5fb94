"""The command lines of `status`, `history`, `tail` and `iterate`, read without argparse.

These verbs are called hundreds of times a night and argparse (with the
flag table it is built from, gettext and locale) is a fifth of what a read
verb costs and ~4 ms of every iterate (issue 18). So the plain forms are
read here, to the same values argparse gives (the flags of cli/flags.py's
`_json`, `_history`, `_tail` and `_decision`: tests/test_fast_paths.QuickArgs
checks each against the real parser); anything else (help, an abbreviation,
`--flag=value`, a value that is not a plain number or begins with `-`, a
missing required flag, an unknown word) returns None and argparse reads it,
so its usage errors stay exactly as they are.
"""


from __future__ import annotations

# verb -> {flag: (dest, kind)}; kind "flag" is store_true, "int" a whole number, "str" any word
_SPECS = {
    "iterate": {"--hypothesis": ("hypothesis", "str"), "--description": ("description", "str"),
                "--critic-pick": ("critic_pick", "str"), "--critic-reason": ("critic_reason", "str"),
                "--proposal-a": ("proposal_a", "str"), "--proposal-b": ("proposal_b", "str"),
                "--arm": ("arm", "str"), "--json": ("json", "flag")},
    "status": {"--json": ("json", "flag")},
    "history": {"--last": ("last", "int"), "--all": ("all", "flag"), "--json": ("json", "flag")},
    "tail": {"--iter": ("iteration", "int"), "--trial": ("trial", "int"), "--lines": ("lines", "int"),
             "--guard": ("guard", "flag")},
}
_DEFAULTS = {"iterate": {"hypothesis": None, "description": "", "critic_pick": None, "critic_reason": None,
                         "proposal_a": None, "proposal_b": None, "arm": None, "json": False},
             "status": {"json": False}, "history": {"last": None, "all": False, "json": False},
             "tail": {"iteration": None, "trial": None, "lines": 80, "guard": False}}


class Args:
    """What argparse's Namespace gives a handler: the parsed values as attributes."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


def _value(argv: list, i: int) -> str | None:
    """The value after a flag at `i`, when it is one argparse takes as a value too."""
    return argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else None


def read_argv(argv: list) -> Args | None:
    """`[-C DIR]... VERB [its flags]` for the verbs of _SPECS, else None."""
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
        elif spec.get(word, ("", ""))[1] == "str" and _value(argv, i) is not None:
            values[spec[word][0]], i = argv[i + 1], i + 2
        else:
            return None
    if verb == "iterate" and values["hypothesis"] is None:
        return None  # required: argparse says so
    return Args(values)
