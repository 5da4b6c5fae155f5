"""Dataclasses whose methods are not compiled at import: :func:`frozen` and :func:`mutable`.

``@dataclasses.dataclass`` writes the source of ``__init__``, ``__repr__``, ``__eq__`` (and, frozen,
``__hash__``, ``__setattr__``, ``__delattr__``) and compiles it each time the module is imported:
~3.5 M instructions a class, ~10 % of a sidecar's start for the 36 classes it makes at import
(docs/performance.md, round 8). These decorators keep everything else of a dataclass
(``dataclasses.fields``, ``replace``, ``asdict``, ``is_dataclass``, ``__match_args__``, slots) and
make the same methods from closures instead, with the same results: the tuple of the compared
fields for ``==`` and ``hash``, ``Name(field=value!r, …)`` without the ``repr=False`` fields,
``FrozenInstanceError`` on assignment, copy and pickle through ``__getstate__``/``__setstate__``.

The class writes its own ``__init__`` (with a sentinel :data:`FACTORY` default where the field has
a ``default_factory``), since a function with a given signature cannot be made without compiling
source; ``tests/sidecar/test_records.py`` checks every such class against what
``@dataclasses.dataclass`` would make of the same fields (signature, repr, ``==``, ``hash``,
frozenness, copy), so a field added without its parameter fails there.
"""

from __future__ import annotations

import dataclasses
import operator
import reprlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    from typing import dataclass_transform  # takes frozen_default as one of its **kwargs on 3.11

__all__ = ["FACTORY", "Record", "frozen", "mutable", "set_field"]

_T = TypeVar("_T")


class _Factory:
    def __repr__(self) -> str:
        return "<factory>"  # as dataclasses' own sentinel prints in a signature


FACTORY: Final[Any] = _Factory()
"""The default of an ``__init__`` parameter whose field has a ``default_factory``: the body calls
the factory when the argument ``is FACTORY``, as the generated ``__init__`` does."""

set_field: Final = object.__setattr__
"""How a frozen record's own ``__init__`` sets its fields (``self.x = …`` raises there), as the
generated ``__init__`` does; modules import it as ``_set``."""


if TYPE_CHECKING:
    class Record:
        """What mypy looks for on a dataclass (``dataclasses.fields``, ``replace``); a record names it
        as its base, which is ``object`` when the code runs."""

        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
else:
    Record = object


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: type[_T]) -> type[_T]:
    """``@dataclasses.dataclass(frozen=True, slots=True)``, with the class's own ``__init__``."""
    return _make(cls, frozen=True)


@dataclass_transform(field_specifiers=(dataclasses.field,))
def mutable(cls: type[_T]) -> type[_T]:
    """``@dataclasses.dataclass(slots=True)``, with the class's own ``__init__``."""
    return _make(cls, frozen=False)


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning the tuple ``(obj.a, obj.b, …)``, as the generated methods build it."""
    if len(names) == 1:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    if not names:
        return lambda obj: ()
    getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names)
    return getter


def _make(given: type[_T], *, frozen: bool) -> type[_T]:
    if "__init__" not in given.__dict__:
        raise TypeError(f"{given.__qualname__} must define __init__")
    # init, repr and eq off: dataclasses would compile them (an own __init__ does not stop it).
    cls: type[_T] = dataclasses.dataclass(given, init=False, repr=False, eq=False, slots=True)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    compared = _values(tuple(f.name for f in fields if f.compare))
    shown = tuple(f.name for f in fields if f.repr)

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)
        return NotImplemented

    @reprlib.recursive_repr("...")
    def __repr__(self: Any) -> str:
        inner = ", ".join([f"{name}={getattr(self, name)!r}" for name in shown])
        return f"{self.__class__.__qualname__}({inner})"

    methods: dict[str, Any] = {"__eq__": __eq__, "__repr__": __repr__}
    if frozen:
        hashed = _values(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash)))

        def __hash__(self: Any) -> int:
            return hash(hashed(self))

        # A dataclass's checks ``type(self) is cls or name in fields`` first; the first is always
        # true here (a subclass made by ``@dataclass`` brings its own methods).
        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self: Any, name: str) -> None:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

        def __getstate__(self: Any) -> list[Any]:
            return [getattr(self, f.name) for f in fields]

        def __setstate__(self: Any, state: list[Any]) -> None:
            for f, value in zip(fields, state, strict=False):
                object.__setattr__(self, f.name, value)

        methods.update(__hash__=__hash__, __setattr__=__setattr__, __delattr__=__delattr__,
                       __getstate__=__getstate__, __setstate__=__setstate__)
    else:
        methods["__hash__"] = None  # eq without frozen: unhashable, as a dataclass
    for name, method in methods.items():
        if method is not None:
            method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)
    # What the class is, for ``@dataclass`` subclasses (a frozen one needs a frozen base).
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    params.init = params.repr = params.eq = True
    params.frozen = frozen
    return cls
