// The features test module in C++: the same module as
// guest-rust/test-modules/features (tests/tests/cpp_features.rs checks that
// it describes the same definition and behaves the same). Its reducers
// exercise every kind of table access (unique, primary-key and
// multi-column btree indexes, ranges, auto-increment, iteration, counting)
// and probe what the sandbox allows; each writes what it saw into the
// private `observation` table, which the tests read back.
//
// Its procedures (procedures.cpp) exercise outbound HTTP and explicit
// transactions, and its schedule (schedule.cpp) scheduled reducers.
#include <dirent.h>
#include <wasi/api.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "features.hpp"

/// A user-defined sum type's case with named fields.
struct Suspended {
    /// Why.
    std::string reason;
    /// Until when, if known.
    std::optional<uint64_t> until;
};
WORLDLINE_ROW(Suspended, reason, until);

/// A user-defined sum type used as a reducer argument: a unit case, a case
/// with named fields and a case with one unnamed field.
struct Status : std::variant<worldline::Unit, Suspended, uint8_t> {
    using variant_type = std::variant<worldline::Unit, Suspended, uint8_t>;
    using variant_type::variant_type;
};
WORLDLINE_SUM(Status, Active, Suspended, Tagged);

/// What a reducer observed, by key. Private: only the owner may read it.
struct Observation {
    /// What was observed.
    std::string key;
    /// What was seen.
    std::string value;
};
WORLDLINE_ROW(Observation, key, value);

inline worldline::Table<Observation> observation{"observation", worldline::Private,
                                                 worldline::primary_key(&Observation::key)};

void observe(const std::string& key, std::string value) {
    auto by_key = observation.by(&Observation::key);
    Observation row{key, std::move(value)};
    if (by_key.find(key))
        by_key.update(row);
    else
        observation.insert(row);
}

/// `text` quoted as Rust's `{:?}` quotes a string.
static std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                    char escaped[12];
                    std::snprintf(escaped, sizeof escaped, "\\u{%x}", static_cast<unsigned>(c));
                    out += escaped;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

/// `status` as Rust's `{:?}` prints the Rust module's `Status`.
static std::string debug(const Status& status) {
    if (std::holds_alternative<worldline::Unit>(status)) return "Active";
    if (const auto* s = std::get_if<Suspended>(&status)) {
        std::string until = s->until ? "Some(" + std::to_string(*s->until) + ")" : "None";
        return "Suspended { reason: " + quoted(s->reason) + ", until: " + until + " }";
    }
    return "Tagged(" + std::to_string(std::get<uint8_t>(status)) + ")";
}

/// Records who ran `init`: the database owner.
WORLDLINE_INIT(init) {
    observe("init_sender", ctx.sender.to_hex());
    return {};
}

/// Records a user-defined enum argument as the module decoded it.
WORLDLINE_REDUCER(record_status, (Status, status)) {
    observe("status", debug(status));
    return {};
}

/// The ids of `rows`, comma-separated, in order.
static std::string ids(worldline::Rows<Item> rows) {
    std::string out;
    for (const Item& i : rows) out += (out.empty() ? "" : ",") + std::to_string(i.id);
    return out;
}

/// The multi-column index on (owner, rank).
static auto by_owner_rank() { return item.index<uint32_t, int32_t>("by_owner_rank"); }

/// Inserts an item; its id comes from the auto-increment sequence.
WORLDLINE_REDUCER(add_item, (std::string, sku), (uint32_t, owner), (int32_t, rank), (uint64_t, price)) {
    auto stored = item.try_insert(Item{0, sku, owner, rank, price});
    if (!stored) return stored.error().message;
    observe("last_id", std::to_string(stored.value().id));
    return {};
}

/// Records the ids of `owner`'s items in rank order (a prefix scan of a two-column index).
WORLDLINE_REDUCER(items_of_owner, (uint32_t, owner)) {
    observe("items_of_owner", ids(by_owner_rank().filter_prefix(owner)));
    return {};
}

/// Records the ids of `owner`'s items with `low <= rank < high` (a range on the full two-column key).
WORLDLINE_REDUCER(items_of_owner_ranked, (uint32_t, owner), (int32_t, low), (int32_t, high)) {
    auto found = by_owner_rank().range(worldline::included(std::tuple{owner, low}),
                                       worldline::excluded(std::tuple{owner, high}));
    observe("items_of_owner_ranked", ids(std::move(found)));
    return {};
}

/// Records the ids of items with `low <= price <= high`, in price order.
WORLDLINE_REDUCER(items_priced, (uint64_t, low), (uint64_t, high)) {
    auto found = item.by(&Item::price).range(worldline::included(low), worldline::included(high));
    observe("items_priced", ids(std::move(found)));
    return {};
}

/// Records the id of the item with this sku, or `none`.
WORLDLINE_REDUCER(find_sku, (std::string, sku)) {
    auto found = item.by(&Item::sku).find(sku);
    observe("find_sku", found ? std::to_string(found->id) : "none");
    return {};
}

/// Changes the price of the item with this sku.
WORLDLINE_REDUCER(reprice, (std::string, sku), (uint64_t, price)) {
    auto by_sku = item.by(&Item::sku);
    auto found = by_sku.find(sku);
    if (!found) return "no item " + sku;
    found->price = price;
    by_sku.update(*found);
    return {};
}

/// Deletes the item with this sku and records whether one existed.
WORLDLINE_REDUCER(delete_sku, (std::string, sku)) {
    observe("delete_sku", item.by(&Item::sku).erase(sku) ? "true" : "false");
    return {};
}

/// Records the count and the ids of all items, in insertion order.
WORLDLINE_REDUCER(survey) {
    observe("count", std::to_string(item.count()));
    observe("all_ids", ids(item.iter()));
    return {};
}

/// Inserts `n` items in one transaction, then deletes every second one while iterating.
WORLDLINE_REDUCER(churn, (uint32_t, n)) {
    for (uint32_t i = 0; i < n; ++i)
        item.insert(Item{0, "churn-" + std::to_string(i), 99, static_cast<int32_t>(i), i});
    uint32_t deleted = 0;
    auto by_id = item.by(&Item::id);
    for (const Item& i : by_owner_rank().filter_prefix(99u))
        if (i.rank % 2 == 0 && by_id.erase(i.id)) ++deleted;
    observe("churn_deleted", std::to_string(deleted));
    return {};
}

/// `allowed: {value}`, or `denied: {why}` from errno.
static std::string outcome(bool allowed, long value) {
    return allowed ? "allowed: " + std::to_string(value) : std::string("denied: ") + std::strerror(errno);
}

/// Tries what a sandboxed module must not be able to do and records each
/// outcome. wasm32-wasi (preview 1) has no `connect`, so a C++ module
/// cannot even try a TCP connection: `tcp` records that as denied.
WORLDLINE_REDUCER(probe_sandbox, (std::string, tcp_addr)) {
    if (FILE* f = std::fopen("/etc/hostname", "rb")) {
        long size = 0;
        while (std::fgetc(f) != EOF) ++size;
        std::fclose(f);
        observe("file", outcome(true, size));
    } else {
        observe("file", outcome(false, 0));
    }
    if (DIR* d = opendir(".")) {
        long entries = 0;
        while (readdir(d)) ++entries;
        closedir(d);
        observe("dir", outcome(true, entries));
    } else {
        observe("dir", outcome(false, 0));
    }
    __wasi_size_t count = 0, size = 0;
    observe("env", __wasi_environ_sizes_get(&count, &size) == 0 ? std::to_string(count) : "0");
    observe("args", __wasi_args_sizes_get(&count, &size) == 0 ? std::to_string(count) : "0");
    std::printf("stdout is not inherited\n");
    std::fprintf(stderr, "stderr is not inherited\n");
    observe("tcp", "denied: wasm32-wasi has no sockets (connecting to " + tcp_addr + ")");
    return {};
}

/// Someone the database owner has banned from connecting.
struct Banned {
    /// Who.
    worldline::Identity identity;
};
WORLDLINE_ROW(Banned, identity);

inline worldline::Table<Banned> banned{"banned", worldline::Private, worldline::primary_key(&Banned::identity)};

/// Bans `identity` from connecting. (A real module would check that the
/// caller may; this test module lets anyone.)
WORLDLINE_REDUCER(ban, (worldline::Identity, identity)) {
    banned.insert(Banned{identity});
    return {};
}

/// Refuses connections from banned identities.
WORLDLINE_CLIENT_CONNECTED(client_connected) {
    if (banned.by(&Banned::identity).find(ctx.sender)) return ctx.sender.to_hex() + " is banned";
    return {};
}
