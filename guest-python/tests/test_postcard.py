"""The pure-Python postcard codec against the shared vectors
(``tests/vectors/postcard.json`` of the workspace, or the file
``WORLDLINE_POSTCARD_VECTORS`` names): each vector's bytes decode to its
value and the value encodes back to the same bytes."""

import json
import os
import pathlib
import struct
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from worldline import postcard  # noqa: E402
from worldline.types import ConnectionId, Identity, Timestamp  # noqa: E402

VECTORS = pathlib.Path(
    os.environ.get(
        "WORLDLINE_POSTCARD_VECTORS",
        pathlib.Path(__file__).resolve().parents[2] / "tests" / "vectors" / "postcard.json",
    )
)

PRIMITIVES = {
    "bool": postcard.Bool(),
    "string": postcard.String(),
    "identity": postcard.Raw(Identity, 32),
    "connection-id": postcard.Raw(ConnectionId, 16),
    "timestamp": postcard.Wrapped(Timestamp, "micros", postcard.Signed(64)),
    "unit": postcard.Product([]),
    "f32": postcard.Float(32),
    "f64": postcard.Float(64),
}
for bits in (8, 16, 32, 64, 128):
    PRIMITIVES[f"u{bits}"] = postcard.Unsigned(bits)
    PRIMITIVES[f"i{bits}"] = postcard.Signed(bits)


def split_args(text):
    """The comma-separated type arguments of ``text``, nesting respected."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_type(text):
    """A codec and a formatter (value -> the vectors' text) for a type name."""
    if text in PRIMITIVES:
        return PRIMITIVES[text], lambda v, t=text: format_primitive(t, v)
    head, _, rest = text.partition("<")
    args = [parse_type(a) for a in split_args(rest[:-1])]
    if head == "option":
        (inner, show), = args
        codec = postcard.Option(inner)

        def show_option(v):
            if v is None:
                return "none"
            return f"some({show(v.value if codec.nested else v)})"

        return codec, show_option
    if head == "array":
        (inner, show), = args
        codec = postcard.Array(inner)
        return codec, lambda v: "[" + ",".join(show(x) for x in v) + "]"
    if head == "product":
        codec = postcard.Product([c for c, _ in args])
        return codec, lambda v: "(" + ",".join(s(x) for (_, s), x in zip(args, v)) + ")"
    if head == "sum":
        codec = postcard.Sum([c for c, _ in args])
        return codec, lambda v: f"#{v[0]}({args[v[0]][1](v[1])})"
    raise ValueError(f"unknown type {text}")


def format_primitive(name, value):
    if name == "bool":
        return "true" if value else "false"
    if name == "string":
        return json.dumps(value, ensure_ascii=False)
    if name in ("identity", "connection-id"):
        return value.to_hex()
    if name == "timestamp":
        return str(value.micros)
    if name == "unit":
        return "()"
    if name == "f32":
        return "bits:" + struct.pack(">f", value).hex()
    if name == "f64":
        return "bits:" + struct.pack(">d", value).hex()
    return str(value)


class SharedVectors(unittest.TestCase):
    def test_every_vector_decodes_to_its_value_and_encodes_back(self):
        vectors = json.loads(VECTORS.read_text())
        self.assertGreater(len(vectors), 100)
        for vector in vectors:
            with self.subTest(type=vector["type"], value=vector["value"]):
                codec, show = parse_type(vector["type"])
                data = bytes.fromhex(vector["bytes"])
                value = postcard.decode(codec, data)
                self.assertEqual(show(value), vector["value"])
                self.assertEqual(postcard.encode(codec, value), data)


class Unit(unittest.TestCase):
    def test_none_and_the_empty_tuple_are_the_unit(self):
        self.assertEqual(postcard.encode(postcard.Product([]), None), b"")
        self.assertEqual(postcard.encode(postcard.Product([]), ()), b"")


class Refusals(unittest.TestCase):
    def test_malformed_input_raises_decode_error(self):
        cases = [
            (postcard.Unsigned(32), b"\xff\xff\xff\xff\x1f"),
            (postcard.Unsigned(16), b"\x80"),
            (postcard.Bool(), b"\x02"),
            (postcard.String(), b"\x05ab"),
            (postcard.String(), b"\x01\xff"),
            (postcard.Option(postcard.Bool()), b"\x02"),
            (postcard.Array(postcard.Unsigned(64)), b"\xff\xff\xff\xff\x0f"),
            (postcard.Unsigned(8), b"\x01\x02"),
        ]
        for codec, data in cases:
            with self.subTest(data=data):
                with self.assertRaises(postcard.DecodeError):
                    postcard.decode(codec, data)

    def test_values_out_of_range_are_refused(self):
        with self.assertRaises(OverflowError):
            postcard.encode(postcard.Unsigned(32), 1 << 32)
        with self.assertRaises(OverflowError):
            postcard.encode(postcard.Signed(8), 128)
        with self.assertRaises(TypeError):
            postcard.encode(postcard.Unsigned(32), True)

    def test_a_wrong_value_is_quoted_cut_short(self):
        # A megabyte of the wrong type makes a message of a few hundred
        # characters, not of a megabyte.
        for value, start in [
            ("x" * 1_000_000, "expected an int for u32, got 'xxxx"),
            (list(range(100_000)), "expected an int for u32, got [0, 1, 2"),
        ]:
            with self.subTest(start=start):
                with self.assertRaises(TypeError) as caught:
                    postcard.encode(postcard.Unsigned(32), value)
                message = str(caught.exception)
                self.assertTrue(message.startswith(start), message[:300])
                self.assertLess(len(message), postcard.SHOWN_LIMIT + 100)
        with self.assertRaises(TypeError) as caught:
            postcard.encode(postcard.Unsigned(32), "short")
        self.assertEqual(str(caught.exception), "expected an int for u32, got 'short'")


if __name__ == "__main__":
    unittest.main()
