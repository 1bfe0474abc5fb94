"""Frozen value classes without the `dataclasses` module.

Why: every verb reads the run's Config and RunState, and `import
dataclasses` loads `inspect` (with ast, dis and tokenize), then building a
60-field frozen dataclass execs generated code: together ~11 ms of the
~25 ms that `status` spent beyond a bare interpreter start (issue 18). The
value types need only a small part of a dataclass, written out here once.

Contract (the meaning of a frozen dataclass's, for what ratchet uses):
  - `class X(Record):` its annotated class attributes are the fields, in
    order (a subclass's come after its base's); an attribute's value is the
    field's default, `Factory(f)` a default made fresh by `f()` for each
    instance; a field without a default is required;
  - `X(...)` takes the fields by keyword or by position, in field order; an
    unknown or missing field is a TypeError, as a dataclass raises;
  - instances are frozen (assignment raises FrozenError, an AttributeError),
    compare equal when of the same class with equal fields, hash by their
    fields, and repr as `X(a=1, b=2)`; `class X(Record, frozen=False)` may
    be assigned to and is not hashable (a plain dataclass);
  - `replace(x, **changes)` a copy with those fields changed; `fields(x)`
    the field names; `asdict(x)` a plain dict, Records, lists, tuples and
    dicts inside it copied deeply (tuples stay tuples), as dataclasses'.
"""

_REQUIRED = object()


class FrozenError(AttributeError):
    """An assignment to a field of a frozen Record."""


class Factory:
    """A default made fresh for each instance (dataclasses' default_factory)."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


class Record:
    """The base of ratchet's value classes (see the module doc)."""

    __fields__: dict = {}   # name -> default, _REQUIRED or a Factory; set per class

    def __init_subclass__(cls, frozen: bool = True, **kw):
        super().__init_subclass__(**kw)
        if not frozen:
            cls.__setattr__, cls.__delattr__, cls.__hash__ = object.__setattr__, object.__delattr__, None
        spec = dict(getattr(cls, "__fields__", {}))
        for name in cls.__dict__.get("__annotations__", {}):
            if name.startswith("__"):
                continue
            spec[name] = cls.__dict__.get(name, _REQUIRED)
            if isinstance(spec[name], Factory):
                delattr(cls, name)
        cls.__fields__ = spec

    def __init__(self, *args, **kw):
        spec = self.__fields__
        if len(args) > len(spec):
            raise TypeError(f"{type(self).__name__}() takes {len(spec)} fields, {len(args)} given")
        values = dict(zip(spec, args))
        for name, value in kw.items():
            if name not in spec or name in values:
                what = "unexpected" if name not in spec else "repeated"
                raise TypeError(f"{type(self).__name__}() got an {what} field {name!r}")
            values[name] = value
        own = self.__dict__
        for name, default in spec.items():
            if name in values:
                own[name] = values[name]
            elif default is _REQUIRED:
                raise TypeError(f"{type(self).__name__}() missing field {name!r}")
            else:
                own[name] = default.make() if isinstance(default, Factory) else default

    def __setattr__(self, name, value):
        raise FrozenError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name):
        raise FrozenError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def _values(self) -> tuple:
        return tuple(self.__dict__[name] for name in self.__fields__)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        inner = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self.__fields__)
        return f"{type(self).__name__}({inner})"


def replace(obj: Record, **changes) -> Record:
    """A copy of `obj` with `changes` (unknown names are a TypeError)."""
    return type(obj)(**{**{name: obj.__dict__[name] for name in obj.__fields__}, **changes})


def fields(obj) -> tuple:
    """The field names of a Record class or instance, in order."""
    return tuple(obj.__fields__)


def asdict(obj: Record) -> dict:
    """A plain dict of `obj`'s fields, copied deeply (see the module doc)."""
    return {name: _plain(obj.__dict__[name]) for name in obj.__fields__}


def _plain(value):
    if isinstance(value, Record):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value
