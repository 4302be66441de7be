// The Worldline C++ SDK's side of the WIT boundary: the `guest` exports
// (describe, call-reducer, call-procedure) and the imports the SDK wraps,
// over the `wit-bindgen c` bindings (`module.h`, generated at build time).
//
// Ownership, as the C bindings define it: arguments of an export belong to
// the export, which frees them; what an export returns (the module-def, an
// error string, a procedure's value) is freed by the bindings' post-return
// functions with free(), so it is all allocated here with malloc. What an
// import returns belongs to the caller, which frees it.
#include "worldline/worldline.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

extern "C" {
#include "module.h"
}

namespace worldline {
namespace {

template <class T>
T* alloc_array(size_t n) {
    if (n == 0) return nullptr;
    void* p = std::calloc(n, sizeof(T));
    if (!p) panic("out of memory");
    return static_cast<T*>(p);
}

/// `s` with every ill-formed UTF-8 sequence replaced by U+FFFD, as Rust's
/// `String::from_utf8_lossy` does (one replacement per maximal invalid
/// subpart). A WIT `string` must be valid UTF-8: the host traps on one that
/// is not, so a message, name or URL a module built from bytes is repaired
/// here rather than turning a log line or an error into a trap.
std::string lossy_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0, n = s.size();
    while (i < n) {
        auto c = static_cast<uint8_t>(s[i]);
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            ++i;
            continue;
        }
        size_t len = 0;
        uint8_t lo = 0x80, hi = 0xbf;  // the range of the second byte
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        }
        size_t k = 1;
        if (len != 0) {
            for (; k < len && i + k < n; ++k) {
                auto cc = static_cast<uint8_t>(s[i + k]);
                if (k == 1 ? (cc < lo || cc > hi) : (cc < 0x80 || cc > 0xbf)) break;
            }
        }
        if (len != 0 && k == len) {
            out.append(s.substr(i, len));
        } else {
            out.append("\xEF\xBF\xBD");  // U+FFFD for the maximal invalid subpart
        }
        i += k;
    }
    return out;
}

module_string_t c_string(std::string_view text) {
    std::string repaired = lossy_utf8(text);
    std::string_view s = repaired;
    module_string_t out{nullptr, s.size()};
    if (!s.empty()) {
        out.ptr = alloc_array<uint8_t>(s.size());
        std::memcpy(out.ptr, s.data(), s.size());
    }
    return out;
}

module_list_u32_t c_u32s(const std::vector<uint32_t>& v) {
    module_list_u32_t out{alloc_array<uint32_t>(v.size()), v.size()};
    std::copy(v.begin(), v.end(), out.ptr);
    return out;
}

worldline_module_types_list_field_t c_fields(const std::vector<Param>& params) {
    worldline_module_types_list_field_t out{alloc_array<worldline_module_types_field_t>(params.size()),
                                            params.size()};
    for (size_t i = 0; i < params.size(); ++i) {
        out.ptr[i].name.is_some = true;
        out.ptr[i].name.val = c_string(params[i].first);
        out.ptr[i].ty = params[i].second;
    }
    return out;
}

/// A borrowed view of bytes for an import argument (imports do not free it).
module_list_u8_t view(const Bytes& b) { return {const_cast<uint8_t*>(b.data()), b.size()}; }

/// Takes an import's returned list into `out` and frees it.
void take(module_list_u8_t& list, Bytes& out) {
    out.assign(list.ptr, list.ptr + list.len);
    module_list_u8_free(&list);
}

void take_error(worldline_module_datastore_db_error_t& e, DbError& err) {
    err.kind = static_cast<DbErrorKind>(e.kind);
    err.message.assign(reinterpret_cast<const char*>(e.message.ptr), e.message.len);
    worldline_module_datastore_db_error_free(&e);
}

Identity identity(const worldline_module_types_identity_t& words) {
    Identity id;
    uint64_t w[4] = {words.f0, words.f1, words.f2, words.f3};
    for (int i = 0; i < 32; ++i) id.bytes[i] = static_cast<uint8_t>(w[i / 8] >> (56 - 8 * (i % 8)));
    return id;
}

std::optional<ConnectionId> connection(const worldline_module_types_option_connection_id_t& c) {
    if (!c.is_some) return std::nullopt;
    ConnectionId id;
    uint64_t w[2] = {c.val.f0, c.val.f1};
    for (int i = 0; i < 16; ++i) id.bytes[i] = static_cast<uint8_t>(w[i / 8] >> (56 - 8 * (i % 8)));
    return id;
}

ModuleDef build_module_def() {
    auto& registry = detail::Registry::get();
    registry.sort();
    ModuleDef def;
    TypeBuilder types;
    for (auto& t : registry.tables) def.tables.push_back(t.describe(types));
    for (auto& r : registry.reducers) def.reducers.push_back({r.name, r.params(types), r.lifecycle});
    for (auto& p : registry.procedures) {
        auto params = p.params(types);
        def.procedures.push_back({p.name, std::move(params), p.returns(types)});
    }
    def.types = types.nodes();
    return def;
}

}  // namespace

namespace host {

void log(Level level, std::string_view message) {
    std::string text = lossy_utf8(message);
    module_string_t s{reinterpret_cast<uint8_t*>(text.data()), text.size()};
    worldline_module_log_write(static_cast<worldline_module_log_level_t>(level), &s);
}

bool insert(uint32_t table, const Bytes& row, Bytes& stored, DbError& err) {
    module_list_u8_t arg = view(row), ret;
    worldline_module_datastore_db_error_t e;
    if (!worldline_module_datastore_insert(table, &arg, &ret, &e)) return take_error(e, err), false;
    take(ret, stored);
    return true;
}

bool update(uint32_t table, uint32_t index, const Bytes& row, DbError& err) {
    module_list_u8_t arg = view(row), ret;
    worldline_module_datastore_db_error_t e;
    if (!worldline_module_datastore_update(table, index, &arg, &ret, &e)) return take_error(e, err), false;
    module_list_u8_free(&ret);
    return true;
}

bool erase(uint32_t table, uint32_t index, const Bytes& key, bool& existed, DbError& err) {
    module_list_u8_t arg = view(key);
    worldline_module_datastore_db_error_t e;
    if (!worldline_module_datastore_delete(table, index, &arg, &existed, &e)) return take_error(e, err), false;
    return true;
}

bool find(uint32_t table, uint32_t index, const Bytes& key, std::optional<Bytes>& row, DbError& err) {
    module_list_u8_t arg = view(key);
    module_option_list_u8_t ret;
    worldline_module_datastore_db_error_t e;
    if (!worldline_module_datastore_find(table, index, &arg, &ret, &e)) return take_error(e, err), false;
    if (ret.is_some) {
        row.emplace();
        take(ret.val, *row);
    } else {
        row.reset();
    }
    return true;
}

bool count(uint32_t table, uint64_t& rows, DbError& err) {
    worldline_module_datastore_db_error_t e;
    if (!worldline_module_datastore_count(table, &rows, &e)) return take_error(e, err), false;
    return true;
}

bool scan(uint32_t table, int32_t& cursor, DbError& err) {
    worldline_module_datastore_own_cursor_t ret;
    worldline_module_datastore_db_error_t e;
    if (!worldline_module_datastore_scan(table, &ret, &e)) return take_error(e, err), false;
    cursor = ret.__handle;
    return true;
}

bool scan_index(uint32_t table, uint32_t index, const Bound& lower, const Bound& upper, int32_t& cursor,
                DbError& err) {
    auto c_bound = [](const Bound& b) {
        worldline_module_datastore_bound_t out;
        out.tag = b.tag;
        if (b.tag == WORLDLINE_MODULE_DATASTORE_BOUND_INCLUDED) out.val.included = view(b.key);
        if (b.tag == WORLDLINE_MODULE_DATASTORE_BOUND_EXCLUDED) out.val.excluded = view(b.key);
        return out;
    };
    auto lo = c_bound(lower), hi = c_bound(upper);
    worldline_module_datastore_own_cursor_t ret;
    worldline_module_datastore_db_error_t e;
    if (!worldline_module_datastore_scan_index(table, index, &lo, &hi, &ret, &e)) return take_error(e, err), false;
    cursor = ret.__handle;
    return true;
}

uint32_t cursor_next(int32_t cursor, uint32_t max_rows, Bytes& data) {
    worldline_module_datastore_batch_t batch;
    worldline_module_datastore_borrow_cursor_t borrowed{cursor};
    worldline_module_datastore_method_cursor_next(borrowed, max_rows, &batch);
    take(batch.data, data);
    return batch.count;
}

void cursor_drop(int32_t cursor) {
    worldline_module_datastore_cursor_drop_own(worldline_module_datastore_own_cursor_t{cursor});
}

namespace {
std::string take_string(module_string_t& s) {
    std::string out(reinterpret_cast<const char*>(s.ptr), s.len);
    module_string_free(&s);
    return out;
}

void take_tx_error(worldline_module_transaction_tx_error_t& e, TxError& err) {
    err.kind = static_cast<TxErrorKind>(e.kind);
    err.message = take_string(e.message);
}

module_string_t borrow(const std::string& s) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(s.data())), s.size()};
}
}  // namespace

bool http_send(const http::Request& request, http::Response& response, http::Error& err) {
    // The request's text crosses the boundary as WIT strings, which must be
    // UTF-8: anything else is refused here, as the host refuses a malformed
    // request, instead of trapping in the host's check.
    auto refuse = [&](const std::string& what) {
        err.kind = http::ErrorKind::InvalidRequest;
        err.message = "the request's " + what + " is not valid UTF-8";
        return false;
    };
    if (lossy_utf8(request.method) != request.method) return refuse("method");
    if (lossy_utf8(request.url) != request.url) return refuse("URL");
    for (const auto& h : request.headers)
        if (lossy_utf8(h.name) != h.name || lossy_utf8(h.value) != h.value)
            return refuse("header " + lossy_utf8(h.name));
    std::vector<worldline_module_http_header_t> headers;
    for (const auto& h : request.headers) headers.push_back({borrow(h.name), borrow(h.value)});
    worldline_module_http_request_t req{
        borrow(request.method),
        borrow(request.url),
        {headers.data(), headers.size()},
        view(request.body),
        {request.timeout_ms.has_value(), request.timeout_ms.value_or(0)},
    };
    worldline_module_http_response_t ret;
    worldline_module_http_http_error_t e;
    if (!worldline_module_http_send(&req, &ret, &e)) {
        err.kind = static_cast<http::ErrorKind>(e.kind);
        err.message = take_string(e.message);
        return false;
    }
    response.status = ret.status;
    response.headers.clear();
    for (size_t i = 0; i < ret.headers.len; ++i) {
        auto& h = ret.headers.ptr[i];
        response.headers.push_back({std::string(reinterpret_cast<const char*>(h.name.ptr), h.name.len),
                                    std::string(reinterpret_cast<const char*>(h.value.ptr), h.value.len)});
    }
    worldline_module_http_list_header_free(&ret.headers);
    take(ret.body, response.body);
    return true;
}

bool tx_begin(int64_t& timestamp, TxError& err) {
    worldline_module_transaction_tx_error_t e;
    if (!worldline_module_transaction_begin(&timestamp, &e)) return take_tx_error(e, err), false;
    return true;
}

bool tx_commit(TxError& err) {
    worldline_module_transaction_tx_error_t e;
    if (!worldline_module_transaction_commit(&e)) return take_tx_error(e, err), false;
    return true;
}

bool tx_rollback(TxError& err) {
    worldline_module_transaction_tx_error_t e;
    if (!worldline_module_transaction_rollback(&e)) return take_tx_error(e, err), false;
    return true;
}

}  // namespace host
}  // namespace worldline

// Traps with a message: libc++ reports its fatal errors (an allocation
// failing with exceptions off, a hardening assertion) through this
// replaceable function; the message goes to the log as the failure reason.
namespace std {
[[noreturn]] void __libcpp_verbose_abort(const char* format, ...) noexcept {
    char message[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(message, sizeof message, format, args);
    va_end(args);
    worldline::panic(message);
}
}  // namespace std

// `abort()` (from the module or the C library) reports itself before the trap.
extern "C" void abort(void) {
    worldline::panic("abort() was called");
}

using namespace worldline;

extern "C" void exports_worldline_module_guest_describe(exports_worldline_module_guest_module_def_t* ret) {
    ModuleDef def = build_module_def();

    ret->types = {alloc_array<worldline_module_types_type_node_t>(def.types.size()), def.types.size()};
    for (size_t i = 0; i < def.types.size(); ++i) {
        const TypeNode& n = def.types[i];
        auto& out = ret->types.ptr[i];
        out.tag = n.tag;
        if (n.tag == TypeNode::Option) out.val.option = n.ref;
        if (n.tag == TypeNode::Array) out.val.array = n.ref;
        if (n.tag == TypeNode::Product) {
            out.val.product = {alloc_array<worldline_module_types_field_t>(n.members.size()), n.members.size()};
            for (size_t k = 0; k < n.members.size(); ++k) {
                auto& f = out.val.product.ptr[k];
                f.name.is_some = n.members[k].first.has_value();
                if (f.name.is_some) f.name.val = c_string(*n.members[k].first);
                f.ty = n.members[k].second;
            }
        }
        if (n.tag == TypeNode::Sum) {
            out.val.sum = {alloc_array<worldline_module_types_variant_case_t>(n.members.size()), n.members.size()};
            for (size_t k = 0; k < n.members.size(); ++k) {
                out.val.sum.ptr[k].name = c_string(n.members[k].first.value_or(""));
                out.val.sum.ptr[k].ty = n.members[k].second;
            }
        }
    }

    ret->tables = {alloc_array<worldline_module_types_table_def_t>(def.tables.size()), def.tables.size()};
    for (size_t i = 0; i < def.tables.size(); ++i) {
        const TableDef& t = def.tables[i];
        auto& out = ret->tables.ptr[i];
        out.name = c_string(t.name);
        out.row_type = t.row_type;
        out.primary_key = {t.primary_key.has_value(), t.primary_key.value_or(0)};
        out.indexes = {alloc_array<worldline_module_types_index_def_t>(t.indexes.size()), t.indexes.size()};
        for (size_t k = 0; k < t.indexes.size(); ++k) {
            out.indexes.ptr[k].name = c_string(t.indexes[k].name);
            out.indexes.ptr[k].columns = c_u32s(t.indexes[k].columns);
            out.indexes.ptr[k].kind =
                t.indexes[k].unique ? WORLDLINE_MODULE_TYPES_INDEX_KIND_UNIQUE : WORLDLINE_MODULE_TYPES_INDEX_KIND_BTREE;
        }
        out.auto_inc = c_u32s(t.auto_inc);
        out.public_ = t.is_public;
        out.schedule.is_some = t.schedule.has_value();
        if (t.schedule) {
            out.schedule.val.reducer = c_string(t.schedule->reducer);
            out.schedule.val.at_column = t.schedule->at_column;
            out.schedule.val.interval_column = {t.schedule->interval_column.has_value(),
                                                t.schedule->interval_column.value_or(0)};
        }
    }

    ret->reducers = {alloc_array<worldline_module_types_reducer_def_t>(def.reducers.size()), def.reducers.size()};
    for (size_t i = 0; i < def.reducers.size(); ++i) {
        const ReducerDef& r = def.reducers[i];
        auto& out = ret->reducers.ptr[i];
        out.name = c_string(r.name);
        out.params = c_fields(r.params);
        out.lifecycle = {r.lifecycle.has_value(), static_cast<uint8_t>(r.lifecycle.value_or(Lifecycle::Init))};
    }

    ret->procedures = {alloc_array<worldline_module_types_procedure_def_t>(def.procedures.size()),
                       def.procedures.size()};
    for (size_t i = 0; i < def.procedures.size(); ++i) {
        const ProcedureDef& p = def.procedures[i];
        auto& out = ret->procedures.ptr[i];
        out.name = c_string(p.name);
        out.params = c_fields(p.params);
        out.returns = p.returns;
    }
}

extern "C" bool exports_worldline_module_guest_call_reducer(uint32_t id,
                                                            exports_worldline_module_guest_reducer_context_t* c,
                                                            module_list_u8_t* args, module_string_t* err) {
    auto& registry = detail::Registry::get();
    registry.sort();
    Status status;
    if (id >= registry.reducers.size()) {
        status = Status("this module has no reducer with id " + std::to_string(id));
    } else {
        ReducerContext ctx{identity(c->sender), connection(c->connection_id), Timestamp{c->timestamp}, c->seed};
        status = registry.reducers[id].invoke(ctx, args->ptr, args->len);
    }
    module_list_u8_free(args);
    if (status.ok()) return true;
    *err = c_string(status.message());
    return false;
}

extern "C" bool exports_worldline_module_guest_call_procedure(uint32_t id,
                                                              exports_worldline_module_guest_procedure_context_t* c,
                                                              module_list_u8_t* args, module_list_u8_t* ret,
                                                              module_string_t* err) {
    auto& registry = detail::Registry::get();
    registry.sort();
    Status status;
    Bytes value;
    if (id >= registry.procedures.size()) {
        status = Status("this module has no procedure with id " + std::to_string(id));
    } else {
        ProcedureContext ctx{identity(c->sender), connection(c->connection_id), Timestamp{c->timestamp}, c->seed};
        status = registry.procedures[id].invoke(ctx, args->ptr, args->len, value);
    }
    module_list_u8_free(args);
    if (!status.ok()) {
        *err = c_string(status.message());
        return false;
    }
    *ret = {alloc_array<uint8_t>(value.size()), value.size()};
    if (!value.empty()) std::memcpy(ret->ptr, value.data(), value.size());
    return true;
}
