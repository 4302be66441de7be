//! `worldline call`: run a reducer or a procedure with JSON arguments.

use clap::Args;
use serde_json::Value;

use crate::context::Context;
use crate::output::print_json;

/// Options of `worldline call`. Help is `--help` only: `-h` would make an
/// argument such as `-hello` print the help and call nothing.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CallArgs {
    /// The database.
    name: String,
    /// The reducer or procedure.
    reducer: String,
    /// The arguments, in order, each a JSON value (`42`, `-5`, `true`,
    /// `"text"`, `{"x": 1}`); an argument that is not valid JSON is taken as
    /// a string. Options may come before or after them; after `--`,
    /// everything is an argument (for strings that start with `-`).
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// One command-line argument as a JSON value.
fn argument(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Runs `worldline call`.
pub fn run(args: CallArgs, mut context: Context) -> anyhow::Result<()> {
    let values = Value::Array(args.args.iter().map(|a| argument(a)).collect());
    let result = context
        .api_as_identity()?
        .call(&args.name, &args.reducer, &values)?;
    if args.json {
        return print_json(&result);
    }
    match &result.value {
        Some(value) => println!(
            "`{}` returned in {} µs: {}",
            args.reducer,
            result.duration_micros,
            serde_json::to_string(value)?
        ),
        None => println!(
            "`{}` committed in {} µs",
            args.reducer, result.duration_micros
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Call {
        #[command(flatten)]
        call: CallArgs,
    }

    fn parse(line: &[&str]) -> Result<CallArgs, clap::error::ErrorKind> {
        use clap::Parser;
        let line = ["call"].iter().chain(line);
        Call::try_parse_from(line)
            .map(|parsed| parsed.call)
            .map_err(|e| e.kind())
    }

    // An argument beginning with `-h` printed the help and called nothing,
    // exiting 0: it is refused as any other unknown option is.
    #[test]
    fn an_argument_starting_with_dash_h_is_not_a_request_for_help() {
        use clap::error::ErrorKind;
        for line in [&["chat", "send", "-hello"][..], &["chat", "send", "-h"]] {
            assert_eq!(parse(line).unwrap_err(), ErrorKind::UnknownArgument);
        }
        assert_eq!(
            parse(&["chat", "send", "--help"]).unwrap_err(),
            ErrorKind::DisplayHelp
        );
        let call = parse(&["chat", "send", "--", "-hello"]).unwrap();
        assert_eq!(call.args, ["-hello"]);
        let call = parse(&["bank", "transfer", "1", "2", "-5", "--json"]).unwrap();
        assert_eq!(call.args, ["1", "2", "-5"]);
        assert!(call.json);
    }

    #[test]
    fn json_arguments_parse_and_anything_else_is_a_string() {
        assert_eq!(argument("42"), Value::from(42));
        assert_eq!(argument("\"42\""), Value::from("42"));
        assert_eq!(argument("hello world"), Value::from("hello world"));
        assert_eq!(argument("[1,2]"), serde_json::json!([1, 2]));
    }
}
