//! The prices example: a procedure that fetches a price over HTTP and
//! stores it.
//!
//! `refresh(symbol, url)` GETs `url`, which must answer 2xx with a plain
//! decimal body such as `97123.45`, and stores the price in cents in the
//! public `price` table. The request goes out before the transaction opens
//! (a procedure may not send HTTP inside one, and the database waits while
//! one is open); the write happens inside `with_tx`.
//!
//! The database owner allows the price host at publish; every other host
//! is refused:
//!
//! ```sh
//! worldline publish prices --project-path guest-rust/examples/prices --allow-http prices.example.com
//! worldline call prices refresh BTC https://prices.example.com/btc   # prints the price in cents
//! worldline sql prices "SELECT * FROM price"
//! ```

use std::time::Duration;

use worldline::http::Request;
use worldline::{DbError, ProcedureContext, Table, Timestamp, log, procedure, table};

/// The latest price of a symbol.
#[table(name = price, public)]
pub struct Price {
    /// The symbol, e.g. `BTC`.
    #[primary_key]
    pub symbol: String,
    /// The price in cents.
    pub cents: u64,
    /// When it was stored.
    pub fetched_at: Timestamp,
}

/// Fetches the price of `symbol` from `url`, stores it and returns it in cents.
#[procedure]
pub fn refresh(ctx: &mut ProcedureContext, symbol: String, url: String) -> Result<u64, String> {
    let request = Request::get(&url)
        .header("accept", "text/plain")
        .timeout(Duration::from_secs(10));
    let response = ctx
        .http()
        .send(request)
        .map_err(|e| format!("fetching {url}: {e}"))?;
    if !(200..300).contains(&response.status) {
        return Err(format!("{url} answered status {}", response.status));
    }
    let body = response
        .text()
        .map_err(|e| format!("{url} answered a body that is not UTF-8: {e}"))?;
    let cents = parse_cents(body).ok_or_else(|| {
        let start: String = body.chars().take(40).collect();
        format!("{url} answered {start:?}, not a decimal price")
    })?;
    ctx.with_tx(|tx| {
        let row = Price {
            symbol: symbol.clone(),
            cents,
            fetched_at: tx.timestamp,
        };
        if tx.db.price().symbol().find(&symbol).is_some() {
            tx.db.price().symbol().try_update(row)?;
        } else {
            tx.db.price().try_insert(row)?;
        }
        Ok::<_, DbError>(())
    })?;
    log::info(format!("{symbol} is {cents} cents"));
    Ok(cents)
}

/// A non-negative decimal (`42`, `42.5`, `0.125`), surrounded by optional
/// whitespace, in cents rounded half up; `None` for anything else or a
/// price too large for `u64` cents.
fn parse_cents(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let mut cents = whole.parse::<u64>().ok()?.checked_mul(100)?;
    let mut fraction = fraction.bytes().map(|b| u64::from(b - b'0'));
    cents = cents.checked_add(fraction.next().unwrap_or(0) * 10 + fraction.next().unwrap_or(0))?;
    if fraction.next().is_some_and(|third| third >= 5) {
        cents = cents.checked_add(1)?;
    }
    Some(cents)
}

#[cfg(test)]
mod tests {
    use super::parse_cents;

    #[test]
    fn decimals_become_cents_rounded_half_up() {
        assert_eq!(parse_cents("97123.45\n"), Some(9_712_345));
        assert_eq!(parse_cents(" 42 "), Some(4_200));
        assert_eq!(parse_cents("0.5"), Some(50));
        assert_eq!(parse_cents("0.125"), Some(13));
        assert_eq!(parse_cents("0.1249"), Some(12));
        assert_eq!(parse_cents("1."), Some(100));
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            ".5",
            "-1",
            "1e3",
            "1,5",
            "12.3.4",
            "{\"price\": 1}",
            "184467440737095516.16",
        ] {
            assert_eq!(parse_cents(text), None, "{text:?}");
        }
    }
}
