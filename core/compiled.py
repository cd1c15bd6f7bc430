"""Querysets compiled once per process, run with new values on each call.

Why this exists: the claim path's reads are querysets (the one definition of each rule), and for the larger ones
Django spends far longer building and compiling the queryset than the database spends running it: the claim gate's
snapshot of nine subqueries took 7 ms to build and compile and 0.8 ms to run (issue 23). Django has no cache of
compiled SQL, so this module keeps one: the queryset is still what defines the read, and is what runs whenever the
cache cannot prove it would give the same answer.

    rows = compiled.rows("wellbeing.gate_snapshot", build, reviewer_id=7, shift_id=None, now=now)

`build(**values)` returns a `.values(...)` queryset. The first call for a given *shape* of values builds it twice, with
two different sets of distinctive sentinel values, compiles both (`compiler.as_sql()`), and records which parameter
positions hold which value. Later calls of that shape substitute the real values into the recorded SQL, run it
through Django's cursor (so execute wrappers, query logging and CaptureQueriesContext see it as usual; on PostgreSQL
a prepared statement, logged but not seen by execute wrappers: see `_prepared`), and apply
the same converters Django's `.values()` applies, giving the same dicts with the same keys.

The shape (the cache key, with the name, the database alias and its vendor) holds what can change the SQL rather
than its parameters: None and booleans (by value), the length of a list or tuple, the type of each value, whether a
datetime is aware, and the range class of an integer (Django drops a comparison with an integer outside the field's
range, `IntegerFieldOverflow`, so a sentinel has to fall in the same range as the value it stands for). Anything
else must reach the SQL only as a parameter; the two builds check that:

- both give the same SQL text (a value that changed it would have changed it between the sentinels too);
- every parameter position is the same constant in both, or holds the same value's sentinel in both, adapted as
  Django adapts it (`connection.ops.adapt_datetimefield_value` for datetimes: SQLite gets a string, PostgreSQL the
  datetime), or that sentinel moved by the same fixed amount in both (a datetime such as `now - 1 hour`);
- every value is found at least once (one found nowhere might be steering the query in Python, unseen). A value may
  be found more than once: the reviewer's id is in four of the gate's subqueries.

When any check fails, or a value is of a type not handled here, or compiling raises, that shape runs the queryset
normally from then on, and a warning says so once per process and shape.
An empty `__in` at the top level is not an error: Django answers it without a statement, and so does this (logged
at INFO). Lists of more than MOST_LIST_ITEMS values, and names called with more than MOST_SHAPES shapes, run the
queryset: each length would be a statement of its own.

`update()` does the same for `queryset.update(**changes)`, the changes being values like any other. `create()`
runs `Model.objects.create(**values)`'s INSERT from its SQL text compiled once per model: an insert's parameters
are each field's own `pre_save` and `get_db_prep_save`, in field order, so they need no sentinels (see create).
On PostgreSQL every compiled statement runs prepared on the server (see `_prepared`): planning the gate's
snapshot cost PostgreSQL more than running it.

Substituted values are adapted the way Django adapts them: integers and strings as they are (an integer the
backend wraps for its column, psycopg's Int2/Int4 on PostgreSQL, wrapped the same way), dates and datetimes
through the connection's `adapt_*field_value`, and a moved datetime is moved in Python first, exactly as the
queryset's own code would (`value + delta`), then adapted.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar, cast

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet, signals
from django.db.models.sql import InsertQuery, UpdateQuery

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Model)
Builder = Callable[..., "QuerySet[Any, Any]"]
UpdateBuilder = Callable[..., "tuple[QuerySet[Any, Any], dict[str, Any]]"]

# A datetime moved by more than this from its sentinel is not taken for that value moved (a constant, rather).
_MOST_MOVED = timedelta(days=400)
# The two sentinel moments: far from any real data, 17 years and some odd seconds apart, with microseconds so the
# adapted text has all its digits (SQLite's str() drops ".000000").
_MOMENTS = (datetime(2970, 3, 7, 5, 11, 13, 123457, tzinfo=UTC),
            datetime(2953, 8, 21, 17, 41, 2, 654321, tzinfo=UTC))
# Longer lists, and more shapes of one name, are not compiled: each length is a statement of its own.
MOST_LIST_ITEMS = 16
MOST_SHAPES = 64
# Integer range classes: Django's integer field ranges (positive small, positive, big; and their negatives).
_INT_RANGES = ((0, 32_767), (32_768, 2_147_483_647), (2_147_483_648, 9_223_372_036_854_775_807),
               (-32_768, -1), (-2_147_483_648, -32_769), (-9_223_372_036_854_775_808, -2_147_483_649))


@dataclass(frozen=True)
class _Slot:
    """Where one parameter comes from: a constant, or a value (by its leaf index), maybe moved by `delta`."""

    leaf: int | None
    constant: Any = None
    delta: timedelta | None = None
    # The int subclass the backend wraps this integer in (PostgreSQL: psycopg's Int2/Int4/Int8, by field), if any.
    wrap: type[int] | None = None


@dataclass(frozen=True)
class _Compiled:
    updates: bool  # an UPDATE (run for its row count), else a SELECT of .values() rows
    sql: str
    slots: tuple[_Slot, ...]
    names: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]


class _Plain:
    """This shape runs the queryset itself (see the module docstring)."""


_PLAIN = _Plain()
_cache: dict[tuple[Any, ...], _Compiled | _Plain] = {}
_warned: set[tuple[Any, ...]] = set()
_lock = threading.Lock()
_compiling = threading.RLock()


class _Unsupported(Exception):
    pass


def rows(name: str, build: Builder, /, *, using: str = DEFAULT_DB_ALIAS, **values: Any) -> list[dict[str, Any]]:
    """What `list(build(**values).using(using))` returns, from SQL compiled once per shape of values (see above)."""
    connection = connections[using]
    if _batch.pending:
        _flush()  # a read inside a together() block sees what the block wrote before it
    leaves: list[Any] = []
    found = _lookup(name, build, values, leaves, using, connection, updates=False)
    if found is None:
        return list(build(**values).using(using))
    return _run(found, leaves, connection)


def update(name: str, build: UpdateBuilder, /, *, using: str = DEFAULT_DB_ALIAS, **values: Any) -> int:
    """What `queryset.using(using).update(**changes)` returns (the rows updated), for `queryset, changes =
    build(**values)`, from SQL compiled once per shape of values: the changes are values like any other."""
    connection = connections[using]
    if _batch.pending:
        _flush()  # in call order: what waits in a together() block goes first
    leaves: list[Any] = []
    found = _lookup(name, build, values, leaves, using, connection, updates=True)
    if found is None:
        queryset, changes = build(**values)
        return int(queryset.using(using).update(**changes))
    with transaction.mark_for_rollback_on_error(using=using):
        count = _execute(found, _params(found, leaves, connection), connection)
    assert isinstance(count, int)
    return count


class WrongCount(RuntimeError):
    """An update_later() given `expect` updated another number of rows: what the caller read under its locks no
    longer held when the write went. Raised where the count becomes known (at once, or when the together() block
    sends its writes), so the transaction rolls back rather than commit writes made on a wrong premise."""

    def __init__(self, name: str, expected: int, updated: int) -> None:
        super().__init__(f"{name}: expected to update {expected} row(s), updated {updated}")
        self.name, self.expected, self.updated = name, expected, updated


class Counted:
    """The rows an update_later() updated: known at once where it ran at once, else when its together() block
    sends its writes."""

    def __init__(self, value: int | None = None, *, name: str = "", expect: int | None = None) -> None:
        self._value: int | None = None
        self._name, self._expect = name, expect
        if value is not None:
            self._set(value)

    def _set(self, value: int) -> None:
        self._value = value
        if self._expect is not None and value != self._expect:
            raise WrongCount(self._name, self._expect, value)

    @property
    def value(self) -> int:
        if self._value is None:
            raise RuntimeError("compiled.update_later: its row count is known when the together() block ends")
        return self._value


def _counted_now(name: str, count: int, expect: int | None, using: str) -> Counted:
    with transaction.mark_for_rollback_on_error(using=using):  # a wrong count: the transaction cannot commit
        return Counted(count, name=name, expect=expect)


def update_later(name: str, build: UpdateBuilder, /, *, using: str = DEFAULT_DB_ALIAS, expect: int | None = None,
                 **values: Any) -> Counted:
    """update(), but inside a together() block that batches (see together) the UPDATE waits for the block's end and
    goes with its other writes, in one statement; its row count is then in the returned Counted. Elsewhere it runs at
    once, as update() does. With `expect`, a row count other than that raises WrongCount when it becomes known: for
    a conditional write whose outcome the caller already knows from what it read under its locks, so nobody has to
    wait for the count."""
    connection = connections[using]
    if not _batching(using, connection):
        return _counted_now(name, update(name, build, using=using, **values), expect, using)
    leaves: list[Any] = []
    found = _lookup(name, build, values, leaves, using, connection, updates=True)
    if found is None:  # this shape runs the queryset: at once, after what waits
        return _counted_now(name, update(name, build, using=using, **values), expect, using)
    counted = Counted(name=name, expect=expect)
    _batch.pending.append(_Waiting(found, _params(found, leaves, connection), None, counted))
    return counted


def create(name: str, model: type[M], /, *, using: str = DEFAULT_DB_ALIAS, **values: Any) -> M:
    """What `model.objects.using(using).create(**values)` does, its INSERT compiled once per process.

    Django builds an InsertQuery and compiles it on every save (0.4-0.6 ms of Python for the claim's three inserts
    each, issue 23). The SQL of an insert depends only on the model and its fields; the parameters are each field's
    `pre_save(obj, add=True)` (which stamps auto_now_add fields) then `get_db_prep_save()`, in field order, as
    SQLInsertCompiler.prepare_value makes them. The first call compiles the real InsertQuery and checks that its
    parameters are exactly those (else that model runs create() from then on, with a warning); later calls bind
    them. The instance comes back as create() returns it: its primary key set, `_state` saved.

    Given its automatic primary key (a value the caller took from the key's sequence), the INSERT names that key too,
    as `save(force_insert=True)` would write it: compiled once per model and kind. create() runs as it is when the
    model has save signals listening, is a child of a concrete model, is given a primary key that is not its
    automatic one, or a value is an expression (these take paths of save() this does not take)."""
    connection = connections[using]
    obj = model(**values)
    meta = model._meta
    if _batch.pending and not _batching(using, connection):
        _flush()
    given_pk = obj.pk is not None
    if ((given_pk and (meta.auto_field is None or meta.pk is not meta.auto_field or type(obj.pk) is not int))
            or meta.parents or signals.pre_save.has_listeners(model)
            or signals.post_save.has_listeners(model)
            or any(hasattr(value, "resolve_expression") for value in values.values())):
        _flush()  # what waits in a together() block goes first
        obj.save(force_insert=True, using=using)
        return obj
    key = ("create", name, using, connection.vendor, given_pk)
    found = _cache.get(key)
    fields = [f for f in meta.local_concrete_fields if (given_pk or f is not meta.auto_field) and not f.generated]
    params: list[Any] | None = None
    if found is None:
        with _compiling:
            found = _cache.get(key)
            if found is None:
                found = _insert_compiled(key, obj, fields, using, connection)
                with _lock:
                    found = _cache.setdefault(key, found)
                if isinstance(found, _Compiled):
                    # Compiling ran the fields' pre_save on obj already: bind what it stamped.
                    params = [f.get_db_prep_save(getattr(obj, f.attname), connection=connection) for f in fields]
    if isinstance(found, _Plain):
        _flush()  # what waits in a together() block goes first
        obj.save(force_insert=True, using=using)
        return obj
    if params is None:
        params = [f.get_db_prep_save(f.pre_save(obj, True), connection=connection) for f in fields]
    if any(hasattr(param, "resolve_expression") for param in params):  # a field's default made an expression
        _flush()  # what waits in a together() block goes first
        obj.save(force_insert=True, using=using)
        return obj
    if _batching(using, connection):
        _batch.pending.append(_Waiting(found, params, obj, None))
        return obj
    return _insert_run(found, obj, params, using, connection)


@dataclass(frozen=True)
class _Waiting:
    """A write waiting in a together() block: an insert (its instance, to set its key on) or an update (its count)."""

    found: _Compiled
    params: list[Any]
    obj: Model | None
    counted: Counted | None


class _Batch(threading.local):
    """This thread's together() block: its database, and the writes waiting for its end."""

    def __init__(self) -> None:
        self.using: str | None = None
        self.pending: list[_Waiting] = []


_batch = _Batch()


def _batching(using: str, connection: BaseDatabaseWrapper) -> bool:
    return _batch.using == using and _batches_on(connection)


def together_batches(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Would a together() block opened here send its writes as one statement (PostgreSQL, inside a transaction,
    prepared statements on)? Elsewhere each write runs where it is called."""
    return _batches_on(connections[using])


def _batches_on(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "postgresql" and connection.in_atomic_block and _prepares()


@contextmanager
def together(*, using: str = DEFAULT_DB_ALIAS, join: bool = False) -> Iterator[None]:
    """The rows create() writes and the updates update_later() makes inside the block go to the database in one
    statement at its end, not one each: on PostgreSQL their INSERTs and UPDATEs, each compiled as create() and
    update() compile it, become the data-modifying CTEs of one statement (one round trip where there were several:
    a claim's lease, the claim, its audit event and its exposure reservation; a claim's end and its settlement).
    Primary keys the database gives are set at the end of the block, so code inside it must not read them (a key
    given to create() is known at once); update_later()'s row counts are known then too. Everything else is as
    create() and update() do it: the same statements with the same parameters, in the same transaction, in call
    order (a create() that cannot be compiled, and any compiled read or update(), first sends what is waiting). The
    CTEs of one statement all see the database as it was before it, so no write in a block may depend on another's
    effect (a foreign key to a row inserted in the block is checked at the end of the statement, and holds). The
    block must run inside a transaction; elsewhere (SQLite, autocommit, prepared statements off) every write runs
    where it is called. A block inside another sends what waits at its own end, so its keys and counts are known
    there; with `join`, it adds its writes to the enclosing block's instead, to go when that one ends (for code that
    needs neither, such as a claim's end, whose count is checked by `expect`). The waiting writes are sent when the
    block ends by an exception too, so a caller that handles the exception and commits loses nothing; if sending
    them fails then, the first exception is raised."""
    outermost = _batch.using is None
    if not outermost and join and _batch.using == using:
        yield  # the enclosing block sends these writes with its own
        return
    if outermost:
        _batch.using, _batch.pending = using, []
    try:
        yield
    except BaseException:
        try:
            _flush()
        except (DatabaseError, WrongCount):
            logger.exception("compiled.together: the waiting writes could not be sent after an error")
        raise
    else:
        _flush()
    finally:
        if outermost:
            _batch.using, _batch.pending = None, []


def flush() -> None:
    """Inside a together() block: send what waits now, so that the keys the database gives are known."""
    _flush()


def _flush() -> None:
    pending, using = _batch.pending, _batch.using
    _batch.pending = []
    if not pending or using is None:
        return
    connection = connections[using]
    if len(pending) == 1:
        waiting = pending[0]
        if waiting.obj is not None:
            _insert_run(waiting.found, waiting.obj, waiting.params, using, connection)
        else:
            with transaction.mark_for_rollback_on_error(using=using):  # a wrong count too: no commit
                count = _execute(waiting.found, waiting.params, connection)
                assert isinstance(count, int) and waiting.counted is not None
                waiting.counted._set(count)
        return
    sql = _together_sql(tuple((waiting.found.sql, waiting.obj is not None) for waiting in pending))
    together_found = _Compiled(updates=False, sql=sql, slots=(), names=(), converters=())
    with transaction.mark_for_rollback_on_error(using=using):
        returned = _execute(together_found, [param for waiting in pending for param in waiting.params], connection)
    assert isinstance(returned, list) and len(returned) == 1 and len(returned[0]) == len(pending)
    counted: list[tuple[Counted, int]] = []
    for waiting, value in zip(pending, returned[0], strict=True):
        if waiting.obj is None:
            assert waiting.counted is not None
            counted.append((waiting.counted, int(value)))
            continue
        obj = waiting.obj
        setattr(obj, obj._meta.pk.attname, value)
        obj._state.adding = False
        obj._state.db = using
    with transaction.mark_for_rollback_on_error(using=using):  # a wrong count: the transaction cannot commit
        for counts, value in counted:  # every key and count set before a wrong count is raised
            counts._set(value)


_together: dict[tuple[tuple[str, bool], ...], str] = {}


def _together_sql(statements: tuple[tuple[str, bool], ...]) -> str:
    """`INSERT ... RETURNING pk` and `UPDATE ...` statements (each with whether it inserts) as one: `WITH w0 AS
    (INSERT ...), w1 AS (UPDATE ... RETURNING 1) SELECT (SELECT pk FROM w0), (SELECT count(*) FROM w1)`: each insert's
    one row's key, each update's row count, in call order (the CTEs all run, in one snapshot, whatever the final
    SELECT reads)."""
    found = _together.get(statements)
    if found is None:
        ctes, columns = [], []
        for n, (sql, inserts) in enumerate(statements):
            name = f"veil_write_{n}"
            ctes.append(f"{name} AS ({sql})" if inserts else f"{name} AS ({sql} RETURNING 1)")
            # Django-compiled INSERTs and UPDATEs (parameters as placeholders), names of our own: nothing from outside.
            columns.append(f"(SELECT * FROM {name})" if inserts else f"(SELECT count(*) FROM {name})")  # noqa: S608
        found = f"WITH {', '.join(ctes)} SELECT {', '.join(columns)}"
        with _lock:
            _together[statements] = found
    return found


def _insert_compiled(key: tuple[Any, ...], obj: Model, fields: list[Any], using: str,
                     connection: BaseDatabaseWrapper) -> _Compiled | _Plain:
    meta = obj._meta
    returning = list(meta.db_returning_fields)
    problem = None
    if returning != [meta.pk] or meta.auto_field is None or not connection.features.can_return_columns_from_insert:
        problem = "the insert returns more than an automatic primary key, or the database returns nothing"
    else:
        query = InsertQuery(type(obj))
        query.insert_values(fields, [obj])
        compiler = query.get_compiler(using=using)
        compiler.returning_fields = returning
        statements = compiler.as_sql()  # runs the fields' pre_save on obj, as save() would
        ours = [f.get_db_prep_save(getattr(obj, f.attname), connection=connection) for f in fields]
        if len(statements) != 1:
            problem = "the insert is more than one statement"
        else:
            sql, params = statements[0]
            if len(params) != len(ours) or not all(_same_param(a, b) for a, b in zip(params, ours, strict=True)):
                problem = "the insert's parameters are not the fields' prepared values in order"
            else:
                return _Compiled(updates=False, sql=sql, slots=(), names=(meta.pk.attname,), converters=())
    _warn(key, f"{key[1]}: {problem}; running create() each time")
    return _PLAIN


def _same_param(a: Any, b: Any) -> bool:
    """Two prepared insert parameters alike: equal values, or adapter wrappers (psycopg's Jsonb) of equal values."""
    if type(a) is not type(b):
        return False
    return bool(a == b) or (hasattr(a, "obj") and a.obj == b.obj)


def _insert_run(found: _Compiled, obj: M, params: list[Any], using: str, connection: BaseDatabaseWrapper) -> M:
    with transaction.mark_for_rollback_on_error(using=using):
        returned = _execute(found, params, connection)
    assert isinstance(returned, list) and len(returned) == 1
    setattr(obj, obj._meta.pk.attname, returned[0][0])
    obj._state.adding = False
    obj._state.db = using
    return obj


def _lookup(name: str, build: Any, values: dict[str, Any], leaves: list[Any], using: str,
            connection: BaseDatabaseWrapper, *, updates: bool) -> _Compiled | None:
    """The compiled statement for this shape of values (compiling it the first time), or None: run the queryset."""
    try:
        shape = _shape(values, leaves)
    except _Unsupported as exc:
        _warn((name, using, str(exc)), f"{name}: {exc}; running the queryset each time")
        return None
    key = (name, using, connection.vendor, shape)
    found = _cache.get(key)
    if found is None:
        if sum(1 for k in list(_cache) if k[0] == name) >= MOST_SHAPES:
            _warn((name, using, "shapes"), f"{name}: more than {MOST_SHAPES} shapes of values; running the queryset "
                  "for the others")
            return None
        with _compiling:  # one thread compiles; the others of a process starting up wait for it, not redo it
            found = _cache.get(key)
            if found is None:
                found = _compile(key, build, values, using, connection, updates=updates)
                with _lock:
                    found = _cache.setdefault(key, found)
    return None if isinstance(found, _Plain) else found


def first(name: str, model: type[M], build: Callable[..., QuerySet[M]], /, *, using: str = DEFAULT_DB_ALIAS,
          **values: Any) -> M | None:
    """What `build(**values).first()` returns (a `model` instance or None), from SQL compiled once per shape: the
    same order (the queryset's, else the primary key, as first() does), every concrete field loaded, nothing
    related."""

    def one(**bound: Any) -> QuerySet[M, Any]:
        queryset = build(**bound)
        ordered = queryset if queryset.ordered else queryset.order_by("pk")
        return ordered.values(*model_paths(model, ""))[:1]

    found = rows(name, one, using=using, **values)
    return instance(model, found[0], "", using=using) if found else None


def instances(name: str, model: type[M], build: Callable[..., QuerySet[M]], /, *, using: str = DEFAULT_DB_ALIAS,
              **values: Any) -> list[M]:
    """What `list(build(**values))` returns (`model` instances, in the queryset's order), from SQL compiled once per
    shape: every concrete field loaded, nothing related."""

    def loaded(**bound: Any) -> QuerySet[M, Any]:
        return build(**bound).values(*model_paths(model, ""))

    found = (instance(model, row, "", using=using) for row in rows(name, loaded, using=using, **values))
    return [obj for obj in found if obj is not None]


def instance(model: type[M], row: Mapping[str, Any], prefix: str, *, using: str = DEFAULT_DB_ALIAS) -> M | None:
    """The `model` row that `row` holds under `prefix` + each concrete field's attname (the columns of
    `model_paths(model, prefix)`), as select_related would have loaded it; None when its primary key is None (no
    row, as the LEFT JOIN of a reverse one-to-one gives)."""
    fields = model._meta.concrete_fields
    if row[prefix + model._meta.pk.attname] is None:
        return None
    return model.from_db(using, [f.attname for f in fields], [row[prefix + f.attname] for f in fields])


def next_key(model: type[Model]) -> Any:
    """The next value of `model`'s automatic primary key sequence (PostgreSQL), as an expression to annotate on a
    read that comes before a together() block: an uncorrelated scalar subquery, run once per statement. With the key
    known before its row is written, the other writes of the block can name the row in the same statement (a claim's
    audit event and exposure entry; a decision's audit event). The ORM has no expression for a sequence, so this is
    SQL, the only copy; annotate it only where together_batches() (the PostgreSQL test pass runs it)."""
    from django.db.models import BigIntegerField
    from django.db.models.expressions import RawSQL

    meta = model._meta
    return RawSQL("SELECT nextval(pg_get_serial_sequence(%s, %s))", (meta.db_table, meta.pk.column),
                  output_field=BigIntegerField())


def columns_of(model: type[Model], queryset: QuerySet[Any, Any], prefix: str) -> dict[str, Any]:
    """Annotations that load the one row of `model` that `queryset` selects (or none) as columns of another read:
    `prefix` + each concrete field's attname, each an uncorrelated scalar subquery (PostgreSQL runs each once per
    statement, and a statement sees one snapshot, so the columns are of one row). Read them back with
    `instance(model, row, prefix)`. For a row read on every claim that no relation reaches (the organisation's and
    the queue's policies): one statement fewer, the queryset still the row's definition."""
    from django.db.models import Subquery

    one = queryset.order_by()
    return {prefix + f.attname: Subquery(one.values(f.attname)[:1], output_field=f)
            for f in model._meta.concrete_fields}


def model_paths(model: type[Model], prefix: str) -> list[str]:
    """The `.values()` paths of every concrete field of `model` reached through `prefix` (e.g. "wellbeing_policy__")."""
    return [prefix + f.attname for f in model._meta.concrete_fields]


def shapes(name: str) -> list[bool]:
    """For each shape of values `name` was called with so far, in order: compiled (True) or run as a queryset."""
    return [isinstance(found, _Compiled) for key, found in list(_cache.items()) if key[0] == name]


def clear() -> None:
    """Forget every compiled statement (tests; a process never needs to)."""
    with _lock:
        _cache.clear()
        _warned.clear()
        _not_prepared.clear()
        _prepared_once.clear()
        _numbered_sql.clear()


# ---- shapes and sentinels -----------------------------------------------------------------------------------------


def _shape(value: Any, leaves: list[Any]) -> Any:
    """The part of `value` that may change the SQL; the rest is appended to `leaves`, to be bound."""
    if value is None or isinstance(value, bool):
        return ("const", value)
    if isinstance(value, Mapping):
        return tuple((k, _shape(v, leaves)) for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        if len(value) > MOST_LIST_ITEMS:
            raise _Unsupported(f"lists of more than {MOST_LIST_ITEMS} values are not compiled")
        return (type(value).__name__, tuple(_shape(v, leaves) for v in value))
    if isinstance(value, int):
        leaves.append(int(value))  # an IntegerChoices member as the plain int Django's fields make of it
        return ("int", _int_range(value))
    if isinstance(value, datetime):
        leaves.append(value)
        return ("datetime", value.tzinfo is not None)
    if isinstance(value, date):
        leaves.append(value)
        return ("date",)
    if isinstance(value, str):
        if not value:
            return ("const", "")
        leaves.append(str.__str__(value))  # a TextChoices member as the string the driver is given
        return ("str",)
    raise _Unsupported(f"values of type {type(value).__name__} are not compiled")


def _int_range(value: int) -> int:
    for n, (low, high) in enumerate(_INT_RANGES):
        if low <= value <= high:
            return n
    raise _Unsupported("an integer outside every database integer range")


def _sentinels(value: Any, which: int, counter: list[int]) -> Any:
    """`value` with every leaf replaced by a sentinel of set `which` (0 or 1), distinct from every other leaf's."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return {k: _sentinels(v, which, counter) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return type(value)(_sentinels(v, which, counter) for v in value)
    if isinstance(value, str) and not value:
        return value
    counter[0] += 1
    n = counter[0]
    if isinstance(value, int):
        low, high = _INT_RANGES[_int_range(value)]
        top = high if high > 0 else low  # far from zero, where real ids and counts are not
        step = -1 if top > 0 else 1
        return top + step * (n * 37 + which * 1009 + 11)
    if isinstance(value, datetime):
        moment = _MOMENTS[which] + timedelta(days=n * 3, seconds=n)
        return moment if value.tzinfo is not None else moment.replace(tzinfo=None)
    if isinstance(value, date):
        return (_MOMENTS[which] + timedelta(days=n * 3)).date()
    return f"\u2983veil-sentinel-{which}-{n:06d}\u2984"  # zero-padded: sorting keeps the values' order


def _adapt(value: Any, connection: BaseDatabaseWrapper) -> Any:
    """A value as Django hands it to the driver for a column of its type."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, date):
        return connection.ops.adapt_datefield_value(value)
    return value


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _moved(param: Any, sentinel: datetime, connection: BaseDatabaseWrapper) -> timedelta | None:
    """How far `param` is from the datetime `sentinel`, if it is that sentinel moved (adapted the same way)."""
    adapted = _adapt(sentinel, connection)
    try:
        if isinstance(param, datetime) and isinstance(adapted, datetime):
            delta = param - adapted
        elif isinstance(param, str) and isinstance(adapted, str):
            delta = datetime.fromisoformat(param) - datetime.fromisoformat(adapted)
        else:
            return None
    except (TypeError, ValueError):
        return None
    if abs(delta) > _MOST_MOVED or not _same(_adapt(sentinel + delta, connection), param):
        return None
    return delta


# ---- compiling and running ----------------------------------------------------------------------------------------


def _compile(key: tuple[Any, ...], build: Any, values: dict[str, Any], using: str,
             connection: BaseDatabaseWrapper, *, updates: bool) -> _Compiled | _Plain:
    name = key[0]
    try:
        found = _compile_checked(build, values, using, connection, updates=updates)
    except EmptyResultSet:
        # Nothing to compile: Django answers an empty `__in` without asking the database.
        if key not in _warned:
            _warned.add(key)
            logger.info("compiled queryset %s: matches nothing for this shape of values, which the queryset "
                        "answers without a statement", name)
        return _PLAIN
    except Exception as exc:
        found = f"compiling raised {type(exc).__name__}: {exc}"
    if isinstance(found, str):
        _warn(key, f"{name}: {found}; running the queryset each time for this shape of values")
        return _PLAIN
    return found


def _update_query(built: tuple[QuerySet[Any, Any], dict[str, Any]], using: str) -> UpdateQuery | str:
    """The query QuerySet.update() runs, for what it is used on here: a plain filter, no related updates."""
    queryset, changes = built
    if queryset.query.annotations or queryset.query.order_by or queryset.query.is_sliced or queryset.query.combinator:
        return "an update of an annotated, ordered, sliced or combined queryset"
    query = cast(UpdateQuery, queryset.using(using).query.chain(UpdateQuery))
    query.add_update_values(changes)
    query.clear_select_clause()
    if query.get_related_updates():
        return "an update of a parent model's table"
    return query


def _compile_checked(build: Any, values: dict[str, Any], using: str, connection: BaseDatabaseWrapper, *,
                     updates: bool) -> _Compiled | str:
    builds = []
    for which in (0, 1):
        sentinel_values = _sentinels(values, which, [0])
        leaves: list[Any] = []
        _shape(sentinel_values, leaves)
        query = _update_query(build(**sentinel_values), using) if updates else build(**sentinel_values).using(
            using).query
        if isinstance(query, str):
            return query
        compiler = query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        if not sql:
            return "nothing to update"
        builds.append((query, compiler, sql, tuple(params), leaves))
    (query, compiler, sql, params, leaves), (_q, _c, sql_b, params_b, leaves_b) = builds
    if sql != sql_b or len(params) != len(params_b):
        return "the SQL differs between two sets of sentinel values (a value shapes it)"
    slots: list[_Slot] = []
    seen: set[int] = set()
    for position, (a, b) in enumerate(zip(params, params_b, strict=True)):
        slot = _slot(a, b, leaves, leaves_b, connection)
        if slot is None:
            return f"parameter {position + 1} ({a!r}) is neither a constant nor one of the values"
        if slot.leaf is not None:
            seen.add(slot.leaf)
        slots.append(slot)
    missing = [n for n in range(len(leaves)) if n not in seen]
    if missing:
        return f"value {missing[0] + 1} of {len(leaves)} is not among the parameters (changed, or unused)"
    if updates:
        return _Compiled(updates=True, sql=sql, slots=tuple(slots), names=(), converters=())
    names = list(query.selected) if query.selected else [*query.extra_select, *query.values_select,
                                                          *query.annotation_select]
    if not names or len(names) != compiler.col_count:
        return "not a .values() queryset with one column per name"
    fields = [s[0] for s in compiler.select[0:compiler.col_count]]
    if compiler.has_composite_fields(fields):
        return "composite fields are not handled"
    converters = tuple((pos, tuple(convs), expression)
                       for pos, (convs, expression) in compiler.get_converters(fields).items())
    return _Compiled(updates=False, sql=sql, slots=tuple(slots), names=tuple(names), converters=converters)


def _slot(a: Any, b: Any, leaves: Sequence[Any], leaves_b: Sequence[Any],
          connection: BaseDatabaseWrapper) -> _Slot | None:
    for n, (sentinel, sentinel_b) in enumerate(zip(leaves, leaves_b, strict=True)):
        if _same(a, _adapt(sentinel, connection)) and _same(b, _adapt(sentinel_b, connection)):
            return _Slot(leaf=n)
        if (type(sentinel) is int and type(a) is type(b) and isinstance(a, int) and not isinstance(a, bool)
                and int(a) == sentinel and int(b) == sentinel_b):
            return _Slot(leaf=n, wrap=type(a))  # adapted for its column's type (adapt_integerfield_value)
    for n, (sentinel, sentinel_b) in enumerate(zip(leaves, leaves_b, strict=True)):
        if isinstance(sentinel, datetime) and isinstance(sentinel_b, datetime):
            delta = _moved(a, sentinel, connection)
            if delta is not None and delta == _moved(b, sentinel_b, connection):
                return _Slot(leaf=n, delta=delta)
    if _same(a, b):
        return _Slot(leaf=None, constant=a)
    return None


def _params(found: _Compiled, leaves: list[Any], connection: BaseDatabaseWrapper) -> list[Any]:
    return [
        slot.constant if slot.leaf is None
        else slot.wrap(leaves[slot.leaf]) if slot.wrap is not None
        else _adapt(leaves[slot.leaf] + slot.delta if slot.delta is not None else leaves[slot.leaf], connection)
        for slot in found.slots
    ]


def _run(found: _Compiled, leaves: list[Any], connection: BaseDatabaseWrapper) -> list[dict[str, Any]]:
    fetched = _execute(found, _params(found, leaves, connection), connection)
    assert isinstance(fetched, list)
    names = found.names
    result = []
    for fetched_row in fetched:
        row = list(fetched_row)
        for pos, convs, expression in found.converters:
            value = row[pos]
            for converter in convs:
                value = converter(value, expression, connection)
            row[pos] = value
        result.append(dict(zip(names, row, strict=True)))
    return result


def _execute(found: _Compiled, params: list[Any], connection: BaseDatabaseWrapper) -> list[Any] | int:
    """Run the statement: its rows, or for an update its row count. On PostgreSQL as a server-side prepared
    statement (see `_prepared`); elsewhere, or when that is off, through Django's cursor like any query."""
    if connection.vendor == "postgresql" and found.sql not in _not_prepared and _prepares():
        return _prepared(found, params, connection)
    with connection.cursor() as cursor:
        cursor.execute(found.sql, params)
        return int(cursor.rowcount) if found.updates else list(cursor.fetchall())


# Statements PostgreSQL would not prepare as they are (they run through Django's cursor instead), and those that
# did prepare once in this process.
_not_prepared: set[str] = set()
_prepared_once: set[str] = set()
EXPLICIT_ONLY = 2**31 - 1  # executions before psycopg would prepare a statement by itself: never


def _prepares() -> bool:
    from django.conf import settings

    return bool(settings.VEIL_DB_PREPARED_STATEMENTS)


def _prepared(found: _Compiled, params: list[Any], connection: BaseDatabaseWrapper) -> list[Any] | int:
    """PostgreSQL plans a statement on every execution unless it is prepared, and for the claim gate's snapshot
    planning cost more than running it (1.2 ms against 0.3 ms). Django's cursors bind on the client and never
    prepare, so the statement runs on a psycopg cursor of the same connection (and transaction) with prepare=True:
    planned once per connection (psycopg keeps up to 100 per connection, by SQL text and parameter types). Off with
    settings.VEIL_DB_PREPARED_STATEMENTS = False, behind a pooler that cannot keep prepared statements (PgBouncer in
    transaction mode before 1.21).

    The parameters are then bound on the server, typed by psycopg, which Django supports but Veil's querysets are
    otherwise not run with: the first run of each statement in a process is inside a savepoint, and a statement the
    server refuses runs through Django's cursor from then on (logged once). The query log (CaptureQueriesContext,
    DEBUG) gets the statement as Django's cursor would have logged it."""
    first = found.sql not in _prepared_once
    if first:
        try:
            with transaction.atomic(using=connection.alias):
                result = _prepared_run(found, params, connection)
        except DatabaseError as exc:
            _not_prepared.add(found.sql)
            _warn(("prepare", found.sql), f"{found.sql[:60]}...: not prepared ({exc}); run through Django's cursor")
            return _execute(found, params, connection)
        _prepared_once.add(found.sql)
        return result
    return _prepared_run(found, params, connection)


def _prepared_run(found: _Compiled, params: list[Any], connection: BaseDatabaseWrapper) -> list[Any] | int:
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    threshold = raw.prepare_threshold
    started = time.monotonic()
    try:
        if threshold is None:
            # Django opens its connections with prepare_threshold None, and psycopg then ignores prepare=True too.
            # Set for this statement only: with a threshold, psycopg would track every one of Django's statements
            # as well (and forget what it prepared at any ROLLBACK TO SAVEPOINT among them).
            raw.prepare_threshold = EXPLICIT_ONLY
        with connection.wrap_database_errors, psycopg.RawCursor(raw) as cursor:
            cursor.execute(_numbered(found.sql), params, prepare=True)
            result: list[Any] | int = int(cursor.rowcount) if found.updates else list(cursor.fetchall())
    finally:
        raw.prepare_threshold = threshold
    if connection.queries_logged:
        # Not type-checked below: compose_sql is PostgreSQL's operations' own (this runs only there).
        connection.queries_log.append({"sql": connection.ops.compose_sql(found.sql, params),  # type: ignore[attr-defined]
                                       "time": f"{time.monotonic() - started:.3f}"})
    return result


_PLACEHOLDER = re.compile(r"%%|%s")
_numbered_sql: dict[str, bytes] = {}


def _numbered(sql: str) -> bytes:
    """Django's SQL (`%s` placeholders, a literal `%` written `%%`) with PostgreSQL's numbered placeholders, encoded:
    converted once per statement, for psycopg's RawCursor. A Cursor would convert it on every execution, and psycopg
    caches its conversion only for statements shorter than 4 kB (the gate's snapshot is longer): it cost about a
    tenth of the claim path's Python."""
    found = _numbered_sql.get(sql)
    if found is None:
        counter = iter(range(1, 1 << 16))
        found = _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(counter)}", sql).encode()
        with _lock:
            _numbered_sql[sql] = found
    return found


def _warn(key: tuple[Any, ...], message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning("compiled queryset %s", message)
