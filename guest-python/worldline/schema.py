"""The module's tables, reducers and procedures, declared with decorators
and described to the host in the order the Rust SDK uses (each list sorted
by name, the type arena built tables first, then reducers, then procedures).
"""

import dataclasses
import inspect
import typing

from . import postcard
from .types import SchemaError, Timestamp, TypeArena, codec, describe, markers, wire_name


class _Marker:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


primary_key = _Marker("primary_key")
"""Column marker: the table's primary key (a unique index named ``TABLE_COLUMN_pk``)."""
unique = _Marker("unique")
"""Column marker: a unique index named ``TABLE_COLUMN_key``."""
index = _Marker("index")
"""Column marker: a btree index named ``TABLE_COLUMN_idx``."""
auto_inc = _Marker("auto_inc")
"""Column marker: inserting 0 takes the column's next sequence value."""
schedule_at = _Marker("schedule_at")
"""Column marker (a ``Timestamp``): when a scheduled row is due."""
schedule_interval = _Marker("schedule_interval")
"""Column marker (a ``u64``): a scheduled row's repeat interval in microseconds."""


class Index:
    """One index of a table: its name, columns, whether it is unique, the
    codecs of its key columns, and ``attr``, the attribute of
    ``ctx.db.<table>`` it is reached by (the column's name for a
    single-column index named by a marker, the declared name for a named
    one)."""

    def __init__(self, name, columns, unique, codecs, attr):
        self.name = name
        self.columns = columns
        self.unique = unique
        self.codecs = codecs
        self.attr = attr


RESERVED_HANDLE_NAMES = ("count", "insert")
"""The methods of ``ctx.db.<table>``: no index may be reached by these names."""


def _check_index_attrs(table, indexes):
    """Refuses an index whose attribute would shadow a handle method or
    another index."""
    seen = {}
    for index in indexes:
        attr = index.attr
        what = f"column {attr}" if index.name != attr else f"index {attr}"
        if attr in RESERVED_HANDLE_NAMES or attr.startswith("_"):
            raise SchemaError(
                f"table {table}: the indexed {what} would be reached as ctx.db.{table}.{attr}, "
                f"which is a method of the table handle; rename it (reserved: "
                f"{', '.join(RESERVED_HANDLE_NAMES)}, and names starting with _)")
        if attr in seen:
            raise SchemaError(
                f"table {table}: indexes {seen[attr]} and {index.name} would both be reached "
                f"as ctx.db.{table}.{attr}; rename one")
        seen[attr] = index.name


def _schedule_column(table, scheduled, marker, earlier, position):
    """``position``, the column marked ``marker`` (``schedule_at`` or
    ``schedule_interval``), after refusing it on a table that is not
    scheduled or as a second such column (``earlier``), as the Rust SDK's
    ``#[table]`` does."""
    if scheduled is None:
        raise SchemaError(f"table {table}: {marker} marks a column of a scheduled table; "
                          f"add scheduled=\"reducer\" to @table or remove the marker")
    if earlier is not None:
        raise SchemaError(f"table {table}: at most one {marker} column")
    return position


class TableInfo:
    """A declared table."""

    def __init__(self, cls, name, public, scheduled, extra_indexes):
        if not dataclasses.is_dataclass(cls):
            raise SchemaError(f"@table {cls.__name__}: a table must be a @dataclass")
        self.cls = cls
        self.name = name
        self.public = public
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = dataclasses.fields(cls)
        self.columns = [f.name for f in fields]
        self.annotations = [hints[f.name] for f in fields]
        self.row = codec(cls, name)
        self.indexes = []
        self.primary_key = None
        self.auto_inc = []
        self.schedule = None
        at = interval = None
        for position, (column, annotation) in enumerate(zip(self.columns, self.annotations)):
            base, found = markers(annotation)
            column_codec = codec(base, f"{name}.{column}")
            if primary_key in found:
                if self.primary_key is not None:
                    raise SchemaError(f"table {name}: at most one primary_key column")
                self.primary_key = len(self.indexes)
            if primary_key in found or unique in found:
                suffix = "pk" if primary_key in found else "key"
                self.indexes.append(
                    Index(f"{name}_{wire_name(column)}_{suffix}", [position], True, [column_codec], column))
            if index in found:
                if primary_key in found or unique in found:
                    raise SchemaError(f"table {name}: column {column} is unique, so already indexed")
                self.indexes.append(
                    Index(f"{name}_{wire_name(column)}_idx", [position], False, [column_codec], column))
            if auto_inc in found:
                if not isinstance(column_codec, (postcard.Unsigned, postcard.Signed)):
                    raise SchemaError(
                        f"table {name}: auto_inc column {column} is {base!r}, not an integer type "
                        "(u8 to u128, i8 to i128)")
                self.auto_inc.append(position)
            if schedule_at in found:
                if base is not Timestamp:
                    raise SchemaError(f"table {name}: schedule_at column {column} must be a Timestamp")
                at = _schedule_column(name, scheduled, "schedule_at", at, position)
            if schedule_interval in found:
                interval = _schedule_column(name, scheduled, "schedule_interval", interval, position)
        for index_name, index_columns in (extra_indexes or {}).items():
            if not isinstance(index_columns, (list, tuple)):
                raise SchemaError(
                    f"table {name}: index {index_name} takes a list of column names, got {index_columns!r}")
            positions = []
            for column in index_columns:
                if column not in self.columns:
                    raise SchemaError(f"table {name}: index {index_name} names no column {column}")
                positions.append(self.columns.index(column))
            codecs = [codec(markers(self.annotations[p])[0], name) for p in positions]
            self.indexes.append(Index(index_name, positions, False, codecs, index_name))
        _check_index_attrs(name, self.indexes)
        if scheduled is not None:
            if at is None:
                raise SchemaError(f"table {name}: a scheduled table needs a schedule_at column")
            if self.primary_key is None:
                raise SchemaError(f"table {name}: a scheduled table needs a primary_key column")
            reducer_name = scheduled if isinstance(scheduled, str) else scheduled.__name__
            self.schedule = (reducer_name, at, interval)


class FunctionInfo:
    """A declared reducer or procedure."""

    def __init__(self, func, name, lifecycle=None, procedure=False):
        self.func = func
        self.name = name
        self.lifecycle = lifecycle
        hints = typing.get_type_hints(func, include_extras=True)
        parameters = list(inspect.signature(func).parameters)[1:]
        if lifecycle is not None and parameters:
            raise SchemaError(f"lifecycle reducer {name} takes only the context")
        self.params = [(wire_name(p), hints[p]) for p in parameters if p in hints]
        if len(self.params) != len(parameters):
            raise SchemaError(f"{name}: every parameter after the context needs a type annotation")
        self.args = postcard.Product([codec(a, f"{name}({p})") for p, a in self.params])
        if not procedure and hints.get("return", type(None)) is not type(None):
            raise SchemaError(f"reducer {name} returns nothing (its return annotation is "
                              f"{hints['return']!r}); a @procedure returns a value")
        self.returns = hints.get("return", type(None)) if procedure else None
        if procedure:
            self.result = codec(self.returns, f"{name} -> ")


TABLES = {}
REDUCERS = {}
PROCEDURES = {}


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def table(cls=None, *, name=None, public=False, scheduled=None, indexes=None):
    """Declares a ``@dataclass`` as a table (apply it above ``@dataclass``).

    ``name`` defaults to the class name in snake case; ``public`` lets
    every client read it; ``scheduled`` (a reducer or its name) makes it
    that reducer's schedule; ``indexes`` maps extra btree index names to
    column lists (``{"by_sender_sent": ["sender", "sent"]}``).
    """

    def wrap(cls):
        info = TableInfo(cls, name or _snake(cls.__name__), public, scheduled, indexes)
        if info.name in TABLES:
            raise SchemaError(f"two tables named {info.name}")
        TABLES[info.name] = info
        cls.__worldline_table__ = info
        return cls

    return wrap if cls is None else wrap(cls)


def _register(registry, info):
    if info.name in REDUCERS or info.name in PROCEDURES:
        raise SchemaError(f"two reducers or procedures named {info.name}")
    registry[info.name] = info
    return info.func


def reducer(func=None, *, name=None, init=False, client_connected=False, client_disconnected=False):
    """Declares a reducer ``f(ctx, arg: type, ...)``; ``init``,
    ``client_connected`` or ``client_disconnected`` makes it that lifecycle
    reducer (it takes only ``ctx``)."""

    def wrap(func):
        lifecycle = ("init" if init else "client-connected" if client_connected
                     else "client-disconnected" if client_disconnected else None)
        return _register(REDUCERS, FunctionInfo(func, name or func.__name__, lifecycle))

    return wrap if func is None else wrap(func)


def procedure(func=None, *, name=None):
    """Declares a procedure ``f(ctx, arg: type, ...) -> type``."""

    def wrap(func):
        return _register(PROCEDURES, FunctionInfo(func, name or func.__name__, procedure=True))

    return wrap if func is None else wrap(func)


def sorted_tables():
    """Tables in table-id order."""
    return [TABLES[n] for n in sorted(TABLES)]


def sorted_reducers():
    """Reducers in reducer-id order."""
    return [REDUCERS[n] for n in sorted(REDUCERS)]


def sorted_procedures():
    """Procedures in procedure-id order."""
    return [PROCEDURES[n] for n in sorted(PROCEDURES)]


def module_description():
    """The module description as plain data: (nodes, tables, reducers, procedures)."""
    arena = TypeArena()
    tables = []
    for t in sorted_tables():
        row = describe(t.cls, arena, t.name)
        tables.append((t, row))
    reducers = []
    for r in sorted_reducers():
        reducers.append((r, [(p, describe(a, arena, r.name)) for p, a in r.params]))
    procedures = []
    for p in sorted_procedures():
        params = [(n, describe(a, arena, p.name)) for n, a in p.params]
        procedures.append((p, params, describe(p.returns, arena, p.name)))
    return arena.nodes, tables, reducers, procedures
