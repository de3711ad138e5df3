"""Business rules and SQL, once, for the REST, GraphQL and Python adapters.

Functions are keyword-only and take the :class:`~agentcost.db.Database` and the caller's
``org_id`` first, so no adapter can forget the tenant.
"""
