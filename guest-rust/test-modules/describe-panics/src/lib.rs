//! A test module whose `describe` traps: the type of its one reducer
//! parameter panics while describing itself. A server with a stored
//! database running this module must start every other database and report
//! this one as unavailable, naming it (#9 item 4).

use worldline::{Deserialize, ReducerContext, TypeBuilder, WorldlineType, reducer};

/// A parameter type that cannot describe itself.
#[derive(Deserialize)]
#[serde(crate = "worldline::__private::serde")]
pub struct Undescribable(pub u32);

impl WorldlineType for Undescribable {
    fn describe(_types: &mut TypeBuilder) -> u32 {
        panic!("this type refuses to describe itself");
    }
}

/// Never callable: the module traps while describing itself.
#[reducer]
pub fn take_undescribable(_ctx: &ReducerContext, value: Undescribable) {
    let _ = value.0;
}
