"""Relation fields declared by the loader they read: `@relation("loader")` over a key function.

A relation of schema/types.py is written once, as a function with the field's parameters
that runs the field's access checks and returns the key to load (None: the field is
null). `relation` turns it into the resolver Strawberry and graphql-core call, which loads
that key through `info.context.loaders.<loader>`, and attaches the declaration as
`RELATION` so the planned executor can run the key function per object and load the keys
of a whole level with one `ScheduledLoader.load_many` instead of one future per object.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RELATION = "switchboard_relation"


@dataclass(frozen=True, slots=True)
class Relation:
    loader: str  # the attribute of the request's `Loaders`
    key: Callable[..., Any]  # the declared function: access checks, then the key or None


def relation(loader: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def declare(key: Callable[..., Any]) -> Callable[..., Any]:
        # The loaders are reached through `info`, which Strawberry passes by keyword.
        if "info" not in inspect.signature(key).parameters:
            raise TypeError(f"relation {key.__qualname__} needs an `info` parameter")

        @functools.wraps(key)  # Strawberry reads the key function's signature
        def resolve(*args: Any, **kwargs: Any) -> Any:
            value = key(*args, **kwargs)
            if value is None:
                return None
            return getattr(kwargs["info"].context.loaders, loader).load(value)

        setattr(resolve, RELATION, Relation(loader, key))
        return resolve

    return declare
