//! Describing Rust types, tables and reducers to the host as the WIT type arena.

use std::collections::HashMap;

use crate::bindings::worldline::module::types as wit;
use crate::types::{ConnectionId, Identity, Timestamp};

pub use wit::{Field, IndexKind, Lifecycle, TypeNode};

/// A table's description, as built by `#[table]`.
pub type TableDef = wit::TableDef;

/// An index's description, as built by `#[table]`.
pub type IndexDef = wit::IndexDef;

/// A schedule's description, as built by `#[table(scheduled(..))]`.
pub type ScheduleDef = wit::ScheduleDef;

/// Collects type nodes into the arena of a module description, sharing
/// identical nodes. A node only refers to nodes added before it.
#[derive(Default)]
pub struct TypeBuilder {
    nodes: Vec<TypeNode>,
    positions: HashMap<TypeNode, u32>,
}

impl TypeBuilder {
    /// Adds a node (or finds an identical one) and returns its reference.
    pub fn add(&mut self, node: TypeNode) -> u32 {
        if let Some(&position) = self.positions.get(&node) {
            return position;
        }
        let position = u32::try_from(self.nodes.len()).expect("fewer than 2^32 type nodes");
        self.nodes.push(node.clone());
        self.positions.insert(node, position);
        position
    }

    pub(crate) fn finish(self) -> Vec<TypeNode> {
        self.nodes
    }
}

/// A type that can be a column, a reducer argument or part of one.
///
/// Implemented for the primitive types, `String`, [`Identity`],
/// [`ConnectionId`], [`Timestamp`], `Option<T>`, `Vec<T>` (so `Vec<u8>` is
/// bytes), tuples and `()`; derive it with `#[derive(WorldlineType)]` for
/// your own structs and enums.
pub trait WorldlineType {
    /// Adds this type to the arena and returns its reference.
    fn describe(types: &mut TypeBuilder) -> u32;
}

macro_rules! primitive {
    ($($ty:ty => $node:ident),* $(,)?) => {
        $(impl WorldlineType for $ty {
            fn describe(types: &mut TypeBuilder) -> u32 {
                types.add(TypeNode::$node)
            }
        })*
    };
}

primitive! {
    bool => Bool, u8 => U8, u16 => U16, u32 => U32, u64 => U64, u128 => U128,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64, i128 => I128,
    f32 => F32, f64 => F64, String => String,
    Identity => Identity, ConnectionId => ConnectionId, Timestamp => Timestamp,
}

impl<T: WorldlineType> WorldlineType for Option<T> {
    fn describe(types: &mut TypeBuilder) -> u32 {
        let inner = T::describe(types);
        types.add(TypeNode::Option(inner))
    }
}

impl<T: WorldlineType> WorldlineType for Vec<T> {
    fn describe(types: &mut TypeBuilder) -> u32 {
        let inner = T::describe(types);
        types.add(TypeNode::Array(inner))
    }
}

impl<T: WorldlineType> WorldlineType for Box<T> {
    fn describe(types: &mut TypeBuilder) -> u32 {
        T::describe(types)
    }
}

macro_rules! tuple {
    ($($name:ident),*) => {
        impl<$($name: WorldlineType),*> WorldlineType for ($($name,)*) {
            #[allow(unused_variables)]
            fn describe(types: &mut TypeBuilder) -> u32 {
                let fields = vec![$(field(None, $name::describe(types))),*];
                types.add(TypeNode::Product(fields))
            }
        }
    };
}

tuple!();
tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
tuple!(A, B, C, D, E);
tuple!(A, B, C, D, E, F);

/// A product field or parameter with an optional name.
pub fn field(name: Option<&str>, ty: u32) -> Field {
    Field {
        name: name.map(str::to_owned),
        ty,
    }
}

/// A sum case with its payload type.
pub fn variant_case(name: &str, ty: u32) -> wit::VariantCase {
    wit::VariantCase {
        name: name.to_owned(),
        ty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_nodes_are_shared_and_children_come_first() {
        let mut types = TypeBuilder::default();
        let a = <Option<Vec<u8>>>::describe(&mut types);
        let b = <Option<Vec<u8>>>::describe(&mut types);
        assert_eq!(a, b);
        assert_eq!(
            types.finish(),
            vec![TypeNode::U8, TypeNode::Array(0), TypeNode::Option(1)]
        );
    }
}
