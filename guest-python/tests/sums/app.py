"""A test module declaring sum types (a ``@sum_type`` and an ``enum.Enum``)
as column types, reducer and procedure arguments, an index key, a
procedure's result and inside other types, next to a nested option
(``Option[Option[u8]]``). It is the twin of
``guest-rust/test-modules/sums``: the same definition byte for byte, the
same behaviour call for call.
"""

import enum
from dataclasses import dataclass
from typing import Annotated, Optional

from worldline import Option, Some, f32, i32, index, primary_key, procedure, reducer, sum_type, table, u8, u32


class Color(enum.Enum):
    """A colour: a sum whose cases are all unit cases."""

    Red = enum.auto()
    Green = enum.auto()
    Blue = enum.auto()


@dataclass
class Size:
    """The named fields of a rectangle."""

    w: f32
    h: f32


@sum_type
class Shape:
    """A shape: one case of each kind."""

    Circle: f32  # one value: the radius
    Rect: Size  # named fields
    Segment: tuple[i32, i32]  # positional fields: the two ends
    Empty: None  # a unit case


@dataclass
class Label:
    """A label on a drawing: a sum inside a product."""

    text: str
    color: Color


@table(name="drawing", public=True)
@dataclass
class Drawing:
    """A drawing. ``layer``: ``None``, never placed; ``Some(None)``, on no
    layer; ``Some(n)``, on layer ``n``."""

    id: Annotated[u32, primary_key]
    shape: Shape
    color: Annotated[Color, index]
    labels: list[Label]
    layer: Option[Option[u8]]


@reducer
def draw(ctx, id: u32, shape: Shape, color: Color, labels: list[Label], layer: Option[Option[u8]]):
    """Adds a drawing; a rectangle needs a positive size."""
    match shape:
        case Shape.Rect(Size(w, h)) if w <= 0 or h <= 0:
            raise ValueError("a rectangle needs a positive size")
    ctx.db.drawing.insert(Drawing(id, shape, color, labels, layer))


_NEXT_COLOR = {Color.Red: Color.Green, Color.Green: Color.Blue, Color.Blue: Color.Red}


@reducer
def grow(ctx, id: u32, factor: f32):
    """Changes drawing ``id`` by each case: a circle or rectangle grows by
    ``factor``, a segment's ends swap, an empty shape becomes a unit
    circle; the colour moves on and the layer goes one up."""
    drawing = ctx.db.drawing.id.find(id)
    if drawing is None:
        raise LookupError(f"no drawing {id}")
    match drawing.shape:
        case Shape.Circle(r):
            drawing.shape = Shape.Circle(r * factor)
        case Shape.Rect(size):
            drawing.shape = Shape.Rect(w=size.w * factor, h=size.h * factor)
        case Shape.Segment((a, b)):
            drawing.shape = Shape.Segment((b, a))
        case Shape.Empty():
            drawing.shape = Shape.Circle(1.0)
    drawing.color = _NEXT_COLOR[drawing.color]
    layer = drawing.layer
    if layer is None:
        drawing.layer = Some(None)
    elif layer.value is None:
        drawing.layer = Some(0)
    else:
        drawing.layer = Some(min(layer.value + 1, 255))
    ctx.db.drawing.id.update(drawing)


@reducer
def erase(ctx, color: Color):
    """Deletes every drawing in ``color`` (found through the index on the colour)."""
    for id in [d.id for d in ctx.db.drawing.color.filter(color)]:
        ctx.db.drawing.id.delete(id)


@procedure
def first_drawn(ctx, shapes: list[Shape]) -> Optional[Shape]:
    """The first shape of ``shapes`` that is not empty, if any."""
    return next((s for s in shapes if s != Shape.Empty()), None)
