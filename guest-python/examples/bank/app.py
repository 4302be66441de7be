"""The bank example: accounts and transfers between them. `transfer` is the
workload of the headline benchmark: it reads two rows and writes two rows.

The other reducers exist for the host's failure-mode tests.
"""

from dataclasses import dataclass
from typing import Annotated

from worldline import i64, panic, primary_key, reducer, table, u32


@table(name="account", public=True)
@dataclass
class Account:
    """An account and its balance."""

    id: Annotated[u32, primary_key]
    balance: i64


@reducer
def seed(ctx, n: u32, balance: i64):
    """Opens accounts `0..n`, each with `balance`."""
    for id in range(n):
        ctx.db.account.insert(Account(id, balance))


@reducer
def transfer(ctx, from_: u32, to: u32, amount: i64):
    """Moves `amount` from account `from_` to account `to`."""
    if amount <= 0:
        raise ValueError(f"the amount must be positive, got {amount}")
    if from_ == to:
        raise ValueError(f"cannot transfer from account {from_} to the same account")
    accounts = ctx.db.account.id
    source = accounts.find(from_)
    if source is None:
        raise LookupError(f"no account {from_}")
    target = accounts.find(to)
    if target is None:
        raise LookupError(f"no account {to}")
    if source.balance < amount:
        raise ValueError(f"insufficient funds: account {from_} has {source.balance}, needs {amount}")
    source.balance -= amount
    target.balance += amount
    accounts.update(source)
    accounts.update(target)


@reducer
def noop(ctx):
    """Does nothing: measures the bare cost of a reducer call."""


@reducer
def panic_after_write(ctx, id: u32):
    """Adds 1 to account `id`, then panics."""
    bump(ctx, id)
    panic("boom")


@reducer
def fail_after_write(ctx, id: u32):
    """Adds 1 to account `id`, then fails."""
    bump(ctx, id)
    raise RuntimeError("failed on purpose after writing")


@reducer
def spin(ctx):
    """Loops forever; the host must stop it at the deadline."""
    x = ctx.random.getrandbits(64)
    while True:
        x = (x * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF


KEPT = []


@reducer
def hog_memory(ctx, mb: u32):
    """Allocates and touches `mb` MiB and keeps it."""
    for _ in range(mb):
        KEPT.append(bytearray(b"\x01" * (1 << 20)))


@reducer
def insert_duplicate(ctx, id: u32):
    """Inserts an account with an id that exists: the insert fails and traps."""
    bump(ctx, id)
    ctx.db.account.insert(Account(id, 0))


def bump(ctx, id):
    account = ctx.db.account.id.find(id)
    if account is not None:
        account.balance += 1
        ctx.db.account.id.update(account)
