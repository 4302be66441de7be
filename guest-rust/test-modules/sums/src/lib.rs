//! A test module declaring sum types (Rust enums) as column types, reducer
//! and procedure arguments, an index key, a procedure's result and inside
//! other types, next to a nested option (`Option<Option<u8>>`). Its Python
//! twin, `guest-python/tests/sums`, must describe the same module byte for
//! byte and behave the same way, call for call.

use worldline::{
    Deserialize, ProcedureContext, ReducerContext, Serialize, Table, WorldlineType, procedure,
    reducer, table,
};

/// A colour: a sum whose cases are all unit cases.
#[derive(Debug, Clone, Copy, PartialEq, WorldlineType, Serialize, Deserialize)]
#[serde(crate = "worldline::__private::serde")]
pub enum Color {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
}

/// A shape: one case of each kind.
#[derive(Debug, Clone, PartialEq, WorldlineType, Serialize, Deserialize)]
#[serde(crate = "worldline::__private::serde")]
pub enum Shape {
    /// One value: the radius.
    Circle(f32),
    /// Named fields.
    Rect {
        /// Width.
        w: f32,
        /// Height.
        h: f32,
    },
    /// Positional fields: the two ends.
    Segment(i32, i32),
    /// A unit case.
    Empty,
}

/// A label on a drawing: a sum inside a product.
#[derive(Debug, Clone, PartialEq, WorldlineType, Serialize, Deserialize)]
#[serde(crate = "worldline::__private::serde")]
pub struct Label {
    /// The text.
    pub text: String,
    /// Its colour.
    pub color: Color,
}

/// A drawing.
#[table(name = drawing, public)]
pub struct Drawing {
    /// The drawing's id.
    #[primary_key]
    pub id: u32,
    /// What is drawn.
    pub shape: Shape,
    /// In which colour (an index key).
    #[index(btree)]
    pub color: Color,
    /// Its labels.
    pub labels: Vec<Label>,
    /// `None`: never placed; `Some(None)`: on no layer; `Some(Some(n))`: on layer `n`.
    pub layer: Option<Option<u8>>,
}

/// Adds a drawing; a rectangle needs a positive size.
#[reducer]
pub fn draw(
    ctx: &ReducerContext,
    id: u32,
    shape: Shape,
    color: Color,
    labels: Vec<Label>,
    layer: Option<Option<u8>>,
) -> Result<(), String> {
    if let Shape::Rect { w, h } = shape
        && (w <= 0.0 || h <= 0.0)
    {
        return Err("a rectangle needs a positive size".to_owned());
    }
    ctx.db.drawing().insert(Drawing {
        id,
        shape,
        color,
        labels,
        layer,
    });
    Ok(())
}

/// Changes drawing `id` by each case: a circle or rectangle grows by
/// `factor`, a segment's ends swap, an empty shape becomes a unit circle;
/// the colour moves on (red, green, blue, red) and the layer goes one up
/// (never placed, then no layer, then layer 0, 1, ... up to 255).
#[reducer]
pub fn grow(ctx: &ReducerContext, id: u32, factor: f32) -> Result<(), String> {
    let mut drawing = ctx
        .db
        .drawing()
        .id()
        .find(&id)
        .ok_or_else(|| format!("no drawing {id}"))?;
    drawing.shape = match drawing.shape {
        Shape::Circle(r) => Shape::Circle(r * factor),
        Shape::Rect { w, h } => Shape::Rect {
            w: w * factor,
            h: h * factor,
        },
        Shape::Segment(a, b) => Shape::Segment(b, a),
        Shape::Empty => Shape::Circle(1.0),
    };
    drawing.color = match drawing.color {
        Color::Red => Color::Green,
        Color::Green => Color::Blue,
        Color::Blue => Color::Red,
    };
    drawing.layer = match drawing.layer {
        None => Some(None),
        Some(None) => Some(Some(0)),
        Some(Some(n)) => Some(Some(n.saturating_add(1))),
    };
    ctx.db.drawing().id().update(drawing);
    Ok(())
}

/// Deletes every drawing in `color` (found through the index on the colour).
#[reducer]
pub fn erase(ctx: &ReducerContext, color: Color) {
    let ids: Vec<u32> = ctx
        .db
        .drawing()
        .color()
        .filter(&color)
        .map(|d| d.id)
        .collect();
    for id in ids {
        ctx.db.drawing().id().delete(&id);
    }
}

/// The first shape of `shapes` that is not empty, if any.
#[procedure]
pub fn first_drawn(_ctx: &mut ProcedureContext, shapes: Vec<Shape>) -> Option<Shape> {
    shapes.into_iter().find(|s| *s != Shape::Empty)
}
