//! Postcard encoding of [`Value`]s, driven by their [`AlgebraicType`].
//!
//! Bytes are exactly what serde + postcard 1.x produce for the matching Rust
//! types, so rows written by any guest SDK decode here. Decoding never
//! panics and never allocates more than the input could hold.

use crate::schema::{AlgebraicType, ProductType};
use crate::value::Value;

/// Why bytes did not decode as the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}expected {expected}: {problem}")]
pub struct DecodeError {
    /// Where in the value the problem is, e.g. `column "balance": `.
    path: String,
    /// The type that was being decoded.
    expected: String,
    /// What was wrong with the bytes.
    problem: String,
}

impl DecodeError {
    fn new(ty: &AlgebraicType, problem: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            expected: ty.to_string(),
            problem: problem.into(),
        }
    }

    fn trailing(count: usize) -> Self {
        Self {
            path: String::new(),
            expected: "end of input".into(),
            problem: format!("{count} trailing bytes after the last field"),
        }
    }

    /// The same error, located inside field `name`.
    fn within(mut self, name: Option<&str>, position: usize) -> Self {
        let here = match name {
            Some(name) => format!("field `{name}`: "),
            None => format!("field {position}: "),
        };
        self.path.insert_str(0, &here);
        self
    }
}

/// Decodes one value of type `ty` from the front of `input`, advancing it.
pub fn decode_value(ty: &AlgebraicType, input: &mut &[u8]) -> Result<Value, DecodeError> {
    use AlgebraicType as T;
    let err = |problem: &str| DecodeError::new(ty, problem);
    Ok(match ty {
        T::Bool => match take_byte(input).ok_or_else(|| err("input ended"))? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            other => return Err(err(&format!("byte {other} is not 0 or 1"))),
        },
        T::U8 => Value::U8(take_byte(input).ok_or_else(|| err("input ended"))?),
        T::I8 => Value::I8(take_byte(input).ok_or_else(|| err("input ended"))? as i8),
        T::U16 => Value::U16(varint(input, 16).map_err(&err)? as u16),
        T::U32 => Value::U32(varint(input, 32).map_err(&err)? as u32),
        T::U64 => Value::U64(varint(input, 64).map_err(&err)? as u64),
        T::U128 => Value::U128(varint(input, 128).map_err(&err)?),
        T::I16 => Value::I16(unzigzag(varint(input, 16).map_err(&err)?) as i16),
        T::I32 => Value::I32(unzigzag(varint(input, 32).map_err(&err)?) as i32),
        T::I64 => Value::I64(unzigzag(varint(input, 64).map_err(&err)?) as i64),
        T::I128 => Value::I128(unzigzag(varint(input, 128).map_err(&err)?)),
        T::Timestamp => Value::Timestamp(unzigzag(varint(input, 64).map_err(&err)?) as i64),
        T::F32 => Value::F32(f32::from_le_bytes(
            take_array(input).ok_or_else(|| err("input ended"))?,
        )),
        T::F64 => Value::F64(f64::from_le_bytes(
            take_array(input).ok_or_else(|| err("input ended"))?,
        )),
        T::Identity => Value::Identity(take_array(input).ok_or_else(|| err("input ended"))?),
        T::ConnectionId => {
            Value::ConnectionId(take_array(input).ok_or_else(|| err("input ended"))?)
        }
        T::String => {
            let len = length(input).map_err(&err)?;
            let bytes =
                take(input, len).ok_or_else(|| err(&format!("length {len} but input ended")))?;
            let text =
                std::str::from_utf8(bytes).map_err(|e| err(&format!("invalid UTF-8: {e}")))?;
            Value::String(text.into())
        }
        T::Option(inner) => match take_byte(input).ok_or_else(|| err("input ended"))? {
            0 => Value::Option(None),
            1 => Value::Option(Some(Box::new(decode_value(inner, input)?))),
            other => return Err(err(&format!("option tag {other} is not 0 or 1"))),
        },
        T::Array(inner) => {
            let len = length(input).map_err(&err)?;
            // Every element takes at least one byte except empty products,
            // so the remaining input bounds any honest length.
            let mut items = Vec::with_capacity(len.min(input.len()));
            for position in 0..len {
                items.push(decode_value(inner, input).map_err(|e| e.within(None, position))?);
            }
            Value::Array(items)
        }
        T::Product(product) => Value::Product(decode_fields(product, input)?),
        T::Sum(sum) => {
            let tag = varint(input, 32).map_err(&err)? as u32;
            let variant = sum.variants.get(tag as usize).ok_or_else(|| {
                err(&format!(
                    "case {tag} does not exist ({} cases)",
                    sum.variants.len()
                ))
            })?;
            let payload =
                decode_value(&variant.ty, input).map_err(|e| e.within(Some(&variant.name), 0))?;
            Value::Sum(tag, Box::new(payload))
        }
    })
}

fn decode_fields(product: &ProductType, input: &mut &[u8]) -> Result<Vec<Value>, DecodeError> {
    product
        .fields
        .iter()
        .enumerate()
        .map(|(position, field)| {
            decode_value(&field.ty, input).map_err(|e| e.within(field.name.as_deref(), position))
        })
        .collect()
}

/// Decodes a whole buffer as the fields of `ty` (a row, or an argument list).
pub fn decode_product(ty: &ProductType, bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut input = bytes;
    let fields = decode_fields(ty, &mut input)?;
    if !input.is_empty() {
        return Err(DecodeError::trailing(input.len()));
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

fn take_byte(input: &mut &[u8]) -> Option<u8> {
    let (&first, rest) = input.split_first()?;
    *input = rest;
    Some(first)
}

fn take<'a>(input: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    if input.len() < len {
        return None;
    }
    let (taken, rest) = input.split_at(len);
    *input = rest;
    Some(taken)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    take(input, N).map(|bytes| bytes.try_into().expect("take returned N bytes"))
}

/// Reads a LEB128 varint of at most `bits` bits, rejecting overlong or overflowing encodings.
fn varint(input: &mut &[u8], bits: u32) -> Result<u128, &'static str> {
    let max_bytes = bits.div_ceil(7);
    let mut value: u128 = 0;
    for i in 0..max_bytes {
        let byte = take_byte(input).ok_or("input ended inside a varint")?;
        let shift = 7 * i;
        let chunk = u128::from(byte & 0x7f);
        if shift + 7 > bits && chunk >> (bits - shift) != 0 {
            return Err("varint overflows the type");
        }
        value |= chunk << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint is too long for the type")
}

/// Reads a length prefix (a u64 varint that fits in usize).
fn length(input: &mut &[u8]) -> Result<usize, &'static str> {
    usize::try_from(varint(input, 64)?).map_err(|_| "length does not fit in memory")
}

fn unzigzag(n: u128) -> i128 {
    ((n >> 1) as i128) ^ -((n & 1) as i128)
}

fn zigzag(n: i128) -> u128 {
    ((n << 1) ^ (n >> 127)) as u128
}

fn put_varint(out: &mut Vec<u8>, mut n: u128) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, SumType, Variant};

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

    #[test]
    fn known_encodings() {
        use AlgebraicType as T;
        let cases: Vec<(T, Value, Vec<u8>)> = vec![
            (T::U32, Value::U32(300), vec![0xAC, 0x02]),
            (T::I32, Value::I32(-1), vec![0x01]),
            (T::I64, Value::I64(1), vec![0x02]),
            (T::I8, Value::I8(-1), vec![0xFF]),
            (T::String, Value::String("hi".into()), vec![2, b'h', b'i']),
            (
                T::Option(Box::new(T::U8)),
                Value::Option(Some(Box::new(Value::U8(5)))),
                vec![1, 5],
            ),
            (T::Bool, Value::Bool(true), vec![1]),
            (T::F32, Value::F32(1.0), 1.0f32.to_le_bytes().to_vec()),
            (
                T::Array(Box::new(T::U16)),
                Value::Array(vec![Value::U16(1), Value::U16(128)]),
                vec![2, 1, 0x80, 1],
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
                    ty: AlgebraicType::Product(ProductType::default()),
                },
                Variant {
                    name: "Moving".into(),
                    ty: AlgebraicType::U32,
                },
            ],
        });
        assert_eq!(
            decode_all(&ty, &[1, 7]).unwrap(),
            Value::Sum(1, Box::new(Value::U32(7)))
        );
        assert_eq!(
            decode_all(&ty, &[0]).unwrap(),
            Value::Sum(0, Box::new(Value::Product(vec![])))
        );
        assert!(
            decode_all(&ty, &[2])
                .unwrap_err()
                .to_string()
                .contains("case 2 does not exist")
        );
    }

    #[test]
    fn rejects_bad_bytes_with_a_located_message() {
        let row = ProductType {
            fields: vec![
                Field {
                    name: Some("id".into()),
                    ty: AlgebraicType::U32,
                },
                Field {
                    name: Some("balance".into()),
                    ty: AlgebraicType::I64,
                },
            ],
        };
        let err = decode_product(&row, &[5]).unwrap_err().to_string();
        assert!(
            err.contains("field `balance`") && err.contains("i64"),
            "{err}"
        );
        let err = decode_product(&row, &[5, 2, 9, 9]).unwrap_err().to_string();
        assert!(err.contains("2 trailing bytes"), "{err}");
        assert!(decode_all(&AlgebraicType::Bool, &[2]).is_err());
        assert!(decode_all(&AlgebraicType::U8, &[]).is_err());
        // 2^32 does not fit in a u32; neither does an overlong encoding.
        assert!(decode_all(&AlgebraicType::U32, &[0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
        assert!(decode_all(&AlgebraicType::U32, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]).is_err());
        assert!(decode_all(&AlgebraicType::String, &[2, 0xff, 0xfe]).is_err());
        assert!(decode_all(&AlgebraicType::String, &[9, b'a']).is_err());
        // A huge claimed array length with no data fails without allocating it.
        assert!(
            decode_all(
                &AlgebraicType::Array(Box::new(AlgebraicType::U64)),
                &[0xff, 0xff, 0xff, 0xff, 0x0f]
            )
            .is_err()
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
        ] {
            assert_eq!(decode_all(&ty, &bytes(&value)).unwrap(), value);
        }
    }
}
