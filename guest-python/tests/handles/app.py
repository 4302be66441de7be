"""A self-checking module: `check` exercises every table handle operation
and raises (rolling back) at the first surprise; the test calls it and
expects success."""

from dataclasses import dataclass
from typing import Annotated, Optional

from worldline import (DbError, Identity, auto_inc, i32, index, primary_key, reducer,
                       table, u8, u16, u64, unique)


# `item_owner_code` starts with the table's name and its first column's,
# like the automatic name of `owner`'s index: both must stay reachable.
@table(name="item", public=True,
       indexes={"by_owner_rank": ["owner", "rank"], "item_owner_code": ["owner", "code"]})
@dataclass
class Item:
    id: Annotated[u64, primary_key, auto_inc]
    code: Annotated[str, unique]
    owner: Annotated[u16, index]
    rank: i32
    tags: list[str]
    blob: bytes
    maybe: Optional[u8]
    pair: tuple[u8, str]


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


@reducer
def check(ctx, n: u64):
    items = ctx.db.item
    first = items.insert(Item(0, "a", 1, 5, ["x"], b"\x00\xff", 7, (1, "one")))
    expect(first.id == 1, f"auto_inc filled the id: {first}")
    expect(first.maybe == 7 and first.blob == b"\x00\xff" and first.pair == (1, "one"), f"read back: {first}")
    for i in range(n):
        items.insert(Item(0, f"c{i}", i % 3, -i, [], b"", None if i % 2 else i % 256, (i % 256, "")))
    expect(items.count() == n + 1, f"count {items.count()}")
    expect(sum(1 for _ in items) == n + 1, "iteration sees every row (more than one batch)")
    expect(items.code.find("c7").rank == -7, "find by a unique column")
    expect(items.code.find("nope") is None, "find a missing key")
    owned = list(items.owner.filter(1))
    expect(len(owned) == 1 + len([i for i in range(n) if i % 3 == 1]), f"btree filter: {len(owned)}")
    expect(len(items.owner._codecs) == 1, "`owner` is the single-column index")
    coded = [it.code for it in items.item_owner_code.filter((1, "a"))]
    expect(coded == ["a"], f"a named index starting with the table's name, by its name: {coded}")
    ranked = [it.rank for it in items.by_owner_rank.filter((2, -5))]
    expect(ranked == [-5], f"two-column filter: {ranked}")
    prefix = [it.rank for it in items.by_owner_rank.filter(2)]
    expect(prefix == sorted(prefix) and len(prefix) == len([i for i in range(n) if i % 3 == 2]),
           f"one-column prefix of a two-column index, in key order: {prefix[:5]}")
    window = [it.rank for it in items.by_owner_rank.range((0, -9), (0, 0))]
    expect(window == [-9, -6, -3], f"range: {window}")
    window = [it.rank for it in items.by_owner_rank.range((0, -9), (0, 0), upper_inclusive=True)]
    expect(window == [-9, -6, -3, 0], f"inclusive range: {window}")
    updated = items.id.update(Item(first.id, "a", 1, 50, ["y", "z"], b"", None, (2, "two")))
    expect(items.id.find(first.id) == updated and updated.rank == 50, "update by primary key")
    expect(items.code.delete("a") and not items.code.delete("a"), "delete by a unique column")
    try:
        items.insert(Item(0, "c1", 0, 0, [], b"", None, (0, "")))
    except DbError as e:
        expect(e.kind == "unique-violation", f"kind {e.kind}")
    else:
        raise AssertionError("a duplicate unique value was accepted")
    expect(items.count() == n, "the refused insert left nothing")
    expect(ctx.random.random() == ctx.random.random() or True, "random works")
    expect(isinstance(ctx.sender, Identity), "sender")
