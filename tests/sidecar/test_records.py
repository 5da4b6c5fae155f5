"""Every ``records`` class behaves as ``@dataclasses.dataclass`` would make it from the same fields.

``records.frozen`` and ``records.mutable`` make a dataclass's methods without compiling source at
import, and each class writes its own ``__init__``. Here each one is compared with the dataclass
the standard library makes of its fields: the ``__init__`` signature (names, order, kinds,
annotations, defaults), ``repr``, ``==`` and ``hash`` field by field, frozenness, default
factories, ``replace``, copy and pickle. A field added without its ``__init__`` parameter, or a
parameter given the wrong default, fails here.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pathlib
import pickle
import re
from typing import Any

import pytest

from parley_sidecar import records

PACKAGE = pathlib.Path(records.__file__).parent
DECORATED = re.compile(r"^\s*@(?:records\.)?(?:frozen|mutable)\b", re.MULTILINE)


def _records() -> list[type[Any]]:
    """Every class the sidecar makes with ``records``: found by the decorators in its source (not a
    hand list, which a new module would miss), each one a dataclass of its module's found here."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        uses = len(DECORATED.findall(path.read_text(encoding="utf-8")))
        if not uses:
            continue
        name = ".".join((PACKAGE.name, *path.relative_to(PACKAGE).with_suffix("").parts))
        module = importlib.import_module(name)
        mine = [cls for cls in vars(module).values()
                if isinstance(cls, type) and cls.__module__ == name and dataclasses.is_dataclass(cls)]
        assert len(mine) == uses, name  # every decorated class, at module level; no plain dataclass beside
        found += mine
    assert found
    return found


RECORDS = _records()


def _reference(cls: type[Any]) -> type[Any]:
    """The class ``@dataclasses.dataclass`` makes of ``cls``'s fields."""
    fields = [(f.name, f.type, dataclasses.field(
        default=f.default, default_factory=f.default_factory, init=f.init, repr=f.repr, hash=f.hash,
        compare=f.compare, kw_only=f.kw_only)) for f in dataclasses.fields(cls)]
    made: type[Any] = dataclasses.make_dataclass(
        cls.__name__, fields, frozen=cls.__dataclass_params__.frozen, slots=True)
    return made


def _arguments(cls: type[Any], every: bool, salt: str = "") -> dict[str, Any]:
    """Distinct values for the required fields (and, with ``every``, the others too)."""
    return {f.name: f"{f.name}-value{salt}" for f in dataclasses.fields(cls)
            if every or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)}


def _hashed(value: Any) -> int | str:
    try:
        return hash(value)
    except TypeError as error:  # a dict among the values, as for the dataclass
        return str(error)


def _sans_return(signature: inspect.Signature) -> str:
    return str(signature.replace(return_annotation=inspect.Signature.empty))


def test_every_record_is_made_by_records() -> None:
    for cls in RECORDS:
        assert cls.__eq__.__module__ == records.__name__, cls  # not a dataclass's compiled methods
        assert "__init__" in cls.__dict__ and "__slots__" in cls.__dict__, cls


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__qualname__)
def test_a_record_behaves_as_the_dataclass_of_its_fields(cls: type[Any]) -> None:
    ref = _reference(cls)
    assert _sans_return(inspect.signature(cls)) == _sans_return(inspect.signature(ref))
    assert cls.__match_args__ == ref.__match_args__
    assert cls.__dataclass_params__.frozen == ref.__dataclass_params__.frozen
    for every in (False, True):
        given = _arguments(cls, every)
        mine, theirs = cls(**given), ref(**given)
        assert repr(mine) == repr(theirs)
        assert dataclasses.astuple(mine) == dataclasses.astuple(theirs)
        assert mine == cls(**given)
        assert (mine != cls(**given)) is False
        assert mine != theirs  # another class: NotImplemented both ways, as between dataclasses
        if ref.__hash__ is None:
            assert cls.__hash__ is None
        else:
            assert _hashed(mine) == _hashed(theirs)
        assert dataclasses.replace(mine) == mine
        assert copy.copy(mine) == mine and copy.deepcopy(mine) == mine
        assert pickle.loads(pickle.dumps(mine)) == mine
        for f in dataclasses.fields(cls):  # one field changed at a time
            other = {**given, f.name: "changed"}
            assert (mine == cls(**other)) == (theirs == ref(**other)), f.name
            if ref.__hash__ is not None:
                assert (_hashed(mine) == _hashed(cls(**other))) == (_hashed(theirs) == _hashed(ref(**other))), f.name
    plain = cls(**_arguments(cls, False))
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            again = cls(**_arguments(cls, False))
            assert getattr(plain, f.name) == getattr(ref(**_arguments(cls, False)), f.name)
            if getattr(plain, f.name) is not None and not isinstance(getattr(plain, f.name), (int, str, tuple)):
                assert getattr(plain, f.name) is not getattr(again, f.name), f.name  # a fresh one each time
    name = dataclasses.fields(cls)[0].name
    if cls.__dataclass_params__.frozen:
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"cannot assign to field '{name}'"):
            setattr(plain, name, "x")
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"cannot delete field '{name}'"):
            delattr(plain, name)
    else:
        setattr(plain, name, "x")
        assert getattr(plain, name) == "x"


def test_a_record_shows_itself_once_in_a_cycle() -> None:
    from parley_sidecar.components import streaming

    call = streaming._Call()
    call.arguments.append(call)  # type: ignore[arg-type]
    assert repr(call) == "_Call(id='', name='', arguments=[...], extra_content=None)"


def test_a_frozen_dataclass_may_extend_a_frozen_record() -> None:
    from parley_sidecar.components import base

    @dataclasses.dataclass(frozen=True, slots=True)
    class Wider(base.ConverseRequest):
        extra: str = ""

    wider = Wider(messages=(), extra="x")
    assert wider.extra == "x" and wider.metadata == {}
    assert repr(wider).startswith("test_a_frozen_dataclass_may_extend_a_frozen_record.<locals>.Wider(messages=()")
