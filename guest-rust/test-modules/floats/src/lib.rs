//! One public table of float columns and a reducer that writes its rows:
//! the SQL tests compare float literals with `f32` and `f64` values
//! through a real server.

use worldline::{ReducerContext, Table, reducer, table};

/// A measurement at two precisions.
#[table(name = reading, public)]
pub struct Reading {
    /// The reading's number.
    #[primary_key]
    pub id: u32,
    /// The value as an `f32`.
    pub x: f32,
    /// The value as an `f64`.
    pub y: f64,
}

/// Records reading `id`.
#[reducer]
pub fn record(ctx: &ReducerContext, id: u32, x: f32, y: f64) {
    ctx.db.reading().insert(Reading { id, x, y });
}
