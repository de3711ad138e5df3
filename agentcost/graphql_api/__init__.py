"""GraphQL adapter (Strawberry): thin resolvers over :mod:`agentcost.services`, as REST is.

Never rename this package ``graphql``: that would shadow graphql-core and break Strawberry.
"""

from agentcost.graphql_api.router import install_graphql
from agentcost.graphql_api.schema import schema

__all__ = ["install_graphql", "schema"]
