"""Which model and cost a feedback item counts for (DESIGN.md): one rule for every aggregate.

Feedback on a trace counts for the trace's primary model and the trace's cost; feedback that names
a stored call counts for that call's model and cost. The thing rated (trace, or trace + call) is the
*subject*: costs are counted once per subject however many votes it has.
"""

from typing import Any

from sqlalchemy import case, func

from agentcost.services.sql import calls, feedback, traces


def join_attribution(selectable: Any, *, keep_unknown_traces: bool = False) -> Any:
    """Feedback joined to its trace and, when it names one, its call (same org, same trace)."""
    on_trace = (traces.c.org_id == feedback.c.org_id) & (traces.c.trace_id == feedback.c.trace_id)
    joined = (
        selectable.outerjoin(traces, on_trace)
        if keep_unknown_traces
        else selectable.join(traces, on_trace)
    )
    return joined.outerjoin(
        calls,
        (calls.c.org_id == feedback.c.org_id)
        & (calls.c.trace_id == feedback.c.trace_id)
        & (calls.c.call_id == feedback.c.call_id),
    )


def attributed_model() -> Any:
    return func.coalesce(calls.c.model, traces.c.model)


def attributed_cost() -> Any:
    return case((calls.c.call_id.is_not(None), calls.c.cost), else_=traces.c.cost)
