"""The Python API of the guide: ``get_feedback_service().submit("trace-abc-123", score=1)``.

Callers are synchronous, yet the services are async. The facade runs them on an event loop of its
own in a background thread (an anyio blocking portal), so it works the same from a plain script,
a Jupyter cell or an async web handler that already runs a loop. On first use it migrates the
database, so the guide's snippet needs no other step.
"""

import atexit
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from agentcost.db import Database
from agentcost.errors import parse, parse_batch
from agentcost.migrate import upgrade
from agentcost.models import (
    FeedbackCreate,
    FeedbackPublic,
    FeedbackSummary,
    FeedbackUpdate,
    IngestResult,
    ModelQuality,
    PromptVersionQuality,
    TraceDetail,
    TraceEvent,
    TraceScore,
)
from agentcost.services import feedback, quality, trace_detail, traces
from agentcost.services.filters import AnalyticsFilter, FeedbackFilter, Page
from agentcost.settings import Settings, get_settings

T = TypeVar("T")

__all__ = ["FeedbackService", "get_feedback_service"]


class FeedbackService:
    """Synchronous access to feedback and quality; every method raises ValueError on bad input
    (with the same reasons the REST API gives) and LookupError for unknown ids."""

    def __init__(self, settings: Settings | None = None, *, org_id: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.org_id = org_id or self.settings.default_org
        self._lock = threading.Lock()
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._db: Database | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, fn: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        portal = self._start()

        async def call() -> T:
            return await fn(await self._database(), org_id=self.org_id, **kwargs)

        return portal.call(call)

    def _start(self) -> BlockingPortal:
        with self._lock:
            if self._portal is None:
                self._portal_cm = start_blocking_portal()
                self._portal = self._portal_cm.__enter__()
            return self._portal

    async def _database(self) -> Database:
        if self._db is None:
            db = Database.from_settings(self.settings)
            await upgrade(db)
            self._db = db
        return self._db

    def close(self) -> None:
        """Release connections and the background loop; the service restarts them if used again."""
        with self._lock:
            if self._portal is None or self._portal_cm is None:
                return
            if self._db is not None:
                self._portal.call(self._db.dispose)
                self._db = None
            self._portal_cm.__exit__(None, None, None)
            self._portal = self._portal_cm = None

    def __enter__(self) -> "FeedbackService":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- feedback ---------------------------------------------------------------------------

    def submit(
        self,
        trace_id: str,
        score: int,
        comment: str | None = None,
        source: str = "user",
        user_id: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        call_id: str | None = None,
    ) -> FeedbackPublic:
        """Record a vote on a trace; a known ``id`` replaces that vote instead of adding one."""
        item = parse(
            FeedbackCreate,
            {
                "trace_id": trace_id,
                "score": score,
                "comment": comment,
                "source": source,
                "user_id": user_id,
                # A lone string is not a list of tags (list("abc") would be three tags).
                "tags": tags if tags is None or isinstance(tags, str) else list(tags),
                "metadata": metadata,
                "id": id,
                "call_id": call_id,
            },
        )
        [(saved, _)] = self._run(feedback.submit, items=[item])
        return saved

    def get_feedback(self, feedback_id: str) -> FeedbackPublic:
        return self._run(feedback.get, feedback_id=feedback_id)

    def update_feedback(self, feedback_id: str, **changes: Any) -> FeedbackPublic:
        return self._run(
            feedback.update_feedback,
            feedback_id=feedback_id,
            changes=parse(FeedbackUpdate, changes),
        )

    def delete_feedback(self, feedback_id: str) -> None:
        self._run(feedback.delete_feedback, feedback_id=feedback_id)

    def get_trace_feedback(self, trace_id: str) -> list[FeedbackPublic]:
        return self._run(feedback.of_trace, trace_id=trace_id)

    def list_feedback(
        self, *, limit: int = 100, cursor: str | None = None, **filters: Any
    ) -> list[FeedbackPublic]:
        """Newest first; filters as in REST (project, model, score, source, trace_id, ...).

        For more than one page use :meth:`list_feedback_page`, which also returns the cursor.
        """
        return self.list_feedback_page(limit=limit, cursor=cursor, **filters)[0]

    def list_feedback_page(
        self, *, limit: int = 100, cursor: str | None = None, **filters: Any
    ) -> tuple[list[FeedbackPublic], str | None]:
        page = parse(Page, {"limit": limit, "cursor": cursor})
        return self._run(
            feedback.list_feedback,
            filters=parse(FeedbackFilter, filters),
            limit=page.limit,
            cursor=page.cursor,
        )

    # -- quality ----------------------------------------------------------------------------

    def get_trace_score(self, trace_id: str) -> TraceScore:
        return self._run(quality.trace_score, trace_id=trace_id)

    def get_model_quality(self, model: str, **filters: Any) -> ModelQuality:
        return self._run(quality.for_model, model=model, filters=_analytics(filters))

    def get_quality_by_model(self, **filters: Any) -> list[ModelQuality]:
        return self._run(quality.by_model, filters=_analytics(filters))

    def get_quality_by_prompt_version(
        self, prompt_id: str, **filters: Any
    ) -> list[PromptVersionQuality]:
        return self._run(
            quality.by_prompt_version, prompt_id=prompt_id, filters=_analytics(filters)
        )

    def get_summary(self, **filters: Any) -> FeedbackSummary:
        return self._run(quality.summary, filters=_analytics(filters))

    # -- traces -----------------------------------------------------------------------------

    def record_calls(self, events: Sequence[dict[str, Any]]) -> IngestResult:
        """Ingest AgentCost trace events (one per LLM call), all or nothing."""
        return self._run(
            traces.ingest, events=parse_batch(TraceEvent, list(events), wrapper="events")
        )

    def get_trace(self, trace_id: str) -> TraceDetail:
        return self._run(trace_detail.get_trace_detail, trace_id=trace_id)


def _analytics(filters: dict[str, Any]) -> AnalyticsFilter:
    return parse(AnalyticsFilter, filters)


_services: dict[tuple[str, str], FeedbackService] = {}
_services_lock = threading.Lock()


def get_feedback_service(org_id: str | None = None) -> FeedbackService:
    """The shared service for this process, on the database the settings name."""
    settings = get_settings()
    key = (settings.resolved_database_url, org_id or settings.default_org)
    with _services_lock:
        if key not in _services:
            _services[key] = FeedbackService(settings, org_id=org_id)
        return _services[key]


@atexit.register
def _close_all() -> None:
    for service in _services.values():
        service.close()
