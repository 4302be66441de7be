// Procedures for the end-to-end tests of procedures, outbound HTTP and
// explicit transactions, and a reducer that tries HTTP, as in the Rust
// module's procedures.rs. Error kinds are reported by the names the Rust
// SDK's `{:?}` prints (worldline::name), e.g. `NotAllowedHere`, `Denied`,
// `NoTransaction`.
#include "features.hpp"

using worldline::Err;

/// An item with only an id and a sku.
static Item new_item(uint32_t id, std::string sku) { return Item{id, std::move(sku), 0, 0, 0}; }

/// A GET request for `url`.
static worldline::http::Request get(std::string url) {
    worldline::http::Request request;
    request.url = std::move(url);
    return request;
}

/// `bytes` as UTF-8, each invalid sequence replaced by U+FFFD (as Rust's
/// `String::from_utf8_lossy`).
static std::string utf8_lossy(const worldline::Bytes& bytes) {
    static const char replacement[] = "\xEF\xBF\xBD";
    std::string out;
    size_t i = 0, n = bytes.size();
    while (i < n) {
        uint8_t c = bytes[i];
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        size_t len = 0;
        uint8_t low = 0x80, high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        } else {
            out += replacement;
            ++i;
            continue;
        }
        size_t valid = 1;
        for (; valid < len && i + valid < n; ++valid) {
            uint8_t d = bytes[i + valid];
            if (d < (valid == 1 ? low : 0x80) || d > (valid == 1 ? high : 0xBF)) break;
        }
        if (valid == len) {
            out.append(reinterpret_cast<const char*>(&bytes[i]), len);
        } else {
            out += replacement;
        }
        i += valid;
    }
    return out;
}

/// Returns its argument.
WORLDLINE_PROCEDURE(echo_proc, std::string, (std::string, text)) { return text; }

/// Inserts item `id` (0 takes the next id) with sku `text` in a
/// transaction and returns how many items there are after it.
WORLDLINE_PROCEDURE(proc_insert, uint32_t, (uint32_t, id), (std::string, text)) {
    uint64_t count = 0;
    worldline::Status done = ctx.with_tx([&](const worldline::TxContext&) -> worldline::Status {
        auto inserted = item.try_insert(new_item(id, text));
        if (!inserted) return inserted.error().message;
        count = item.count();
        return {};
    });
    if (!done.ok()) return Err(done.message());
    return static_cast<uint32_t>(std::min<uint64_t>(count, UINT32_MAX));
}

/// GETs `url`: `"{status} {body}"` (the body read as UTF-8, lossily), or
/// the error as `"{kind}: {message}"`.
WORLDLINE_PROCEDURE(proc_fetch, std::string, (std::string, url)) {
    auto sent = ctx.send(get(url));
    if (!sent) return Err(std::string(worldline::name(sent.error().kind)) + ": " + sent.error().message);
    return std::to_string(sent.value().status) + " " + utf8_lossy(sent.value().body);
}

/// GETs `url` inside a transaction, which the host refuses: returns the
/// error's kind (`NotAllowedHere`), or `sent: {status}` if it went out.
WORLDLINE_PROCEDURE(proc_fetch_in_tx, std::string, (std::string, url)) {
    std::string outcome;
    worldline::Status done = ctx.with_tx([&](const worldline::TxContext&) -> worldline::Status {
        auto sent = ctx.send(get(url));
        outcome = sent ? "sent: " + std::to_string(sent.value().status) : worldline::name(sent.error().kind);
        return {};
    });
    if (!done.ok()) return Err(done.message());
    return outcome;
}

/// Inserts item `id` (sku `rollback-{id}`) in a transaction whose body then
/// fails, so nothing stays; returns `aborted: {the body's error}`.
WORLDLINE_PROCEDURE(proc_rollback, std::string, (uint32_t, id)) {
    bool aborted = false;
    worldline::Status done = ctx.with_tx([&](const worldline::TxContext&) -> worldline::Status {
        item.insert(new_item(id, "rollback-" + std::to_string(id)));
        aborted = true;
        return "rolled back on purpose";
    });
    if (aborted) return "aborted: " + done.message();
    return Err(done.message());
}

/// Inserts an item outside any transaction (after one has come and gone):
/// returns the error's kind (`NoTransaction`), or `inserted` if the host
/// let it through.
WORLDLINE_PROCEDURE(proc_touch_outside_tx, std::string) {
    worldline::Status done = ctx.with_tx([](const worldline::TxContext&) -> worldline::Status { return {}; });
    if (!done.ok()) return Err(done.message());
    auto inserted = item.try_insert(new_item(0, "outside-tx"));
    return inserted ? std::string("inserted") : std::string(worldline::name(inserted.error().kind));
}

/// Inserts an item with sku `trap` in a transaction, then traps inside it:
/// the host rolls the transaction back.
WORLDLINE_PROCEDURE(proc_trap, worldline::Unit) {
    worldline::Status done = ctx.with_tx([](const worldline::TxContext&) -> worldline::Status {
        item.insert(new_item(0, "trap"));
        worldline::panic("trapped inside a transaction on purpose");
    });
    if (!done.ok()) return Err(done.message());
    return worldline::Unit{};
}

/// Calls the raw `http.send` import from a reducer, which the host refuses:
/// fails with the error's kind (`NotAllowedHere`), or `sent: {status}` if it
/// went out.
WORLDLINE_REDUCER(reducer_http, (std::string, url)) {
    worldline::http::Response response;
    worldline::http::Error error;
    if (worldline::host::http_send(get(url), response, error)) return "sent: " + std::to_string(response.status);
    return worldline::name(error.kind);
}
