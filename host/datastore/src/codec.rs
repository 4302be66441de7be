//! Postcard encoding of [`Value`]s, driven by their [`AlgebraicType`].
//!
//! Bytes are exactly what serde + postcard 1.x produce for the matching Rust
//! types, so rows written by any guest SDK decode here. Decoding never
//! panics and never allocates more than the input could hold. Decoding and
//! encoding recurse as deep as the type, never deeper, whatever the bytes
//! say; a validated schema's types nest at most
//! [`MAX_NESTING_DEPTH`](crate::MAX_NESTING_DEPTH) levels.

use std::fmt;

use crate::schema::{AlgebraicType, ProductType, SumType, Variant};
use crate::value::Value;
use crate::wire::{length, put_varint, take, take_array, take_byte, unzigzag, varint, zigzag};

/// Most zero-sized elements (such as those of a `Vec<()>`) one decoded
/// value may hold, in all its arrays together: they take no bytes, so the
/// input cannot bound their number. (A per-array limit would let a
/// `Vec<Vec<()>>` claim that many for every byte of input.)
pub const MAX_ZERO_SIZED_ELEMENTS: usize = 1 << 16;

/// Why bytes did not decode as the expected type: where in the value, what
/// was expected and what was found, e.g.
/// `field "balance": expected i64, input ended`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What the first path segment is: a "field", a "column" or, for a bare value, "at".
    label: &'static str,
    /// Where the problem is, e.g. `balance` or `items[3].name`; empty at the top level.
    path: String,
    /// What went wrong, e.g. `expected i64, input ended`.
    detail: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.detail)
        } else {
            write!(f, "{} \"{}\": {}", self.label, self.path, self.detail)
        }
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// Bytes that are not a valid `ty`.
    fn expected(ty: &AlgebraicType, problem: impl fmt::Display) -> Self {
        Self {
            label: "at",
            path: String::new(),
            detail: format!("expected {ty}, {problem}"),
        }
    }

    /// Bytes left over after the last field (or, with `what` = "column", the last column).
    pub(crate) fn trailing(count: usize, what: &str) -> Self {
        Self {
            label: "at",
            path: String::new(),
            detail: format!("trailing {count} bytes after the last {what}"),
        }
    }

    /// The same error, inside the field `name` (or at `position` if unnamed).
    pub(crate) fn in_field(self, name: Option<&str>, position: usize) -> Self {
        match name {
            Some(name) => self.within(name),
            None => self.within(&position.to_string()),
        }
    }

    /// Calls the first path segment a "column" (for rows) instead of a "field".
    pub(crate) fn in_columns(mut self) -> Self {
        if !self.path.is_empty() {
            self.label = "column";
        }
        self
    }

    fn in_element(mut self, position: usize) -> Self {
        let separator = if self.path.is_empty() || self.path.starts_with('[') {
            ""
        } else {
            "."
        };
        self.path = format!("[{position}]{separator}{}", self.path);
        self
    }

    fn within(mut self, segment: &str) -> Self {
        self.path = match self.path.as_str() {
            "" => segment.to_owned(),
            path if path.starts_with('[') => format!("{segment}{path}"),
            path => format!("{segment}.{path}"),
        };
        self.label = "field";
        self
    }
}

/// Decodes one value of type `ty` from the front of `input`, advancing it.
pub fn decode_value(ty: &AlgebraicType, input: &mut &[u8]) -> Result<Value, DecodeError> {
    let mut zero_sized = MAX_ZERO_SIZED_ELEMENTS;
    decode(ty, input, &mut zero_sized)
}

/// [`decode_value`], with `zero_sized` the zero-sized elements the value may
/// still hold. Only the types that hold others are decoded here, so that
/// the frame this recursion repeats per level stays small.
fn decode(
    ty: &AlgebraicType,
    input: &mut &[u8],
    zero_sized: &mut usize,
) -> Result<Value, DecodeError> {
    use AlgebraicType as T;
    Ok(match ty {
        T::Option(inner) => Value::Option(match bool_byte(ty, input)? {
            false => None,
            true => Some(Box::new(decode(inner, input, zero_sized)?)),
        }),
        T::Array(inner) => {
            let len = array_length(ty, inner, input, zero_sized)?;
            // `array_length` bounds `len` by the remaining input (or a small limit).
            let mut items = Vec::with_capacity(len);
            for position in 0..len {
                match decode(inner, input, zero_sized) {
                    Ok(item) => items.push(item),
                    Err(e) => return Err(e.in_element(position)),
                }
            }
            Value::Array(items)
        }
        T::Product(product) => Value::Product(decode_fields(product, input, zero_sized)?),
        T::Sum(sum) => {
            let (tag, variant) = sum_case(ty, sum, input)?;
            match decode(&variant.ty, input, zero_sized) {
                Ok(payload) => Value::Sum(tag, Box::new(payload)),
                Err(e) => return Err(e.within(&variant.name)),
            }
        }
        leaf => decode_leaf(leaf, input)?,
    })
}

/// Decodes a value of a type that holds no other value (a `leaf` of a
/// type's tree); any other type is decoded as [`decode_value`] does.
#[inline(never)]
fn decode_leaf(ty: &AlgebraicType, input: &mut &[u8]) -> Result<Value, DecodeError> {
    use AlgebraicType as T;
    let at = |problem| DecodeError::expected(ty, problem);
    Ok(match ty {
        T::Bool => Value::Bool(bool_byte(ty, input)?),
        T::U8 => Value::U8(take_byte(input).map_err(at)?),
        T::I8 => Value::I8(take_byte(input).map_err(at)? as i8),
        T::U16 => Value::U16(varint(input, 16).map_err(at)? as u16),
        T::U32 => Value::U32(varint(input, 32).map_err(at)? as u32),
        T::U64 => Value::U64(varint(input, 64).map_err(at)? as u64),
        T::U128 => Value::U128(varint(input, 128).map_err(at)?),
        T::I16 => Value::I16(unzigzag(varint(input, 16).map_err(at)?) as i16),
        T::I32 => Value::I32(unzigzag(varint(input, 32).map_err(at)?) as i32),
        T::I64 => Value::I64(unzigzag(varint(input, 64).map_err(at)?) as i64),
        T::I128 => Value::I128(unzigzag(varint(input, 128).map_err(at)?)),
        T::Timestamp => Value::Timestamp(unzigzag(varint(input, 64).map_err(at)?) as i64),
        T::F32 => Value::F32(f32::from_le_bytes(take_array(input).map_err(at)?)),
        T::F64 => Value::F64(f64::from_le_bytes(take_array(input).map_err(at)?)),
        T::Identity => Value::Identity(take_array(input).map_err(at)?),
        T::ConnectionId => Value::ConnectionId(take_array(input).map_err(at)?),
        T::String => Value::String(string(ty, input)?.into()),
        T::Option(_) | T::Array(_) | T::Product(_) | T::Sum(_) => decode_value(ty, input)?,
    })
}

/// Checks that a value of type `ty` is at the front of `input` and steps
/// over it, without building it. Accepts exactly what [`decode_value`] accepts,
/// failing with the same error, but holds no more memory than the input: a
/// decoded value takes far more room than its bytes (an `array(u8)` of a
/// million bytes decodes to a million values).
pub fn skip_value(ty: &AlgebraicType, input: &mut &[u8]) -> Result<(), DecodeError> {
    let mut zero_sized = MAX_ZERO_SIZED_ELEMENTS;
    skip(ty, input, &mut zero_sized)
}

/// [`skip_value`], with `zero_sized` the zero-sized elements the value may
/// still hold. Like [`decode`], it handles only the types that hold others.
fn skip(ty: &AlgebraicType, input: &mut &[u8], zero_sized: &mut usize) -> Result<(), DecodeError> {
    use AlgebraicType as T;
    match ty {
        T::Option(inner) => {
            if bool_byte(ty, input)? {
                skip(inner, input, zero_sized)?;
            }
        }
        T::Array(inner) => {
            let len = array_length(ty, inner, input, zero_sized)?;
            if !is_zero_sized(inner) {
                for position in 0..len {
                    skip(inner, input, zero_sized).map_err(|e| e.in_element(position))?;
                }
            }
        }
        T::Product(product) => {
            for (position, field) in product.fields.iter().enumerate() {
                skip(&field.ty, input, zero_sized)
                    .map_err(|e| e.in_field(field.name.as_deref(), position))?;
            }
        }
        T::Sum(sum) => {
            let (_, variant) = sum_case(ty, sum, input)?;
            skip(&variant.ty, input, zero_sized).map_err(|e| e.within(&variant.name))?;
        }
        leaf => skip_leaf(leaf, input)?,
    }
    Ok(())
}

/// Steps over a value of a type that holds no other value; any other type
/// is skipped as [`skip_value`] does.
#[inline(never)]
fn skip_leaf(ty: &AlgebraicType, input: &mut &[u8]) -> Result<(), DecodeError> {
    use AlgebraicType as T;
    let at = |problem| DecodeError::expected(ty, problem);
    match ty {
        T::Bool => {
            bool_byte(ty, input)?;
        }
        T::U8 | T::I8 => {
            take_byte(input).map_err(at)?;
        }
        T::U16 | T::I16 => {
            varint(input, 16).map_err(at)?;
        }
        T::U32 | T::I32 => {
            varint(input, 32).map_err(at)?;
        }
        T::U64 | T::I64 | T::Timestamp => {
            varint(input, 64).map_err(at)?;
        }
        T::U128 | T::I128 => {
            varint(input, 128).map_err(at)?;
        }
        T::F32 => {
            take(input, 4).map_err(at)?;
        }
        T::F64 => {
            take(input, 8).map_err(at)?;
        }
        T::Identity => {
            take(input, 32).map_err(at)?;
        }
        T::ConnectionId => {
            take(input, 16).map_err(at)?;
        }
        T::String => {
            string(ty, input)?;
        }
        T::Option(_) | T::Array(_) | T::Product(_) | T::Sum(_) => skip_value(ty, input)?,
    }
    Ok(())
}

/// Decodes a whole buffer as the fields of `ty` (a row, or an argument list).
pub fn decode_product(ty: &ProductType, bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut input = bytes;
    let mut zero_sized = MAX_ZERO_SIZED_ELEMENTS;
    let fields = decode_fields(ty, &mut input, &mut zero_sized)?;
    if !input.is_empty() {
        return Err(DecodeError::trailing(input.len(), "field"));
    }
    Ok(fields)
}

/// Checks a whole buffer as the fields of `ty` (a row, or an argument
/// list) without building them: accepts exactly what [`decode_product`]
/// accepts, failing with the same error, and holds no more memory than the
/// input.
pub fn check_product(ty: &ProductType, bytes: &[u8]) -> Result<(), DecodeError> {
    let mut input = bytes;
    let mut zero_sized = MAX_ZERO_SIZED_ELEMENTS;
    for (position, field) in ty.fields.iter().enumerate() {
        skip(&field.ty, &mut input, &mut zero_sized)
            .map_err(|e| e.in_field(field.name.as_deref(), position))?;
    }
    if !input.is_empty() {
        return Err(DecodeError::trailing(input.len(), "field"));
    }
    Ok(())
}

fn decode_fields(
    product: &ProductType,
    input: &mut &[u8],
    zero_sized: &mut usize,
) -> Result<Vec<Value>, DecodeError> {
    let mut fields = Vec::with_capacity(product.fields.len());
    for (position, field) in product.fields.iter().enumerate() {
        match decode(&field.ty, input, zero_sized) {
            Ok(value) => fields.push(value),
            Err(e) => return Err(e.in_field(field.name.as_deref(), position)),
        }
    }
    Ok(fields)
}

/// Appends the postcard bytes of `value` to `out`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.push(*v as u8),
        Value::U16(v) => put_varint(out, (*v).into()),
        Value::U32(v) => put_varint(out, (*v).into()),
        Value::U64(v) => put_varint(out, (*v).into()),
        Value::U128(v) => put_varint(out, *v),
        Value::I16(v) => put_varint(out, zigzag((*v).into())),
        Value::I32(v) => put_varint(out, zigzag((*v).into())),
        Value::I64(v) | Value::Timestamp(v) => put_varint(out, zigzag((*v).into())),
        Value::I128(v) => put_varint(out, zigzag(*v)),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::String(v) => {
            put_varint(out, v.len() as u128);
            out.extend_from_slice(v.as_bytes());
        }
        Value::Identity(v) => out.extend_from_slice(v),
        Value::ConnectionId(v) => out.extend_from_slice(v),
        Value::Option(None) => out.push(0),
        Value::Option(Some(v)) => {
            out.push(1);
            encode_value(v, out);
        }
        Value::Array(items) => {
            put_varint(out, items.len() as u128);
            items.iter().for_each(|item| encode_value(item, out));
        }
        Value::Product(fields) => fields.iter().for_each(|field| encode_value(field, out)),
        Value::Sum(tag, payload) => {
            put_varint(out, (*tag).into());
            encode_value(payload, out);
        }
    }
}

/// A byte that must be 0 or 1 (a bool, or an option's tag).
fn bool_byte(ty: &AlgebraicType, input: &mut &[u8]) -> Result<bool, DecodeError> {
    match take_byte(input).map_err(|e| DecodeError::expected(ty, e))? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(DecodeError::expected(
            ty,
            format_args!("found byte {other}, not 0 or 1"),
        )),
    }
}

fn string<'a>(ty: &AlgebraicType, input: &mut &'a [u8]) -> Result<&'a str, DecodeError> {
    let at = |problem| DecodeError::expected(ty, problem);
    let len = length(input).map_err(at)?;
    let bytes = take(input, len).map_err(|_| {
        DecodeError::expected(
            ty,
            format_args!("length {len} but {} bytes left", input.len()),
        )
    })?;
    std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::expected(ty, format_args!("invalid UTF-8 ({e})")))
}

/// Reads an array's length and checks that the input can hold that many
/// elements: each takes at least one byte unless the element type is
/// zero-sized, and those are taken from the value's `zero_sized` allowance.
fn array_length(
    ty: &AlgebraicType,
    element: &AlgebraicType,
    input: &mut &[u8],
    zero_sized: &mut usize,
) -> Result<usize, DecodeError> {
    let len = length(input).map_err(|e| DecodeError::expected(ty, e))?;
    if is_zero_sized(element) {
        *zero_sized = zero_sized.checked_sub(len).ok_or_else(|| {
            DecodeError::expected(
                ty,
                format_args!(
                    "length {len} of zero-sized elements takes the value over \
                     {MAX_ZERO_SIZED_ELEMENTS} of them"
                ),
            )
        })?;
    } else if len > input.len() {
        return Err(DecodeError::expected(
            ty,
            format_args!("length {len} but {} bytes left", input.len()),
        ));
    }
    Ok(len)
}

/// Whether values of `ty` always encode to no bytes (unit and products of units).
fn is_zero_sized(ty: &AlgebraicType) -> bool {
    ty.takes_no_bytes()
}

fn sum_case<'t>(
    ty: &AlgebraicType,
    sum: &'t SumType,
    input: &mut &[u8],
) -> Result<(u32, &'t Variant), DecodeError> {
    let tag = varint(input, 32).map_err(|e| DecodeError::expected(ty, e))? as u32;
    let variant = usize::try_from(tag)
        .ok()
        .and_then(|tag| sum.variants.get(tag))
        .ok_or_else(|| {
            DecodeError::expected(
                ty,
                format_args!("case {tag} does not exist ({} cases)", sum.variants.len()),
            )
        })?;
    Ok((tag, variant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Field;
    use proptest::prelude::*;

    fn bytes(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(value, &mut out);
        out
    }

    fn decode_all(ty: &AlgebraicType, mut input: &[u8]) -> Result<Value, DecodeError> {
        let value = decode_value(ty, &mut input)?;
        assert!(input.is_empty(), "left over: {input:?}");
        Ok(value)
    }

    fn field(name: &str, ty: AlgebraicType) -> Field {
        Field {
            name: Some(name.into()),
            ty,
        }
    }

    fn unit() -> AlgebraicType {
        AlgebraicType::Product(ProductType::default())
    }

    #[test]
    fn known_encodings() {
        use AlgebraicType as T;
        let some = |v| Value::Option(Some(Box::new(v)));
        let cases: Vec<(T, Value, Vec<u8>)> = vec![
            (T::U32, Value::U32(300), vec![0xAC, 0x02]),
            (T::U32, Value::U32(0), vec![0]),
            (T::U16, Value::U16(u16::MAX), vec![0xFF, 0xFF, 0x03]),
            (T::I32, Value::I32(-1), vec![0x01]),
            (T::I32, Value::I32(1), vec![0x02]),
            (T::I64, Value::I64(-65), vec![0x81, 0x01]),
            (T::I8, Value::I8(-1), vec![0xFF]),
            (T::U8, Value::U8(200), vec![200]),
            (T::String, Value::String("hi".into()), vec![2, b'h', b'i']),
            (T::String, Value::String("".into()), vec![0]),
            (T::Option(Box::new(T::U8)), some(Value::U8(5)), vec![1, 5]),
            (T::Option(Box::new(T::U8)), Value::Option(None), vec![0]),
            (T::Bool, Value::Bool(true), vec![1]),
            (T::Bool, Value::Bool(false), vec![0]),
            (T::F32, Value::F32(1.0), vec![0, 0, 0x80, 0x3F]),
            (T::F64, Value::F64(-2.0), vec![0, 0, 0, 0, 0, 0, 0, 0xC0]),
            (T::Timestamp, Value::Timestamp(-1), vec![0x01]),
            (T::Identity, Value::Identity([7; 32]), vec![7; 32]),
            (T::ConnectionId, Value::ConnectionId([9; 16]), vec![9; 16]),
            (
                T::Array(Box::new(T::U16)),
                Value::Array(vec![Value::U16(1), Value::U16(128)]),
                vec![2, 1, 0x80, 1],
            ),
            (
                T::Product(ProductType {
                    fields: vec![field("a", T::U8), field("b", T::String)],
                }),
                Value::Product(vec![Value::U8(1), Value::String("x".into())]),
                vec![1, 1, b'x'],
            ),
            (
                T::U64,
                Value::U64(u64::MAX),
                vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ),
        ];
        for (ty, value, expected) in cases {
            assert_eq!(bytes(&value), expected, "encoding {value} as {ty}");
            assert_eq!(
                decode_all(&ty, &expected).unwrap(),
                value,
                "decoding {expected:?} as {ty}"
            );
        }
    }

    #[test]
    fn sums_encode_tag_then_payload() {
        let ty = AlgebraicType::Sum(SumType {
            variants: vec![
                Variant {
                    name: "Idle".into(),
                    ty: unit(),
                },
                Variant {
                    name: "Moving".into(),
                    ty: AlgebraicType::U32,
                },
            ],
        });
        let moving = Value::Sum(1, Box::new(Value::U32(7)));
        assert_eq!(bytes(&moving), [1, 7]);
        assert_eq!(decode_all(&ty, &[1, 7]).unwrap(), moving);
        assert_eq!(
            decode_all(&ty, &[0]).unwrap(),
            Value::Sum(0, Box::new(Value::Product(vec![])))
        );
        let err = decode_all(&ty, &[2]).unwrap_err().to_string();
        assert_eq!(
            err,
            "expected {Idle | Moving(u32)}, case 2 does not exist (2 cases)"
        );
        let err = decode_all(&ty, &[1]).unwrap_err().to_string();
        assert_eq!(
            err,
            "field \"Moving\": expected u32, input ended inside a varint"
        );
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        use AlgebraicType as T;
        let row = ProductType {
            fields: vec![
                field("id", T::U32),
                field("balance", T::I64),
                field("tags", T::Array(Box::new(T::String))),
            ],
        };
        let err = |bytes: &[u8]| decode_product(&row, bytes).unwrap_err().to_string();
        assert_eq!(
            err(&[5]),
            "field \"balance\": expected i64, input ended inside a varint"
        );
        assert_eq!(
            err(&[5, 2, 2, 1, b'a', 9]),
            "field \"tags[1]\": expected string, length 9 but 0 bytes left"
        );
        assert_eq!(
            err(&[5, 2, 0, 9, 9, 9]),
            "trailing 3 bytes after the last field"
        );
        assert_eq!(
            err(&[5, 2, 1, 2, 0xff, 0xfe]),
            "field \"tags[0]\": expected string, invalid UTF-8 \
             (invalid utf-8 sequence of 1 bytes from index 0)"
        );
        assert_eq!(
            decode_all(&T::Bool, &[2]).unwrap_err().to_string(),
            "expected bool, found byte 2, not 0 or 1"
        );
        assert_eq!(
            decode_all(&T::Option(Box::new(T::U8)), &[3])
                .unwrap_err()
                .to_string(),
            "expected Option<u8>, found byte 3, not 0 or 1"
        );
        assert!(decode_all(&T::U8, &[]).is_err());
        assert!(decode_all(&T::Identity, &[0; 31]).is_err());
    }

    #[test]
    fn rejects_overflowing_and_overlong_varints() {
        use AlgebraicType as T;
        // 2^32 does not fit in a u32; neither does a sixth byte.
        assert!(decode_all(&T::U32, &[0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
        assert!(decode_all(&T::U32, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]).is_err());
        assert_eq!(
            decode_all(&T::U32, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).unwrap(),
            Value::U32(u32::MAX)
        );
        // Zigzag of i16::MIN is u16::MAX; one more does not fit.
        assert_eq!(
            decode_all(&T::I16, &[0xFF, 0xFF, 0x03]).unwrap(),
            Value::I16(i16::MIN)
        );
        assert!(decode_all(&T::I16, &[0x80, 0x80, 0x04]).is_err());
        assert!(decode_all(&T::U64, &[0xFF; 10]).is_err());
    }

    #[test]
    fn untrusted_lengths_allocate_nothing_up_front() {
        use AlgebraicType as T;
        let huge = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        let err = decode_all(&T::Array(Box::new(T::U64)), &huge).unwrap_err();
        assert!(err.to_string().contains("bytes left"), "{err}");
        assert!(decode_all(&T::String, &huge).is_err());
        // Zero-sized elements take no bytes, so they are capped instead.
        let units = T::Array(Box::new(unit()));
        assert_eq!(
            decode_all(&units, &[3]).unwrap(),
            Value::Array(vec![Value::Product(vec![]); 3])
        );
        assert!(decode_all(&units, &huge).is_err());
        assert!(skip_value(&units, &mut &huge[..]).is_err());
    }

    // #9 item 1: `Vec<Vec<()>>` claimed 65,536 units per 3 bytes of input,
    // so a 1 MB argument could make the host allocate many gigabytes.
    #[test]
    fn zero_sized_elements_are_capped_per_value_not_per_array() {
        use AlgebraicType as T;
        let nested = T::Array(Box::new(T::Array(Box::new(unit()))));
        let full = [0x80, 0x80, 0x04]; // 65,536
        let half = [0x80, 0x80, 0x02]; // 32,768
        let mut two_halves = vec![2];
        two_halves.extend(half.iter().chain(&half));
        assert!(decode_all(&nested, &two_halves).is_ok());
        let mut many = vec![0x80, 0x08]; // 1,024 arrays of 65,536 units each
        for _ in 0..1024 {
            many.extend(full);
        }
        let err = decode_all(&nested, &many).unwrap_err().to_string();
        assert!(err.contains("over 65536"), "{err}");
        assert_eq!(
            skip_value(&nested, &mut &many[..]).unwrap_err().to_string(),
            err
        );
    }

    #[test]
    fn extreme_integers_round_trip() {
        use AlgebraicType as T;
        for (ty, value) in [
            (T::I128, Value::I128(i128::MIN)),
            (T::I128, Value::I128(i128::MAX)),
            (T::U128, Value::U128(u128::MAX)),
            (T::I16, Value::I16(i16::MIN)),
            (T::I64, Value::I64(i64::MIN)),
            (T::Timestamp, Value::Timestamp(i64::MAX)),
            (T::I8, Value::I8(i8::MIN)),
        ] {
            assert_eq!(decode_all(&ty, &bytes(&value)).unwrap(), value);
        }
    }

    /// Random types, a few levels deep.
    fn any_type() -> impl Strategy<Value = AlgebraicType> {
        use AlgebraicType as T;
        let leaf = prop_oneof![
            Just(T::Bool),
            Just(T::U8),
            Just(T::U16),
            Just(T::U32),
            Just(T::U64),
            Just(T::U128),
            Just(T::I8),
            Just(T::I16),
            Just(T::I32),
            Just(T::I64),
            Just(T::I128),
            Just(T::F32),
            Just(T::F64),
            Just(T::String),
            Just(T::Identity),
            Just(T::ConnectionId),
            Just(T::Timestamp),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|t| T::Option(Box::new(t))),
                inner.clone().prop_map(|t| T::Array(Box::new(t))),
                prop::collection::vec(inner.clone(), 0..4).prop_map(|types| {
                    T::Product(ProductType {
                        fields: types
                            .into_iter()
                            .enumerate()
                            .map(|(i, ty)| Field {
                                name: (i % 2 == 0).then(|| format!("f{i}")),
                                ty,
                            })
                            .collect(),
                    })
                }),
                prop::collection::vec(inner, 1..4).prop_map(|types| {
                    T::Sum(SumType {
                        variants: types
                            .into_iter()
                            .enumerate()
                            .map(|(i, ty)| Variant {
                                name: format!("V{i}"),
                                ty,
                            })
                            .collect(),
                    })
                }),
            ]
        })
    }

    /// Random values of type `ty`.
    fn value_of(ty: &AlgebraicType) -> BoxedStrategy<Value> {
        use AlgebraicType as T;
        match ty {
            T::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            T::U8 => any::<u8>().prop_map(Value::U8).boxed(),
            T::U16 => any::<u16>().prop_map(Value::U16).boxed(),
            T::U32 => any::<u32>().prop_map(Value::U32).boxed(),
            T::U64 => any::<u64>().prop_map(Value::U64).boxed(),
            T::U128 => any::<u128>().prop_map(Value::U128).boxed(),
            T::I8 => any::<i8>().prop_map(Value::I8).boxed(),
            T::I16 => any::<i16>().prop_map(Value::I16).boxed(),
            T::I32 => any::<i32>().prop_map(Value::I32).boxed(),
            T::I64 => any::<i64>().prop_map(Value::I64).boxed(),
            T::I128 => any::<i128>().prop_map(Value::I128).boxed(),
            T::F32 => any::<u32>()
                .prop_map(|bits| Value::F32(f32::from_bits(bits)))
                .boxed(),
            T::F64 => any::<u64>()
                .prop_map(|bits| Value::F64(f64::from_bits(bits)))
                .boxed(),
            T::String => ".{0,8}".prop_map(|s| Value::String(s.into())).boxed(),
            T::Identity => any::<[u8; 32]>().prop_map(Value::Identity).boxed(),
            T::ConnectionId => any::<[u8; 16]>().prop_map(Value::ConnectionId).boxed(),
            T::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
            T::Option(inner) => prop::option::of(value_of(inner))
                .prop_map(|v| Value::Option(v.map(Box::new)))
                .boxed(),
            T::Array(inner) => prop::collection::vec(value_of(inner), 0..4)
                .prop_map(Value::Array)
                .boxed(),
            T::Product(product) => product
                .fields
                .iter()
                .map(|f| value_of(&f.ty))
                .collect::<Vec<_>>()
                .prop_map(Value::Product)
                .boxed(),
            T::Sum(sum) => {
                let cases: Vec<_> = sum
                    .variants
                    .iter()
                    .enumerate()
                    .map(|(tag, v)| {
                        let tag = tag as u32;
                        value_of(&v.ty).prop_map(move |p| Value::Sum(tag, Box::new(p)))
                    })
                    .collect();
                prop::strategy::Union::new(cases).boxed()
            }
        }
    }

    fn typed_value() -> impl Strategy<Value = (AlgebraicType, Value)> {
        any_type().prop_flat_map(|ty| {
            let values = value_of(&ty);
            (Just(ty), values)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn encode_then_decode_round_trips((ty, value) in typed_value(), tail in any::<u8>()) {
            let mut encoded = bytes(&value);
            encoded.push(tail);
            let mut input = &encoded[..];
            prop_assert_eq!(decode_value(&ty, &mut input)?, value);
            prop_assert_eq!(input, &[tail][..]);
            let mut input = &encoded[..];
            skip_value(&ty, &mut input)?;
            prop_assert_eq!(input, &[tail][..]);
        }

        #[test]
        fn random_bytes_never_panic_and_skip_agrees_with_decode(
            ty in any_type(),
            bytes in prop::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut decoded = &bytes[..];
            let mut skipped = &bytes[..];
            let decode = decode_value(&ty, &mut decoded);
            let skip = skip_value(&ty, &mut skipped);
            prop_assert_eq!(decode.as_ref().err(), skip.as_ref().err());
            if decode.is_ok() {
                prop_assert_eq!(decoded, skipped);
            }
        }

        #[test]
        fn random_bytes_against_a_row_never_panic_and_check_agrees_with_decode(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            use AlgebraicType as T;
            let row = ProductType { fields: vec![
                field("id", T::U32),
                field("name", T::String),
                field("tags", T::Array(Box::new(T::Option(Box::new(T::I64))))),
                field("who", T::Identity),
            ]};
            let decoded = decode_product(&row, &bytes);
            let checked = check_product(&row, &bytes);
            prop_assert_eq!(decoded.err(), checked.err());
        }
    }
}
