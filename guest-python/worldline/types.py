"""Column and argument types: integer widths, ``Identity``,
``ConnectionId``, ``Timestamp``, and how a Python annotation maps to a
type node of the module description and to a postcard codec.

An annotation is one of: ``bool``, ``str``, ``float`` (f64), ``bytes``
(array of u8), an integer width alias (``u8`` … ``u128``, ``i8`` …
``i128``), ``f32``/``f64``, ``Identity``, ``ConnectionId``, ``Timestamp``,
``Optional[T]`` (``T | None``), ``Option[T]`` (an option that nests:
``Option[Option[T]]``), ``list[T]``, ``tuple[A, B, ...]``, a
``@dataclass`` (a product with named fields), a ``@sum_type`` class or an
``enum.Enum`` (sums). A bare ``int`` is refused: its width must be explicit.
"""

import dataclasses
import enum
import inspect
import keyword
import string
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
        """Parses the hex form, with or without the ``0x`` that JSON values
        (SQL rows, subscriptions, arguments) give it, as the Rust SDK does:
        hex digits only (no spaces)."""
        digits = text.removeprefix("0x")
        if not all(c in string.hexdigits for c in digits):
            raise ValueError(f"{cls.__name__}.from_hex takes hex digits only, got {text!r}")
        return cls(bytes.fromhex(digits))

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


def _whole_micros(op, micros):
    """``micros`` if it is an ``int`` (whole microseconds), else a
    ``TypeError`` naming what it is: a float would be cut silently."""
    if isinstance(micros, int) and not isinstance(micros, bool):
        return micros
    raise TypeError(
        f"Timestamp {op} takes whole microseconds (an int), got {type(micros).__name__}"
    )


_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


def _saturated(micros):
    """``micros`` held to what a timestamp (an ``i64``) can be, as the Rust
    and C++ SDKs' timestamp arithmetic saturates."""
    return min(max(micros, _I64_MIN), _I64_MAX)


class Timestamp:
    """Microseconds since the Unix epoch (UTC). Adding or subtracting
    microseconds saturates at the ends of the range (as Rust's and C++'s do)."""

    __slots__ = ("micros",)

    def __init__(self, micros):
        self.micros = int(micros)

    def __add__(self, micros):
        return Timestamp(_saturated(self.micros + _whole_micros("+", micros)))

    def __sub__(self, other):
        if isinstance(other, Timestamp):
            return self.micros - other.micros
        return Timestamp(_saturated(self.micros - _whole_micros("-", other)))

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


class _Nests:
    """The marker of :data:`Option`: this ``Optional`` is a level of its own."""

    def __repr__(self):
        return "nests"


_NESTS = _Nests()


class _OptionForm:
    """``Option[T]``: an optional ``T`` (``None`` or a ``T``), like
    ``Optional[T]``, except that it nests. Python folds
    ``Optional[Optional[T]]`` into ``Optional[T]``; ``Option[Option[T]]``
    (or ``Optional[Option[T]]``) stays two levels, ``option<option<T>>``,
    whose values are ``None``, ``Some(None)`` and ``Some(value)``."""

    def __getitem__(self, inner):
        folded = _optional_inner(inner) if _is_union(inner) else None
        if folded is not None:  # Option[Optional[T]]: Python would fold the two levels
            inner = self[folded]
        return typing.Annotated[typing.Optional[inner], _NESTS]

    def __repr__(self):
        return "worldline.Option"


Option = _OptionForm()
"""``Option[T]``: an optional that nests (``Option[Option[u8]]``); see :class:`_OptionForm`."""


class _Case:
    """The class of one case of a ``@sum_type`` (set on the sum type's
    class as ``Sum.CaseName``); its instances hold the payload in ``value``."""

    __slots__ = ("value",)
    __match_args__ = ("value",)
    _sum = None
    _name = ""
    _payload = None
    _unit = False

    def __init__(self, *args, **kwargs):
        payload = type(self)._payload
        if type(self)._unit:
            if args or kwargs:
                raise TypeError(f"{self._qualified()} is a unit case: it takes no value")
            value = None
        elif dataclasses.is_dataclass(payload) and not (
            len(args) == 1 and not kwargs and isinstance(args[0], payload)
        ):
            value = payload(*args, **kwargs)  # the payload's fields, given directly
        elif len(args) == 1 and not kwargs:
            value = args[0]
        else:
            raise TypeError(f"{self._qualified()} takes one value, its payload")
        self.value = value

    @classmethod
    def _decoded(cls, payload):
        case = object.__new__(cls)
        case.value = None if cls._unit else payload
        return case

    @classmethod
    def _qualified(cls):
        return f"{cls._sum.__name__}.{cls._name}"

    def __eq__(self, other):
        return type(other) is type(self) and other.value == self.value

    def __hash__(self):
        return hash((type(self), self.value))

    def __repr__(self):
        if type(self)._unit:
            return f"{self._qualified()}()"
        return f"{self._qualified()}({self.value!r})"


def sum_type(cls):
    """Declares a sum type (a Rust enum, a WIT variant): each annotation
    of the class body is a case, in order, its type the case's payload.

    ``None`` makes a unit case, a ``@dataclass`` a case with named fields,
    ``tuple[A, B]`` one with positional fields, any other type a case
    holding one value::

        @sum_type
        class Shape:
            Circle: f32          # Shape.Circle(1.5)
            Rect: Size           # Shape.Rect(w=2.0, h=3.0), or Shape.Rect(Size(2.0, 3.0))
            Empty: None          # Shape.Empty()

    Each case becomes a subclass of the sum type, ``Shape.Circle``, whose
    instances hold the payload in ``value`` (``None`` for a unit case), so
    ``isinstance(x, Shape)``, ``isinstance(x, Shape.Circle)`` and ``match x:
    case Shape.Circle(radius):`` work. Cases compare equal when their
    case and payload do.
    """
    own = inspect.get_annotations(cls)
    if not own:
        raise SchemaError(f"@sum_type {cls.__name__}: declare its cases as annotations (`Name: payload`)")
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError as e:
        raise SchemaError(f"@sum_type {cls.__name__}: {e} (a case's type must be defined before the "
                          "sum type, and a sum type cannot contain itself)") from None
    cases = []
    for name in own:
        payload = hints[name]
        case = type(name, (_Case, cls), {
            "__slots__": (),
            "__qualname__": f"{cls.__qualname__}.{name}",
            "__module__": cls.__module__,
            "_sum": cls,
            "_name": name,
            "_payload": payload,
            "_unit": payload is type(None),
        })
        setattr(cls, name, case)
        cases.append(case)
    cls.__worldline_cases__ = tuple(cases)

    def refuse(self, *args, **kwargs):
        raise TypeError(f"{cls.__name__} is a sum type: build one of its cases, such as "
                        f"{cls.__name__}.{cases[0]._name}(...)")

    cls.__init__ = refuse
    return cls


def _is_sum(annotation):
    return isinstance(annotation, type) and "__worldline_cases__" in annotation.__dict__


def _is_enum(annotation):
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


_BOOL = postcard.Bool()
_STRING = postcard.String()
_BYTES = postcard.Bytes()
_U8 = postcard.Unsigned(8)
_IDENTITY = postcard.Raw(Identity, 32)
_CONNECTION = postcard.Raw(ConnectionId, 16)
_TIMESTAMP = postcard.Wrapped(Timestamp, "micros", postcard.Signed(64))
_F64 = postcard.Float(64)
_UNIT = postcard.Product([])


def wire_name(name):
    """A parameter's or field's name in the description: ``from_`` (a
    keyword with Python's usual trailing underscore) is ``from``, as a Rust
    module writing ``r#from`` describes it."""
    bare = name[:-1]
    return bare if name.endswith("_") and keyword.iskeyword(bare) else name


class TypeArena:
    """The type nodes of a module description, identical nodes shared; a
    node refers only to nodes added before it. Nodes are tuples:
    ``("u32",)``, ``("option", ref)``, ``("array", ref)``,
    ``("product", ((name_or_None, ref), ...))``, ``("sum", ((name, ref), ...))``."""

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


def _is_union(annotation):
    origin = typing.get_origin(annotation)
    return origin is typing.Union or origin is _pytypes.UnionType


def _optional_inner(annotation):
    if _is_union(annotation):
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
    if annotation is None:
        annotation = type(None)
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
    if _is_sum(annotation):
        cases = tuple(
            (case._name, describe(case._payload, arena, f"{where}.{case._name}"))
            for case in annotation.__worldline_cases__
        )
        return arena.add(("sum", cases))
    if _is_enum(annotation):
        unit = arena.add(("product", ()))
        return arena.add(("sum", tuple((member.name, unit) for member in annotation)))
    if dataclasses.is_dataclass(annotation):
        hints = _hints(annotation)
        refs = tuple(
            (wire_name(f.name), describe(hints[f.name], arena, f"{where}.{f.name}"))
            for f in dataclasses.fields(annotation)
        )
        return arena.add(("product", refs))
    raise SchemaError(_unsupported(annotation, where))


def codec(annotation, where):
    """The postcard codec of ``annotation``."""
    annotation, _ = markers(annotation)
    if annotation is None:
        annotation = type(None)
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
    if _is_sum(annotation):
        cases = annotation.__worldline_cases__
        return postcard.Sum(
            [codec(case._payload, f"{where}.{case._name}") for case in cases], cls=annotation, kinds=cases
        )
    if _is_enum(annotation):
        members = list(annotation)
        return postcard.Sum([_UNIT] * len(members), cls=annotation, members=members)
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
