//! The shared postcard test vectors, `tests/vectors/postcard.json`: each is
//! a type, a value (in the canonical text below) and the bytes the Rust
//! implementation (the `postcard` crate, which the host and the Rust SDK
//! use) encodes it to. Every SDK's codec is tested against the file: the
//! C++ one in `cpp_parity.rs`.
//!
//! This test regenerates the vectors and fails if the file differs; run it
//! with `WORLDLINE_WRITE_VECTORS=1` to rewrite the file after adding some.
//!
//! Value text: booleans `true`/`false`; integers in decimal; floats as
//! `bits:` and their IEEE bits in hex; strings in double quotes with `"`
//! and `\` escaped by `\`; identities and connection ids in hex;
//! timestamps as decimal microseconds; `none`/`some(v)`; arrays `[a,b]`;
//! products `(a,b)` (the unit `()`); sums `#index(payload)`.

use serde::Serialize;

/// One vector: the type's name, the value's text and its postcard bytes.
struct Vector {
    ty: &'static str,
    value: String,
    bytes: Vec<u8>,
}

/// A value and how it reads as text.
trait Text {
    fn text(&self) -> String;
}

macro_rules! decimal {
    ($($t:ty),*) => {$(impl Text for $t { fn text(&self) -> String { self.to_string() } })*};
}
decimal!(bool, u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

impl Text for f32 {
    fn text(&self) -> String {
        format!("bits:{:08x}", self.to_bits())
    }
}

impl Text for f64 {
    fn text(&self) -> String {
        format!("bits:{:016x}", self.to_bits())
    }
}

impl Text for String {
    fn text(&self) -> String {
        let mut out = String::from('"');
        for c in self.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

impl<T: Text> Text for Option<T> {
    fn text(&self) -> String {
        match self {
            None => "none".into(),
            Some(v) => format!("some({})", v.text()),
        }
    }
}

impl<T: Text> Text for Vec<T> {
    fn text(&self) -> String {
        let items: Vec<String> = self.iter().map(Text::text).collect();
        format!("[{}]", items.join(","))
    }
}

impl Text for () {
    fn text(&self) -> String {
        "()".into()
    }
}

macro_rules! tuple_text {
    ($($name:ident . $i:tt),*) => {
        impl<$($name: Text),*> Text for ($($name,)*) {
            fn text(&self) -> String {
                let items: Vec<String> = vec![$(self.$i.text()),*];
                format!("({})", items.join(","))
            }
        }
    };
}
tuple_text!(A.0, B.1);
tuple_text!(A.0, B.1, C.2);
tuple_text!(A.0, B.1, C.2, D.3);

/// `identity`: 32 raw bytes.
#[derive(Serialize)]
struct Identity([u8; 32]);

/// `connection-id`: 16 raw bytes.
#[derive(Serialize)]
struct ConnectionId([u8; 16]);

/// `timestamp`: like an i64.
#[derive(Serialize)]
struct Timestamp(i64);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Text for Identity {
    fn text(&self) -> String {
        hex(&self.0)
    }
}

impl Text for ConnectionId {
    fn text(&self) -> String {
        hex(&self.0)
    }
}

impl Text for Timestamp {
    fn text(&self) -> String {
        self.0.to_string()
    }
}

/// `sum<unit,u32,string>`.
#[derive(Serialize)]
enum Shape {
    Empty,
    Count(u32),
    Name(String),
}

impl Text for Shape {
    fn text(&self) -> String {
        match self {
            Shape::Empty => "#0(())".into(),
            Shape::Count(n) => format!("#1({})", n.text()),
            Shape::Name(s) => format!("#2({})", s.text()),
        }
    }
}

fn push<T: Serialize + Text>(out: &mut Vec<Vector>, ty: &'static str, values: Vec<T>) {
    for value in values {
        out.push(Vector {
            ty,
            value: value.text(),
            bytes: postcard::to_allocvec(&value).expect("encoding a vector"),
        });
    }
}

fn vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    push(&mut v, "bool", vec![false, true]);
    push(&mut v, "u8", vec![0u8, 1, 127, 128, 255]);
    push(
        &mut v,
        "u16",
        vec![0u16, 127, 128, 255, 256, 16383, 16384, u16::MAX],
    );
    push(
        &mut v,
        "u32",
        vec![0u32, 1, 127, 128, 300, 2_097_151, 2_097_152, u32::MAX],
    );
    push(
        &mut v,
        "u64",
        vec![0u64, 128, 1 << 35, (1 << 63) - 1, u64::MAX],
    );
    push(&mut v, "u128", vec![0u128, 128, 1 << 64, u128::MAX]);
    push(&mut v, "i8", vec![0i8, -1, 1, i8::MIN, i8::MAX]);
    push(
        &mut v,
        "i16",
        vec![0i16, -1, 1, -64, 63, 64, -65, i16::MIN, i16::MAX],
    );
    push(
        &mut v,
        "i32",
        vec![0i32, -1, 1, -64, 64, 1000, -1000, i32::MIN, i32::MAX],
    );
    push(
        &mut v,
        "i64",
        vec![0i64, -1, 40, -40, 1_700_000_000_000_000, i64::MIN, i64::MAX],
    );
    push(
        &mut v,
        "i128",
        vec![0i128, -1, 1 << 70, i128::MIN, i128::MAX],
    );
    push(
        &mut v,
        "f32",
        vec![0.0f32, -0.0, 1.5, -2.25, f32::MAX, f32::INFINITY],
    );
    push(
        &mut v,
        "f64",
        vec![0.0f64, 1.5, -1e300, f64::MIN_POSITIVE, f64::NEG_INFINITY],
    );
    push(
        &mut v,
        "string",
        vec![
            String::new(),
            "hello".into(),
            "quote \" and \\ backslash".into(),
            "naïve café ✓ 🎲".into(),
            "x".repeat(200),
        ],
    );
    push(
        &mut v,
        "identity",
        vec![
            Identity([0xA1; 32]),
            Identity(std::array::from_fn(|i| i as u8)),
        ],
    );
    push(
        &mut v,
        "connection-id",
        vec![ConnectionId(std::array::from_fn(|i| 0xF0 | i as u8))],
    );
    push(
        &mut v,
        "timestamp",
        vec![
            Timestamp(0),
            Timestamp(-1),
            Timestamp(1_700_000_000_000_000),
        ],
    );
    push(&mut v, "unit", vec![()]);
    push(&mut v, "option<u32>", vec![None, Some(0u32), Some(300)]);
    push(
        &mut v,
        "option<string>",
        vec![None, Some(String::new()), Some("Alice".into())],
    );
    push(
        &mut v,
        "option<option<u8>>",
        vec![None, Some(None), Some(Some(7u8))],
    );
    push(
        &mut v,
        "array<u8>",
        vec![vec![], vec![1u8, 2, 255], vec![0u8; 130]],
    );
    push(
        &mut v,
        "array<string>",
        vec![vec![], vec!["a".to_string(), "bc".into()]],
    );
    push(&mut v, "array<i64>", vec![vec![-1i64, 1, i64::MIN]]);
    push(
        &mut v,
        "product<u32,i64>",
        vec![(0u32, 100i64), (7, -5), (u32::MAX, i64::MIN)],
    );
    push(
        &mut v,
        "product<u64,identity,timestamp,string>",
        vec![(
            3u64,
            Identity([0xB0; 32]),
            Timestamp(1_700_000_000_000_000),
            "hi alice".to_string(),
        )],
    );
    push(
        &mut v,
        "product<identity,option<string>,bool>",
        vec![
            (Identity([0xA1; 32]), None, true),
            (Identity([0xA1; 32]), Some("Alice".to_string()), false),
        ],
    );
    push(
        &mut v,
        "array<product<u32,i64>>",
        vec![vec![(1u32, 2i64), (3, -4)]],
    );
    push(
        &mut v,
        "sum<unit,u32,string>",
        vec![Shape::Empty, Shape::Count(300), Shape::Name("x".into())],
    );
    v
}

fn render(vectors: &[Vector]) -> String {
    let mut out = String::from("[\n");
    for (i, vector) in vectors.iter().enumerate() {
        let line = serde_json::json!({
            "type": vector.ty,
            "value": vector.value,
            "bytes": hex(&vector.bytes),
        });
        out.push_str("  ");
        out.push_str(&line.to_string());
        out.push_str(if i + 1 < vectors.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

/// Where the vectors live.
fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/postcard.json")
}

#[test]
fn the_vector_file_is_what_the_rust_implementation_encodes() {
    let expected = render(&vectors());
    if std::env::var_os("WORLDLINE_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(path().parent().unwrap()).unwrap();
        std::fs::write(path(), &expected).unwrap();
    }
    let found = std::fs::read_to_string(path()).unwrap_or_default();
    assert!(
        found == expected,
        "{} is out of date; rewrite it with WORLDLINE_WRITE_VECTORS=1 cargo test -p worldline-tests --test postcard_vectors",
        path().display()
    );
}
