"""A test module for how failures reach the caller
(`tests/tests/python_parity.rs`): a bare assert, sys.exit, and a procedure
returning a value of the wrong type, or a value where it declares none."""

import sys

from worldline import procedure, reducer, u32, u64


@reducer
def positive(ctx, n: u32):
    assert n > 0


@reducer
def exits(ctx, code: u32):
    sys.exit(code)


@procedure
def wrong_return(ctx) -> u64:
    return "not a number"


@procedure
def right_return(ctx) -> u64:
    return 7


@procedure
def value_without_a_return_type(ctx):
    return 42
