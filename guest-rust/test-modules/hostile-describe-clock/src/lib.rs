//! A test module whose `describe` is not deterministic: the one parameter
//! of its one reducer is a struct whose field is named after the wall
//! clock's nanoseconds when it was described (padded with zeros to 240
//! characters, so that what changed is longer than an error quotes a
//! line). Each instance describes
//! another schema; the host must refuse it when it is published or swapped
//! in, not find out at the next server start.

use worldline::__private::{TypeNode, field};
use worldline::{Deserialize, ReducerContext, TypeBuilder, WorldlineType, reducer};

/// A struct with one `u32` field, named after the time it was described.
#[derive(Deserialize)]
#[serde(crate = "worldline::__private::serde")]
pub struct Stamped(pub u32);

impl WorldlineType for Stamped {
    fn describe(types: &mut TypeBuilder) -> u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let u32_ty = u32::describe(types);
        let name = format!("at_{nanos:0>240}");
        types.add(TypeNode::Product(vec![field(Some(&name), u32_ty)]))
    }
}

/// Takes the stamped value.
#[reducer]
pub fn take_stamped(_ctx: &ReducerContext, value: Stamped) {
    let _ = value.0;
}
