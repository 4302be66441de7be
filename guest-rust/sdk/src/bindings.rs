//! The one place where guest bindings for the `worldline:module` world are generated.

wit_bindgen::generate!({
    path: "../../wit",
    world: "module",
    additional_derives: [PartialEq, Eq, Hash],
});
