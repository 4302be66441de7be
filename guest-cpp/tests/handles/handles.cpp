// A test module for the SDK's table handles: `fill` inserts rows, `check`
// reads them back every way the SDK offers and returns the first
// discrepancy as its error (tests/tests/cpp_parity.rs calls both); and
// `postcard_vector` checks one shared postcard vector inside a component;
// `not_utf8` and `not_utf8_procedure` hand the host text that is not UTF-8.
#include <worldline/worldline.hpp>

#include "../vector_checks.hpp"

/// A sum type column: no tag, a number, or a name.
struct Tag : std::variant<worldline::Unit, uint32_t, std::string> {
    using variant_type = std::variant<worldline::Unit, uint32_t, std::string>;
    using variant_type::variant_type;
};
WORLDLINE_SUM(Tag, none, number, name);

struct Item {
    uint32_t id;
    uint32_t owner;
    int64_t score;
    Tag tag;
    std::optional<std::string> note;
    uint64_t serial;
};
WORLDLINE_ROW(Item, id, owner, score, tag, note, serial);

inline worldline::Table<Item> item{
    "item",
    worldline::Private,
    worldline::primary_key(&Item::id),
    worldline::btree(&Item::owner),
    worldline::unique(&Item::serial),
    worldline::auto_inc(&Item::serial),
    worldline::index("by_owner_score", &Item::owner, &Item::score),
};

/// Inserts items 0..n: owner id % 3, score id * 10, serial from the sequence.
WORLDLINE_REDUCER(fill, (uint32_t, n)) {
    for (uint32_t id = 0; id < n; ++id) {
        Tag tag = id % 3 == 0 ? Tag(worldline::Unit{}) : id % 3 == 1 ? Tag(id) : Tag(std::string("t") + std::to_string(id));
        Item stored = item.insert(Item{id, id % 3, int64_t(id) * 10, tag, std::nullopt, 0});
        if (stored.serial != id + 1) return "serial " + std::to_string(stored.serial) + " for item " + std::to_string(id);
    }
    return {};
}

static std::string ids(worldline::Rows<Item> rows) {
    std::string out;
    for (const Item& i : rows) out += (out.empty() ? "" : ",") + std::to_string(i.id);
    return out;
}

#define EXPECT(cond, what) \
    if (!(cond)) return std::string("check failed: ") + what

/// Checks every read path against what `fill(n)` wrote (n >= 600).
WORLDLINE_REDUCER(check, (uint32_t, n)) {
    EXPECT(item.count() == n, "count");
    uint32_t seen = 0;
    for (const Item& i : item.iter()) {
        EXPECT(i.id == seen, "iter order at " + std::to_string(seen));
        ++seen;
    }
    EXPECT(seen == n, "iter saw " + std::to_string(seen));
    auto by_id = item.by(&Item::id);
    auto two = by_id.find(2);
    EXPECT(two && two->score == 20 && std::get<2>(two->tag) == "t2" && !two->note, "find 2");
    EXPECT(!by_id.find(n), "find past the end");
    EXPECT(ids(by_id.range(worldline::included(2), worldline::excluded(5))) == "2,3,4", "range");
    EXPECT(ids(by_id.range(worldline::included(n - 2), worldline::unbounded())) ==
               std::to_string(n - 2) + "," + std::to_string(n - 1),
           "range to the end");
    EXPECT(ids(item.by(&Item::owner).filter(1)).substr(0, 8) == "1,4,7,10", "btree filter");
    auto by_owner_score = item.index<uint32_t, int64_t>("by_owner_score");
    EXPECT(ids(by_owner_score.filter({1u, 40})) == "4", "multi-column filter");
    EXPECT(ids(by_owner_score.filter_prefix(2)).substr(0, 6) == "2,5,8,", "prefix filter");
    EXPECT(ids(by_owner_score.range(worldline::included(std::tuple{0, 30}), worldline::excluded(std::tuple{0, 90}))) ==
               "3,6",
           "multi-column range");
    EXPECT(item.by(&Item::serial).find(uint64_t(5))->id == 4, "unique find");
    Item changed = *two;
    changed.note = "changed";
    by_id.update(changed);
    EXPECT(by_id.find(2)->note == std::optional<std::string>("changed"), "update");
    auto duplicate = item.try_insert(Item{2, 0, 0, Tag(worldline::Unit{}), std::nullopt, 0});
    EXPECT(!duplicate && duplicate.error().kind == worldline::DbErrorKind::UniqueViolation, "unique violation");
    auto missing = by_id.try_update(Item{n + 5, 0, 0, Tag(worldline::Unit{}), std::nullopt, 999999});
    EXPECT(!missing && missing.error().kind == worldline::DbErrorKind::NotFound, "update of a missing row");
    EXPECT(by_id.erase(3) && !by_id.erase(3), "erase");
    EXPECT(item.count() == n - 1, "count after erase");
    EXPECT(ctx.rng().next_u64() == worldline::Rng(ctx.seed).next_u64(), "rng");
    return {};
}

/// Calls abort() after a write: the call traps, rolls back, and the
/// caller learns why.
WORLDLINE_REDUCER(call_abort) {
    item.insert(Item{1'000'000, 0, 0, Tag(worldline::Unit{}), std::nullopt, 0});
    std::abort();
}

/// Reads past the end of a vector with `at`: with exceptions off, libc++ aborts.
WORLDLINE_REDUCER(out_of_range, (uint32_t, index)) {
    std::vector<int> empty;
    return "read " + std::to_string(empty.at(index));
}

/// Checks one postcard vector (type name, value text, bytes) with the
/// SDK's codec as compiled for wasm32: the error says what differs.
WORLDLINE_REDUCER(postcard_vector, (std::string, type), (std::string, value), (std::vector<uint8_t>, bytes)) {
    std::string problem = worldline::vectors::check_vector(type, value, bytes);
    if (!problem.empty()) return problem;
    return {};
}

/// Text that is not UTF-8 (bytes from outside, say) in a log line and then
/// in the error (`where` 0) or a panic (1): a WIT string must be UTF-8, so
/// the SDK passes it on with each bad sequence replaced by U+FFFD, as
/// Rust's `String::from_utf8_lossy` reads it, instead of trapping.
WORLDLINE_REDUCER(not_utf8, (uint8_t, where)) {
    std::string bad = "caf\xc3 \xff!";
    worldline::log::info("log " + bad);
    if (where == 0) return "error " + bad;
    worldline::panic("panic " + bad);
}

/// The same in a procedure's error (`where` 0), and a request whose URL is
/// not UTF-8 (1), which the SDK refuses as an invalid request.
WORLDLINE_PROCEDURE(not_utf8_procedure, worldline::Unit, (uint8_t, where)) {
    std::string bad = "caf\xc3 \xff!";
    if (where == 0) return worldline::Err("error " + bad);
    worldline::http::Request request;
    request.url = "http://example.com/" + bad;
    auto sent = ctx.send(request);
    if (sent) return worldline::Err("the request was sent");
    return worldline::Err(std::string(worldline::name(sent.error().kind)) + ": " + sent.error().message);
}
