//! Conversion between JSON and the postcard bytes of a module's values,
//! driven by their [`AlgebraicType`]: reducer arguments arrive as JSON (HTTP
//! API, CLI) and rows leave as JSON.
//!
//! See [`json_to_value`] for how each type maps to JSON.
//!
//! Integers are range-checked against their type and floats must not
//! overflow to infinity. Reading never panics, and recurses only as deep as
//! the type (at most [`MAX_NESTING_DEPTH`](crate::MAX_NESTING_DEPTH) levels
//! for a validated schema), however deeply the JSON nests. Bytes are made and read by the
//! postcard codec ([`encode_value`], [`decode_value`]), so they are exactly
//! what a guest writes. Errors name where the problem is and what type was
//! expected, e.g. ``argument `to`.`id`: expected u32, found 4294967296 (out of range)``.

use std::fmt;
use std::num::{FpCategory, IntErrorKind};

use serde_json::{Map, Number, Value as Json};

use crate::codec::{DecodeError, decode_value, encode_value};
use crate::schema::{AlgebraicType, Field, ProductType, SumType};
use crate::value::Value;

/// 2^53: a float of at least this magnitude may be a rounded integer
/// (2^53 + 1 is read as 2^53), so only integral floats below it are exact.
const INEXACT_FLOAT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// How many characters of a string an error message quotes.
const QUOTED_CHARS: usize = 40;

/// Why JSON could not be converted to a value, or bytes to JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The JSON does not fit the type at `path`, e.g.
    /// ``argument `amount`: expected i64, found string "abc"``.
    #[error("{}{problem}", Location(.path))]
    Invalid {
        /// Where the problem is, outermost first; empty at the top level.
        path: Vec<PathSegment>,
        /// What is wrong there.
        problem: JsonProblem,
    },
    /// The bytes are not a value of the type (they did not come from a
    /// module of this schema).
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// One step of the path to a problem in JSON input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A reducer argument, by name (`#0`, `#1`, ... for unnamed parameters).
    Argument(String),
    /// A named field of a struct.
    Field(String),
    /// An element of an array, or a field of a tuple, by position.
    Element(usize),
    /// The payload of a sum's variant, by the variant's name.
    Variant(String),
}

/// What is wrong with JSON input at some place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonProblem {
    /// The JSON is not a value of the expected type.
    #[error("expected {expected}, found {found}")]
    Mismatch {
        /// The expected type, with a hint at its JSON form where that is not obvious.
        expected: String,
        /// A short description of the JSON found.
        found: String,
    },
    /// A number outside the range of its type (`300` for a `u8`).
    #[error("expected {expected}, found {found} (out of range)")]
    OutOfRange {
        /// The expected type.
        expected: String,
        /// The number found.
        found: String,
    },
    /// An integer given as a JSON float too large to be exact (2^53 or beyond).
    #[error(
        "expected {expected}, found {found} (too large to be exact as a JSON number; \
         write it as a decimal string)"
    )]
    Inexact {
        /// The expected integer type.
        expected: String,
        /// The number found.
        found: String,
    },
    /// An array of reducer arguments of the wrong length, e.g.
    /// `expected 2 arguments (from: u32, to: u32), found 3`.
    #[error("expected {}, found {found}", count_arguments(*.expected, .params))]
    ArgumentCount {
        /// How many parameters the reducer takes.
        expected: usize,
        /// The parameters, e.g. `(from: u32, to: u32)`.
        params: String,
        /// How many arguments were given.
        found: usize,
    },
    /// An object of arguments names a parameter the reducer does not have.
    #[error("unknown argument `{name}`; the parameters are {params}")]
    UnknownArgument {
        /// The unknown name.
        name: String,
        /// The parameters, e.g. `(from: u32, to: u32)`.
        params: String,
    },
    /// An object of arguments lacks a parameter.
    #[error("missing argument `{name}` of type {ty}")]
    MissingArgument {
        /// The parameter's name.
        name: String,
        /// Its type.
        ty: String,
    },
    /// An object names a field the struct does not have.
    #[error("unknown field `{name}`; the fields are {fields}")]
    UnknownField {
        /// The unknown name.
        name: String,
        /// The struct's fields, e.g. `(x: i32, y: i32)`.
        fields: String,
    },
    /// An object lacks one of the struct's fields.
    #[error("missing field `{name}` of type {ty}")]
    MissingField {
        /// The field's name.
        name: String,
        /// Its type.
        ty: String,
    },
    /// A sum value names a variant the type does not have.
    #[error("unknown variant `{name}`; the variants are {variants}")]
    UnknownVariant {
        /// The unknown name.
        name: String,
        /// The sum type, e.g. `{Idle | Moving(u32)}`.
        variants: String,
    },
    /// A variant that carries a payload was given as a plain string.
    #[error("variant `{name}` needs a payload: write {{\"{name}\": {ty}}}")]
    MissingPayload {
        /// The variant's name.
        name: String,
        /// Its payload's type.
        ty: String,
    },
}

/// Encodes reducer arguments given as JSON into the postcard bytes of the
/// reducer's parameters.
///
/// The arguments are a JSON array (positional) or an object keyed by
/// parameter name; a reducer with exactly one parameter also takes that
/// argument's value on its own (`"hi"` for `send(text: String)`). An object
/// whose keys are all parameter names is always read as named arguments. A
/// wrong number of arguments, and unknown or missing names, are errors.
/// Each argument's value is read as [`json_to_value`] describes.
pub fn json_to_args(params: &ProductType, json: &Json) -> Result<Vec<u8>, JsonError> {
    let names_params = |map: &Map<String, Json>| {
        map.keys()
            .all(|key| params.fields.iter().any(|f| f.name.as_ref() == Some(key)))
    };
    let values = match (json, params.fields.as_slice()) {
        (Json::Array(_), _) => members(Members::Arguments, params, json)?,
        (Json::Object(map), _) if names_params(map) => members(Members::Arguments, params, json)?,
        (_, [param]) if !json.is_object() || takes_object(&param.ty) => {
            let value = from_json(&param.ty, json)
                .map_err(|e| e.within(Members::Arguments.segment(param, 0)))?;
            vec![value]
        }
        (Json::Object(_), _) => members(Members::Arguments, params, json)?,
        _ => {
            return Err(JsonError::new(JsonProblem::ArgumentCount {
                expected: params.fields.len(),
                params: params.to_string(),
                found: 1,
            }));
        }
    };
    Ok(encode(&Value::Product(values)))
}

/// Encodes a JSON value of type `ty` into its postcard bytes.
///
/// Types map to JSON like this ([`value_to_json`] writes the middle column
/// and every function reads both):
///
/// | type | JSON written | JSON also read |
/// |---|---|---|
/// | `bool` | `true` / `false` | |
/// | `u8` ... `u64`, `i8` ... `i64` | a number | a decimal string (`"42"`), an integral float (`42.0`) below 2^53 in magnitude |
/// | `u128`, `i128` | a number from `i64::MIN` to `u64::MAX`, else a decimal string | as for the other integers |
/// | `f32`, `f64` | a number; `"NaN"`, `"inf"`, `"-inf"` when not finite | any string Rust parses as a float (`"1.5"`, `"infinity"`) |
/// | `string` | a string | |
/// | `identity` | `"0x"` and 64 lowercase hex digits | without `0x`, upper case |
/// | `connection_id` | `"0x"` and 32 lowercase hex digits | without `0x`, upper case |
/// | `timestamp` | microseconds since the Unix epoch, a number | a decimal string; an RFC 3339 date-time (`"2024-05-01T12:30:00.25+02:00"`) |
/// | `Option<T>` | `null` or the value | |
/// | `Option<Option<T>>` | `null` or `{"some": value}` (a bare value would be ambiguous) | |
/// | `Array<T>` | an array | |
/// | struct (every field named) | an object keyed by field name | an array of the fields in order |
/// | tuple (some field unnamed) | an array of the fields in order | |
/// | unit (no fields) | `{}` | `[]` |
/// | sum | `{"Variant": payload}`; a unit variant as the string `"Variant"` | `{"Variant": {}}` for a unit variant |
///
/// Integers are range-checked (`300` is not a `u8`); a finite number too
/// large for a float type is an error; every NaN reads as the same NaN. An
/// RFC 3339 timestamp's digits beyond microseconds are dropped, and leap
/// seconds (`:60`) are refused.
pub fn json_to_value(ty: &AlgebraicType, json: &Json) -> Result<Vec<u8>, JsonError> {
    Ok(encode(&from_json(ty, json)?))
}

/// Decodes the postcard bytes of one value of type `ty` (all of `bytes`) as
/// JSON, as [`json_to_value`] describes.
pub fn value_to_json(ty: &AlgebraicType, bytes: &[u8]) -> Result<Json, JsonError> {
    let mut input = bytes;
    let value = decode_value(ty, &mut input)?;
    if !input.is_empty() {
        return Err(DecodeError::trailing(input.len(), "value").into());
    }
    Ok(to_json(ty, &value))
}

/// Decodes a row's postcard bytes as a JSON object keyed by column name
/// (`#0`, `#1`, ... for a column without a name), each value as
/// [`json_to_value`] describes.
///
/// Keys iterate in the order of `serde_json`'s map (sorted, unless its
/// `preserve_order` feature is on); use the schema's column order to show
/// columns in table order.
pub fn row_to_json(columns: &ProductType, bytes: &[u8]) -> Result<Json, JsonError> {
    let mut input = bytes;
    let mut row = Map::new();
    for (position, column) in columns.fields.iter().enumerate() {
        let value = decode_value(&column.ty, &mut input)
            .map_err(|e| e.in_field(column.name.as_deref(), position).in_columns())?;
        let key = match &column.name {
            Some(name) => name.clone(),
            None => format!("#{position}"),
        };
        row.insert(key, to_json(&column.ty, &value));
    }
    if !input.is_empty() {
        return Err(DecodeError::trailing(input.len(), "column").into());
    }
    Ok(Json::Object(row))
}

impl JsonError {
    fn new(problem: JsonProblem) -> Self {
        JsonError::Invalid {
            path: Vec::new(),
            problem,
        }
    }

    /// The same error, one level further in: inside `segment`.
    fn within(mut self, segment: PathSegment) -> Self {
        if let JsonError::Invalid { path, .. } = &mut self {
            path.insert(0, segment);
        }
        self
    }
}

/// Writes a path as ``argument `to`.`id`[2]: `` (nothing for an empty path).
struct Location<'a>(&'a [PathSegment]);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((first, rest)) = self.0.split_first() else {
            return Ok(());
        };
        match first {
            PathSegment::Argument(name) => write!(f, "argument `{name}`")?,
            PathSegment::Field(name) => write!(f, "field `{name}`")?,
            PathSegment::Element(position) => write!(f, "element [{position}]")?,
            PathSegment::Variant(name) => write!(f, "variant `{name}`")?,
        }
        for segment in rest {
            match segment {
                PathSegment::Argument(name)
                | PathSegment::Field(name)
                | PathSegment::Variant(name) => write!(f, ".`{name}`")?,
                PathSegment::Element(position) => write!(f, "[{position}]")?,
            }
        }
        f.write_str(": ")
    }
}

/// `2 arguments (from: u32, to: u32)`, `1 argument (text: string)`, `no arguments`.
fn count_arguments(count: usize, params: &str) -> String {
    match count {
        0 => "no arguments".to_owned(),
        1 => format!("1 argument {params}"),
        n => format!("{n} arguments {params}"),
    }
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

/// The expected type as error messages show it, with a hint at the JSON
/// form where that is not obvious.
fn expectation(ty: &AlgebraicType) -> String {
    use AlgebraicType as T;
    match ty {
        T::Identity => "identity (64 hex digits, optionally after 0x)".to_owned(),
        T::ConnectionId => "connection_id (32 hex digits, optionally after 0x)".to_owned(),
        T::Timestamp => {
            "timestamp (microseconds since the Unix epoch, or an RFC 3339 date-time)".to_owned()
        }
        T::Option(inner) if matches!(**inner, T::Option(_)) => {
            format!("{ty} (null or {{\"some\": value}})")
        }
        T::Sum(_) => format!("{ty} (\"Variant\" or {{\"Variant\": payload}})"),
        ty => ty.to_string(),
    }
}

/// A short description of a JSON value for error messages.
fn describe(json: &Json) -> String {
    match json {
        Json::Null => "null".to_owned(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => format!("string {}", quote(s)),
        Json::Array(items) => match items.len() {
            1 => "an array of 1 element".to_owned(),
            n => format!("an array of {n} elements"),
        },
        Json::Object(map) if map.is_empty() => "an empty object".to_owned(),
        Json::Object(map) => {
            let keys: Vec<String> = map.keys().take(3).map(|key| quote(key)).collect();
            let more = if map.len() > 3 { ", ..." } else { "" };
            format!("an object with keys {}{more}", keys.join(", "))
        }
    }
}

/// `text` quoted and escaped, cut short if it is long.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{:?}...", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// `text`, cut short if it is long (for names quoted in backticks).
fn clip(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

fn mismatch(ty: &AlgebraicType, json: &Json) -> JsonError {
    JsonError::new(JsonProblem::Mismatch {
        expected: expectation(ty),
        found: describe(json),
    })
}

fn out_of_range(ty: &AlgebraicType, json: &Json) -> JsonError {
    JsonError::new(JsonProblem::OutOfRange {
        expected: expectation(ty),
        found: describe(json),
    })
}

/// Reads a JSON value of type `ty`.
fn from_json(ty: &AlgebraicType, json: &Json) -> Result<Value, JsonError> {
    use AlgebraicType as T;
    match ty {
        T::Bool => json
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| mismatch(ty, json)),
        T::U8
        | T::U16
        | T::U32
        | T::U64
        | T::U128
        | T::I8
        | T::I16
        | T::I32
        | T::I64
        | T::I128
        | T::Timestamp => integer(ty, json),
        T::F32 => float(ty, json, |wide| wide as f32, f32::classify, f32::NAN).map(Value::F32),
        T::F64 => float(ty, json, |wide| wide, f64::classify, f64::NAN).map(Value::F64),
        T::String => json
            .as_str()
            .map(|s| Value::String(s.into()))
            .ok_or_else(|| mismatch(ty, json)),
        T::Identity => hex(json)
            .map(Value::Identity)
            .ok_or_else(|| mismatch(ty, json)),
        T::ConnectionId => hex(json)
            .map(Value::ConnectionId)
            .ok_or_else(|| mismatch(ty, json)),
        T::Option(inner) => {
            let payload = match json {
                Json::Null => return Ok(Value::Option(None)),
                // `null` would be ambiguous, so `Some` is spelled out.
                _ if matches!(**inner, T::Option(_)) => match single_entry(json) {
                    Some(("some", payload)) => payload,
                    _ => return Err(mismatch(ty, json)),
                },
                _ => json,
            };
            Ok(Value::Option(Some(Box::new(from_json(inner, payload)?))))
        }
        T::Array(element) => {
            let Json::Array(items) = json else {
                return Err(mismatch(ty, json));
            };
            let items = items
                .iter()
                .enumerate()
                .map(|(position, item)| {
                    from_json(element, item).map_err(|e| e.within(PathSegment::Element(position)))
                })
                .collect::<Result<_, _>>()?;
            Ok(Value::Array(items))
        }
        T::Product(product) => members(Members::Fields, product, json).map(Value::Product),
        T::Sum(sum) => variant(ty, sum, json),
    }
}

/// The fields of a product, or the arguments of a reducer.
#[derive(Clone, Copy)]
enum Members {
    Arguments,
    Fields,
}

impl Members {
    /// The path segment of member `field` at `position`.
    fn segment(self, field: &Field, position: usize) -> PathSegment {
        match (self, &field.name) {
            (Members::Arguments, Some(name)) => PathSegment::Argument(name.clone()),
            (Members::Arguments, None) => PathSegment::Argument(format!("#{position}")),
            (Members::Fields, Some(name)) => PathSegment::Field(name.clone()),
            (Members::Fields, None) => PathSegment::Element(position),
        }
    }
}

/// Reads the members of `product` from a JSON array (in order) or, when
/// every member is named, from an object keyed by name.
fn members(kind: Members, product: &ProductType, json: &Json) -> Result<Vec<Value>, JsonError> {
    let fields = &product.fields;
    let member = |position: usize, field: &Field, item: &Json| {
        from_json(&field.ty, item).map_err(|e| e.within(kind.segment(field, position)))
    };
    let names: Option<Vec<&str>> = fields.iter().map(|f| f.name.as_deref()).collect();
    match (json, names) {
        (Json::Array(items), _) if items.len() == fields.len() => fields
            .iter()
            .zip(items)
            .enumerate()
            .map(|(position, (field, item))| member(position, field, item))
            .collect(),
        (Json::Object(map), Some(names)) => {
            if let Some(unknown) = map.keys().find(|key| !names.contains(&key.as_str())) {
                let name = clip(unknown);
                return Err(JsonError::new(match kind {
                    Members::Arguments => JsonProblem::UnknownArgument {
                        name,
                        params: product.to_string(),
                    },
                    Members::Fields => JsonProblem::UnknownField {
                        name,
                        fields: product.to_string(),
                    },
                }));
            }
            fields
                .iter()
                .zip(names)
                .enumerate()
                .map(|(position, (field, name))| match map.get(name) {
                    Some(item) => member(position, field, item),
                    None => {
                        let (name, ty) = (name.to_owned(), field.ty.to_string());
                        Err(JsonError::new(match kind {
                            Members::Arguments => JsonProblem::MissingArgument { name, ty },
                            Members::Fields => JsonProblem::MissingField { name, ty },
                        }))
                    }
                })
                .collect()
        }
        (Json::Array(items), _) if matches!(kind, Members::Arguments) => {
            Err(JsonError::new(JsonProblem::ArgumentCount {
                expected: fields.len(),
                params: product.to_string(),
                found: items.len(),
            }))
        }
        _ => Err(mismatch(&AlgebraicType::Product(product.clone()), json)),
    }
}

/// Whether a lone reducer argument of type `ty` may be a JSON object.
fn takes_object(ty: &AlgebraicType) -> bool {
    match ty {
        AlgebraicType::Product(product) => product.fields.iter().all(|f| f.name.is_some()),
        AlgebraicType::Sum(_) => true,
        AlgebraicType::Option(inner) => takes_object(inner),
        _ => false,
    }
}

/// The key and value of a JSON object with exactly one entry.
fn single_entry(json: &Json) -> Option<(&str, &Json)> {
    match json {
        Json::Object(map) if map.len() == 1 => map.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

/// Whether `ty` is the empty product: a unit variant's payload.
fn is_unit(ty: &AlgebraicType) -> bool {
    matches!(ty, AlgebraicType::Product(p) if p.fields.is_empty())
}

/// Reads `{"Variant": payload}`, or `"Variant"` for a unit variant.
fn variant(ty: &AlgebraicType, sum: &SumType, json: &Json) -> Result<Value, JsonError> {
    let (name, payload) = match (json, single_entry(json)) {
        (Json::String(name), _) => (name.as_str(), None),
        (_, Some((name, payload))) => (name, Some(payload)),
        _ => return Err(mismatch(ty, json)),
    };
    let Some((variant, tag)) = sum
        .variants
        .iter()
        .zip(0u32..)
        .find(|(v, _)| v.name == name)
    else {
        return Err(JsonError::new(JsonProblem::UnknownVariant {
            name: clip(name),
            variants: ty.to_string(),
        }));
    };
    let payload = match payload {
        Some(payload) => from_json(&variant.ty, payload)
            .map_err(|e| e.within(PathSegment::Variant(variant.name.clone())))?,
        None if is_unit(&variant.ty) => Value::Product(Vec::new()),
        None => {
            return Err(JsonError::new(JsonProblem::MissingPayload {
                name: variant.name.clone(),
                ty: variant.ty.to_string(),
            }));
        }
    };
    Ok(Value::Sum(tag, Box::new(payload)))
}

/// Reads `N` bytes written as `2 * N` hex digits, optionally after `0x`.
fn hex<const N: usize>(json: &Json) -> Option<[u8; N]> {
    let text = json.as_str()?;
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text)
        .as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |digit: u8| char::from(digit).to_digit(16);
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = u8::try_from((nibble(*high)? << 4) | nibble(*low)?).ok()?;
    }
    Some(bytes)
}

/// An integer read from JSON, before it is checked against its type.
#[derive(Clone, Copy)]
enum Integer {
    NonNegative(u128),
    Negative(i128),
}

impl Integer {
    fn signed(n: i128) -> Self {
        u128::try_from(n).map_or(Integer::Negative(n), Integer::NonNegative)
    }
}

/// Reads an integer type (or a timestamp) from a number or a decimal string
/// (or, for a timestamp, an RFC 3339 date-time).
fn integer(ty: &AlgebraicType, json: &Json) -> Result<Value, JsonError> {
    let n = match json {
        Json::Number(n) => number_integer(ty, json, n)?,
        Json::String(text) => match decimal(text) {
            Ok(n) => n,
            Err(IntErrorKind::PosOverflow | IntErrorKind::NegOverflow) => {
                return Err(out_of_range(ty, json));
            }
            Err(_) => {
                return match ty {
                    AlgebraicType::Timestamp => rfc3339_micros(text).map(Value::Timestamp),
                    _ => None,
                }
                .ok_or_else(|| mismatch(ty, json));
            }
        },
        _ => return Err(mismatch(ty, json)),
    };
    fit(ty, n).ok_or_else(|| out_of_range(ty, json))
}

/// The integer a JSON number holds; floats only when integral and exact.
fn number_integer(ty: &AlgebraicType, json: &Json, n: &Number) -> Result<Integer, JsonError> {
    if let Some(n) = n.as_u64() {
        return Ok(Integer::NonNegative(n.into()));
    }
    if let Some(n) = n.as_i64() {
        return Ok(Integer::signed(n.into()));
    }
    // A float, or an integer beyond 64 bits (which serde_json reads as a float).
    let float = n
        .as_f64()
        .filter(|f| f.fract() == 0.0)
        .ok_or_else(|| mismatch(ty, json))?;
    // Casts saturate, which is enough to tell in range from out of range.
    let n = if float < 0.0 {
        Integer::Negative(float as i128)
    } else {
        Integer::NonNegative(float as u128)
    };
    if float.abs() >= INEXACT_FLOAT_INTEGER {
        return Err(match fit(ty, n) {
            Some(_) => JsonError::new(JsonProblem::Inexact {
                expected: expectation(ty),
                found: describe(json),
            }),
            None => out_of_range(ty, json),
        });
    }
    Ok(n)
}

/// Parses a decimal integer of any size that `u128` or `i128` holds.
fn decimal(text: &str) -> Result<Integer, IntErrorKind> {
    match text.parse::<u128>() {
        Ok(n) => Ok(Integer::NonNegative(n)),
        Err(_) => text
            .parse::<i128>()
            .map(Integer::signed)
            .map_err(|e| *e.kind()),
    }
}

/// `n` as a value of the integer type `ty`, if it is in range.
fn fit(ty: &AlgebraicType, n: Integer) -> Option<Value> {
    use AlgebraicType as T;
    let unsigned = match n {
        Integer::NonNegative(n) => Some(n),
        Integer::Negative(_) => None,
    };
    let signed = match n {
        Integer::NonNegative(n) => i128::try_from(n).ok(),
        Integer::Negative(n) => Some(n),
    };
    Some(match ty {
        T::U8 => Value::U8(unsigned?.try_into().ok()?),
        T::U16 => Value::U16(unsigned?.try_into().ok()?),
        T::U32 => Value::U32(unsigned?.try_into().ok()?),
        T::U64 => Value::U64(unsigned?.try_into().ok()?),
        T::U128 => Value::U128(unsigned?),
        T::I8 => Value::I8(signed?.try_into().ok()?),
        T::I16 => Value::I16(signed?.try_into().ok()?),
        T::I32 => Value::I32(signed?.try_into().ok()?),
        T::I64 => Value::I64(signed?.try_into().ok()?),
        T::I128 => Value::I128(signed?),
        T::Timestamp => Value::Timestamp(signed?.try_into().ok()?),
        _ => return None,
    })
}

/// Reads a float from a number or a string (`"NaN"`, `"inf"`, `"-inf"`,
/// `"1.5"`); a finite number that overflows the type is out of range, and
/// every NaN reads as the one `nan`.
fn float<F: std::str::FromStr + Copy>(
    ty: &AlgebraicType,
    json: &Json,
    from_f64: fn(f64) -> F,
    classify: fn(F) -> FpCategory,
    nan: F,
) -> Result<F, JsonError> {
    let value = match json {
        Json::Number(n) => n.as_f64().map(from_f64),
        Json::String(text) => text.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| mismatch(ty, json))?;
    let says_infinite = json.as_str().is_some_and(|text| {
        let unsigned = text.trim_start_matches(['+', '-']);
        unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity")
    });
    match classify(value) {
        FpCategory::Nan => Ok(nan),
        FpCategory::Infinite if !says_infinite => Err(out_of_range(ty, json)),
        _ => Ok(value),
    }
}

/// Microseconds since the Unix epoch of an RFC 3339 date-time such as
/// `2024-05-01T12:30:00Z` or `2024-05-01t14:30:00.250+02:00`. Fraction
/// digits beyond microseconds are dropped; leap seconds (`:60`) are refused.
fn rfc3339_micros(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |at: usize, len: usize| digits(bytes.get(at..at + len)?);
    let separated = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')]
        .iter()
        .all(|(at, separator)| bytes.get(*at) == Some(separator));
    if !separated || !matches!(bytes.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    let mut rest = bytes.get(19..)?;
    let mut micros = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        let (fraction, after) = fraction.split_at(count);
        if fraction.is_empty() {
            return None;
        }
        micros = fraction
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(6)
            .fold(0, |n, &digit| n * 10 + i64::from(digit - b'0'));
        rest = after;
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 60 + minutes;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let days_in_month = *month_days.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    Some(seconds * 1_000_000 + micros)
}

/// The number a run of ASCII digits spells (at most 4 here), or `None`.
fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0, |n, &digit| {
        digit
            .is_ascii_digit()
            .then(|| n * 10 + i64::from(digit - b'0'))
    })
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Writes a decoded value of type `ty` as JSON. The value came from the
/// decoder, so it has the type's shape; were it not to, names fall back to
/// positions rather than anything panicking.
fn to_json(ty: &AlgebraicType, value: &Value) -> Json {
    use AlgebraicType as T;
    match value {
        Value::Bool(v) => Json::Bool(*v),
        Value::U8(v) => Json::from(*v),
        Value::U16(v) => Json::from(*v),
        Value::U32(v) => Json::from(*v),
        Value::U64(v) => Json::from(*v),
        Value::U128(v) => {
            u64::try_from(*v).map_or_else(|_| Json::String(v.to_string()), Json::from)
        }
        Value::I8(v) => Json::from(*v),
        Value::I16(v) => Json::from(*v),
        Value::I32(v) => Json::from(*v),
        Value::I64(v) | Value::Timestamp(v) => Json::from(*v),
        Value::I128(v) => i64::try_from(*v)
            .map(Json::from)
            .or_else(|_| u64::try_from(*v).map(Json::from))
            .unwrap_or_else(|_| Json::String(v.to_string())),
        Value::F32(v) => float_json(shortest_widening(*v)),
        Value::F64(v) => float_json(*v),
        Value::String(v) => Json::String(v.to_string()),
        Value::Identity(v) => Json::String(hex_string(v)),
        Value::ConnectionId(v) => Json::String(hex_string(v)),
        Value::Option(None) => Json::Null,
        Value::Option(Some(payload)) => match ty {
            T::Option(inner) if matches!(**inner, T::Option(_)) => {
                entry("some".to_owned(), to_json(inner, payload))
            }
            T::Option(inner) => to_json(inner, payload),
            _ => to_json(ty, payload),
        },
        Value::Array(items) => {
            let element = match ty {
                T::Array(element) => element,
                _ => ty,
            };
            Json::Array(items.iter().map(|item| to_json(element, item)).collect())
        }
        Value::Product(values) => {
            let fields = match ty {
                T::Product(product) => product.fields.as_slice(),
                _ => &[],
            };
            let field_ty = |position: usize| fields.get(position).map_or(ty, |f| &f.ty);
            let names: Option<Vec<&str>> = fields.iter().map(|f| f.name.as_deref()).collect();
            match names {
                Some(names) if names.len() == values.len() => Json::Object(
                    names
                        .iter()
                        .zip(values)
                        .enumerate()
                        .map(|(i, (name, value))| ((*name).to_owned(), to_json(field_ty(i), value)))
                        .collect(),
                ),
                _ => Json::Array(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, value)| to_json(field_ty(i), value))
                        .collect(),
                ),
            }
        }
        Value::Sum(tag, payload) => {
            let variant = match ty {
                T::Sum(sum) => usize::try_from(*tag).ok().and_then(|t| sum.variants.get(t)),
                _ => None,
            };
            match variant {
                Some(variant) if is_unit(&variant.ty) => Json::String(variant.name.clone()),
                Some(variant) => entry(variant.name.clone(), to_json(&variant.ty, payload)),
                None => entry(tag.to_string(), to_json(ty, payload)),
            }
        }
    }
}

/// A JSON object with one entry.
fn entry(key: String, value: Json) -> Json {
    Json::Object(Map::from_iter([(key, value)]))
}

/// A float as a JSON number, or `"NaN"`, `"inf"` or `"-inf"`.
fn float_json(v: f64) -> Json {
    match Number::from_f64(v) {
        Some(n) => Json::Number(n),
        None if v.is_nan() => Json::String("NaN".to_owned()),
        None if v > 0.0 => Json::String("inf".to_owned()),
        None => Json::String("-inf".to_owned()),
    }
}

/// The `f64` of the shortest decimal that reads back as `v`, so that 0.1f32
/// shows as `0.1` rather than `0.10000000149011612`. In the rare cases where
/// that decimal, rounded to `f64` and then to `f32`, would not give `v` back
/// (double rounding, e.g. 7.038531e-26), `v` exactly.
fn shortest_widening(v: f32) -> f64 {
    let exact = f64::from(v);
    let short = format!("{v:e}").parse::<f64>().unwrap_or(exact);
    if (short as f32).to_bits() == v.to_bits() {
        short
    } else {
        exact
    }
}

/// `0x` followed by the bytes in lowercase hex.
fn hex_string(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("0x{digits}")
}
