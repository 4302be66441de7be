"""The running module: the ``guest`` export the host calls, the contexts
reducers and procedures get, and the table handles (``ctx.db.<table>``).
Only importable inside a component (it binds the WIT imports)."""

import random
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import datastore, http as wit_http, log as wit_log, transaction, types as wit

from . import postcard, schema
from .types import ConnectionId, Identity, Timestamp

_BATCH = 1024


def _wit_text(text):
    """``text`` with each lone surrogate (from ``surrogateescape`` decoding,
    say) replaced by U+FFFD: a WIT string must be valid UTF-8, and
    componentize-py traps on one that cannot be encoded, so a log line or a
    failure message carries the rest of its text instead of becoming a trap."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _request_text(what, value):
    """A request's method, URL or header as a WIT string: a ``str`` that
    encodes as UTF-8, or the request is refused (``TypeError``, or
    :class:`HttpError` ``invalid-request``) instead of trapping."""
    if not isinstance(value, str):
        raise TypeError(f"the request's {what} must be a str, not {type(value).__name__}")
    if _wit_text(value) is not value:
        raise HttpError("invalid-request", f"the request's {what} is not valid UTF-8 (it holds a lone surrogate)")
    return value


class DbError(Exception):
    """A datastore call failed: ``kind`` (such as ``"unique-violation"``)
    and the host's message. Uncaught in a reducer, it traps like a Rust
    SDK panic (the message is the failure reason)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Panic(BaseException):
    """Raised by :func:`panic`: stops the call with a trap, not an error."""


class HttpError(Exception):
    """An outbound request failed: ``kind`` (such as ``"denied"``) and a message."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class TxError(Exception):
    """A transaction call failed: ``kind`` (such as ``"unavailable"``) and a message."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def _kind(enum_value):
    return enum_value.name.lower().replace("_", "-")


def _db(call, *args):
    try:
        return call(*args)
    except Err as e:
        raise DbError(_kind(e.value.kind), e.value.message) from None


def _rows(cursor, row_codec):
    try:
        while True:
            batch = cursor.next(_BATCH)
            if batch.count == 0:
                return
            data = batch.data
            pos = 0
            for _ in range(batch.count):
                row, pos = row_codec.read(data, pos)
                yield row
    finally:
        cursor.__exit__(None, None, None)


class UniqueIndex:
    """A unique index (or primary key): find, update and delete by key."""

    def __init__(self, table, index_id, index):
        self._table = table
        self._id = index_id
        self._key = index.codecs[0] if len(index.codecs) == 1 else postcard.Product(index.codecs)

    def find(self, key):
        """The row with this key, or ``None``."""
        t = self._table
        data = _db(datastore.find, t._id, self._id, postcard.encode(self._key, key))
        return None if data is None else postcard.decode(t._info.row, data)

    def update(self, row):
        """Replaces the row with ``row``'s key; returns the stored row."""
        t = self._table
        data = _db(datastore.update, t._id, self._id, postcard.encode(t._info.row, row))
        return postcard.decode(t._info.row, data)

    def delete(self, key):
        """Deletes the row with this key; returns whether one existed."""
        t = self._table
        return _db(datastore.delete, t._id, self._id, postcard.encode(self._key, key))


class BtreeIndex:
    """A btree index: rows by exact key or key prefix, and key ranges."""

    def __init__(self, table, index_id, index):
        self._table = table
        self._id = index_id
        self._codecs = index.codecs

    def _prefix(self, key):
        values = key if isinstance(key, tuple) and len(self._codecs) > 1 else (key,)
        if len(values) > len(self._codecs):
            raise ValueError(f"the index has {len(self._codecs)} columns, got {len(values)} values")
        out = bytearray()
        for value, codec in zip(values, self._codecs):
            codec.write(value, out)
        return bytes(out)

    def filter(self, key):
        """Rows whose key equals ``key`` (for a multi-column index, a tuple
        of the first k columns' values, or the first column's value)."""
        prefix = datastore.Bound_Included(self._prefix(key))
        return self._scan(prefix, prefix)

    def range(self, lower=None, upper=None, *, upper_inclusive=False):
        """Rows with ``lower <= key < upper`` (``<=`` with
        ``upper_inclusive``), in key order; ``None`` is unbounded."""
        low = datastore.Bound_Unbounded() if lower is None else datastore.Bound_Included(self._prefix(lower))
        if upper is None:
            high = datastore.Bound_Unbounded()
        elif upper_inclusive:
            high = datastore.Bound_Included(self._prefix(upper))
        else:
            high = datastore.Bound_Excluded(self._prefix(upper))
        return self._scan(low, high)

    def _scan(self, low, high):
        t = self._table
        return _rows(_db(datastore.scan_index, t._id, self._id, low, high), t._info.row)


class TableHandle:
    """``ctx.db.<table>``: insert, count, iterate, and its indexes as
    attributes (a column's name for single-column indexes, the index name
    for named ones)."""

    def __init__(self, table_id, info):
        self._id = table_id
        self._info = info
        for index_id, index in enumerate(info.indexes):
            kind = UniqueIndex if index.unique else BtreeIndex
            setattr(self, index.attr, kind(self, index_id, index))

    def insert(self, row):
        """Inserts ``row``; returns the stored row (auto-inc columns given as 0 filled in)."""
        data = _db(datastore.insert, self._id, postcard.encode(self._info.row, row))
        return postcard.decode(self._info.row, data)

    def count(self):
        """Number of rows."""
        return _db(datastore.count, self._id)

    def __len__(self):
        return self.count()

    def __iter__(self):
        return _rows(_db(datastore.scan, self._id), self._info.row)


class Db:
    """The tables, as attributes named after them."""

    def __init__(self):
        for table_id, info in enumerate(schema.sorted_tables()):
            setattr(self, info.name, TableHandle(table_id, info))


_DB = None


def _database():
    global _DB
    if _DB is None:
        _DB = Db()
    return _DB


class _Context:
    def __init__(self, wit_ctx):
        self.sender = Identity.from_words(wit_ctx.sender)
        """Who called."""
        cid = wit_ctx.connection_id
        self.connection_id = None if cid is None else ConnectionId.from_words(cid)
        """The caller's connection, if any."""
        self.timestamp = Timestamp(wit_ctx.timestamp)
        """When the call (a reducer's transaction) started."""
        self._seed = wit_ctx.seed
        self._random = None

    @property
    def random(self):
        """A ``random.Random`` seeded by the host for this call (deterministic in a reducer)."""
        if self._random is None:
            self._random = random.Random(self._seed)
        return self._random


class ReducerContext(_Context):
    """What a reducer gets: ``sender``, ``connection_id``, ``timestamp``,
    ``random`` and ``db``."""

    def __init__(self, wit_ctx):
        super().__init__(wit_ctx)
        self.db = _database()


class Transaction:
    """An open transaction of a procedure: ``db`` and ``timestamp``."""

    def __init__(self, timestamp):
        self.db = _database()
        self.timestamp = Timestamp(timestamp)


class Http:
    """Outbound HTTP for a procedure (to hosts the database owner allowed)."""

    def send(self, method, url, *, headers=(), body=b"", timeout_ms=None):
        """Sends a request; returns the response (``status``, ``headers``
        as (name, value) pairs, ``body``) or raises :class:`HttpError`."""
        request = wit_http.Request(
            _request_text("method", method),
            _request_text("URL", url),
            [wit_http.Header(_request_text("header name", n), _request_text(f"header {postcard.shown(n)}", v))
             for n, v in headers],
            bytes(body),
            timeout_ms,
        )
        try:
            response = wit_http.send(request)
        except Err as e:
            raise HttpError(_kind(e.value.kind), e.value.message) from None
        return Response(response.status, [(h.name, h.value) for h in response.headers], response.body)

    def get(self, url, **kwargs):
        """``send("GET", url, ...)``."""
        return self.send("GET", url, **kwargs)


class Response:
    """An HTTP response."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def text(self):
        """The body as UTF-8 text."""
        return self.body.decode()


def _tx(call):
    try:
        return call()
    except Err as e:
        raise TxError(_kind(e.value.kind), e.value.message) from None


class ProcedureContext(_Context):
    """What a procedure gets: ``sender``, ``connection_id``,
    ``timestamp``, ``random``, ``http`` and ``with_tx``."""

    def __init__(self, wit_ctx):
        super().__init__(wit_ctx)
        self.http = Http()

    def with_tx(self, body):
        """Runs ``body(tx)`` in a transaction: commits when it returns
        (giving back its value), rolls back when it raises (re-raising)."""
        tx = Transaction(_tx(transaction.begin))
        try:
            value = body(tx)
        except BaseException:
            _tx(transaction.rollback)
            raise
        _tx(transaction.commit)
        return value


def write_log(level, message):
    """Appends a line to the module log (``level``: trace … error)."""
    wit_log.write(getattr(wit_log.Level, level.upper()), _wit_text(str(message)))


def panic(message):
    """Stops the call with a trap whose reason is ``message`` (like a Rust panic)."""
    raise Panic(str(message))


def _trap(message):
    message = _wit_text(message)
    wit_log.write(wit_log.Level.PANIC, message)
    raise Panic(message)


_NO_RESULT = object()


def _encode_result(result_codec, value):
    """A procedure's return value encoded; a value that does not fit the
    declared return type raises naming it as the return value."""
    try:
        return postcard.encode(result_codec, value)
    except (TypeError, ValueError, OverflowError) as e:
        raise postcard.in_field(e, "the return value") from None


def _run(func, ctx, args_codec, args, result_codec=_NO_RESULT):
    """Calls ``func(ctx, *args)``; with ``result_codec`` (a procedure's),
    returns its value encoded, and without it (a reducer's) refuses any
    value but ``None``. An exception (encoding the value included)
    is the call's error, with the exception's message, or its type's name
    when the message is empty (a bare ``assert``)."""
    values = postcard.decode(args_codec, args)
    try:
        value = func(ctx, *values)
        if result_codec is _NO_RESULT:
            if value is not None:
                # A value returned from a reducer would otherwise vanish and
                # the call commit: `return "message"` (a C++ reducer's error)
                # must not pass for success.
                raise TypeError(
                    f"a reducer returns None (raise an exception to fail the call), not {postcard.shown(value)}"
                )
            return None
        return _encode_result(result_codec, value)
    except Panic as e:
        _trap(str(e))
    except (DbError, MemoryError, RecursionError) as e:
        _trap(str(e) or type(e).__name__)
    except SystemExit as e:
        # WASI preview 2's exit carries no code (the host would report
        # exit(1) whatever the code): trap with the code instead.
        _trap(f"sys.exit({postcard.shown(e.code)}) was called")
    except BaseException as e:
        # Any other exception, `KeyboardInterrupt` and the like included:
        # left to escape, it would trap with the Python runtime's words.
        _log_traceback(ctx.timestamp.micros)
        raise Err(_wit_text(str(e) or type(e).__name__)) from None


class _Throttle:
    """Lets ``burst`` events through, then at most one a second, counting
    those held back (as the host bounds its own failure lines)."""

    def __init__(self, burst):
        self.burst = burst
        self.left = burst
        self.last = None
        self.held = 0

    def allow(self, now_micros):
        """Whether an event at ``now_micros`` goes through, and how many were
        held back since the last that did."""
        if self.left == 0 and self.last is not None and now_micros - self.last >= 1_000_000:
            self.left = 1
        if self.left == 0:
            self.held += 1
            return False, 0
        self.left -= 1
        self.last = now_micros
        held, self.held = self.held, 0
        return True, held


_TRACEBACKS = _Throttle(burst=10)


def _log_traceback(now_micros):
    """Writes the exception being handled's traceback to the module log: 10,
    then at most one a second (a client that connects and leaves in a loop
    must not flood the log through a failing hook)."""
    allowed, held = _TRACEBACKS.allow(now_micros)
    if not allowed:
        return
    text = traceback.format_exc()
    if held:
        text += f"({held} more failed calls' tracebacks were not logged)\n"
    wit_log.write(wit_log.Level.ERROR, _wit_text(text))


_NODES = {
    "bool": wit.TypeNode_Bool, "u8": wit.TypeNode_U8, "u16": wit.TypeNode_U16,
    "u32": wit.TypeNode_U32, "u64": wit.TypeNode_U64, "u128": wit.TypeNode_U128,
    "i8": wit.TypeNode_I8, "i16": wit.TypeNode_I16, "i32": wit.TypeNode_I32,
    "i64": wit.TypeNode_I64, "i128": wit.TypeNode_I128, "f32": wit.TypeNode_F32,
    "f64": wit.TypeNode_F64, "string": wit.TypeNode_String, "identity": wit.TypeNode_Identity,
    "connection-id": wit.TypeNode_ConnectionId, "timestamp": wit.TypeNode_Timestamp,
}
_LIFECYCLE = {
    "init": wit.Lifecycle.INIT,
    "client-connected": wit.Lifecycle.CLIENT_CONNECTED,
    "client-disconnected": wit.Lifecycle.CLIENT_DISCONNECTED,
}


def _node(node):
    kind = node[0]
    if kind == "option":
        return wit.TypeNode_Option(node[1])
    if kind == "array":
        return wit.TypeNode_Array(node[1])
    if kind == "product":
        return wit.TypeNode_Product([wit.Field(n, t) for n, t in node[1]])
    if kind == "sum":
        return wit.TypeNode_Sum([wit.VariantCase(n, t) for n, t in node[1]])
    return _NODES[kind]()


def _fields(params):
    return [wit.Field(n, t) for n, t in params]


_REDUCERS = None


def _reducers():
    """The reducers in id order (the module's imports declared them all
    before the first call)."""
    global _REDUCERS
    if _REDUCERS is None:
        _REDUCERS = schema.sorted_reducers()
    return _REDUCERS


class Guest(exports.Guest):
    """The ``guest`` export: describes the module and runs its calls."""

    def describe(self):
        nodes, tables, reducers, procedures = schema.module_description()
        return wit.ModuleDef(
            [_node(n) for n in nodes],
            [
                wit.TableDef(
                    t.name,
                    row,
                    t.primary_key,
                    [
                        wit.IndexDef(
                            i.name, i.columns, wit.IndexKind.UNIQUE if i.unique else wit.IndexKind.BTREE
                        )
                        for i in t.indexes
                    ],
                    t.auto_inc,
                    t.public,
                    None if t.schedule is None else wit.ScheduleDef(*t.schedule),
                )
                for t, row in tables
            ],
            [
                wit.ReducerDef(r.name, _fields(params), _LIFECYCLE.get(r.lifecycle))
                for r, params in reducers
            ],
            [wit.ProcedureDef(p.name, _fields(params), ret) for p, params, ret in procedures],
        )

    def call_reducer(self, id, ctx, args):
        reducers = _reducers()
        if id >= len(reducers):
            raise Err(f"no reducer {id}")
        r = reducers[id]
        _run(r.func, ReducerContext(ctx), r.args, args)

    def call_procedure(self, id, ctx, args):
        procedures = schema.sorted_procedures()
        if id >= len(procedures):
            raise Err(f"no procedure {id}")
        p = procedures[id]
        return _run(p.func, ProcedureContext(ctx), p.args, args, p.result)
