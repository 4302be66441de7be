//! The one place where host bindings for the `worldline:module` world are generated.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "module",
    imports: { default: trappable },
    with: {
        "worldline:module/datastore.cursor": crate::host_calls::CursorHandle,
    },
});
