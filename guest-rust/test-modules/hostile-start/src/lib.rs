//! A test module whose constructor (run while the component is
//! instantiated, before any export is called) never returns. The host must
//! report a start that timed out, not a component that does not fit the world.

use worldline::{ReducerContext, reducer};

/// Never returns. A core module's `_initialize` export is the reactor's
/// initialiser, which the component runs while it is instantiated (where a
/// C module's constructors run).
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Never reached: the module does not finish starting.
#[reducer]
pub fn unreachable_reducer(_ctx: &ReducerContext) {}
