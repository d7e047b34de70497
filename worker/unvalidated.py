"""Pydantic models built from values this process made itself, without validating them again.

Validation is for what comes from outside: events, policies, stored JSON. The hot path builds
each decision and each SLA timer from values that already have the declared types (strings from
a validated policy, floats from the classifiers, datetimes, lists it just made), and validating
them again was most of what a decision cost (a ``Decision`` with its rule hits, escalation,
template references and context: ~40 µs of ~230). :func:`built` makes the instance validation
would make: every field in declaration order, defaults filled (factories called, so nothing is
shared), the same ``model_fields_set``; an unknown or missing field raises ``TypeError`` as a
programming error. It does not check types: callers pass only what they built, and
``tests/test_unvalidated.py`` checks that decisions and timers built this way are equal, field by
field and in their JSON, to the validated ones on the demo traffic and the shared datasets.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

#: ``cls.__new__(cls)`` of a pydantic model is ``object.__new__``, but looking it up on the class goes
#: through pydantic's metaclass ``__getattr__`` hook (~0.3 µs); called directly it is not
_new = object.__new__
_IMMUTABLE = (str, int, float, bool, bytes, tuple, frozenset, type(None))
#: the setters of BaseModel's ``__dict__`` and its three slots, called directly: ``object.__setattr__``
#: looks each name up on the class first (~9 instances a message)
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


_REQUIRED = object()


@functools.cache
def _layout(cls: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str], tuple[tuple[str, Any], ...]]:
    """(every field in declaration order with its immutable default or a placeholder, the required
    fields, (name, factory) of the fields whose default is made afresh for each instance)."""
    if cls.__private_attributes__ or cls.model_config.get("extra") == "allow":
        raise TypeError(f"{cls.__name__}: private attributes or extra fields are not supported here")
    if cls.__new__ is not _new:
        raise TypeError(f"{cls.__name__}: a model with its own __new__ is not supported here")
    template: dict[str, Any] = {}
    required = []
    fresh = []
    for name, info in cls.model_fields.items():
        template[name] = _REQUIRED
        if info.default_factory is not None:
            fresh.append((name, info.default_factory))
        elif info.is_required():
            required.append(name)
        elif isinstance(info.default, _IMMUTABLE):
            template[name] = info.default
        else:  # a mutable default: pydantic copies it for each instance
            fresh.append((name, functools.partial(copy.deepcopy, info.default)))
    return template, frozenset(required), tuple(fresh)


def _instance(cls: type[M], values: dict[str, Any], fields_set: set[str]) -> M:
    """An instance of ``cls`` with ``values`` as its fields, as pydantic's own constructor leaves one
    (``fields_set``: the names given explicitly; no extra or private values)."""
    obj = _new(cls)
    _set_dict(obj, values)
    _set_fields_set(obj, fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


def built(cls: type[M], fields: dict[str, Any]) -> M:
    """An instance of ``cls`` holding ``fields`` (already of the declared types) and the defaults."""
    template, required, fresh = _layout(cls)
    values = template.copy()
    values.update(fields)  # keeps the declaration order
    if len(values) != len(template) or not required <= fields.keys():
        unknown = sorted(set(fields) - set(template))
        missing = sorted(required - fields.keys())
        raise TypeError(f"{cls.__name__}: unknown field(s) {unknown}, required field(s) missing {missing}")
    for name, factory in fresh:
        if name not in fields:
            values[name] = factory()
    return _instance(cls, values, set(fields))


def given(cls: type[M], values: dict[str, Any]) -> M:
    """``cls(**values)`` for a model given every one of its fields, in declaration order, each of its
    declared type and within its constraints (the caller checks what is not certain): the instance
    validation makes (every field set), without it. For the small models deciding makes several of
    a message (rule hits, escalations, template references): pydantic's ``__init__`` costs ~3 times
    what building the instance does."""
    found = _names.get(cls)
    if found is None:
        names = tuple(_layout(cls)[0])
        found = _names[cls] = (names, frozenset(names))
    if tuple(values) != found[0]:
        raise TypeError(
            f"{cls.__name__}: every field must be given in declaration order {found[0]}, got {tuple(values)}"
        )
    return _instance(cls, values, set(found[1]))  # a copy of a set: no hashing of the names again


#: model -> its field names in declaration order and as a set (for :func:`given`; its fields set is a copy
#: of that set, ~0.6k instructions cheaper than a set built from the names)
_names: dict[type[BaseModel], tuple[tuple[str, ...], frozenset[str]]] = {}


def stamped(proto: M, changes: dict[str, Any]) -> M:
    """``built(type(proto), fields)`` for the ``fields`` that made ``proto`` (with :func:`built`),
    ``changes`` (names among them, values of the declared types) replacing theirs: the same fields
    set, defaults made afresh by their factories. Cheaper than :func:`built` when many instances
    differ from a prototype in a few fields (the checks were done when the prototype was built)."""
    cls = type(proto)
    values = proto.__dict__.copy()
    values.update(changes)
    fields_set = proto.__pydantic_fields_set__
    if len(values) != len(proto.__dict__) or not fields_set.issuperset(changes):
        raise TypeError(f"{cls.__name__}: {sorted(set(changes) - fields_set)} not set in the prototype")
    for name, factory in _layout(cls)[2]:
        if name not in fields_set:
            values[name] = factory()
    return _instance(cls, values, set(fields_set))


def shallow_copy(obj: M) -> M:
    """``obj.model_copy()`` (same fields, same fields set, nested values shared), for a model
    :func:`built` supports."""
    cls = type(obj)
    _layout(cls)  # checked once per class
    return _instance(cls, dict(obj.__dict__), set(obj.__pydantic_fields_set__))


def assign(obj: BaseModel, changes: dict[str, Any]) -> None:
    """``setattr(obj, name, value)`` for each of ``changes`` (fields of ``obj``, values of the
    declared types), as pydantic's ``__setattr__`` does it for a model without ``validate_assignment``
    (the value stored, the name added to the fields set), for a model :func:`built` supports."""
    obj.__dict__.update(changes)
    obj.__pydantic_fields_set__.update(changes)


def validated(cls: type[M], fields: dict[str, Any]) -> M:
    """The same, validated (for values that did not come from this process's own making)."""
    return cls(**fields)
