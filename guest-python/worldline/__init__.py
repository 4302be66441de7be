"""Worldline modules in Python.

Declare tables with ``@table`` on a ``@dataclass`` (columns typed with
``u32``, ``i64``, ``str``, ``Identity``, ``Timestamp``, ``Optional[...]``,
``@sum_type`` classes …, marked with ``Annotated[u32, primary_key]`` and friends), reducers with
``@reducer`` and procedures with ``@procedure``. See guest-python/README.md.
"""

from .postcard import DecodeError, Some
from .schema import (auto_inc, index, primary_key, procedure, reducer, schedule_at,
                     schedule_interval, table, unique)
from .types import (ConnectionId, Identity, Option, SchemaError, Timestamp, f32, f64, i8, i16,
                    i32, i64, i128, sum_type, u8, u16, u32, u64, u128)

try:
    from .runtime import (DbError, HttpError, ProcedureContext, ReducerContext, Transaction,
                          TxError, panic)
    from .runtime import write_log as _write_log
except ImportError:  # outside a component (the codec's native tests)
    pass
else:
    class log:
        """The module log: ``log.info("...")`` and the other levels."""

        @staticmethod
        def trace(message):
            """A trace line."""
            _write_log("trace", message)

        @staticmethod
        def debug(message):
            """A debug line."""
            _write_log("debug", message)

        @staticmethod
        def info(message):
            """An info line."""
            _write_log("info", message)

        @staticmethod
        def warn(message):
            """A warning line."""
            _write_log("warn", message)

        @staticmethod
        def error(message):
            """An error line."""
            _write_log("error", message)
