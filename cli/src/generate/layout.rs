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

/// Appends `{head}({params}){tail}` (a function signature; `tail` is
/// ` -> T {`, `;` and the like) on one line if it fits, else with one
/// parameter per line.
pub(crate) fn signature(
    out: &mut String,
    indent: usize,
    head: &str,
    params: &[String],
    tail: &str,
) {
    let pad = pad(indent);
    let one_line = format!("{pad}{head}({}){tail}", params.join(", "));
    if one_line.len() <= MAX_WIDTH {
        out.push_str(&one_line);
    } else {
        let _ = write!(out, "{pad}{head}(");
        for param in params {
            let _ = write!(out, "\n{pad}    {param},");
        }
        let _ = write!(out, "\n{pad}){tail}");
    }
    out.push('\n');
}

/// Appends the statement `{callee}({args}){suffix}` where `callee` is a
/// method on `self` (`self.call`) and `suffix` ends it (`;`, `.await`).
pub(crate) fn method_call(
    out: &mut String,
    indent: usize,
    callee: &str,
    args: &[String],
    suffix: &str,
) {
    let pad = pad(indent);
    let args_line = args.join(", ");
    let chained = suffix.starts_with('.');
    let end = suffix.trim_end_matches(';');
    let semicolon = if suffix.ends_with(';') { ";" } else { "" };
    let chain = format!("{callee}({args_line}){end}");
    let chain_fits = !chained || chain.len() <= SMALL_WIDTH;
    if chain_fits
        && args_line.len() <= SMALL_WIDTH
        && pad.len() + chain.len() + semicolon.len() <= MAX_WIDTH
    {
        let _ = writeln!(out, "{pad}{chain}{semicolon}");
        return;
    }
    let call = format!("{callee}({args_line})");
    if args_line.len() <= SMALL_WIDTH && pad.len() + call.len() <= MAX_WIDTH {
        if chained {
            let _ = writeln!(out, "{pad}{call}\n{pad}    {end}{semicolon}");
        } else {
            let _ = writeln!(out, "{pad}{call}{semicolon}");
        }
        return;
    }
    let _ = write!(out, "{pad}{callee}(");
    for arg in args {
        let _ = write!(out, "\n{pad}    {arg},");
    }
    let _ = writeln!(out, "\n{pad}){end}{semicolon}");
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

/// Appends the enum variant `{name} { fields }` (fields as `name: Type`),
/// on one line if it is short enough, else with one field per line.
pub(crate) fn struct_variant(out: &mut String, indent: usize, name: &str, fields: &[String]) {
    let pad = pad(indent);
    let fields_line = fields.join(", ");
    let one_line = format!("{pad}{name} {{ {fields_line} }},");
    if fields_line.len() <= STRUCT_VARIANT_WIDTH && one_line.len() <= MAX_WIDTH {
        let _ = writeln!(out, "{one_line}");
    } else {
        let _ = writeln!(out, "{pad}{name} {{");
        for field in fields {
            let _ = writeln!(out, "{pad}    {field},");
        }
        let _ = writeln!(out, "{pad}}},");
    }
}

/// Appends the enum variant `{name}({types})`, on one line if it fits, else
/// with one type per line.
pub(crate) fn tuple_variant(out: &mut String, indent: usize, name: &str, types: &[String]) {
    let pad = pad(indent);
    let one_line = format!("{pad}{name}({}),", types.join(", "));
    if one_line.len() <= MAX_WIDTH {
        let _ = writeln!(out, "{one_line}");
    } else {
        let _ = write!(out, "{pad}{name}(");
        for ty in types {
            let _ = write!(out, "\n{pad}    {ty},");
        }
        let _ = writeln!(out, "\n{pad}),");
    }
}
