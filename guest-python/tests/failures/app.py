"""A test module for how failures reach the caller
(`tests/tests/python_parity.rs`): a bare assert, sys.exit, a
`KeyboardInterrupt`, a reducer returning a value, and a procedure
returning a value of the wrong type, or a value where it declares none; and
text that is not UTF-8 in a log line, an error, a panic and a request URL."""

import sys
from dataclasses import dataclass
from typing import Annotated

from worldline import HttpError, log, panic, primary_key, procedure, reducer, table, u8, u32, u64


@table(name="keyword_row", public=True)
@dataclass(kw_only=True)
class KeywordRow:
    """A table whose rows are built by keyword only."""

    id: Annotated[u32, primary_key]
    text: str = ""


@reducer
def keyword_rows(ctx, n: u32):
    inserted = ctx.db.keyword_row.insert(KeywordRow(id=n, text="x"))
    assert inserted == KeywordRow(id=n, text="x"), inserted
    assert ctx.db.keyword_row.id.find(n) == inserted
    assert list(ctx.db.keyword_row) == [inserted]


@reducer
def positive(ctx, n: u32):
    assert n > 0


@reducer
def exits(ctx, code: u32):
    sys.exit(code)


@reducer
def interrupted(ctx):
    raise KeyboardInterrupt("stopped by hand")


@reducer
def returns_a_message(ctx):
    return "that went wrong"


@reducer
def returns_a_big_list(ctx):
    return list(range(100_000))


@procedure
def wrong_return(ctx) -> u64:
    return "not a number"


@procedure
def right_return(ctx) -> u64:
    return 7


@procedure
def value_without_a_return_type(ctx):
    return 42


# Bytes from outside that are not UTF-8, read with surrogateescape: lone
# surrogates, which a WIT string cannot carry.
NOT_UTF8 = b"caf\xc3 \xff!".decode("utf-8", "surrogateescape")


@reducer
def not_utf8(ctx, where: u8):
    log.info("log " + NOT_UTF8)
    if where == 0:
        raise ValueError("error " + NOT_UTF8)
    panic("panic " + NOT_UTF8)


@procedure
def not_utf8_procedure(ctx, where: u8):
    if where == 0:
        raise ValueError("error " + NOT_UTF8)
    try:
        ctx.http.get("http://example.com/" + NOT_UTF8)
    except HttpError as e:
        raise ValueError(f"{e.kind}: {e.message}") from None
    raise ValueError("the request was sent")
