"""Postcard, the encoding of every row, key and argument list (pure Python).

A *codec* encodes one type: ``codec.write(value, out)`` appends the bytes of
``value`` to the bytearray ``out``; ``codec.read(buf, pos)`` returns the
value at ``pos`` and the position after it. Integers are checked against
their width; a malformed input raises :class:`DecodeError`.
"""

import struct


SHOWN_LIMIT = 200
"""The most characters of a value an error message quotes."""


def shown(value):
    """``repr(value)`` cut to :data:`SHOWN_LIMIT` characters, for quoting
    a value in an error message: a wrong value of a megabyte must not make
    a message of a megabyte. A long ``str`` or ``bytes`` is cut before it
    is quoted, so it is not copied whole either."""
    if isinstance(value, (str, bytes, bytearray)) and len(value) > SHOWN_LIMIT:
        return f"{value[:SHOWN_LIMIT]!r}… ({len(value)} long)"
    text = repr(value)
    if len(text) > SHOWN_LIMIT:
        return f"{text[:SHOWN_LIMIT]}… ({len(text)} characters)"
    return text


class DecodeError(ValueError):
    """Bytes that do not decode as the expected type."""


class Some:
    """The present case of a nested option (``option<option<T>>``)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Some) and other.value == self.value

    def __hash__(self):
        return hash(("Some", self.value))

    def __repr__(self):
        return f"Some({self.value!r})"


def write_varint(n, out):
    """Appends the LEB128 varint of the non-negative int ``n``."""
    if n < 0x80:
        out.append(n)
        return
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def read_varint(buf, pos, bits):
    """Reads a LEB128 varint of at most ``bits`` bits (at least 8) at ``pos``."""
    if pos < len(buf) and buf[pos] < 0x80:
        return buf[pos], pos + 1
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("input ends inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift >= bits + 7:
            raise DecodeError("varint too long")
    if result >> bits:
        raise DecodeError(f"varint does not fit in {bits} bits")
    return result, pos


class Unsigned:
    """An unsigned integer of ``bits`` bits (u8 is one raw byte)."""

    def __init__(self, bits):
        self.bits = bits
        self.max = (1 << bits) - 1

    def write(self, value, out):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"expected an int for u{self.bits}, got {shown(value)}")
        if value < 0 or value > self.max:
            raise OverflowError(f"{value} does not fit in u{self.bits}")
        if self.bits == 8:
            out.append(value)
        else:
            write_varint(value, out)

    def read(self, buf, pos):
        if self.bits == 8:
            if pos >= len(buf):
                raise DecodeError("input ends inside a u8")
            return buf[pos], pos + 1
        return read_varint(buf, pos, self.bits)


class Signed:
    """A signed integer of ``bits`` bits: zigzag then varint (i8 is one raw byte)."""

    def __init__(self, bits):
        self.bits = bits
        self.min = -(1 << (bits - 1))
        self.max = (1 << (bits - 1)) - 1

    def write(self, value, out):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"expected an int for i{self.bits}, got {shown(value)}")
        if value < self.min or value > self.max:
            raise OverflowError(f"{value} does not fit in i{self.bits}")
        if self.bits == 8:
            out.append(value & 0xFF)
        else:
            write_varint((value << 1) ^ (value >> (self.bits - 1)) if value < 0 else value << 1, out)

    def read(self, buf, pos):
        if self.bits == 8:
            if pos >= len(buf):
                raise DecodeError("input ends inside an i8")
            byte = buf[pos]
            return byte - 256 if byte > 127 else byte, pos + 1
        n, pos = read_varint(buf, pos, self.bits)
        return (n >> 1) ^ -(n & 1), pos


class Bool:
    """One byte, 0 or 1."""

    def write(self, value, out):
        if not isinstance(value, bool):
            raise TypeError(f"expected a bool, got {shown(value)}")
        out.append(1 if value else 0)

    def read(self, buf, pos):
        if pos >= len(buf):
            raise DecodeError("input ends inside a bool")
        byte = buf[pos]
        if byte > 1:
            raise DecodeError(f"invalid bool byte {byte}")
        return byte == 1, pos + 1


class Float:
    """A little-endian IEEE float of 32 or 64 bits."""

    def __init__(self, bits):
        self.bits = bits
        self.format = "<f" if bits == 32 else "<d"
        self.size = bits // 8

    def write(self, value, out):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"expected a float, got {shown(value)}")
        try:
            out += struct.pack(self.format, value)
        except (OverflowError, struct.error):  # struct.error: an int too large for a double
            raise OverflowError(f"{shown(value)} does not fit in f{self.bits}") from None

    def read(self, buf, pos):
        end = pos + self.size
        if end > len(buf):
            raise DecodeError(f"input ends inside an f{self.bits}")
        return struct.unpack_from(self.format, buf, pos)[0], end


class String:
    """A varint byte length and UTF-8."""

    def write(self, value, out):
        if not isinstance(value, str):
            raise TypeError(f"expected a str, got {shown(value)}")
        data = value.encode()
        write_varint(len(data), out)
        out += data

    def read(self, buf, pos):
        n, pos = read_varint(buf, pos, 64)
        end = pos + n
        if end > len(buf):
            raise DecodeError("input ends inside a string")
        try:
            return bytes(buf[pos:end]).decode(), end
        except UnicodeDecodeError as e:
            raise DecodeError(f"invalid UTF-8 in a string: {e}") from None


class Raw:
    """A fixed number of raw bytes, as a class built from and exposing ``bytes``
    (``Identity``: 32, ``ConnectionId``: 16)."""

    def __init__(self, cls, size):
        self.cls = cls
        self.size = size

    def write(self, value, out):
        if not isinstance(value, self.cls):
            raise TypeError(f"expected a {self.cls.__name__}, got {shown(value)}")
        out += value.bytes

    def read(self, buf, pos):
        end = pos + self.size
        if end > len(buf):
            raise DecodeError(f"input ends inside a {self.cls.__name__}")
        return self.cls(bytes(buf[pos:end])), end


class Wrapped:
    """A class holding one value of an inner codec in ``attr`` (``Timestamp``)."""

    def __init__(self, cls, attr, inner):
        self.cls = cls
        self.attr = attr
        self.inner = inner

    def write(self, value, out):
        if not isinstance(value, self.cls):
            raise TypeError(f"expected a {self.cls.__name__}, got {shown(value)}")
        self.inner.write(getattr(value, self.attr), out)

    def read(self, buf, pos):
        value, pos = self.inner.read(buf, pos)
        return self.cls(value), pos


class Option:
    """Byte 0 (``None``) or 1 and the value; a nested option's present
    case is written as :class:`Some`."""

    def __init__(self, inner):
        self.inner = inner
        self.nested = isinstance(inner, Option)

    def write(self, value, out):
        if value is None:
            out.append(0)
            return
        out.append(1)
        if self.nested:
            if not isinstance(value, Some):
                raise TypeError(f"a nested option's value must be Some(...) or None, got {shown(value)}")
            value = value.value
        self.inner.write(value, out)

    def read(self, buf, pos):
        if pos >= len(buf):
            raise DecodeError("input ends inside an option")
        tag = buf[pos]
        if tag == 0:
            return None, pos + 1
        if tag != 1:
            raise DecodeError(f"invalid option tag {tag}")
        value, pos = self.inner.read(buf, pos + 1)
        return (Some(value) if self.nested else value), pos


class Bytes:
    """``array(u8)`` as Python ``bytes``."""

    def write(self, value, out):
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"expected bytes, got {shown(value)}")
        write_varint(len(value), out)
        out += value

    def read(self, buf, pos):
        n, pos = read_varint(buf, pos, 64)
        end = pos + n
        if end > len(buf):
            raise DecodeError("input ends inside bytes")
        return bytes(buf[pos:end]), end


class Array:
    """A varint length and the elements, as a Python ``list``."""

    def __init__(self, inner):
        self.inner = inner

    def write(self, value, out):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {shown(value)}")
        write_varint(len(value), out)
        write = self.inner.write
        for item in value:
            write(item, out)

    def read(self, buf, pos):
        n, pos = read_varint(buf, pos, 64)
        if n > len(buf) - pos and not isinstance(self.inner, Product):
            raise DecodeError("array longer than its input")
        items = []
        read = self.inner.read
        for _ in range(n):
            item, pos = read(buf, pos)
            items.append(item)
        return items, pos


class Product:
    """Fields in order, no framing. Values are tuples, or instances of
    ``cls`` (built by keyword, so that ``kw_only`` dataclasses work too;
    fields read by ``names``) when given."""

    def __init__(self, fields, cls=None, names=None):
        self.fields = list(fields)
        self.cls = cls
        self.names = names

    def write(self, value, out):
        if self.cls is not None:
            if not isinstance(value, self.cls):
                raise TypeError(f"expected a {self.cls.__name__}, got {shown(value)}")
            for name, codec in zip(self.names, self.fields):
                try:
                    codec.write(getattr(value, name), out)
                except (TypeError, ValueError, OverflowError) as e:
                    raise in_field(e, f"{self.cls.__name__}.{name}") from None
            return
        if not self.fields and value is None:
            return  # the unit, as a function without a return value gives it
        if not isinstance(value, (tuple, list)):
            wanted = "None (no value)" if not self.fields else f"a tuple of {len(self.fields)} values"
            raise TypeError(f"expected {wanted}, got {shown(value)}")
        if len(value) != len(self.fields):
            raise TypeError(f"expected {len(self.fields)} values, got {len(value)}")
        for item, codec in zip(value, self.fields):
            codec.write(item, out)

    def read(self, buf, pos):
        values = []
        for codec in self.fields:
            value, pos = codec.read(buf, pos)
            values.append(value)
        if self.cls is not None:
            return self.cls(**dict(zip(self.names, values))), pos
        return tuple(values), pos


def in_field(error, where):
    """``error``, raised writing ``where`` (a field, a return value), as the
    same kind of error with a message that starts by naming it."""
    kind = next(k for k in (OverflowError, TypeError, ValueError) if isinstance(error, k))
    return kind(f"{where}: {error}")


class Sum:
    """A varint case index and the payload. Values are ``(case, payload)``
    pairs with the case's index; or, with ``cls``, instances of the case
    classes ``kinds`` (a ``@sum_type``: built by ``kind._decoded(payload)``,
    the payload in ``value``) or the members ``members`` (an ``enum.Enum``,
    whose cases are all unit)."""

    def __init__(self, cases, cls=None, kinds=None, members=None):
        self.cases = list(cases)
        self.cls = cls
        self.kinds = kinds
        self.members = members
        self._index = {k: i for i, k in enumerate(kinds if kinds is not None else members or ())}

    def write(self, value, out):
        if self.cls is None:
            case, payload = value
            if not isinstance(case, int) or not 0 <= case < len(self.cases):
                raise ValueError(f"no case {shown(case)}")
        elif self.kinds is not None:
            case = self._index.get(type(value))
            if case is None:
                raise TypeError(f"expected a case of {self.cls.__name__}, got {shown(value)}")
            payload = value.value
        else:
            case = self._index.get(value) if isinstance(value, self.cls) else None
            if case is None:
                raise TypeError(f"expected a member of {self.cls.__name__}, got {shown(value)}")
            payload = None
        write_varint(case, out)
        self.cases[case].write(payload, out)

    def read(self, buf, pos):
        case, pos = read_varint(buf, pos, 32)
        if case >= len(self.cases):
            raise DecodeError(f"no case {case}")
        payload, pos = self.cases[case].read(buf, pos)
        if self.kinds is not None:
            return self.kinds[case]._decoded(payload), pos
        if self.members is not None:
            return self.members[case], pos
        return (case, payload), pos


def encode(codec, value):
    """The bytes of ``value``."""
    out = bytearray()
    codec.write(value, out)
    return bytes(out)


def decode(codec, data):
    """The value ``data`` holds, which must be exactly one value."""
    value, pos = codec.read(data, 0)
    if pos != len(data):
        raise DecodeError(f"{len(data) - pos} bytes left after the value")
    return value
