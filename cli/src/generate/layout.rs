//! Lays out the few shapes of Rust code the generator writes the way
//! rustfmt does with its default settings, so generated files pass
//! `rustfmt --check` whatever the length of the names in them.

use std::fmt::Write;

/// rustfmt's `max_width`.
const MAX_WIDTH: usize = 100;
/// rustfmt's `fn_call_width` and `chain_width`: the widest argument list,
/// tuple or method chain kept on one line.
const SMALL_WIDTH: usize = 60;
/// rustfmt's `struct_variant_width`: the widest field list of an enum
/// variant kept on one line.
const STRUCT_VARIANT_WIDTH: usize = 35;

/// Four spaces per level.
fn pad(indent: usize) -> String {
    " ".repeat(indent * 4)
}

/// How a function signature ends.
#[derive(Clone, Copy)]
pub(crate) enum End {
    /// A declaration: `;`.
    Semicolon,
    /// A definition: ` {`, its body on the following lines.
    Body,
}

/// Appends the signature `{head}({params}) -> {ret}` ended by `end`: on one
/// line if it fits, else with one parameter per line.
pub(crate) fn signature(
    out: &mut String,
    indent: usize,
    head: &str,
    params: &[String],
    ret: Option<&str>,
    end: End,
) {
    let pad = pad(indent);
    let ret = ret.map(|r| format!(" -> {r}")).unwrap_or_default();
    let end = match end {
        End::Semicolon => ";",
        End::Body => " {",
    };
    let params_line = params.join(", ");
    let one_line = format!("{pad}{head}({params_line}){ret}{end}");
    // rustfmt measures a declaration's return type as if ` {` followed it:
    // a declaration exactly as wide as the line moves `-> T;` to a line of its own.
    if one_line.len() == MAX_WIDTH && end == ";" && !ret.is_empty() {
        let _ = writeln!(
            out,
            "{pad}{head}({params_line})\n{pad}{};",
            ret.trim_start()
        );
    } else if one_line.len() <= MAX_WIDTH {
        let _ = writeln!(out, "{one_line}");
    } else {
        let _ = write!(out, "{pad}{head}(");
        for param in params {
            let _ = write!(out, "\n{pad}    {param},");
        }
        let _ = writeln!(out, "\n{pad}){ret}{end}");
    }
}

/// Appends `{callee}({args}){suffix}`, where `callee` is a method on `self`
/// (`self.call`) and `suffix` is `.await` (the value of a block) or `;`.
pub(crate) fn method_call(
    out: &mut String,
    indent: usize,
    callee: &str,
    args: &[String],
    suffix: &str,
) {
    let pad = pad(indent);
    let args_line = args.join(", ");
    let call = format!("{callee}({args_line})");
    // A lone argument may run past `fn_call_width`; several may not.
    let args_fit = args.len() == 1 || args_line.len() <= SMALL_WIDTH;
    if suffix == ".await" {
        let chain = format!("{call}.await");
        if chain.len() <= SMALL_WIDTH && pad.len() + chain.len() <= MAX_WIDTH {
            let _ = writeln!(out, "{pad}{chain}");
        } else if args_fit && pad.len() + call.len() <= MAX_WIDTH {
            let _ = writeln!(out, "{pad}{call}\n{pad}    .await");
        } else {
            vertical_call(out, &pad, callee, args);
            let _ = writeln!(out, "\n{pad}.await");
        }
    } else if args_fit && pad.len() + call.len() + suffix.len() <= MAX_WIDTH {
        let _ = writeln!(out, "{pad}{call}{suffix}");
    } else {
        vertical_call(out, &pad, callee, args);
        let _ = writeln!(out, "{suffix}");
    }
}

/// `{callee}(` with one argument per line, up to the closing parenthesis.
fn vertical_call(out: &mut String, pad: &str, callee: &str, args: &[String]) {
    let _ = write!(out, "{pad}{callee}(");
    for arg in args {
        let _ = write!(out, "\n{pad}    {arg},");
    }
    let _ = write!(out, "\n{pad})");
}

/// Appends `let {name} = ({items});` for a tuple of plain identifiers.
pub(crate) fn let_tuple(out: &mut String, indent: usize, name: &str, items: &[String]) {
    let pad = pad(indent);
    let tuple = tuple(items);
    let one_line = format!("{pad}let {name} = {tuple};");
    if tuple.len() - 2 <= SMALL_WIDTH && one_line.len() <= MAX_WIDTH {
        let _ = writeln!(out, "{one_line}");
    } else {
        let _ = write!(out, "{pad}let {name} = (");
        for item in items {
            let _ = write!(out, "\n{pad}    {item},");
        }
        let _ = writeln!(out, "\n{pad});");
    }
}

/// `(a, b)`, `(a,)` or `()`.
pub(crate) fn tuple(items: &[String]) -> String {
    match items {
        [one] => format!("({one},)"),
        _ => format!("({})", items.join(", ")),
    }
}

/// An enum variant to lay out.
pub(crate) enum Variant<'a> {
    /// `Name`
    Unit(&'a str),
    /// `Name(A, B)`, with its types.
    Tuple(&'a str, &'a [String]),
    /// `Name { a: A, b: B }`, with its fields as `name: Type`.
    Struct(&'a str, &'a [String]),
}

/// Appends the variants of an enum. As rustfmt does, a short struct
/// variant stays on one line unless another variant takes several.
pub(crate) fn enum_variants(out: &mut String, indent: usize, variants: &[Variant<'_>]) {
    let render = |variant: &Variant<'_>, struct_width: usize| {
        let pad = pad(indent);
        let mut out = String::new();
        match variant {
            Variant::Unit(name) => {
                let _ = writeln!(out, "{pad}{name},");
            }
            Variant::Tuple(name, types) => {
                let types_line = types.join(", ");
                let one_line = format!("{pad}{name}({types_line}),");
                if types_line.len() <= SMALL_WIDTH && one_line.len() <= MAX_WIDTH {
                    let _ = writeln!(out, "{one_line}");
                } else {
                    let _ = write!(out, "{pad}{name}(");
                    for ty in *types {
                        let _ = write!(out, "\n{pad}    {ty},");
                    }
                    let _ = writeln!(out, "\n{pad}),");
                }
            }
            Variant::Struct(name, fields) => {
                let fields_line = fields.join(", ");
                let one_line = format!("{pad}{name} {{ {fields_line} }},");
                if fields_line.len() <= struct_width && one_line.len() <= MAX_WIDTH {
                    let _ = writeln!(out, "{one_line}");
                } else {
                    let _ = writeln!(out, "{pad}{name} {{");
                    for field in *fields {
                        let _ = writeln!(out, "{pad}    {field},");
                    }
                    let _ = writeln!(out, "{pad}}},");
                }
            }
        }
        out
    };
    let rendered: Vec<String> = variants
        .iter()
        .map(|v| render(v, STRUCT_VARIANT_WIDTH))
        .collect();
    let multi_line = rendered.iter().any(|r| r.lines().count() > 1);
    for (variant, text) in variants.iter().zip(rendered) {
        if multi_line {
            out.push_str(&render(variant, 0));
        } else {
            out.push_str(&text);
        }
    }
}
