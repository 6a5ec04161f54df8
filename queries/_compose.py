"""Dynamic filters, sort order and keyset pagination composed around a base .sql file.

pypika wraps the base statement as `SELECT <columns> FROM (<base>) AS q WHERE … ORDER BY …
LIMIT …`. Identifiers come only from the declaration; every value is a `$n` argument.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from pypika import Order, Parameter, PostgreSQLQuery
from pypika.queries import Selectable
from pypika.terms import Criterion, Field, Term, Tuple, ValueWrapper
from pypika.utils import format_alias_sql

from ._sqlfile import ScannedSql

ALIAS = "q"
# Shapes of page (filters present, sort, NULLs in the cursor) whose SQL is kept; a client
# choosing sorts at random makes new ones, so the oldest is forgotten past this many.
MAX_SHAPES = 1024
# Where a `$n` of a composed page takes its value: ("filter", name), ("after", index of
# the cursor's value) or ("limit", 0).
_Slot = tuple[str, Any]


class Op(Enum):
    """How a filter compares its column with the client's value."""

    EQ = "="
    GE = ">="
    LE = "<="
    CONTAINS = "contains"  # case-insensitive substring; LIKE wildcards escaped


class UnknownField(ValueError):
    """A client named a filter or sort field the declaration does not allow."""

    def __init__(self, kind: str, name: str, allowed: Sequence[str], *, reason: str = "") -> None:
        self.kind, self.name, self.allowed = kind, name, tuple(allowed)
        if reason:
            message = f"{kind} field {name!r} {reason}"
        elif not name:
            message = f"empty {kind} field; allowed: {', '.join(allowed)}"
        else:
            message = f"unknown {kind} field {name!r}; allowed: {', '.join(allowed)}"
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Filter:
    column: str
    op: Op


@dataclass(frozen=True, slots=True)
class SortKey:
    column: str
    descending: bool = False


class _Base(Selectable):
    """The base statement as a parenthesised subquery; pypika has no raw-SQL source."""

    def __init__(self, sql: str) -> None:
        super().__init__(ALIAS)
        self._sql = sql

    def get_sql(self, **kwargs: Any) -> str:
        # The newline before ')' keeps a trailing `--` comment from eating it.
        return str(format_alias_sql(f"(\n{self._sql}\n)", self.alias, **kwargs))


def escape_like(text: str) -> str:
    """`text` as a literal LIKE pattern: backslash is PostgreSQL's default escape."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class Listing:
    """A base query that clients may filter, sort and page through by keyset."""

    base: ScannedSql
    columns: tuple[str, ...]
    filters: Mapping[str, Filter]
    sortable: tuple[str, ...]
    key: str
    # Sortable columns that may hold NULL. They sort as PostgreSQL sorts them by
    # default, last ascending and first descending, so one index serves both ways.
    nullable: frozenset[str] = frozenset()
    # The SQL of each shape of page composed so far (see `_shape`).
    _shapes: dict[Hashable, tuple[str, tuple[_Slot, ...]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def sort_keys(self, spec: str) -> tuple[SortKey, ...]:
        """Parse `-rating,title` into sort keys ending with the unique key."""
        keys: list[SortKey] = []
        for part in (p.strip() for p in spec.split(",")):
            column = part.removeprefix("-")
            if column not in self.sortable:
                raise UnknownField("sort", part, self.sortable)
            if any(k.column == column for k in keys):
                raise UnknownField("sort", part, self.sortable, reason="appears twice")
            keys.append(SortKey(column, part.startswith("-")))
        if keys[-1].column != self.key and all(k.column != self.key for k in keys):
            keys.append(SortKey(self.key, keys[-1].descending))
        return tuple(keys)

    def build(
        self,
        *,
        base_args: Sequence[Any],
        filters: Mapping[str, Any],
        sort: Sequence[SortKey],
        after: Sequence[Any] | None,
        limit: int,
    ) -> tuple[str, list[Any]]:
        """SQL and arguments for one page; `after` is the last row's sort values."""
        present = tuple(name for name, value in filters.items() if value is not None)
        nulls = None if after is None else tuple(value is None for value in after)
        key = (len(base_args), present, tuple(sort), nulls)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shape(len(base_args), present, sort, nulls)
            if len(self._shapes) >= MAX_SHAPES:
                del self._shapes[next(iter(self._shapes))]
            self._shapes[key] = shape
        sql, slots = shape
        args = list(base_args)
        for kind, ref in slots:
            if kind == "filter":
                value = filters[ref]
                if self.filters[ref].op is Op.CONTAINS:
                    value = f"%{escape_like(value)}%"
                args.append(value)
            elif kind == "after":
                args.append(after[ref] if after is not None else None)
            else:
                args.append(limit)
        return sql, args

    def _shape(
        self,
        offset: int,
        present: tuple[str, ...],
        sort: Sequence[SortKey],
        nulls: tuple[bool, ...] | None,
    ) -> tuple[str, tuple[_Slot, ...]]:
        """The SQL of one shape of page (which filters, which sort, where the page
        starts), and where each of its `$n` takes its value from. The text depends on
        nothing else, so it is composed once per shape rather than once per request."""
        slots: list[_Slot] = []

        def bind(slot: _Slot) -> Parameter:
            slots.append(slot)
            return Parameter(f"${offset + len(slots)}")

        source = _Base(self.base.sql)
        where = [self._criterion(source, name, bind) for name in present]
        if nulls is None:
            branches: list[list[Term]] = [[]]
        else:
            markers = [None if null else ("after", i) for i, null in enumerate(nulls)]
            branches = _after(source, sort, markers, bind, self.nullable)
        # pypika types LIMIT as int, but renders any term: here a bound $n.
        page: Any = bind(("limit", 0))
        queries = [self._page(source, [*where, *extra], sort, page) for extra in branches]
        if len(queries) == 1:
            return str(queries[0].get_sql()), tuple(slots)
        # Two index-ordered runs (e.g. the rest of the numbers, then the NULLs), each
        # at most one page long; sorting those few rows is cheaper than a filtered scan.
        union: Any = queries[0].union_all(queries[1])
        for k in sort:
            union = union.orderby(Field(k.column), order=_order(k))
        return str(union.limit(page).get_sql()), tuple(slots)

    def _page(self, source: _Base, where: list[Term], sort: Sequence[SortKey], page: Any) -> Any:
        query = PostgreSQLQuery.from_(source).select(
            *(Field(c, table=source) for c in self.columns)
        )
        for criterion in where:
            query = query.where(criterion)
        for k in sort:
            query = query.orderby(Field(k.column, table=source), order=_order(k))
        return query.limit(page)

    def _criterion(self, source: _Base, name: str, bind: Any) -> Criterion:
        spec = self.filters.get(name)
        if spec is None:
            raise UnknownField("filter", name, tuple(self.filters))
        column = Field(spec.column, table=source)
        value = bind(("filter", name))
        if spec.op is Op.CONTAINS:
            criterion = column.ilike(value)
        elif spec.op is Op.GE:
            criterion = column >= value
        elif spec.op is Op.LE:
            criterion = column <= value
        else:
            criterion = column == value
        return cast(Criterion, criterion)


def _order(key: SortKey) -> Order:
    return Order.desc if key.descending else Order.asc


def _after(
    source: _Base,
    sort: Sequence[SortKey],
    after: Sequence[Any],
    bind: Any,
    nullable: frozenset[str],
) -> list[list[Term]]:
    """Conditions for the rows strictly after `after` in `sort` order: one list per run
    of rows an index can produce in order (two when the run crosses into or out of NULLs)."""
    fields = [Field(k.column, table=source) for k in sort]
    first, column = sort[0], fields[0]
    # One direction and no NULL after the first column: a row comparison, which an
    # index on the same columns serves as a range (and which never matches NULL).
    row_order = len({k.descending for k in sort}) == 1 and not any(
        k.column in nullable for k in sort[1:]
    )
    if row_order and first.column not in nullable:
        return [[_row_beyond(fields, [bind(v) for v in after], first.descending)]]
    params = [None if v is None else bind(v) for v in after]
    value = params[0]
    if first.column in nullable and not first.descending and value is not None:
        # Ascending, NULLs last: the rest of the values, then every NULL.
        if row_order:
            rest = _row_beyond(fields, params, descending=False)
        else:
            rest = _disjuncts(fields, params, sort, nullable, column > value)
        return [[column >= value, rest], [column.isnull()]]
    if row_order and value is not None:
        # Descending with NULLs first and a value: only values remain.
        return [[_row_beyond(fields, params, descending=True)]]
    if first.column in nullable and first.descending and value is None:
        # Descending, NULLs first: the rest of the NULLs, then every value.
        return [
            [column.isnull(), _disjuncts(fields, params, sort, nullable, None)],
            [column.notnull()],
        ]
    beyond = _beyond(column, value, first.descending, first.column in nullable)
    # A bound on the first column alone, which an index on it can serve.
    if value is None:
        bound: Term = column.isnull()
    else:
        bound = column <= value if first.descending else column >= value
    return [[bound, _disjuncts(fields, params, sort, nullable, beyond)]]


def _row_beyond(fields: Sequence[Field], params: Sequence[Any], descending: bool) -> Term:
    lhs, rhs = Tuple(*fields), Tuple(*params)
    return cast(Term, lhs < rhs if descending else lhs > rhs)


def _disjuncts(
    fields: Sequence[Field],
    params: Sequence[Any],
    sort: Sequence[SortKey],
    nullable: frozenset[str],
    first_beyond: Term | None,
) -> Term:
    """(a beyond x) OR (a = x AND b beyond y) OR (a = x AND b = y AND c beyond z) ...
    where "= NULL" is IS NULL and "beyond" knows where NULLs sort."""
    disjuncts: list[Term] = []
    for i, k in enumerate(sort):
        step = (
            first_beyond
            if i == 0
            else _beyond(fields[i], params[i], k.descending, k.column in nullable)
        )
        if step is not None:
            equal = [
                f.isnull() if p is None else f == p
                for f, p in zip(fields[:i], params[:i], strict=True)
            ]
            disjuncts.append(Criterion.all([*equal, step]))
    return Criterion.any(disjuncts) if disjuncts else _never()


def _beyond(field: Field, param: Any, descending: bool, nullable: bool) -> Term | None:
    """Rows past `param` in one column; None when nothing can be (past NULL, ascending)."""
    if param is None:
        # NULLs are last ascending (nothing after them), first descending.
        return None if not descending else field.notnull()
    if descending:
        return cast(Term, field < param)
    after = field > param
    return cast(Term, after | field.isnull()) if nullable else cast(Term, after)


def _never() -> Term:
    return cast(Term, ValueWrapper(1) == ValueWrapper(0))
