//! Bindings for the `worldline:module@0.2.0` world, straight from the WIT.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "module",
    pub_export_macro: true,
});
