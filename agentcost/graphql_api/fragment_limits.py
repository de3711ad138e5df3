"""How far a document's fragment spreads reach, measured before any rule follows them.

Strawberry's depth rule follows every spread recursively and remembers visited fragments per
path only: fragments that each spread the next one twice make it walk 2ⁿ paths (a couple of
hundred tokens held the event loop for minutes), and a chain of a few hundred fragments runs
out of stack. Here each fragment is measured once, without recursion, and a document that
reaches too far is refused before validation.
"""

from collections.abc import Iterable

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

MAX_NESTING = 32
"""Fragments within fragments; real queries nest a handful."""
MAX_SPREADS = 500
"""Spreads once every fragment is expanded, far more than real queries use; the depth rule's
walk over as many paths takes a few milliseconds."""

TOO_DEEP = f"the document nests fragments more than {MAX_NESTING} deep"
TOO_MANY = f"the document expands to more than {MAX_SPREADS} fragment spreads"


def fragment_errors(document: DocumentNode) -> list[GraphQLError]:
    """One error when the spreads reach too far; none otherwise, also for a cycle or an
    unknown fragment, which validation reports in its own words."""
    fragments = {
        node.name.value: _spreads(node.selection_set)
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    reach = _reach(fragments)
    nesting, spreads = 0, 0
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode):
            for name in _spreads(node.selection_set):
                depth, count = reach.get(name, (1, 0))
                nesting, spreads = max(nesting, depth), spreads + count + 1
    if nesting > MAX_NESTING:
        return [GraphQLError(TOO_DEEP)]
    if spreads > MAX_SPREADS:
        return [GraphQLError(TOO_MANY)]
    return []


def _reach(fragments: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """Each fragment's nesting depth and expanded spread count, children first (an explicit
    stack instead of recursion). Counts stop growing past the limits, so they stay small; a
    spread back into the fragments being measured (a cycle) is not followed."""
    reach: dict[str, tuple[int, int]] = {}
    on_path: set[str] = set()
    for root in fragments:
        stack = [(root, False)]
        while stack:
            name, children_done = stack.pop()
            if name in reach or name not in fragments:
                continue
            if children_done:
                on_path.discard(name)
                known = [reach[child] for child in fragments[name] if child in reach]
                depth = 1 + max((d for d, _ in known), default=0)
                count = sum(c + 1 for _, c in known)
                reach[name] = (min(depth, MAX_NESTING + 1), min(count, MAX_SPREADS + 1))
            elif name not in on_path:
                on_path.add(name)
                stack.append((name, True))
                stack.extend((child, False) for child in fragments[name] if child not in on_path)
    return reach


def _spreads(selection_set: SelectionSetNode | None) -> list[str]:
    """Names of the fragments spread anywhere in ``selection_set`` (a name once per spread)."""
    names: list[str] = []
    pending: list[Iterable[object]] = [selection_set.selections if selection_set else ()]
    while pending:
        for node in pending.pop():
            if isinstance(node, FragmentSpreadNode):
                names.append(node.name.value)
            elif isinstance(node, FieldNode | InlineFragmentNode) and node.selection_set:
                pending.append(node.selection_set.selections)
    return names
