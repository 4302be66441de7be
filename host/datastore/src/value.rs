//! Decoded values with a total order, used as index keys and in messages.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A decoded value of an [`AlgebraicType`](crate::AlgebraicType).
///
/// Values are totally ordered (floats by IEEE total order) so they can be
/// index keys; values of one type compare in their natural order.
#[derive(Debug, Clone)]
pub enum Value {
    /// A bool.
    Bool(bool),
    /// A u8.
    U8(u8),
    /// A u16.
    U16(u16),
    /// A u32.
    U32(u32),
    /// A u64.
    U64(u64),
    /// A u128.
    U128(u128),
    /// An i8.
    I8(i8),
    /// An i16.
    I16(i16),
    /// An i32.
    I32(i32),
    /// An i64.
    I64(i64),
    /// An i128.
    I128(i128),
    /// An f32.
    F32(f32),
    /// An f64.
    F64(f64),
    /// A string.
    String(Box<str>),
    /// An identity's bytes.
    Identity([u8; 32]),
    /// A connection id's bytes.
    ConnectionId([u8; 16]),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    /// An optional value.
    Option(Option<Box<Value>>),
    /// An array.
    Array(Vec<Value>),
    /// A product's fields.
    Product(Vec<Value>),
    /// A sum's case index and payload.
    Sum(u32, Box<Value>),
}

impl Value {
    /// The bytes this value holds outside itself (its string's bytes, its
    /// elements, fields or payload), so that a copy of it held in an index
    /// takes `size_of::<Value>()` and this much.
    pub(crate) fn heap_bytes(&self) -> usize {
        const SIZE: usize = std::mem::size_of::<Value>();
        match self {
            Value::String(text) => text.len(),
            Value::Option(Some(inner)) | Value::Sum(_, inner) => SIZE + inner.heap_bytes(),
            Value::Array(items) | Value::Product(items) => {
                items.iter().map(|item| SIZE + item.heap_bytes()).sum()
            }
            _ => 0,
        }
    }

    /// The position of the variant, ordering values of different types.
    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::U8(_) => 1,
            Value::U16(_) => 2,
            Value::U32(_) => 3,
            Value::U64(_) => 4,
            Value::U128(_) => 5,
            Value::I8(_) => 6,
            Value::I16(_) => 7,
            Value::I32(_) => 8,
            Value::I64(_) => 9,
            Value::I128(_) => 10,
            Value::F32(_) => 11,
            Value::F64(_) => 12,
            Value::String(_) => 13,
            Value::Identity(_) => 14,
            Value::ConnectionId(_) => 15,
            Value::Timestamp(_) => 16,
            Value::Option(_) => 17,
            Value::Array(_) => 18,
            Value::Product(_) => 19,
            Value::Sum(..) => 20,
        }
    }

    /// The value as an unsigned 128-bit number, for integers that are not negative.
    pub(crate) fn as_u128(&self) -> Option<u128> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v.into()),
            Value::U128(v) => Some(v),
            Value::I8(v) => u128::try_from(v).ok(),
            Value::I16(v) => u128::try_from(v).ok(),
            Value::I32(v) => u128::try_from(v).ok(),
            Value::I64(v) => u128::try_from(v).ok(),
            Value::I128(v) => u128::try_from(v).ok(),
            _ => None,
        }
    }

    /// An integer value of the same type as `self` holding `n`, if it fits.
    pub(crate) fn with_integer(&self, n: u128) -> Option<Value> {
        Some(match self {
            Value::U8(_) => Value::U8(n.try_into().ok()?),
            Value::U16(_) => Value::U16(n.try_into().ok()?),
            Value::U32(_) => Value::U32(n.try_into().ok()?),
            Value::U64(_) => Value::U64(n.try_into().ok()?),
            Value::U128(_) => Value::U128(n),
            Value::I8(_) => Value::I8(n.try_into().ok()?),
            Value::I16(_) => Value::I16(n.try_into().ok()?),
            Value::I32(_) => Value::I32(n.try_into().ok()?),
            Value::I64(_) => Value::I64(n.try_into().ok()?),
            Value::I128(_) => Value::I128(n.try_into().ok()?),
            _ => return None,
        })
    }
}

impl Ord for Value {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (U8(a), U8(b)) => a.cmp(b),
            (U16(a), U16(b)) => a.cmp(b),
            (U32(a), U32(b)) => a.cmp(b),
            (U64(a), U64(b)) => a.cmp(b),
            (U128(a), U128(b)) => a.cmp(b),
            (I8(a), I8(b)) => a.cmp(b),
            (I16(a), I16(b)) => a.cmp(b),
            (I32(a), I32(b)) => a.cmp(b),
            (I64(a), I64(b)) => a.cmp(b),
            (I128(a), I128(b)) => a.cmp(b),
            (F32(a), F32(b)) => a.total_cmp(b),
            (F64(a), F64(b)) => a.total_cmp(b),
            (String(a), String(b)) => a.cmp(b),
            (Identity(a), Identity(b)) => a.cmp(b),
            (ConnectionId(a), ConnectionId(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Option(a), Option(b)) => a.cmp(b),
            (Array(a), Array(b)) | (Product(a), Product(b)) => a.cmp(b),
            (Sum(ta, a), Sum(tb, b)) => ta.cmp(tb).then_with(|| a.cmp(b)),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Value::Bool(v) => v.hash(state),
            Value::U8(v) => v.hash(state),
            Value::U16(v) => v.hash(state),
            Value::U32(v) => v.hash(state),
            Value::U64(v) => v.hash(state),
            Value::U128(v) => v.hash(state),
            Value::I8(v) => v.hash(state),
            Value::I16(v) => v.hash(state),
            Value::I32(v) => v.hash(state),
            Value::I64(v) => v.hash(state),
            Value::I128(v) => v.hash(state),
            Value::F32(v) => v.to_bits().hash(state),
            Value::F64(v) => v.to_bits().hash(state),
            Value::String(v) => v.hash(state),
            Value::Identity(v) => v.hash(state),
            Value::ConnectionId(v) => v.hash(state),
            Value::Timestamp(v) => v.hash(state),
            Value::Option(v) => v.hash(state),
            Value::Array(v) | Value::Product(v) => v.hash(state),
            Value::Sum(tag, v) => {
                tag.hash(state);
                v.hash(state);
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::U8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::U128(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::I128(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::String(v) => write!(f, "{v:?}"),
            Value::Identity(v) => write_hex(f, v),
            Value::ConnectionId(v) => write_hex(f, v),
            Value::Timestamp(v) => write!(f, "{v}us"),
            Value::Option(None) => f.write_str("none"),
            Value::Option(Some(v)) => write!(f, "some({v})"),
            Value::Array(items) => write_list(f, "[", items, "]"),
            Value::Product(fields) => write_list(f, "(", fields, ")"),
            Value::Sum(tag, payload) => match &**payload {
                Value::Product(fields) if fields.is_empty() => write!(f, "#{tag}"),
                Value::Product(_) => write!(f, "#{tag}{payload}"),
                payload => write!(f, "#{tag}({payload})"),
            },
        }
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("0x")?;
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// Writes `values` comma-separated between `open` and `close`.
pub(crate) fn write_list(
    f: &mut fmt::Formatter<'_>,
    open: &str,
    values: &[Value],
    close: &str,
) -> fmt::Result {
    f.write_str(open)?;
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{value}")?;
    }
    f.write_str(close)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_order_totally() {
        let mut values = [
            Value::F64(1.5),
            Value::F64(f64::NAN),
            Value::F64(-0.0),
            Value::F64(-3.0),
        ];
        values.sort();
        assert!(matches!(values[0], Value::F64(v) if v == -3.0));
        assert!(matches!(values[3], Value::F64(v) if v.is_nan()));
    }

    #[test]
    fn prefixes_sort_before_their_extensions() {
        let prefix = vec![Value::U32(5)];
        let key = vec![Value::U32(5), Value::I32(-100)];
        assert!(prefix < key);
        assert!(vec![Value::U32(4), Value::I32(100)] < prefix);
    }

    #[test]
    fn same_type_values_order_naturally() {
        use Value::*;
        let ascending = [
            vec![I32(-5), I32(-1), I32(0), I32(7)],
            vec![
                String("".into()),
                String("a".into()),
                String("ab".into()),
                String("b".into()),
            ],
            vec![
                Option(None),
                Option(Some(Box::new(U8(0)))),
                Option(Some(Box::new(U8(1)))),
            ],
            vec![
                Array(vec![]),
                Array(vec![U8(1)]),
                Array(vec![U8(1), U8(0)]),
                Array(vec![U8(2)]),
            ],
            vec![
                Sum(0, Box::new(U8(9))),
                Sum(1, Box::new(U8(0))),
                Sum(1, Box::new(U8(1))),
            ],
            vec![Identity([0; 32]), Identity([1; 32])],
            vec![F32(f32::NEG_INFINITY), F32(-0.0), F32(0.0), F32(f32::NAN)],
        ];
        for values in ascending {
            for pair in values.windows(2) {
                assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
                assert_ne!(pair[0], pair[1]);
            }
        }
        // Equal values hash equally, NaN included.
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let nan = F64(f64::NAN);
        assert_eq!(nan, nan.clone());
        assert_eq!(state.hash_one(&nan), state.hash_one(nan.clone()));
        assert_ne!(state.hash_one(F64(0.0)), state.hash_one(F64(-0.0)));
    }

    #[test]
    fn values_display_readably() {
        let product = Value::Product(vec![
            Value::String("a \"b\"".into()),
            Value::Option(None),
            Value::Array(vec![Value::U8(1), Value::I64(-2)]),
            Value::Identity([0xab; 32]),
            Value::Sum(0, Box::new(Value::Product(vec![]))),
            Value::Sum(1, Box::new(Value::U32(7))),
            Value::Option(Some(Box::new(Value::Bool(true)))),
        ]);
        assert_eq!(
            product.to_string(),
            format!(
                "(\"a \\\"b\\\"\", none, [1, -2], 0x{}, #0, #1(7), some(true))",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn integer_rewrap_checks_range() {
        assert_eq!(Value::U8(0).with_integer(255), Some(Value::U8(255)));
        assert_eq!(Value::U8(0).with_integer(256), None);
        assert_eq!(Value::I8(-1).as_u128(), None);
        assert_eq!(Value::String("x".into()).as_u128(), None);
    }
}
