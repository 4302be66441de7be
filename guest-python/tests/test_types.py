"""Declared types, natively: what a module author writes (``@sum_type``
classes, ``enum.Enum``, ``Option[Option[T]]``, ``Optional``, ``list``,
``tuple``, the widths) describes the type nodes the shared vectors
(``tests/vectors/postcard.json``) name and encodes each vector's value to
its bytes; and the sum types behave as Python values should."""

import enum
import json
import pathlib
import struct
import sys
import unittest
from dataclasses import dataclass
from typing import Optional

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import worldline  # noqa: E402
from test_postcard import VECTORS, split_args  # noqa: E402
from worldline import Option, SchemaError, Some, f32, i32, postcard, sum_type, u8, u32  # noqa: E402
from worldline.types import TypeArena, codec, describe  # noqa: E402

SIMPLE = {
    "bool": bool, "string": str, "identity": worldline.Identity,
    "connection-id": worldline.ConnectionId, "timestamp": worldline.Timestamp,
    "unit": None, "f32": f32, "f64": float,
}
for _bits in (8, 16, 32, 64, 128):
    SIMPLE[f"u{_bits}"] = getattr(worldline, f"u{_bits}")
    SIMPLE[f"i{_bits}"] = getattr(worldline, f"i{_bits}")


def annotation(text):
    """The annotation an author writes for the vectors' type ``text``."""
    if text in SIMPLE:
        return SIMPLE[text]
    head, _, rest = text.partition("<")
    args = split_args(rest[:-1])
    if head == "option":
        inner = annotation(args[0])
        return Option[inner] if args[0].startswith("option<") else Optional[inner]
    if head == "array":
        return bytes if args[0] == "u8" else list[annotation(args[0])]
    if head == "product":
        return tuple[tuple(annotation(a) for a in args)]
    if head == "sum":
        body = type("Vector", (), {"__annotations__": {f"Case{i}": annotation(a) for i, a in enumerate(args)}})
        return sum_type(body)
    raise ValueError(f"unknown type {text}")


def render(nodes, ref):
    """A type node as the vectors write types."""
    node = nodes[ref]
    if node[0] in ("option", "array"):
        return f"{node[0]}<{render(nodes, node[1])}>"
    if node[0] == "product":
        if not node[1]:
            return "unit"
        return "product<" + ",".join(render(nodes, r) for _, r in node[1]) + ">"
    if node[0] == "sum":
        return "sum<" + ",".join(render(nodes, r) for _, r in node[1]) + ">"
    return node[0]


def show(text, value):
    """A declared value as the vectors write values."""
    if text == "bool":
        return "true" if value else "false"
    if text == "string":
        return json.dumps(value, ensure_ascii=False)
    if text in ("identity", "connection-id"):
        return value.to_hex()
    if text == "timestamp":
        return str(value.micros)
    if text == "unit":
        assert value is None or value == (), value
        return "()"
    if text in ("f32", "f64"):
        return "bits:" + struct.pack(">f" if text == "f32" else ">d", value).hex()
    if text in SIMPLE:
        return str(value)
    head, _, rest = text.partition("<")
    args = split_args(rest[:-1])
    if head == "option":
        if value is None:
            return "none"
        return f"some({show(args[0], value.value if args[0].startswith('option<') else value)})"
    if head == "array":
        return "[" + ",".join(show(args[0], x) for x in value) + "]"
    if head == "product":
        return "(" + ",".join(show(a, x) for a, x in zip(args, value)) + ")"
    if head == "sum":
        case = type(value)._sum.__worldline_cases__.index(type(value))
        return f"#{case}({show(args[case], value.value)})"
    raise ValueError(text)


class DeclaredTypesAgainstTheSharedVectors(unittest.TestCase):
    def test_every_vector_type_is_declarable_and_its_values_round_trip(self):
        vectors = json.loads(VECTORS.read_text())
        kinds = {v["type"].partition("<")[0] for v in vectors}
        self.assertTrue({"sum", "option", "product", "array"} <= kinds, kinds)
        self.assertIn("option<option<u8>>", {v["type"] for v in vectors})
        for vector in vectors:
            with self.subTest(type=vector["type"], value=vector["value"]):
                declared = annotation(vector["type"])
                arena = TypeArena()
                self.assertEqual(render(arena.nodes, describe(declared, arena, "v")), vector["type"])
                type_codec = codec(declared, "v")
                data = bytes.fromhex(vector["bytes"])
                value = postcard.decode(type_codec, data)
                self.assertEqual(show(vector["type"], value), vector["value"])
                self.assertEqual(postcard.encode(type_codec, value), data)


@dataclass
class Size:
    w: f32
    h: f32


@sum_type
class Shape:
    Circle: f32
    Rect: Size
    Segment: tuple[i32, i32]
    Empty: None


class Color(enum.Enum):
    Red = "r"
    Green = "g"
    Crimson = "r"  # an alias of Red, not a case


def nodes_of(declared):
    arena = TypeArena()
    top = describe(declared, arena, "t")
    return arena.nodes, top


class SumTypes(unittest.TestCase):
    def test_each_annotation_is_a_case_in_order_described_like_a_rust_enum(self):
        nodes, top = nodes_of(Shape)
        self.assertEqual(nodes, [
            ("f32",),
            ("product", (("w", 0), ("h", 0))),
            ("i32",),
            ("product", ((None, 2), (None, 2))),
            ("product", ()),
            ("sum", (("Circle", 0), ("Rect", 1), ("Segment", 3), ("Empty", 4))),
        ])
        self.assertEqual(top, 5)

    def test_cases_are_values_that_encode_by_case_index(self):
        shape = codec(Shape, "t")
        cases = [
            (Shape.Circle(1.5), "000000c03f"),
            (Shape.Rect(w=2.0, h=0.5), "01000000400000003f"),
            (Shape.Rect(Size(2.0, 0.5)), "01000000400000003f"),
            (Shape.Segment((-1, 64)), "02018001"),
            (Shape.Empty(), "03"),
        ]
        for value, hex_bytes in cases:
            with self.subTest(value=value):
                self.assertEqual(postcard.encode(shape, value).hex(), hex_bytes)
                back = postcard.decode(shape, bytes.fromhex(hex_bytes))
                self.assertEqual(back, value)
                self.assertIs(type(back), type(value))
        self.assertEqual(Shape.Rect(w=2.0, h=0.5), Shape.Rect(Size(2.0, 0.5)))
        self.assertNotEqual(Shape.Circle(1.0), Shape.Circle(2.0))
        self.assertEqual(len({Shape.Empty(), Shape.Empty(), Shape.Circle(1.0)}), 2)
        self.assertEqual(repr(Shape.Segment((1, 2))), "Shape.Segment((1, 2))")
        self.assertEqual(repr(Shape.Empty()), "Shape.Empty()")

    def test_cases_are_instances_of_the_sum_and_match_by_case(self):
        def radius(shape):
            match shape:
                case Shape.Circle(r):
                    return r
                case Shape.Rect(Size(w, _)):
                    return w / 2
                case Shape.Empty():
                    return 0.0
            return None

        self.assertTrue(isinstance(Shape.Empty(), Shape))
        self.assertEqual([radius(s) for s in (Shape.Circle(3.0), Shape.Rect(w=4.0, h=1.0), Shape.Empty())],
                         [3.0, 2.0, 0.0])
        self.assertIsNone(radius(Shape.Segment((0, 0))))

    def test_misuse_is_refused_with_a_message(self):
        with self.assertRaisesRegex(TypeError, "Shape is a sum type: build one of its cases"):
            Shape()
        with self.assertRaisesRegex(TypeError, "unit case"):
            Shape.Empty(1)
        with self.assertRaisesRegex(TypeError, "takes one value"):
            Shape.Circle(1.0, 2.0)
        with self.assertRaisesRegex(TypeError, "expected a case of Shape"):
            postcard.encode(codec(Shape, "t"), Size(1.0, 2.0))
        with self.assertRaisesRegex(TypeError, "expected a float"):
            postcard.encode(codec(Shape, "t"), Shape.Circle("wide"))
        with self.assertRaises(postcard.DecodeError):
            postcard.decode(codec(Shape, "t"), b"\x04")
        with self.assertRaisesRegex(SchemaError, "declare its cases"):
            sum_type(type("Nothing", (), {}))
        with self.assertRaisesRegex(SchemaError, "cannot contain itself"):
            @sum_type
            class Tree:
                Leaf: u8
                Node: list["Tree"]  # noqa: F821
        with self.assertRaisesRegex(SchemaError, "int` needs an explicit width"):
            describe(sum_type(type("Loose", (), {"__annotations__": {"Count": int}})), TypeArena(), "t")

    def test_sums_nest_in_options_lists_and_dataclasses(self):
        @dataclass
        class Layer:
            shapes: list[Shape]
            current: Optional[Shape]

        layer_codec = codec(Layer, "t")
        value = Layer([Shape.Empty(), Shape.Circle(0.5)], None)
        data = postcard.encode(layer_codec, value)
        self.assertEqual(data.hex(), "0203000000003f00")
        self.assertEqual(postcard.decode(layer_codec, data), value)


class EnumsAreSumsOfUnitCases(unittest.TestCase):
    def test_members_are_the_cases_aliases_excluded(self):
        nodes, top = nodes_of(Color)
        self.assertEqual(nodes, [("product", ()), ("sum", (("Red", 0), ("Green", 0)))])
        color = codec(Color, "t")
        self.assertEqual(postcard.encode(color, Color.Green), b"\x01")
        self.assertEqual(postcard.encode(color, Color.Crimson), b"\x00")
        self.assertIs(postcard.decode(color, b"\x01"), Color.Green)
        with self.assertRaisesRegex(TypeError, "expected a member of Color"):
            postcard.encode(color, "g")
        with self.assertRaises(postcard.DecodeError):
            postcard.decode(color, b"\x02")


class NestedOptions(unittest.TestCase):
    def test_optional_of_optional_folds_in_python_but_option_nests(self):
        self.assertEqual(nodes_of(Optional[Optional[u8]])[0], [("u8",), ("option", 0)])
        for declared in (Option[Option[u8]], Optional[Option[u8]], Option[Optional[u8]]):
            with self.subTest(declared=declared):
                self.assertEqual(nodes_of(declared)[0], [("u8",), ("option", 0), ("option", 1)])
        self.assertEqual(nodes_of(Option[u32])[0], [("u32",), ("option", 0)])

    def test_the_present_outer_level_is_some(self):
        nested = codec(Option[Option[u8]], "t")
        for value, hex_bytes in [(None, "00"), (Some(None), "0100"), (Some(7), "010107")]:
            with self.subTest(value=value):
                self.assertEqual(postcard.encode(nested, value).hex(), hex_bytes)
                self.assertEqual(postcard.decode(nested, bytes.fromhex(hex_bytes)), value)
        with self.assertRaisesRegex(TypeError, "must be Some"):
            postcard.encode(nested, 7)
        three = codec(Option[Option[Option[u8]]], "t")
        self.assertEqual(postcard.encode(three, Some(Some(7))).hex(), "01010107")
        self.assertEqual(postcard.decode(three, bytes.fromhex("010100")), Some(Some(None)))


@dataclass
class Spec:
    tags: list[str]
    weight: f32


@dataclass
class Lot:
    id: u32
    spec: Spec
    shape: Shape


class ValuesThatDoNotFit(unittest.TestCase):
    def test_errors_name_the_field_that_does_not_fit(self):
        lot = codec(Lot, "t")
        cases = [
            (Lot(2**32, Spec([], 1.0), Shape.Empty()), OverflowError, r"^Lot\.id: 4294967296 does not fit in u32$"),
            (Lot(1, Spec([], "x"), Shape.Empty()), TypeError, r"^Lot\.spec: Spec\.weight: expected a float"),
            (Lot(1, Spec([], 1.0), Shape.Rect(w=1.0, h=None)), TypeError, r"^Lot\.shape: Size\.h: expected a float"),
            (Lot(1, Spec(["\ud800"], 1.0), Shape.Empty()), ValueError, r"^Lot\.spec: Spec\.tags: 'utf-8' codec"),
        ]
        for value, kind, message in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(kind, message):
                    postcard.encode(lot, value)

    def test_a_list_is_a_list_or_a_tuple_never_a_string_or_a_mapping(self):
        tags = codec(list[str], "t")
        self.assertEqual(postcard.encode(tags, ("a", "b")), postcard.encode(tags, ["a", "b"]))
        for value in ("red", {"a": 1}, None, {"a"}):
            with self.subTest(value=value):
                with self.assertRaisesRegex(TypeError, "expected a list"):
                    postcard.encode(tags, value)

    def test_a_float_beyond_f32_is_refused_as_an_integer_beyond_its_width_is(self):
        self.assertEqual(postcard.encode(codec(f32, "t"), float("inf")).hex(), "0000807f")
        self.assertEqual(postcard.encode(codec(f32, "t"), 3.4028234663852886e38).hex(), "ffff7f7f")
        for declared, value in [(f32, 1e39), (f32, -1e39), (f32, 10**400), (float, 10**400)]:
            with self.subTest(declared=declared, value=value):
                with self.assertRaisesRegex(OverflowError, "does not fit in f"):
                    postcard.encode(codec(declared, "t"), value)


class Identities(unittest.TestCase):
    def test_from_hex_reads_the_hex_form_json_values_give_an_identity(self):
        digits = "ab" * 32
        for text in (digits, "0x" + digits, digits.upper()):
            with self.subTest(text=text):
                self.assertEqual(worldline.Identity.from_hex(text).to_hex(), digits)
        self.assertEqual(worldline.ConnectionId.from_hex("0x" + "01" * 16).bytes, b"\x01" * 16)
        with self.assertRaisesRegex(ValueError, "Identity takes 32 bytes, got 31"):
            worldline.Identity.from_hex("0x" + "ab" * 31)
        for text in ("ab " * 32, "0x" + "ab" * 31 + "a\n", "0x0x" + "ab" * 32):
            with self.subTest(text=text), self.assertRaisesRegex(ValueError, "hex digits only"):
                worldline.Identity.from_hex(text)


class TimestampArithmetic(unittest.TestCase):
    def test_whole_microseconds_only(self):
        ts = worldline.Timestamp(1_000)
        self.assertEqual((ts + 5).micros, 1_005)
        self.assertEqual((ts - 5).micros, 995)
        self.assertEqual(ts - worldline.Timestamp(400), 600)
        for other in (1.5, ts, "5", True):
            with self.subTest(other=other):
                with self.assertRaisesRegex(TypeError, "whole microseconds"):
                    ts + other
        with self.assertRaisesRegex(TypeError, "whole microseconds"):
            ts - 1.5

    def test_arithmetic_saturates_at_the_ends_of_the_range(self):
        latest = worldline.Timestamp(2**63 - 1)
        earliest = worldline.Timestamp(-(2**63))
        self.assertEqual((latest + 10).micros, 2**63 - 1)
        self.assertEqual((earliest - 10).micros, -(2**63))
        self.assertEqual((earliest + -(2**70)).micros, -(2**63))
        self.assertEqual((latest - 1).micros, 2**63 - 2)


if __name__ == "__main__":
    unittest.main()
