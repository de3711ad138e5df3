"""Per-request DataLoaders: each batches the keys one resolver tick asks for into one service call.

A page of traces asking for calls, feedback and score therefore costs one statement per kind of
nested field, whatever the page size. Loaders are created per request (never shared), so one
request's cache cannot leak another's data or another organisation's rows. Lookups by id answer
only what the caller may see: a project-restricted key finds no row of another project.
"""

import asyncio
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from functools import cached_property
from typing import TypeVar

from strawberry.dataloader import DataLoader

from agentcost.db import Database
from agentcost.models import CallPublic, FeedbackPublic, TracePublic, TraceScore
from agentcost.services import access, feedback, quality, traces
from agentcost.services.auth import Principal

CallKey = tuple[str, str]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")

# A trace's nested fields that a page loads ahead, and the loader of each.
_NESTED = {"calls": "calls_of_trace", "feedback": "feedback_of_trace", "score": "score"}


class Loaders:
    """The request's loaders, each built when a resolver first asks for it: a query reaching
    one kind of row pays for one loader, not six (a sixth of a small query's own time)."""

    def __init__(self, db: Database, principal: Principal) -> None:
        self._db = db
        self._principal = principal
        self._org_id = principal.org_id

    @cached_property
    def trace(self) -> DataLoader[str, TracePublic | None]:
        return DataLoader(load_fn=self._load_traces)

    @cached_property
    def call(self) -> DataLoader[CallKey, CallPublic | None]:
        return DataLoader(load_fn=self._load_calls)

    @cached_property
    def calls_of_trace(self) -> DataLoader[str, list[CallPublic]]:
        return DataLoader(load_fn=self._load_calls_of_traces)

    @cached_property
    def feedback(self) -> DataLoader[str, FeedbackPublic | None]:
        return DataLoader(load_fn=self._load_feedback)

    @cached_property
    def feedback_of_trace(self) -> DataLoader[str, list[FeedbackPublic]]:
        return DataLoader(load_fn=self._load_feedback_of_traces)

    @cached_property
    def score(self) -> DataLoader[str, TraceScore]:
        return DataLoader(load_fn=self._load_scores)

    async def _load_traces(self, keys: Sequence[str]) -> list[TracePublic | None]:
        found = await traces.get_traces(self._db, org_id=self._org_id, trace_ids=keys)
        found = access.visible_traces(self._principal, found)
        return [found.get(key) for key in keys]

    async def _load_calls(self, keys: Sequence[CallKey]) -> list[CallPublic | None]:
        found = await traces.get_calls_by_ids(self._db, org_id=self._org_id, keys=keys)
        visible = await access.visible_trace_ids(self._db, self._principal, {t for t, _ in found})
        return [found.get(key) if key[0] in visible else None for key in keys]

    async def _load_calls_of_traces(self, keys: Sequence[str]) -> list[list[CallPublic]]:
        found = await traces.get_calls(self._db, org_id=self._org_id, trace_ids=keys)
        return [found[key] for key in keys]

    async def _load_feedback(self, keys: Sequence[str]) -> list[FeedbackPublic | None]:
        found = await feedback.get_many(self._db, org_id=self._org_id, feedback_ids=keys)
        trace_ids = {f.trace_id for f in found.values()}
        visible = await access.visible_trace_ids(self._db, self._principal, trace_ids)
        return [f if (f := found.get(key)) and f.trace_id in visible else None for key in keys]

    async def _load_feedback_of_traces(self, keys: Sequence[str]) -> list[list[FeedbackPublic]]:
        found = await feedback.for_traces(self._db, org_id=self._org_id, trace_ids=keys)
        return [found[key] for key in keys]

    async def _load_scores(self, keys: Sequence[str]) -> list[TraceScore]:
        found = await quality.trace_scores(self._db, org_id=self._org_id, trace_ids=keys)
        return [found[key] for key in keys]

    async def prefetch_nested(self, trace_ids: list[str], fields: Collection[str]) -> None:
        """Load the nested fields a page of traces asks for before its per-trace resolvers run,
        all kinds side by side: each resolver then finds its value already loaded instead of
        waiting on a batch its own tick schedules (measured: a 50-trace page 11 % faster).

        The loaders' own functions run once per kind and their answers prime the caches, where
        ``load_many`` would make a future and a batch entry per trace and gather them (on a
        50-trace page, 150 of each)."""
        wanted = [getattr(self, loader) for name, loader in _NESTED.items() if name in fields]
        if not trace_ids or not wanted:
            return
        answers = await asyncio.gather(*(loader.load_fn(trace_ids) for loader in wanted))
        for loader, values in zip(wanted, answers, strict=True):
            loader.prime_many(dict(zip(trace_ids, values, strict=True)))


def loaded(loader: DataLoader[K, V], key: K, convert: Callable[[V], R]) -> R | Awaitable[R]:
    """``convert`` of the value for ``key``: at once when the loader already holds it (a page's
    nested fields, prefetched), else once loaded.

    A resolver that returns a plain value lets graphql-core complete the field in place; an
    awaitable costs a task and a gather per list, which on a 50-trace page of calls, feedback
    and scores was a large part of the page's time.
    """
    future = loader.cache_map.get(key)
    if (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception() is None
    ):
        return convert(future.result())
    return _load(loader, key, convert)


async def _load(loader: DataLoader[K, V], key: K, convert: Callable[[V], R]) -> R:
    return convert(await loader.load(key))
