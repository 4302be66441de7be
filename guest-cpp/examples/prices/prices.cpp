// The prices example: a procedure that fetches a price over HTTP and stores
// it in a transaction. The same module as guest-rust/examples/prices.
#include <worldline/worldline.hpp>

using worldline::Timestamp;

/// The last price fetched for a symbol.
struct Price {
    std::string symbol;
    uint64_t cents;
    Timestamp fetched_at;
};
WORLDLINE_ROW(Price, symbol, cents, fetched_at);

inline worldline::Table<Price> price{"price", worldline::Public, worldline::primary_key(&Price::symbol)};

/// A decimal price ("97123.45") in cents, rounded half up; nothing if it is not one.
static std::optional<uint64_t> parse_cents(std::string text) {
    const char* space = " \t\n\v\f\r";
    size_t first = text.find_first_not_of(space);
    if (first == std::string::npos) return std::nullopt;
    text = text.substr(first, text.find_last_not_of(space) - first + 1);
    size_t dot = text.find('.');
    std::string whole = text.substr(0, dot);
    std::string fraction = dot == std::string::npos ? "" : text.substr(dot + 1);
    auto digits = [](const std::string& s) {
        return s.find_first_not_of("0123456789") == std::string::npos;
    };
    if (whole.empty() || !digits(whole) || !digits(fraction)) return std::nullopt;
    uint64_t cents = 0;
    for (char c : whole)
        if (__builtin_mul_overflow(cents, 10, &cents) || __builtin_add_overflow(cents, uint64_t(c - '0'), &cents))
            return std::nullopt;
    uint64_t part = (fraction.size() > 0 ? fraction[0] - '0' : 0) * 10 + (fraction.size() > 1 ? fraction[1] - '0' : 0);
    if (__builtin_mul_overflow(cents, 100, &cents) || __builtin_add_overflow(cents, part, &cents)) return std::nullopt;
    if (fraction.size() > 2 && fraction[2] >= '5' && __builtin_add_overflow(cents, 1, &cents)) return std::nullopt;
    return cents;
}

/// Fetches `url`, whose body is a decimal price, and stores it as `symbol`'s.
WORLDLINE_PROCEDURE(refresh, uint64_t, (std::string, symbol), (std::string, url)) {
    worldline::http::Request request;
    request.url = url;
    request.headers.push_back({"accept", "text/plain"});
    request.timeout_ms = 10'000;
    auto sent = ctx.send(request);
    if (!sent) return worldline::Err("fetching " + url + ": " + sent.error().message);
    const auto& response = sent.value();
    if (response.status < 200 || response.status >= 300)
        return worldline::Err(url + " answered status " + std::to_string(response.status));
    std::string body = response.text();
    if (!worldline::Codec<std::string>::valid_utf8(body))
        return worldline::Err(url + " answered a body that is not UTF-8");
    auto cents = parse_cents(body);
    if (!cents) return worldline::Err(url + " answered \"" + body.substr(0, 40) + "\", not a decimal price");
    worldline::Status stored = ctx.with_tx([&](const worldline::TxContext& tx) -> worldline::Status {
        Price row{symbol, *cents, tx.timestamp};
        auto by_symbol = price.by(&Price::symbol);
        auto written = by_symbol.find(symbol) ? by_symbol.try_update(row) : price.try_insert(row);
        if (!written) return written.error().message;
        return {};
    });
    if (!stored.ok()) return worldline::Err(stored.message());
    worldline::log::info(symbol + " is " + std::to_string(*cents) + " cents");
    return *cents;
}
