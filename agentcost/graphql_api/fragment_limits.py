"""How far a document reaches once its fragments are expanded, measured before any rule
follows them.

Strawberry's depth and alias rules expand fragments by recursion and remember visited
fragments per path only: fragments that each spread the next one twice make them walk 2ⁿ paths,
fragments that spread each other walk every path through the cycle (ten of them, 250 tokens,
took 14 s), a spread of a fragment the document does not define raises ``KeyError``, and a
chain of a few hundred levels runs out of stack. Here each fragment is measured once, with an
explicit stack, so ``schema.checked_document`` can refuse what reaches too far, and keep
documents with cycles or unknown fragments from those two rules.
"""

from dataclasses import dataclass

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

MAX_NESTING = 64
"""Levels of fields, inline fragments and spreads from an operation down to its deepest
selection, fragments expanded; real queries use a dozen or two (GraphiQL's introspection
query about 20), and the rules' recursion stays far from the stack's limit."""
MAX_SELECTIONS = 5000
"""Selections once every fragment is expanded, each walked by the rules; GraphiQL's
introspection query expands to a few hundred."""

TOO_DEEP = f"the document nests more than {MAX_NESTING} levels deep, fragments expanded"
TOO_MANY = f"the document expands to more than {MAX_SELECTIONS} selections"


@dataclass(frozen=True, slots=True)
class Reach:
    nesting: int
    selections: int
    closed: bool
    """Every spread names a fragment the document defines, and no fragment spreads itself,
    directly or not; only then may Strawberry's rules see the document."""

    @property
    def errors(self) -> list[GraphQLError]:
        if self.nesting > MAX_NESTING:
            return [GraphQLError(TOO_DEEP)]
        if self.selections > MAX_SELECTIONS:
            return [GraphQLError(TOO_MANY)]
        return []


@dataclass(frozen=True, slots=True)
class _Shape:
    """One selection set's own deepest level and selection count, and its spreads, each with
    the level it stands at."""

    nesting: int
    selections: int
    spreads: list[tuple[str, int]]


def fragment_reach(document: DocumentNode) -> Reach:
    fragments = {
        node.name.value: _shape(node.selection_set)
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    operations = [
        _shape(node.selection_set)
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
    ]
    measured, closed = _measure(fragments)
    nesting, selections = 0, 0
    for shape in operations:
        depth, count = _expanded(shape, measured)
        nesting, selections = max(nesting, depth), selections + count
    closed = closed and all(name in fragments for shape in operations for name, _ in shape.spreads)
    return Reach(nesting, selections, closed)


def _measure(fragments: dict[str, _Shape]) -> tuple[dict[str, tuple[int, int]], bool]:
    """Each fragment's nesting and selection count, fragments expanded, children first; and
    whether every spread found its fragment without coming back to one being measured."""
    measured: dict[str, tuple[int, int]] = {}
    on_path: set[str] = set()
    closed = True
    for root in fragments:
        stack = [(root, False)]
        while stack:
            name, children_done = stack.pop()
            if name in measured:
                continue
            if name not in fragments:
                closed = False
            elif children_done:
                on_path.discard(name)
                measured[name] = _expanded(fragments[name], measured)
            elif name in on_path:
                closed = False
            else:
                on_path.add(name)
                stack.append((name, True))
                stack.extend((child, False) for child, _ in fragments[name].spreads)
    return measured, closed


def _expanded(shape: _Shape, measured: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """The shape's nesting and selection count with its measured spreads expanded (a spread
    not measured counts as one selection; the document is not closed then). Both stop
    growing past the limits, so they stay small."""
    nesting, selections = shape.nesting, shape.selections
    for name, level in shape.spreads:
        depth, count = measured.get(name, (0, 0))
        nesting, selections = max(nesting, level + depth), selections + count
    return min(nesting, MAX_NESTING + 1), min(selections, MAX_SELECTIONS + 1)


def _shape(selection_set: SelectionSetNode | None) -> _Shape:
    nesting, selections = 0, 0
    spreads: list[tuple[str, int]] = []
    pending = [(selection_set, 1)] if selection_set else []
    while pending:
        current, level = pending.pop()
        for node in current.selections:
            selections += 1
            nesting = max(nesting, level)
            if isinstance(node, FragmentSpreadNode):
                spreads.append((node.name.value, level))
            elif isinstance(node, FieldNode | InlineFragmentNode) and node.selection_set:
                pending.append((node.selection_set, level + 1))
    return _Shape(nesting, selections, spreads)
