"""Column and argument types: integer widths, ``Identity``,
``ConnectionId``, ``Timestamp``, and how a Python annotation maps to a
type node of the module description and to a postcard codec.

An annotation is one of: ``bool``, ``str``, ``float`` (f64), ``bytes``
(array of u8), an integer width alias (``u8`` … ``u128``, ``i8`` …
``i128``), ``f32``/``f64``, ``Identity``, ``ConnectionId``, ``Timestamp``,
``Optional[T]`` (``T | None``), ``list[T]``, ``tuple[A, B, ...]``, or a
``@dataclass`` (a product with named fields). A bare ``int`` is refused:
its width must be explicit.
"""

import dataclasses
import types as _pytypes
import typing

from . import postcard


class _Width:
    """An integer or float width carried in ``Annotated[...]``."""

    def __init__(self, name, codec):
        self.name = name
        self.codec = codec

    def __repr__(self):
        return self.name


def _width(name, base, codec):
    return typing.Annotated[base, _Width(name, codec)]


u8 = _width("u8", int, postcard.Unsigned(8))
u16 = _width("u16", int, postcard.Unsigned(16))
u32 = _width("u32", int, postcard.Unsigned(32))
u64 = _width("u64", int, postcard.Unsigned(64))
u128 = _width("u128", int, postcard.Unsigned(128))
i8 = _width("i8", int, postcard.Signed(8))
i16 = _width("i16", int, postcard.Signed(16))
i32 = _width("i32", int, postcard.Signed(32))
i64 = _width("i64", int, postcard.Signed(64))
i128 = _width("i128", int, postcard.Signed(128))
f32 = _width("f32", float, postcard.Float(32))
f64 = _width("f64", float, postcard.Float(64))


class _Raw:
    """Fixed-size raw bytes with a hex form."""

    __slots__ = ("bytes",)
    SIZE = 0

    def __init__(self, data):
        data = bytes(data)
        if len(data) != self.SIZE:
            raise ValueError(f"{type(self).__name__} takes {self.SIZE} bytes, got {len(data)}")
        self.bytes = data

    @classmethod
    def from_hex(cls, text):
        """Parses the hex form."""
        return cls(bytes.fromhex(text))

    def to_hex(self):
        """The hex form."""
        return self.bytes.hex()

    def __eq__(self, other):
        return type(other) is type(self) and other.bytes == self.bytes

    def __hash__(self):
        return hash(self.bytes)

    def __str__(self):
        return self.bytes.hex()

    def __repr__(self):
        return f"{type(self).__name__}({self.bytes.hex()!r})"


class Identity(_Raw):
    """A 32-byte identity (a client, or the database owner)."""

    __slots__ = ()
    SIZE = 32

    @classmethod
    def from_words(cls, words):
        """From the WIT form: four big-endian 64-bit words."""
        return cls(b"".join(w.to_bytes(8, "big") for w in words))


class ConnectionId(_Raw):
    """A 16-byte connection id."""

    __slots__ = ()
    SIZE = 16

    @classmethod
    def from_words(cls, words):
        """From the WIT form: two big-endian 64-bit words."""
        return cls(b"".join(w.to_bytes(8, "big") for w in words))


class Timestamp:
    """Microseconds since the Unix epoch (UTC)."""

    __slots__ = ("micros",)

    def __init__(self, micros):
        self.micros = int(micros)

    def __add__(self, micros):
        return Timestamp(self.micros + int(micros))

    def __sub__(self, other):
        if isinstance(other, Timestamp):
            return self.micros - other.micros
        return Timestamp(self.micros - int(other))

    def __eq__(self, other):
        return isinstance(other, Timestamp) and other.micros == self.micros

    def __lt__(self, other):
        return self.micros < other.micros

    def __le__(self, other):
        return self.micros <= other.micros

    def __hash__(self):
        return hash(self.micros)

    def __repr__(self):
        return f"Timestamp({self.micros})"


class SchemaError(TypeError):
    """A table, reducer or type the module description cannot express."""


_BOOL = postcard.Bool()
_STRING = postcard.String()
_BYTES = postcard.Bytes()
_U8 = postcard.Unsigned(8)
_IDENTITY = postcard.Raw(Identity, 32)
_CONNECTION = postcard.Raw(ConnectionId, 16)
_TIMESTAMP = postcard.Wrapped(Timestamp, "micros", postcard.Signed(64))
_F64 = postcard.Float(64)


class TypeArena:
    """The type nodes of a module description, identical nodes shared; a
    node refers only to nodes added before it. Nodes are tuples:
    ``("u32",)``, ``("option", ref)``, ``("array", ref)``,
    ``("product", ((name_or_None, ref), ...))``."""

    def __init__(self):
        self.nodes = []
        self._positions = {}

    def add(self, node):
        """Adds ``node`` (or finds an identical one) and returns its index."""
        position = self._positions.get(node)
        if position is None:
            position = len(self.nodes)
            self.nodes.append(node)
            self._positions[node] = position
        return position


def markers(annotation):
    """The type with ``Annotated`` markers other than widths taken off, and the markers."""
    found = []
    while typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        widths = [m for m in args[1:] if isinstance(m, _Width)]
        found.extend(m for m in args[1:] if not isinstance(m, _Width))
        if widths:
            return typing.Annotated[args[0], widths[-1]], found
        annotation = args[0]
    return annotation, found


def _optional_inner(annotation):
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is _pytypes.UnionType:
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(args) == 2 and len(rest) == 1:
            return rest[0]
        raise SchemaError(f"{annotation}: only `T | None` unions are supported")
    return None


def _hints(cls):
    return typing.get_type_hints(cls, include_extras=True)


def describe(annotation, arena, where):
    """Adds ``annotation``'s nodes to ``arena``; returns its node index."""
    annotation, _ = markers(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return arena.add((typing.get_args(annotation)[1].name,))
    simple = {bool: "bool", str: "string", float: "f64", Identity: "identity",
              ConnectionId: "connection-id", Timestamp: "timestamp"}
    if annotation in simple:
        return arena.add((simple[annotation],))
    if annotation is bytes:
        return arena.add(("array", arena.add(("u8",))))
    inner = _optional_inner(annotation)
    if inner is not None:
        return arena.add(("option", describe(inner, arena, where)))
    origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return arena.add(("array", describe(item, arena, where)))
    if origin is tuple:
        refs = tuple((None, describe(a, arena, where)) for a in typing.get_args(annotation))
        return arena.add(("product", refs))
    if annotation is type(None):
        return arena.add(("product", ()))
    if dataclasses.is_dataclass(annotation):
        hints = _hints(annotation)
        refs = tuple(
            (f.name, describe(hints[f.name], arena, f"{where}.{f.name}"))
            for f in dataclasses.fields(annotation)
        )
        return arena.add(("product", refs))
    raise SchemaError(_unsupported(annotation, where))


def codec(annotation, where):
    """The postcard codec of ``annotation``."""
    annotation, _ = markers(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[1].codec
    simple = {bool: _BOOL, str: _STRING, float: _F64, bytes: _BYTES, Identity: _IDENTITY,
              ConnectionId: _CONNECTION, Timestamp: _TIMESTAMP}
    if annotation in simple:
        return simple[annotation]
    inner = _optional_inner(annotation)
    if inner is not None:
        return postcard.Option(codec(inner, where))
    origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return postcard.Array(codec(item, where))
    if origin is tuple:
        return postcard.Product([codec(a, where) for a in typing.get_args(annotation)])
    if annotation is type(None):
        return postcard.Product([])
    if dataclasses.is_dataclass(annotation):
        hints = _hints(annotation)
        fields = dataclasses.fields(annotation)
        return postcard.Product(
            [codec(hints[f.name], f"{where}.{f.name}") for f in fields],
            cls=annotation,
            names=[f.name for f in fields],
        )
    raise SchemaError(_unsupported(annotation, where))


def _unsupported(annotation, where):
    if annotation is int:
        return f"{where}: `int` needs an explicit width, such as u32 or i64 (from worldline)"
    return f"{where}: unsupported type {annotation!r}"
