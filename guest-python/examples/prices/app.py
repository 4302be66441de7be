"""The prices example: a procedure that fetches a price over HTTP and stores it.

`refresh(symbol, url)` GETs `url`, which must answer 2xx with a plain decimal
body such as `97123.45`, and stores the price in cents in the public `price`
table. The request goes out before the transaction opens; the write happens
inside `ctx.with_tx`.
"""

import json
import re
from dataclasses import dataclass
from typing import Annotated

from worldline import HttpError, Timestamp, log, primary_key, procedure, table, u64


@table(name="price", public=True)
@dataclass
class Price:
    """The latest price of a symbol."""

    symbol: Annotated[str, primary_key]
    cents: u64
    fetched_at: Timestamp


@procedure
def refresh(ctx, symbol: str, url: str) -> u64:
    """Fetches the price of `symbol` from `url`, stores it and returns it in cents."""
    try:
        response = ctx.http.get(url, headers=[("accept", "text/plain")], timeout_ms=10_000)
    except HttpError as e:
        raise RuntimeError(f"fetching {url}: {e.message}") from None
    if not 200 <= response.status < 300:
        raise RuntimeError(f"{url} answered status {response.status}")
    try:
        body = response.text()
    except UnicodeDecodeError as e:
        raise RuntimeError(f"{url} answered a body that is not UTF-8: {e}") from None
    cents = parse_cents(body)
    if cents is None:
        raise RuntimeError(f"{url} answered {json.dumps(body[:40], ensure_ascii=False)}, not a decimal price")

    def store(tx):
        row = Price(symbol, cents, tx.timestamp)
        if tx.db.price.symbol.find(symbol) is not None:
            tx.db.price.symbol.update(row)
        else:
            tx.db.price.insert(row)

    ctx.with_tx(store)
    log.info(f"{symbol} is {cents} cents")
    return cents


def parse_cents(text):
    """A non-negative decimal in cents rounded half up; None for anything
    else or a price too large for u64 cents."""
    match = re.fullmatch(r"(\d+)(?:\.(\d*))?", text.strip(), re.ASCII)
    if match is None:
        return None
    whole, fraction = match.group(1), match.group(2) or ""
    cents = int(whole) * 100 + int((fraction + "00")[:2])
    if len(fraction) > 2 and fraction[2] >= "5":
        cents += 1
    return cents if cents < 1 << 64 else None
