// The Worldline C++ module SDK: tables, reducers and procedures over the
// `worldline:module@0.2.0` world (`wit/worldline.wit`, whose doc comments
// are the contract). See guest-cpp/README.md for the reference.
//
//   struct Account { uint32_t id; int64_t balance; };
//   WORLDLINE_ROW(Account, id, balance);
//   inline worldline::Table<Account> account{"account", worldline::Public,
//                                            worldline::primary_key(&Account::id)};
//
//   WORLDLINE_REDUCER(deposit, (uint32_t, id), (int64_t, amount)) {
//       auto row = account.by(&Account::id).find(id);
//       if (!row) return "no account " + std::to_string(id);
//       row->balance += amount;
//       account.by(&Account::id).update(*row);
//       return {};
//   }
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "postcard.hpp"

namespace worldline {

// ---------------------------------------------------------------------------
// Logging and traps

/// Severity of a module log line (`log.level`).
enum class Level : uint8_t { Trace, Debug, Info, Warn, Error, Panic };

namespace host {
/// Appends a line to the module log.
void log(Level level, std::string_view message);
}  // namespace host

/// Writing to the module log, which the database owner reads.
namespace log {
/// Logs a trace line.
inline void trace(std::string_view m) { host::log(Level::Trace, m); }
/// Logs a debug line.
inline void debug(std::string_view m) { host::log(Level::Debug, m); }
/// Logs an informational line.
inline void info(std::string_view m) { host::log(Level::Info, m); }
/// Logs a warning.
inline void warn(std::string_view m) { host::log(Level::Warn, m); }
/// Logs an error.
inline void error(std::string_view m) { host::log(Level::Error, m); }
}  // namespace log

/// Reports `message` as the failure reason and traps: the call rolls back
/// and the caller gets the message (like a Rust panic).
[[noreturn]] inline void panic(std::string_view message) {
    host::log(Level::Panic, message);
    __builtin_trap();
}

// ---------------------------------------------------------------------------
// Describing types: the arena of `module-def.types`

/// One node of the type arena (`type-node`); `tag` follows the WIT case order.
struct TypeNode {
    /// The WIT case: 0 bool ... 16 timestamp, 17 option, 18 array, 19 product, 20 sum.
    uint8_t tag = 0;
    /// The referenced type of an option or array.
    uint32_t ref = 0;
    /// Product fields (name, type) or sum cases (name, payload type).
    std::vector<std::pair<std::optional<std::string>, uint32_t>> members;

    /// The WIT case numbers.
    enum : uint8_t {
        Bool, U8, U16, U32, U64, U128, I8, I16, I32, I64, I128, F32, F64, String,
        Identity, ConnectionId, Timestamp, Option, Array, Product, Sum
    };
    friend bool operator<(const TypeNode& a, const TypeNode& b) {
        return std::tie(a.tag, a.ref, a.members) < std::tie(b.tag, b.ref, b.members);
    }
};

/// Collects type nodes, sharing identical ones; a node only refers to
/// nodes added before it (the same arena the Rust SDK builds).
class TypeBuilder {
public:
    /// Adds `node` (or finds an identical one) and returns its index.
    uint32_t add(TypeNode node) {
        auto found = positions_.find(node);
        if (found != positions_.end()) return found->second;
        auto index = static_cast<uint32_t>(nodes_.size());
        nodes_.push_back(node);
        positions_.emplace(std::move(node), index);
        return index;
    }
    /// The nodes, in index order.
    const std::vector<TypeNode>& nodes() const { return nodes_; }

private:
    std::vector<TypeNode> nodes_;
    std::map<TypeNode, uint32_t> positions_;
};

/// How `T` is described in the arena; specialised per type.
template <class T, class Enable = void>
struct Describe;

/// Adds `T` to the arena and returns its index.
template <class T>
uint32_t describe(TypeBuilder& types) {
    return Describe<T>::describe(types);
}

namespace detail {
inline uint32_t leaf(TypeBuilder& t, uint8_t tag) {
    TypeNode n;
    n.tag = tag;
    return t.add(n);
}
template <class T>
constexpr uint8_t int_tag() {
    constexpr bool s = std::is_signed_v<T>;
    switch (sizeof(T)) {
        case 1: return s ? TypeNode::I8 : TypeNode::U8;
        case 2: return s ? TypeNode::I16 : TypeNode::U16;
        case 4: return s ? TypeNode::I32 : TypeNode::U32;
        default: return s ? TypeNode::I64 : TypeNode::U64;
    }
}
}  // namespace detail

template <>
struct Describe<bool> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::Bool); }
};
template <class T>
struct Describe<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, detail::int_tag<T>()); }
};
template <>
struct Describe<float> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::F32); }
};
template <>
struct Describe<double> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::F64); }
};
template <>
struct Describe<U128> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::U128); }
};
template <>
struct Describe<I128> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::I128); }
};
template <>
struct Describe<std::string> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::String); }
};
template <>
struct Describe<Identity> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::Identity); }
};
template <>
struct Describe<ConnectionId> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::ConnectionId); }
};
template <>
struct Describe<Timestamp> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::Timestamp); }
};
template <class T>
struct Describe<std::optional<T>> {
    static uint32_t describe(TypeBuilder& t) {
        TypeNode n;
        n.ref = worldline::describe<T>(t);
        n.tag = TypeNode::Option;
        return t.add(n);
    }
};
template <class T>
struct Describe<std::vector<T>> {
    static uint32_t describe(TypeBuilder& t) {
        TypeNode n;
        n.ref = worldline::describe<T>(t);
        n.tag = TypeNode::Array;
        return t.add(n);
    }
};
template <>
struct Describe<Unit> {
    static uint32_t describe(TypeBuilder& t) { return detail::leaf(t, TypeNode::Product); }
};
template <class... Ts>
struct Describe<std::tuple<Ts...>> {
    static uint32_t describe(TypeBuilder& t) {
        TypeNode n;
        n.tag = TypeNode::Product;
        // A braced list evaluates left to right: children in field order.
        uint32_t refs[] = {worldline::describe<Ts>(t)..., 0};
        for (size_t i = 0; i < sizeof...(Ts); ++i) n.members.emplace_back(std::nullopt, refs[i]);
        return t.add(n);
    }
};
/// Rows declared with WORLDLINE_ROW: a product of named fields.
template <class T>
struct Describe<T, std::enable_if_t<IsRow<T>::value>> {
    static uint32_t describe(TypeBuilder& t) {
        TypeNode n;
        n.tag = TypeNode::Product;
        std::apply(
            [&](const auto&... f) {
                (n.members.emplace_back(
                     std::string(f.first),
                     worldline::describe<std::decay_t<decltype(std::declval<const T&>().*(f.second))>>(t)),
                 ...);
            },
            worldline_fields(static_cast<const T*>(nullptr)));
        return t.add(n);
    }
};

/// Whether `T` was declared with WORLDLINE_SUM.
template <class T, class = void>
struct IsSum : std::false_type {};
template <class T>
struct IsSum<T, std::void_t<decltype(worldline_cases(static_cast<const T*>(nullptr)))>> : std::true_type {};

/// Sums declared with WORLDLINE_SUM: `std::variant` cases with names.
template <class T>
struct Describe<T, std::enable_if_t<IsSum<T>::value>> {
    static uint32_t describe(TypeBuilder& t) {
        return describe_cases(t, static_cast<const typename T::variant_type*>(nullptr));
    }

private:
    template <class... Cs>
    static uint32_t describe_cases(TypeBuilder& t, const std::variant<Cs...>*) {
        TypeNode n;
        n.tag = TypeNode::Sum;
        auto names = worldline_cases(static_cast<const T*>(nullptr));
        static_assert(std::tuple_size_v<decltype(names)> == sizeof...(Cs),
                      "WORLDLINE_SUM names as many cases as the variant has alternatives");
        uint32_t refs[] = {worldline::describe<Cs>(t)..., 0};
        for (size_t i = 0; i < sizeof...(Cs); ++i) n.members.emplace_back(std::string(names[i]), refs[i]);
        return t.add(n);
    }
};

template <class T>
struct Codec<T, std::enable_if_t<IsSum<T>::value>> : Codec<typename T::variant_type> {};

// ---------------------------------------------------------------------------
// The module description

/// An index declaration (`index-def`).
struct IndexDef {
    /// Its name, unique within the table.
    std::string name;
    /// Column positions in key order.
    std::vector<uint32_t> columns;
    /// Whether it is unique (else btree).
    bool unique = false;
};

/// A schedule declaration (`schedule-def`).
struct ScheduleDef {
    /// The reducer each row runs.
    std::string reducer;
    /// The `timestamp` column holding when a row is due.
    uint32_t at_column = 0;
    /// The `u64` column holding the repeat interval in microseconds.
    std::optional<uint32_t> interval_column;
};

/// A table declaration (`table-def`).
struct TableDef {
    /// The table's name.
    std::string name;
    /// Its row type in the arena.
    uint32_t row_type = 0;
    /// The position in `indexes` of the primary key.
    std::optional<uint32_t> primary_key;
    /// Its indexes; index ids are positions here.
    std::vector<IndexDef> indexes;
    /// Auto-increment columns.
    std::vector<uint32_t> auto_inc;
    /// Whether clients other than the owner may read it.
    bool is_public = false;
    /// Set when the table is a reducer's schedule.
    std::optional<ScheduleDef> schedule;
};

/// When the host calls a reducer on its own (`lifecycle`).
enum class Lifecycle : uint8_t { Init, ClientConnected, ClientDisconnected };

/// A named parameter of a reducer or procedure.
using Param = std::pair<std::string, uint32_t>;

/// A reducer declaration (`reducer-def`).
struct ReducerDef {
    /// The reducer's name.
    std::string name;
    /// Its parameters.
    std::vector<Param> params;
    /// Its lifecycle role, if any.
    std::optional<Lifecycle> lifecycle;
};

/// A procedure declaration (`procedure-def`).
struct ProcedureDef {
    /// The procedure's name.
    std::string name;
    /// Its parameters.
    std::vector<Param> params;
    /// The type of the value it returns.
    uint32_t returns = 0;
};

/// Everything `describe` returns (`module-def`).
struct ModuleDef {
    /// The type arena.
    std::vector<TypeNode> types;
    /// Tables in id order.
    std::vector<TableDef> tables;
    /// Reducers in id order.
    std::vector<ReducerDef> reducers;
    /// Procedures in id order.
    std::vector<ProcedureDef> procedures;
};

// ---------------------------------------------------------------------------
// Call contexts and results

/// A small deterministic random number generator (SplitMix64, the same
/// sequence as the Rust SDK's `Rng` for the same seed).
class Rng {
public:
    /// A generator starting from `seed`.
    explicit Rng(uint64_t seed) : state_(seed) {}
    /// The next 64 random bits.
    uint64_t next_u64() {
        state_ += 0x9E3779B97F4A7C15ull;
        uint64_t z = state_;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    /// A number in `[low, high)` (`low` if the range is empty).
    uint64_t gen_range(uint64_t low, uint64_t high) {
        return high > low ? low + next_u64() % (high - low) : low;
    }

private:
    uint64_t state_;
};

/// What a reducer knows about its call (`reducer-context`).
struct ReducerContext {
    /// Who called: a client, or the owner for `init` and scheduled runs.
    Identity sender;
    /// The caller's connection, if the call came over one.
    std::optional<ConnectionId> connection_id;
    /// When the transaction started: a reducer's clock.
    Timestamp timestamp;
    /// The transaction's random seed.
    uint64_t seed = 0;
    /// A generator seeded from `seed`: replaying the call draws the same numbers.
    Rng rng() const { return Rng(seed); }
};

/// What a reducer returns: success (`return {};`) or an error message
/// (`return "why";`), which rolls the transaction back.
class [[nodiscard]] Status {
public:
    /// Success.
    Status() = default;
    /// An error with this message.
    Status(std::string message) : error_(std::move(message)) {}
    /// An error with this message.
    Status(const char* message) : error_(std::string(message)) {}
    /// Whether it is success.
    bool ok() const { return !error_; }
    /// The error message (empty on success).
    const std::string& message() const {
        static const std::string none;
        return error_ ? *error_ : none;
    }

private:
    std::optional<std::string> error_;
};

/// What kind of refusal a datastore error is (`error-kind`).
enum class DbErrorKind : uint8_t {
    NoSuchTable, NoSuchIndex, IndexNotUnique, InvalidRow, InvalidKey,
    UniqueViolation, NotFound, SequenceExhausted, NoTransaction
};

/// The kind's name, as the Rust SDK's `{:?}` prints it (`UniqueViolation`).
inline const char* name(DbErrorKind kind) {
    static const char* const names[] = {"NoSuchTable", "NoSuchIndex", "IndexNotUnique",
                                        "InvalidRow", "InvalidKey", "UniqueViolation",
                                        "NotFound", "SequenceExhausted", "NoTransaction"};
    auto i = static_cast<size_t>(kind);
    return i < std::size(names) ? names[i] : "Unknown";
}

/// A datastore refusal: its kind and a readable message.
struct DbError {
    /// What went wrong.
    DbErrorKind kind = DbErrorKind::InvalidRow;
    /// A message naming the table, index and key.
    std::string message;
};

/// A value, or why there is none.
template <class T, class E>
class Expected {
public:
    /// Success.
    Expected(T value) : value_(std::move(value)) {}
    /// A failure.
    Expected(E error) : error_(std::move(error)) {}
    /// Whether it succeeded.
    bool ok() const { return value_.has_value(); }
    explicit operator bool() const { return ok(); }
    /// The value (only when `ok()`).
    T& value() { return *value_; }
    /// The value (only when `ok()`).
    const T& value() const { return *value_; }
    /// The failure (only when not `ok()`).
    const E& error() const { return error_; }

private:
    std::optional<T> value_;
    E error_{};
};

/// A value or a datastore refusal.
template <class T>
using DbResult = Expected<T, DbError>;

// ---------------------------------------------------------------------------
// The host's datastore, over the WIT imports (implemented in worldline.cpp)

/// One end of an index range (`bound`).
struct Bound {
    /// 0 unbounded, 1 included, 2 excluded (the WIT case order).
    uint8_t tag = 0;
    /// The key or prefix bytes.
    Bytes key;
};

namespace host {
/// `datastore.insert`; on success `stored` holds the stored row.
bool insert(uint32_t table, const Bytes& row, Bytes& stored, DbError& err);
/// `datastore.update`.
bool update(uint32_t table, uint32_t index, const Bytes& row, DbError& err);
/// `datastore.delete`.
bool erase(uint32_t table, uint32_t index, const Bytes& key, bool& existed, DbError& err);
/// `datastore.find`.
bool find(uint32_t table, uint32_t index, const Bytes& key, std::optional<Bytes>& row, DbError& err);
/// `datastore.count`.
bool count(uint32_t table, uint64_t& rows, DbError& err);
/// `datastore.scan`; `cursor` is the new cursor's handle.
bool scan(uint32_t table, int32_t& cursor, DbError& err);
/// `datastore.scan-index`.
bool scan_index(uint32_t table, uint32_t index, const Bound& lower, const Bound& upper, int32_t& cursor,
                DbError& err);
/// `cursor.next`: the number of rows, their bytes in `data`.
uint32_t cursor_next(int32_t cursor, uint32_t max_rows, Bytes& data);
/// Drops a cursor.
void cursor_drop(int32_t cursor);
}  // namespace host

// ---------------------------------------------------------------------------
// Registration

/// Outbound HTTP, for procedures (`http` in the WIT).
namespace http {
/// One header.
struct Header {
    /// Header name (case-insensitive).
    std::string name;
    /// Header value (visible ASCII).
    std::string value;
};
/// An outbound request.
struct Request {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`.
    std::string method = "GET";
    /// An absolute http:// or https:// URL.
    std::string url;
    /// Request headers.
    std::vector<Header> headers;
    /// The body (empty for none).
    Bytes body;
    /// A tighter limit on the whole exchange, in milliseconds.
    std::optional<uint32_t> timeout_ms;
};
/// The final response (after redirects).
struct Response {
    /// The status code.
    uint16_t status = 0;
    /// Response headers: names lowercase, all values of one name together
    /// (names in the order each first came, values in the order received).
    std::vector<Header> headers;
    /// The body.
    Bytes body;
    /// The body as text (bytes as they are).
    std::string text() const { return std::string(body.begin(), body.end()); }
};
/// What went wrong with a request (`http-error-kind`, in WIT order).
enum class ErrorKind : uint8_t {
    NotAllowedHere, Denied, InvalidRequest, Dns, Connect, Timeout, Tls,
    RequestTooLarge, ResponseTooLarge, TooManyRedirects, Protocol
};
/// The kind's name, as the Rust SDK's `{:?}` prints it (`NotAllowedHere`).
inline const char* name(ErrorKind kind) {
    static const char* const names[] = {"NotAllowedHere", "Denied", "InvalidRequest", "Dns",
                                        "Connect", "Timeout", "Tls", "RequestTooLarge",
                                        "ResponseTooLarge", "TooManyRedirects", "Protocol"};
    auto i = static_cast<size_t>(kind);
    return i < std::size(names) ? names[i] : "Unknown";
}
/// An HTTP failure: a kind and a readable message.
struct Error {
    /// What went wrong.
    ErrorKind kind = ErrorKind::Protocol;
    /// A message naming the host or the limit.
    std::string message;
};
}  // namespace http
using http::name;

/// What went wrong with an explicit transaction (`tx-error-kind`).
enum class TxErrorKind : uint8_t { NotAProcedure, AlreadyOpen, NotOpen, Unavailable };

/// The kind's name, as the Rust SDK's `{:?}` prints it (`NotOpen`).
inline const char* name(TxErrorKind kind) {
    static const char* const names[] = {"NotAProcedure", "AlreadyOpen", "NotOpen", "Unavailable"};
    auto i = static_cast<size_t>(kind);
    return i < std::size(names) ? names[i] : "Unknown";
}

/// A transaction failure: a kind and a readable message.
struct TxError {
    /// What went wrong.
    TxErrorKind kind = TxErrorKind::Unavailable;
    /// A readable explanation.
    std::string message;
};

namespace host {
/// `http.send`.
bool http_send(const http::Request& request, http::Response& response, http::Error& err);
/// `transaction.begin`; `timestamp` is the transaction's.
bool tx_begin(int64_t& timestamp, TxError& err);
/// `transaction.commit`.
bool tx_commit(TxError& err);
/// `transaction.rollback`.
bool tx_rollback(TxError& err);
}  // namespace host

/// What a procedure's transaction body sees.
struct TxContext {
    /// The transaction's timestamp.
    Timestamp timestamp;
};

/// What a procedure knows about its call (`procedure-context`), and its
/// ways out: HTTP and explicit transactions.
struct ProcedureContext {
    /// Who called.
    Identity sender;
    /// The caller's connection, if the call came over one.
    std::optional<ConnectionId> connection_id;
    /// When the procedure started.
    Timestamp timestamp;
    /// This call's random seed.
    uint64_t seed = 0;
    /// A generator seeded from `seed`.
    Rng rng() const { return Rng(seed); }

    /// Sends an HTTP request (outside a transaction, to hosts the database
    /// owner allowed) and waits for the whole response.
    Expected<http::Response, http::Error> send(const http::Request& request) const {
        http::Response response;
        http::Error err;
        if (!host::http_send(request, response, err)) return err;
        return response;
    }

    /// Runs `body(const TxContext&) -> Status` in a transaction: commits
    /// when it returns success, rolls back when it returns an error (which
    /// is returned). A failure to begin or commit is returned as an error
    /// with the host's message. Tables are reached as in a reducer.
    template <class F>
    Status with_tx(F&& body) const {
        int64_t at = 0;
        TxError err;
        if (!host::tx_begin(at, err)) return Status(err.message);
        Status status = body(TxContext{Timestamp{at}});
        if (!status.ok()) {
            host::tx_rollback(err);
            return status;
        }
        if (!host::tx_commit(err)) {
            TxError ignored;
            host::tx_rollback(ignored);
            return Status(err.message);
        }
        return status;
    }
};

/// A procedure's error: `return worldline::Err("why");`.
struct Err {
    /// The message for the caller.
    std::string message;
    /// An error with this message.
    explicit Err(std::string m) : message(std::move(m)) {}
};

/// What a procedure returns: a value of type `T` or an Err.
template <class T>
class Returns {
public:
    /// The value.
    Returns(T value) : value_(std::move(value)) {}
    /// An error.
    Returns(Err error) : error_(std::move(error.message)) {}
    /// Whether it is a value.
    bool ok() const { return value_.has_value(); }
    /// The value (only when `ok()`).
    const T& value() const { return *value_; }
    /// The error message (only when not `ok()`).
    const std::string& message() const { return error_; }

private:
    std::optional<T> value_;
    std::string error_;
};

namespace detail {
/// A table registered by its `Table` object.
struct TableEntry {
    std::string name;
    std::function<TableDef(TypeBuilder&)> describe;
};
/// A reducer registered by WORLDLINE_REDUCER and friends.
struct ReducerEntry {
    std::string name;
    std::optional<Lifecycle> lifecycle;
    std::vector<Param> (*params)(TypeBuilder&);
    Status (*invoke)(const ReducerContext&, const uint8_t*, size_t);
};

/// A procedure registered by WORLDLINE_PROCEDURE.
struct ProcedureEntry {
    std::string name;
    std::vector<Param> (*params)(TypeBuilder&);
    uint32_t (*returns)(TypeBuilder&);
    Status (*invoke)(ProcedureContext&, const uint8_t*, size_t, Bytes&);
};

/// The module's declarations, sorted by name on first use (which fixes ids).
struct Registry {
    std::vector<TableEntry> tables;
    std::vector<ReducerEntry> reducers;
    std::vector<ProcedureEntry> procedures;
    bool sorted = false;

    static Registry& get() {
        static Registry registry;
        return registry;
    }
    void sort() {
        if (sorted) return;
        auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
        std::stable_sort(tables.begin(), tables.end(), by_name);
        std::stable_sort(reducers.begin(), reducers.end(), by_name);
        std::stable_sort(procedures.begin(), procedures.end(), by_name);
        sorted = true;
    }
    uint32_t table_id(const std::string& name) {
        sort();
        for (size_t i = 0; i < tables.size(); ++i)
            if (tables[i].name == name) return static_cast<uint32_t>(i);
        panic("table `" + name + "` is not registered");
    }
};

/// Registers a reducer at static initialisation.
struct ReducerRegistration {
    ReducerRegistration(ReducerEntry entry) { Registry::get().reducers.push_back(std::move(entry)); }
};

/// Registers a procedure at static initialisation.
struct ProcedureRegistration {
    ProcedureRegistration(ProcedureEntry entry) { Registry::get().procedures.push_back(std::move(entry)); }
};

/// Decodes `data` as the arguments `Ts...`, calls `f(ctx, args...)` and
/// encodes the value it returns into `out`.
template <class R, class... Ts, class F>
Status invoke_procedure(const char* name, ProcedureContext& ctx, const uint8_t* data, size_t len, Bytes& out,
                        F f) {
    auto args = worldline::decode<std::tuple<Ts...>>(data, len);
    if (!args) return Status(std::string("invalid arguments for `") + name + "`");
    Returns<R> result = std::apply([&](auto&... a) { return f(ctx, std::move(a)...); }, *args);
    if (!result.ok()) return Status(result.message());
    out = encode(result.value());
    return {};
}

/// The parameters `names` of types `Ts`, described in order.
template <class... Ts>
std::vector<Param> params(TypeBuilder& t, const char* const* names) {
    uint32_t refs[] = {worldline::describe<Ts>(t)..., 0};
    std::vector<Param> out;
    for (size_t i = 0; i < sizeof...(Ts); ++i) out.emplace_back(names[i], refs[i]);
    return out;
}

/// Decodes `data` as the arguments `Ts...` and calls `f(ctx, args...)`.
template <class... Ts, class F>
Status invoke(const char* name, const ReducerContext& ctx, const uint8_t* data, size_t len, F f) {
    auto args = worldline::decode<std::tuple<Ts...>>(data, len);
    if (!args) return Status(std::string("invalid arguments for `") + name + "`");
    return std::apply([&](auto&... a) { return f(ctx, std::move(a)...); }, *args);
}

/// The column position of member `m` of row type `Row`.
template <class Row, class M>
uint32_t column_of(M Row::*m) {
    uint32_t position = 0, found = UINT32_MAX;
    std::apply(
        [&](const auto&... f) {
            (([&] {
                 if constexpr (std::is_same_v<std::decay_t<decltype(f.second)>, M Row::*>)
                     if (f.second == m) found = position;
                 ++position;
             }()),
             ...);
        },
        worldline_fields(static_cast<const Row*>(nullptr)));
    if (found == UINT32_MAX) panic("a table option names a member that WORLDLINE_ROW does not list");
    return found;
}

/// The name of column `position` of `Row`.
template <class Row>
std::string column_name(uint32_t position) {
    std::string name;
    uint32_t i = 0;
    std::apply([&](const auto&... f) { ((i++ == position ? (void)(name = f.first) : (void)0), ...); },
               worldline_fields(static_cast<const Row*>(nullptr)));
    return name;
}
}  // namespace detail

// ---------------------------------------------------------------------------
// Table declarations

/// Whether a table is readable by every client or only by its owner.
enum Visibility : bool { Private = false, Public = true };

/// A table option: an index, an auto-increment column or a schedule.
template <class Row>
struct TableOption {
    /// 0 primary key, 1 unique, 2 btree, 3 auto-inc, 4 named btree, 5 schedule.
    int kind = 0;
    /// The columns it names.
    std::vector<uint32_t> columns;
    /// A named index's name, or a schedule's reducer.
    std::string name;
};

/// The option `primary_key` returns: a type of its own, so that a `Table`
/// given two of them does not compile.
template <class Row>
struct PrimaryKeyOption : TableOption<Row> {};

/// Makes column `m` the primary key (a unique index `<table>_<column>_pk`).
/// A table has at most one: a second `primary_key` option is a compile
/// error (and, if passed as a plain `TableOption`, `describe` traps).
template <class Row, class M>
PrimaryKeyOption<Row> primary_key(M Row::*m) { return {{0, {detail::column_of(m)}, {}}}; }
/// A unique index on column `m`, `<table>_<column>_key`.
template <class Row, class M>
TableOption<Row> unique(M Row::*m) { return {1, {detail::column_of(m)}, {}}; }
/// A btree index on column `m`, `<table>_<column>_idx`.
template <class Row, class M>
TableOption<Row> btree(M Row::*m) { return {2, {detail::column_of(m)}, {}}; }
/// Column `m` (an integer) takes the next value of a sequence when inserted as 0.
template <class Row, class M>
TableOption<Row> auto_inc(M Row::*m) {
    static_assert(std::is_integral_v<M>, "auto_inc columns are integers");
    return {3, {detail::column_of(m)}, {}};
}
/// A btree index named `name` over several columns, in key order.
template <class Row, class... Ms>
TableOption<Row> index(const char* name, Ms Row::*... ms) {
    return {4, {detail::column_of(ms)...}, name};
}
/// Makes the table the schedule of reducer `reducer`: `at` is when a row is due.
template <class Row>
TableOption<Row> scheduled(const char* reducer, Timestamp Row::*at) {
    return {5, {detail::column_of(at)}, reducer};
}
/// The same, with a repeat interval column in microseconds (0 = once).
template <class Row>
TableOption<Row> scheduled(const char* reducer, Timestamp Row::*at, uint64_t Row::*interval) {
    return {5, {detail::column_of(at), detail::column_of(interval)}, reducer};
}

template <class Row>
class Table;

/// The rows of a scan, fetched from the host in batches as you iterate
/// (a range: `for (const Account& a : account.iter())`).
template <class Row>
class Rows {
public:
    /// Rows fetched per host call.
    static constexpr uint32_t batch_rows = 256;

    /// Takes over cursor `cursor`.
    explicit Rows(int32_t cursor) : cursor_(cursor) {}
    Rows(Rows&& o) noexcept : cursor_(std::exchange(o.cursor_, -1)) {}
    Rows(const Rows&) = delete;
    Rows& operator=(const Rows&) = delete;
    ~Rows() { close(); }

    /// An input iterator over the rows.
    class iterator {
    public:
        iterator() = default;
        explicit iterator(Rows* rows) : rows_(rows) { advance(); }
        const Row& operator*() const { return row_; }
        const Row* operator->() const { return &row_; }
        iterator& operator++() {
            advance();
            return *this;
        }
        bool operator==(const iterator& o) const { return rows_ == o.rows_; }
        bool operator!=(const iterator& o) const { return rows_ != o.rows_; }

    private:
        void advance() {
            if (rows_ && !rows_->next(row_)) rows_ = nullptr;
        }
        Rows* rows_ = nullptr;
        Row row_{};
    };
    /// The first row.
    iterator begin() { return iterator(this); }
    /// Past the last row.
    iterator end() { return iterator(); }

    /// Reads the next row into `row`; false when there are no more.
    bool next(Row& row) {
        if (left_ == 0) {
            if (cursor_ < 0) return false;
            left_ = host::cursor_next(cursor_, batch_rows, batch_);
            offset_ = 0;
            if (left_ == 0) {
                close();
                return false;
            }
        }
        Reader r(batch_.data() + offset_, batch_.size() - offset_);
        Codec<Row>::decode(r, row);
        if (r.failed()) panic("the host returned a row that does not decode");
        offset_ = batch_.size() - r.remaining();
        --left_;
        return true;
    }
    /// Collects the remaining rows.
    std::vector<Row> collect() {
        std::vector<Row> out;
        Row row{};
        while (next(row)) out.push_back(row);
        return out;
    }

private:
    void close() {
        if (cursor_ >= 0) host::cursor_drop(std::exchange(cursor_, -1));
    }
    int32_t cursor_;
    Bytes batch_;
    size_t offset_ = 0;
    uint32_t left_ = 0;
};

/// One end of a range over keys of type `K`.
template <class K>
struct KeyBound {
    /// 0 unbounded, 1 included, 2 excluded.
    uint8_t tag = 0;
    /// The key.
    K key{};
};
/// No limit on this side.
template <class K = Unit>
KeyBound<K> unbounded() { return {0, K{}}; }
/// Keys from (or up to) `key`, inclusive.
template <class K>
KeyBound<K> included(K key) { return {1, std::move(key)}; }
/// Keys past (or before) `key`.
template <class K>
KeyBound<K> excluded(K key) { return {2, std::move(key)}; }

namespace detail {
[[noreturn]] inline void fail(const DbError& e) { panic(e.message); }

template <class T>
struct IsTuple : std::false_type {};
template <class... Ts>
struct IsTuple<std::tuple<Ts...>> : std::true_type {};

/// The bytes of key prefix `p` of an index over columns `Ks...`: a tuple
/// of the first k columns' values, or the first column's value, each
/// converted to its column's type (so `1` encodes as the column's u32).
template <class... Ks, class P>
Bytes encode_prefix(const P& p) {
    using Key = std::tuple<Ks...>;
    if constexpr (IsTuple<P>::value) {
        constexpr size_t n = std::tuple_size_v<P>;
        static_assert(n >= 1 && n <= sizeof...(Ks), "a key prefix has 1 to (number of key columns) values");
        Writer w;
        [&]<size_t... I>(std::index_sequence<I...>) {
            (encode_into(w, std::tuple_element_t<I, Key>(std::get<I>(p))), ...);
        }(std::make_index_sequence<n>{});
        return std::move(w).take();
    } else {
        return encode(std::tuple_element_t<0, Key>(p));
    }
}

/// A range bound over an index with key columns `Ks...`.
template <class... Ks, class L>
Bound key_bound(const KeyBound<L>& b) {
    if constexpr (std::is_same_v<L, Unit>) {
        return Bound{0, {}};
    } else {
        return Bound{b.tag, b.tag ? encode_prefix<Ks...>(b.key) : Bytes{}};
    }
}

inline Bound bound(uint8_t tag, Bytes key) { return Bound{tag, std::move(key)}; }
}  // namespace detail

/// An index over one column of type `K` (`table.by(&Row::column)`).
template <class Row, class K>
class ColumnIndex {
public:
    /// The index `index` of table `table`.
    ColumnIndex(const Table<Row>* table, uint32_t index) : table_(table), index_(index) {}

    /// The row with this key (unique indexes).
    std::optional<Row> find(const K& key) const {
        std::optional<Bytes> row;
        DbError err;
        if (!host::find(table_->id(), index_, encode(key), row, err)) detail::fail(err);
        if (!row) return std::nullopt;
        auto decoded = decode<Row>(*row);
        if (!decoded) panic("the host returned a row that does not decode");
        return decoded;
    }
    /// Replaces the row with `row`'s key; traps (rolling back) if none has it.
    Row update(const Row& row) const {
        auto result = try_update(row);
        if (!result) detail::fail(result.error());
        return row;
    }
    /// Replaces the row with `row`'s key, or returns the refusal.
    DbResult<Row> try_update(const Row& row) const {
        DbError err;
        if (!host::update(table_->id(), index_, encode(row), err)) return err;
        return row;
    }
    /// Deletes the row with this key; returns whether there was one.
    bool erase(const K& key) const {
        bool existed = false;
        DbError err;
        if (!host::erase(table_->id(), index_, encode(key), existed, err)) detail::fail(err);
        return existed;
    }
    /// Rows with this key, in insertion order.
    Rows<Row> filter(const K& key) const {
        Bytes k = encode(key);
        return scan(detail::bound(1, k), detail::bound(1, k));
    }
    /// Rows whose key lies between `lower` and `upper`, in key order (the
    /// bounds' keys are converted to the column's type `K`).
    template <class L, class U>
    Rows<Row> range(const KeyBound<L>& lower, const KeyBound<U>& upper) const {
        return scan(detail::key_bound<K>(lower), detail::key_bound<K>(upper));
    }

private:
    Rows<Row> scan(const Bound& lower, const Bound& upper) const {
        int32_t cursor = -1;
        DbError err;
        if (!host::scan_index(table_->id(), index_, lower, upper, cursor, err)) detail::fail(err);
        return Rows<Row>(cursor);
    }
    const Table<Row>* table_;
    uint32_t index_;
};

/// A btree index over several columns `Ks...` (`table.index<A, B>("name")`).
template <class Row, class... Ks>
class MultiIndex {
public:
    /// The index `index` of table `table`.
    MultiIndex(const Table<Row>* table, uint32_t index) : table_(table), index_(index) {}
    /// Rows whose key equals `key`, in insertion order.
    Rows<Row> filter(const std::tuple<Ks...>& key) const {
        Bytes k = encode(key);
        return scan({1, k}, {1, k});
    }
    /// Rows whose first key columns equal `prefix` (a tuple of the first k
    /// columns, or the first column's value), in key order.
    template <class P>
    Rows<Row> filter_prefix(const P& prefix) const {
        Bytes k = detail::encode_prefix<Ks...>(prefix);
        return scan({1, k}, {1, k});
    }
    /// Rows whose key lies between `lower` and `upper` (full keys or
    /// prefixes, as tuples or the first column's value).
    template <class L, class U>
    Rows<Row> range(const KeyBound<L>& lower, const KeyBound<U>& upper) const {
        return scan(detail::key_bound<Ks...>(lower), detail::key_bound<Ks...>(upper));
    }

private:
    Rows<Row> scan(const Bound& lower, const Bound& upper) const {
        int32_t cursor = -1;
        DbError err;
        if (!host::scan_index(table_->id(), index_, lower, upper, cursor, err)) detail::fail(err);
        return Rows<Row>(cursor);
    }
    const Table<Row>* table_;
    uint32_t index_;
};

/// A table of rows `Row` (declared with WORLDLINE_ROW). Declare one as an
/// `inline` global; its constructor registers it with the module.
template <class Row>
class Table {
public:
    /// Declares table `name` with these options (see primary_key, unique,
    /// btree, index, auto_inc, scheduled).
    template <class... Options>
    Table(const char* name, Visibility visibility, Options... options)
        : name_(name), def_{name, 0, std::nullopt, {}, {}, visibility == Public, std::nullopt} {
        static_assert((0 + ... + std::is_same_v<std::decay_t<Options>, PrimaryKeyOption<Row>>) <= 1,
                      "a worldline::Table has at most one primary_key column");
        std::vector<TableOption<Row>> opts{options...};
        build(opts);
        detail::Registry::get().tables.push_back(
            {name_, [this](TypeBuilder& t) {
                 if (!error_.empty()) panic(error_);
                 TableDef def = def_;
                 def.row_type = worldline::describe<Row>(t);
                 return def;
             }});
    }
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;

    /// The table's name.
    const std::string& name() const { return name_; }
    /// The id the host knows the table by.
    uint32_t id() const {
        if (id_ == UINT32_MAX) id_ = detail::Registry::get().table_id(name_);
        return id_;
    }

    /// Inserts `row` and returns it as stored (auto-increment columns
    /// filled); traps, rolling the call back, on a unique violation.
    Row insert(const Row& row) const {
        auto result = try_insert(row);
        if (!result) detail::fail(result.error());
        return std::move(result.value());
    }
    /// Inserts `row` and returns it as stored, or the datastore's refusal.
    DbResult<Row> try_insert(const Row& row) const {
        Bytes bytes = encode(row), stored;
        DbError err;
        if (!host::insert(id(), bytes, stored, err)) return err;
        if (stored == bytes) return row;
        auto decoded = decode<Row>(stored);
        if (!decoded) panic("the host returned a row that does not decode");
        return std::move(*decoded);
    }
    /// How many rows the table has.
    uint64_t count() const {
        uint64_t n = 0;
        DbError err;
        if (!host::count(id(), n, err)) detail::fail(err);
        return n;
    }
    /// All rows, in insertion order, fetched in batches.
    Rows<Row> iter() const {
        int32_t cursor = -1;
        DbError err;
        if (!host::scan(id(), cursor, err)) detail::fail(err);
        return Rows<Row>(cursor);
    }
    /// The single-column index (primary key, unique or btree) on column `m`.
    template <class M>
    ColumnIndex<Row, M> by(M Row::*m) const {
        uint32_t column = detail::column_of(m);
        for (size_t i = 0; i < def_.indexes.size(); ++i)
            if (def_.indexes[i].columns == std::vector<uint32_t>{column})
                return ColumnIndex<Row, M>(this, static_cast<uint32_t>(i));
        panic("table `" + name_ + "` has no index on column `" + detail::column_name<Row>(column) + "`");
    }
    /// The multi-column index named `name`, whose key columns have types `Ks...`.
    template <class... Ks>
    MultiIndex<Row, Ks...> index(std::string_view name) const {
        for (size_t i = 0; i < def_.indexes.size(); ++i)
            if (def_.indexes[i].name == name) return MultiIndex<Row, Ks...>(this, static_cast<uint32_t>(i));
        panic("table `" + name_ + "` has no index named `" + std::string(name) + "`");
    }

private:
    void build(const std::vector<TableOption<Row>>& opts) {
        // Indexes in the Rust SDK's order: per column (primary key or unique,
        // then btree), then named indexes as declared.
        uint32_t columns = 0;
        std::apply([&](const auto&... f) { (((void)f, ++columns), ...); },
                   worldline_fields(static_cast<const Row*>(nullptr)));
        for (uint32_t c = 0; c < columns; ++c) {
            for (int kind : {0, 1, 2}) {
                for (const auto& o : opts) {
                    if (o.kind != kind || o.columns[0] != c) continue;
                    static const char* suffix[] = {"pk", "key", "idx"};
                    if (kind == 0) {
                        if (def_.primary_key && error_.empty())
                            error_ = "table " + name_ + ": at most one primary_key column";
                        def_.primary_key = static_cast<uint32_t>(def_.indexes.size());
                    }
                    def_.indexes.push_back(
                        {name_ + "_" + detail::column_name<Row>(c) + "_" + suffix[kind], {c}, kind != 2});
                }
            }
            for (const auto& o : opts)
                if (o.kind == 3 && o.columns[0] == c) def_.auto_inc.push_back(c);
        }
        for (const auto& o : opts) {
            if (o.kind == 4) def_.indexes.push_back({o.name, o.columns, false});
            if (o.kind == 5)
                def_.schedule = ScheduleDef{
                    o.name, o.columns[0],
                    o.columns.size() > 1 ? std::optional<uint32_t>(o.columns[1]) : std::nullopt};
        }
    }

    std::string name_;
    TableDef def_;
    /// A declaration error `describe` reports (it traps with it).
    std::string error_;
    mutable uint32_t id_ = UINT32_MAX;
};

}  // namespace worldline

// ---------------------------------------------------------------------------
// Reducer declarations

#define WL_PARAM_DECL_(T, n) T n
#define WL_PARAM_DECL(c, p) WL_PARAM_DECL_ p
#define WL_PARAM_TYPE_(T, n) T
#define WL_PARAM_TYPE(c, p) WL_PARAM_TYPE_ p
#define WL_PARAM_NAME_(T, n) #n
#define WL_PARAM_NAME(c, p) WL_PARAM_NAME_ p

#define WL_REDUCER(name, lifecycle, ...)                                                                \
    static ::worldline::Status name([[maybe_unused]] const ::worldline::ReducerContext& ctx __VA_OPT__(, )            \
                                        __VA_OPT__(WL_MAP(WL_PARAM_DECL, _, __VA_ARGS__)));          \
    static const ::worldline::detail::ReducerRegistration WL_CAT(wl_reducer_, name)(                   \
        ::worldline::detail::ReducerEntry{                                                              \
            #name, lifecycle,                                                                           \
            [](::worldline::TypeBuilder& t) {                                                           \
                static const char* const names[] = {__VA_OPT__(WL_MAP(WL_PARAM_NAME, _, __VA_ARGS__), ) \
                                                        nullptr};                                       \
                return ::worldline::detail::params<__VA_OPT__(WL_MAP(WL_PARAM_TYPE, _, __VA_ARGS__))>(  \
                    t, names);                                                                          \
            },                                                                                          \
            [](const ::worldline::ReducerContext& c, const uint8_t* data, size_t len) {                 \
                return ::worldline::detail::invoke<__VA_OPT__(WL_MAP(WL_PARAM_TYPE, _, __VA_ARGS__))>(  \
                    #name, c, data, len, [](const ::worldline::ReducerContext& cc, auto&&... a) {       \
                        return name(cc, std::forward<decltype(a)>(a)...);                                \
                    });                                                                                 \
            }});                                                                                        \
    static ::worldline::Status name([[maybe_unused]] const ::worldline::ReducerContext& ctx __VA_OPT__(, )            \
                                        __VA_OPT__(WL_MAP(WL_PARAM_DECL, _, __VA_ARGS__)))

/// Declares reducer `name` with typed parameters given as `(type, name)`
/// pairs, followed by its body, which sees `ctx` and returns a Status:
/// `WORLDLINE_REDUCER(transfer, (uint32_t, from), (uint32_t, to), (int64_t, amount)) { ... }`.
#define WORLDLINE_REDUCER(name, ...) WL_REDUCER(name, std::nullopt __VA_OPT__(, ) __VA_ARGS__)
/// Declares the `init` lifecycle reducer: runs once when the database is created.
#define WORLDLINE_INIT(name) WL_REDUCER(name, ::worldline::Lifecycle::Init)
/// Declares the `client_connected` lifecycle reducer; an error refuses the connection.
#define WORLDLINE_CLIENT_CONNECTED(name) WL_REDUCER(name, ::worldline::Lifecycle::ClientConnected)
/// Declares the `client_disconnected` lifecycle reducer.
#define WORLDLINE_CLIENT_DISCONNECTED(name) WL_REDUCER(name, ::worldline::Lifecycle::ClientDisconnected)

#define WL_PROCEDURE(name, R, ...)                                                                       \
    static ::worldline::Returns<R> name([[maybe_unused]] ::worldline::ProcedureContext& ctx __VA_OPT__(, ) \
                                            __VA_OPT__(WL_MAP(WL_PARAM_DECL, _, __VA_ARGS__)));             \
    static const ::worldline::detail::ProcedureRegistration WL_CAT(wl_procedure_, name)(                    \
        ::worldline::detail::ProcedureEntry{                                                                 \
            #name,                                                                                           \
            [](::worldline::TypeBuilder& t) {                                                                \
                static const char* const names[] = {__VA_OPT__(WL_MAP(WL_PARAM_NAME, _, __VA_ARGS__), )      \
                                                        nullptr};                                            \
                return ::worldline::detail::params<__VA_OPT__(WL_MAP(WL_PARAM_TYPE, _, __VA_ARGS__))>(       \
                    t, names);                                                                               \
            },                                                                                               \
            [](::worldline::TypeBuilder& t) { return ::worldline::describe<R>(t); },                          \
            [](::worldline::ProcedureContext& c, const uint8_t* data, size_t len, ::worldline::Bytes& out) { \
                return ::worldline::detail::invoke_procedure<R __VA_OPT__(, )                                 \
                                                                 __VA_OPT__(WL_MAP(WL_PARAM_TYPE, _, __VA_ARGS__))>( \
                    #name, c, data, len, out, [](::worldline::ProcedureContext& cc, auto&&... a) {           \
                        return name(cc, std::forward<decltype(a)>(a)...);                                     \
                    });                                                                                      \
            }});                                                                                             \
    static ::worldline::Returns<R> name([[maybe_unused]] ::worldline::ProcedureContext& ctx __VA_OPT__(, ) \
                                            __VA_OPT__(WL_MAP(WL_PARAM_DECL, _, __VA_ARGS__)))

/// Declares procedure `name` returning a value of type `R` (worldline::Unit
/// for none), with `(type, name)` parameters, followed by its body, which
/// sees `ctx` (a ProcedureContext) and returns an `R` or a worldline::Err:
/// `WORLDLINE_PROCEDURE(refresh, uint64_t, (std::string, symbol)) { ... }`.
#define WORLDLINE_PROCEDURE(name, R, ...) WL_PROCEDURE(name, R __VA_OPT__(, ) __VA_ARGS__)

#define WL_SUM_NAME(c, n) #n
/// Names the cases of a sum type `T`, a struct deriving from
/// `std::variant<Cases...>` with `using variant_type = std::variant<Cases...>;`
/// and the variant's constructors: `WORLDLINE_SUM(Shape, empty, count, name)`.
#define WORLDLINE_SUM(T, ...)                                                     \
    [[maybe_unused]] inline auto worldline_cases(const T*) {                      \
        return std::array<const char*, WL_NARGS(__VA_ARGS__)>{                    \
            WL_MAP(WL_SUM_NAME, _, __VA_ARGS__)};                                 \
    }                                                                             \
    static_assert(true, "")
