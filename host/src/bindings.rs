//! The one place where host bindings for the `worldline:module` worlds are
//! generated: [`v1`] for components built against 0.1.0 (kept loading) and
//! [`v2`] for 0.2.0, the current contract.

/// Bindings for `worldline:module@0.1.0` (`wit/0.1.0/worldline.wit`).
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "module",
        imports: { default: trappable },
        with: {
            "worldline:module/datastore.cursor": crate::host_calls::CursorHandle,
        },
    });
}

/// Bindings for `worldline:module@0.2.0` (`wit/worldline.wit`).
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "module",
        imports: { default: trappable },
        with: {
            "worldline:module/datastore.cursor": crate::host_calls::CursorHandle,
        },
    });
}
