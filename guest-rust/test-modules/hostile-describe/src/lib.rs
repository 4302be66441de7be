//! A test module whose `describe` never returns: the type of its one
//! reducer parameter describes itself with an endless loop. The host must
//! report that `describe` missed its deadline, naming the deadline.

use worldline::{Deserialize, ReducerContext, TypeBuilder, WorldlineType, reducer};

/// A parameter type whose description never ends.
#[derive(Deserialize)]
#[serde(crate = "worldline::__private::serde")]
pub struct Endless(pub u32);

impl WorldlineType for Endless {
    fn describe(_types: &mut TypeBuilder) -> u32 {
        let mut n: u32 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

/// Never callable: the module never finishes describing itself.
#[reducer]
pub fn take_endless(_ctx: &ReducerContext, value: Endless) {
    let _ = value.0;
}
