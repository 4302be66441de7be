// The postcard codec of the Worldline C++ SDK: the encoding of rows, keys,
// reducer arguments and procedure values that `wit/worldline.wit` specifies
// (see `type-node` there). It needs only the C++ standard library, so it is
// tested natively against `tests/vectors/postcard.json`.
//
// A type is encodable when `worldline::Codec<T>` is specialised for it: the
// primitives, std::string, std::optional, std::vector, std::tuple,
// Identity, ConnectionId, Timestamp, U128/I128, structs declared with
// WORLDLINE_ROW and sums declared with WORLDLINE_SUM (worldline.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace worldline {

/// Bytes as they cross the WIT boundary.
using Bytes = std::vector<uint8_t>;

/// Appends postcard bytes to a buffer.
class Writer {
public:
    /// Appends one byte.
    void byte(uint8_t b) { out_.push_back(b); }
    /// Appends raw bytes.
    void raw(const uint8_t* data, size_t len) { out_.insert(out_.end(), data, data + len); }
    /// Appends an unsigned LEB128 varint (up to 128 bits).
    void varint(unsigned __int128 v) {
        while (v >= 0x80) {
            out_.push_back(static_cast<uint8_t>(v) | 0x80);
            v >>= 7;
        }
        out_.push_back(static_cast<uint8_t>(v));
    }
    /// Appends a zigzag-encoded signed varint (up to 128 bits).
    void zigzag(__int128 v) {
        auto u = static_cast<unsigned __int128>(v);
        varint((u << 1) ^ static_cast<unsigned __int128>(v >> 127));
    }
    /// The bytes written so far.
    const Bytes& bytes() const& { return out_; }
    /// Takes the bytes written.
    Bytes take() && { return std::move(out_); }

private:
    Bytes out_;
};

/// Reads postcard bytes; a read past the end or a malformed value sets
/// `failed()` and yields zero values, never undefined behaviour.
class Reader {
public:
    /// Reads from `len` bytes at `data` (not owned).
    Reader(const uint8_t* data, size_t len) : p_(data), end_(data + len) {}
    /// Reads from a byte vector (not owned: it must outlive the reader).
    explicit Reader(const Bytes& b) : Reader(b.data(), b.size()) {}

    /// One byte, or 0 (and failure) at the end.
    uint8_t byte() {
        if (p_ == end_) return fail(), 0;
        return *p_++;
    }
    /// `len` raw bytes into `out`; zeros (and failure) if fewer remain.
    void raw(uint8_t* out, size_t len) {
        if (static_cast<size_t>(end_ - p_) < len) {
            std::memset(out, 0, len);
            fail();
            return;
        }
        std::memcpy(out, p_, len);
        p_ += len;
    }
    /// An unsigned varint of at most `bits` bits; fails on overflow or a
    /// non-canonical trailing byte past the width.
    unsigned __int128 varint(unsigned bits) {
        unsigned __int128 v = 0;
        unsigned max_bytes = (bits + 6) / 7;
        for (unsigned i = 0; i < max_bytes; ++i) {
            uint8_t b = byte();
            if (failed_) return 0;
            unsigned shift = 7 * i;
            unsigned __int128 part = static_cast<unsigned __int128>(b & 0x7f) << shift;
            if (shift + 7 > bits && ((b & 0x7f) >> (bits - shift)) != 0) return fail(), 0;
            v |= part;
            if ((b & 0x80) == 0) return v;
        }
        return fail(), 0;
    }
    /// A zigzag-encoded signed varint of at most `bits` bits.
    __int128 zigzag(unsigned bits) {
        unsigned __int128 u = varint(bits);
        return static_cast<__int128>(u >> 1) ^ -static_cast<__int128>(u & 1);
    }
    /// Skips `len` bytes (failing if fewer remain).
    void skip(size_t len) {
        if (static_cast<size_t>(end_ - p_) < len) return fail();
        p_ += len;
    }
    /// Marks the input malformed.
    void fail() { failed_ = true; }
    /// Whether a read failed.
    bool failed() const { return failed_; }
    /// Bytes not yet read.
    size_t remaining() const { return static_cast<size_t>(end_ - p_); }
    /// Where reading stands.
    const uint8_t* position() const { return p_; }

private:
    const uint8_t* p_;
    const uint8_t* end_;
    bool failed_ = false;
};

/// Encoding and decoding of `T`; specialised per type.
template <class T, class Enable = void>
struct Codec;

/// Appends `value`'s postcard bytes to `w`.
template <class T>
void encode_into(Writer& w, const T& value) {
    Codec<T>::encode(w, value);
}

/// Reads a `T` from `r` (check `r.failed()` afterwards).
template <class T>
T decode_from(Reader& r) {
    T value{};
    Codec<T>::decode(r, value);
    return value;
}

/// The postcard bytes of `value`.
template <class T>
Bytes encode(const T& value) {
    Writer w;
    encode_into(w, value);
    return std::move(w).take();
}

/// Decodes a whole buffer as `T`: nothing if it is malformed or has bytes left over.
template <class T>
std::optional<T> decode(const uint8_t* data, size_t len) {
    Reader r(data, len);
    T value = decode_from<T>(r);
    if (r.failed() || r.remaining() != 0) return std::nullopt;
    return value;
}

/// Decodes a whole byte vector as `T`.
template <class T>
std::optional<T> decode(const Bytes& bytes) {
    return decode<T>(bytes.data(), bytes.size());
}

/// An unsigned 128-bit integer (`u128`).
struct U128 {
    /// The value.
    unsigned __int128 value = 0;
    friend bool operator==(const U128& a, const U128& b) { return a.value == b.value; }
};

/// A signed 128-bit integer (`i128`).
struct I128 {
    /// The value.
    __int128 value = 0;
    friend bool operator==(const I128& a, const I128& b) { return a.value == b.value; }
};

/// A 32-byte identity: who called. Encoded as its 32 raw bytes.
struct Identity {
    /// The identity's bytes.
    std::array<uint8_t, 32> bytes{};
    /// 64 lowercase hexadecimal digits.
    std::string to_hex() const;
    /// Parses 64 hexadecimal digits (either case), with or without the
    /// `0x` JSON values give them; `std::nullopt` for anything else.
    static std::optional<Identity> from_hex(std::string_view text);
    friend bool operator==(const Identity& a, const Identity& b) { return a.bytes == b.bytes; }
    friend bool operator!=(const Identity& a, const Identity& b) { return !(a == b); }
    friend bool operator<(const Identity& a, const Identity& b) { return a.bytes < b.bytes; }
};

/// A 16-byte id of one client connection. Encoded as its 16 raw bytes.
struct ConnectionId {
    /// The connection id's bytes.
    std::array<uint8_t, 16> bytes{};
    /// 32 lowercase hexadecimal digits.
    std::string to_hex() const;
    /// Parses 32 hexadecimal digits (either case), with or without `0x`;
    /// `std::nullopt` for anything else.
    static std::optional<ConnectionId> from_hex(std::string_view text);
    friend bool operator==(const ConnectionId& a, const ConnectionId& b) { return a.bytes == b.bytes; }
    friend bool operator!=(const ConnectionId& a, const ConnectionId& b) { return !(a == b); }
};

/// Microseconds since the Unix epoch (UTC). Encoded like an i64.
struct Timestamp {
    /// Microseconds since the epoch.
    int64_t micros = 0;
    /// This time moved by `delta` microseconds, saturating at the ends of the range.
    Timestamp plus_micros(int64_t delta) const {
        int64_t out;
        if (__builtin_add_overflow(micros, delta, &out)) out = delta > 0 ? INT64_MAX : INT64_MIN;
        return Timestamp{out};
    }
    friend bool operator==(const Timestamp& a, const Timestamp& b) { return a.micros == b.micros; }
    friend bool operator!=(const Timestamp& a, const Timestamp& b) { return !(a == b); }
    friend bool operator<(const Timestamp& a, const Timestamp& b) { return a.micros < b.micros; }
};

namespace detail {
inline std::string hex(const uint8_t* bytes, size_t len) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(2 * len);
    for (size_t i = 0; i < len; ++i) {
        s.push_back(digits[bytes[i] >> 4]);
        s.push_back(digits[bytes[i] & 15]);
    }
    return s;
}

/// The value of one hexadecimal digit, or -1.
inline int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// Fills `out` from exactly `2 * N` hexadecimal digits after an optional
/// `0x`; false (and `out` unspecified) for anything else.
template <size_t N>
bool unhex(std::string_view text, std::array<uint8_t, N>& out) {
    if (text.substr(0, 2) == "0x") text.remove_prefix(2);
    if (text.size() != 2 * N) return false;
    for (size_t i = 0; i < N; ++i) {
        int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}
}  // namespace detail

inline std::string Identity::to_hex() const { return detail::hex(bytes.data(), bytes.size()); }
inline std::string ConnectionId::to_hex() const { return detail::hex(bytes.data(), bytes.size()); }
inline std::optional<Identity> Identity::from_hex(std::string_view text) {
    Identity id;
    if (!detail::unhex(text, id.bytes)) return std::nullopt;
    return id;
}
inline std::optional<ConnectionId> ConnectionId::from_hex(std::string_view text) {
    ConnectionId id;
    if (!detail::unhex(text, id.bytes)) return std::nullopt;
    return id;
}

template <>
struct Codec<bool> {
    static void encode(Writer& w, bool v) { w.byte(v ? 1 : 0); }
    static void decode(Reader& r, bool& v) {
        uint8_t b = r.byte();
        if (b > 1) r.fail();
        v = b == 1;
    }
};

template <class T>
struct Codec<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) == 1>> {
    static void encode(Writer& w, T v) { w.byte(static_cast<uint8_t>(v)); }
    static void decode(Reader& r, T& v) { v = static_cast<T>(r.byte()); }
};

template <class T>
struct Codec<T, std::enable_if_t<std::is_integral_v<T> && std::is_unsigned_v<T> && (sizeof(T) > 1)>> {
    static void encode(Writer& w, T v) { w.varint(v); }
    static void decode(Reader& r, T& v) { v = static_cast<T>(r.varint(8 * sizeof(T))); }
};

template <class T>
struct Codec<T, std::enable_if_t<std::is_integral_v<T> && std::is_signed_v<T> && (sizeof(T) > 1)>> {
    static void encode(Writer& w, T v) { w.zigzag(v); }
    static void decode(Reader& r, T& v) { v = static_cast<T>(r.zigzag(8 * sizeof(T))); }
};

template <>
struct Codec<U128> {
    static void encode(Writer& w, const U128& v) { w.varint(v.value); }
    static void decode(Reader& r, U128& v) { v.value = r.varint(128); }
};

template <>
struct Codec<I128> {
    static void encode(Writer& w, const I128& v) { w.zigzag(v.value); }
    static void decode(Reader& r, I128& v) { v.value = r.zigzag(128); }
};

template <class T>
struct Codec<T, std::enable_if_t<std::is_floating_point_v<T>>> {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "f32 and f64 only");
    static void encode(Writer& w, T v) {
        uint8_t b[sizeof(T)];
        std::memcpy(b, &v, sizeof(T));  // wasm32 and x86-64 are little-endian
        w.raw(b, sizeof(T));
    }
    static void decode(Reader& r, T& v) {
        uint8_t b[sizeof(T)];
        r.raw(b, sizeof(T));
        std::memcpy(&v, b, sizeof(T));
    }
};

template <>
struct Codec<std::string> {
    static void encode(Writer& w, const std::string& s) {
        w.varint(s.size());
        w.raw(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    }
    static void decode(Reader& r, std::string& s) {
        size_t len = static_cast<size_t>(r.varint(32));
        if (len > r.remaining()) return r.fail();
        s.assign(reinterpret_cast<const char*>(r.position()), len);
        r.skip(len);
        if (!valid_utf8(s)) r.fail();
    }
    /// Whether `s` is well-formed UTF-8 (postcard strings must be).
    static bool valid_utf8(const std::string& s) {
        size_t i = 0, n = s.size();
        while (i < n) {
            auto c = static_cast<uint8_t>(s[i]);
            size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
            if (len == 0 || i + len > n) return false;
            uint32_t cp = len == 1 ? c : c & (0x7f >> len);
            for (size_t k = 1; k < len; ++k) {
                auto cc = static_cast<uint8_t>(s[i + k]);
                if ((cc >> 6) != 2) return false;
                cp = (cp << 6) | (cc & 0x3f);
            }
            if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return false;
            i += len;
        }
        return true;
    }
};

template <class T>
struct Codec<std::optional<T>> {
    static void encode(Writer& w, const std::optional<T>& v) {
        w.byte(v ? 1 : 0);
        if (v) encode_into(w, *v);
    }
    static void decode(Reader& r, std::optional<T>& v) {
        uint8_t tag = r.byte();
        if (tag == 1)
            v = decode_from<T>(r);
        else if (tag != 0)
            r.fail();
    }
};

template <class T>
struct Codec<std::vector<T>> {
    static void encode(Writer& w, const std::vector<T>& v) {
        w.varint(v.size());
        for (const auto& e : v) encode_into(w, e);
    }
    static void decode(Reader& r, std::vector<T>& v) {
        size_t len = static_cast<size_t>(r.varint(32));
        // Every element takes at least one byte, except empty products: cap
        // the reservation by what the input can hold.
        if (len > r.remaining() && !std::is_empty_v<T>) return r.fail();
        v.clear();
        v.reserve(len < r.remaining() ? len : r.remaining());
        for (size_t i = 0; i < len && !r.failed(); ++i) v.push_back(decode_from<T>(r));
    }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>> {
    static void encode(Writer& w, const std::tuple<Ts...>& v) {
        std::apply([&](const auto&... e) { (encode_into(w, e), ...); }, v);
    }
    static void decode(Reader& r, std::tuple<Ts...>& v) {
        std::apply([&](auto&... e) { ((e = decode_from<std::decay_t<decltype(e)>>(r)), ...); }, v);
    }
};

/// Sums: `std::variant<Cases...>` is the case index as a varint, then the
/// payload (WORLDLINE_SUM names the cases for the schema).
template <class... Ts>
struct Codec<std::variant<Ts...>> {
    static void encode(Writer& w, const std::variant<Ts...>& v) {
        w.varint(v.index());
        std::visit([&](const auto& e) { encode_into(w, e); }, v);
    }
    static void decode(Reader& r, std::variant<Ts...>& v) {
        auto index = static_cast<size_t>(r.varint(32));
        if (index >= sizeof...(Ts)) return r.fail();
        decode_case(r, v, index, std::index_sequence_for<Ts...>{});
    }

private:
    template <size_t... I>
    static void decode_case(Reader& r, std::variant<Ts...>& v, size_t index, std::index_sequence<I...>) {
        ((index == I ? (void)(v = std::variant<Ts...>(std::in_place_index<I>,
                                                       decode_from<std::variant_alternative_t<I, std::variant<Ts...>>>(r)))
                     : (void)0),
         ...);
    }
};

/// The empty product (unit): no bytes.
struct Unit {
    friend bool operator==(const Unit&, const Unit&) { return true; }
};

template <>
struct Codec<Unit> {
    static void encode(Writer&, const Unit&) {}
    static void decode(Reader&, Unit&) {}
};

template <>
struct Codec<Identity> {
    static void encode(Writer& w, const Identity& v) { w.raw(v.bytes.data(), 32); }
    static void decode(Reader& r, Identity& v) { r.raw(v.bytes.data(), 32); }
};

template <>
struct Codec<ConnectionId> {
    static void encode(Writer& w, const ConnectionId& v) { w.raw(v.bytes.data(), 16); }
    static void decode(Reader& r, ConnectionId& v) { r.raw(v.bytes.data(), 16); }
};

template <>
struct Codec<Timestamp> {
    static void encode(Writer& w, const Timestamp& v) { w.zigzag(v.micros); }
    static void decode(Reader& r, Timestamp& v) { v.micros = static_cast<int64_t>(r.zigzag(64)); }
};

/// Whether `T` was declared with WORLDLINE_ROW.
template <class T, class = void>
struct IsRow : std::false_type {};
template <class T>
struct IsRow<T, std::void_t<decltype(worldline_fields(static_cast<const T*>(nullptr)))>> : std::true_type {};

/// Products declared with WORLDLINE_ROW: `worldline_fields(const T*)`
/// (found by argument-dependent lookup) returns a tuple of
/// (name, member pointer) pairs, encoded in order with no framing.
template <class T>
struct Codec<T, std::enable_if_t<IsRow<T>::value>> {
    static void encode(Writer& w, const T& v) {
        std::apply([&](const auto&... f) { (encode_into(w, v.*(f.second)), ...); },
                   worldline_fields(static_cast<const T*>(nullptr)));
    }
    static void decode(Reader& r, T& v) {
        std::apply(
            [&](const auto&... f) {
                ((v.*(f.second) = decode_from<std::decay_t<decltype(v.*(f.second))>>(r)), ...);
            },
            worldline_fields(static_cast<const T*>(nullptr)));
    }
};

}  // namespace worldline

// Helpers for the declaration macros: apply a macro to each argument.
#define WL_EXPAND(x) x
#define WL_CAT_(a, b) a##b
#define WL_CAT(a, b) WL_CAT_(a, b)
#define WL_NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, \
                  _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, N, ...)                         \
    N
#define WL_NARGS(...)                                                                                         \
    WL_NARGS_(__VA_ARGS__, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, \
              11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define WL_MAP_1(m, c, x) m(c, x)
#define WL_MAP_2(m, c, x, ...) m(c, x), WL_MAP_1(m, c, __VA_ARGS__)
#define WL_MAP_3(m, c, x, ...) m(c, x), WL_MAP_2(m, c, __VA_ARGS__)
#define WL_MAP_4(m, c, x, ...) m(c, x), WL_MAP_3(m, c, __VA_ARGS__)
#define WL_MAP_5(m, c, x, ...) m(c, x), WL_MAP_4(m, c, __VA_ARGS__)
#define WL_MAP_6(m, c, x, ...) m(c, x), WL_MAP_5(m, c, __VA_ARGS__)
#define WL_MAP_7(m, c, x, ...) m(c, x), WL_MAP_6(m, c, __VA_ARGS__)
#define WL_MAP_8(m, c, x, ...) m(c, x), WL_MAP_7(m, c, __VA_ARGS__)
#define WL_MAP_9(m, c, x, ...) m(c, x), WL_MAP_8(m, c, __VA_ARGS__)
#define WL_MAP_10(m, c, x, ...) m(c, x), WL_MAP_9(m, c, __VA_ARGS__)
#define WL_MAP_11(m, c, x, ...) m(c, x), WL_MAP_10(m, c, __VA_ARGS__)
#define WL_MAP_12(m, c, x, ...) m(c, x), WL_MAP_11(m, c, __VA_ARGS__)
#define WL_MAP_13(m, c, x, ...) m(c, x), WL_MAP_12(m, c, __VA_ARGS__)
#define WL_MAP_14(m, c, x, ...) m(c, x), WL_MAP_13(m, c, __VA_ARGS__)
#define WL_MAP_15(m, c, x, ...) m(c, x), WL_MAP_14(m, c, __VA_ARGS__)
#define WL_MAP_16(m, c, x, ...) m(c, x), WL_MAP_15(m, c, __VA_ARGS__)
#define WL_MAP_17(m, c, x, ...) m(c, x), WL_MAP_16(m, c, __VA_ARGS__)
#define WL_MAP_18(m, c, x, ...) m(c, x), WL_MAP_17(m, c, __VA_ARGS__)
#define WL_MAP_19(m, c, x, ...) m(c, x), WL_MAP_18(m, c, __VA_ARGS__)
#define WL_MAP_20(m, c, x, ...) m(c, x), WL_MAP_19(m, c, __VA_ARGS__)
#define WL_MAP_21(m, c, x, ...) m(c, x), WL_MAP_20(m, c, __VA_ARGS__)
#define WL_MAP_22(m, c, x, ...) m(c, x), WL_MAP_21(m, c, __VA_ARGS__)
#define WL_MAP_23(m, c, x, ...) m(c, x), WL_MAP_22(m, c, __VA_ARGS__)
#define WL_MAP_24(m, c, x, ...) m(c, x), WL_MAP_23(m, c, __VA_ARGS__)
#define WL_MAP_25(m, c, x, ...) m(c, x), WL_MAP_24(m, c, __VA_ARGS__)
#define WL_MAP_26(m, c, x, ...) m(c, x), WL_MAP_25(m, c, __VA_ARGS__)
#define WL_MAP_27(m, c, x, ...) m(c, x), WL_MAP_26(m, c, __VA_ARGS__)
#define WL_MAP_28(m, c, x, ...) m(c, x), WL_MAP_27(m, c, __VA_ARGS__)
#define WL_MAP_29(m, c, x, ...) m(c, x), WL_MAP_28(m, c, __VA_ARGS__)
#define WL_MAP_30(m, c, x, ...) m(c, x), WL_MAP_29(m, c, __VA_ARGS__)
#define WL_MAP_31(m, c, x, ...) m(c, x), WL_MAP_30(m, c, __VA_ARGS__)
#define WL_MAP_32(m, c, x, ...) m(c, x), WL_MAP_31(m, c, __VA_ARGS__)
/// `m(c, x)` for each `x` of the arguments, separated by commas (1 to 32 of them).
#define WL_MAP(m, c, ...) WL_EXPAND(WL_CAT(WL_MAP_, WL_NARGS(__VA_ARGS__))(m, c, __VA_ARGS__))

#define WL_ROW_FIELD(T, f) std::pair<const char*, decltype(&T::f)>(#f, &T::f)

/// Declares the fields of struct `T`, in order: `WORLDLINE_ROW(Account, id, balance)`.
/// Makes `T` encodable (a product of its fields) and describable; put it in
/// the namespace of `T`, after the struct. Every field must be named: a
/// struct with more fields than the list does not compile ("type 'T'
/// decomposes into N elements, but only M names were provided"), as it
/// would otherwise leave the rest out of its rows silently.
#define WORLDLINE_ROW(T, ...)                                                          \
    [[maybe_unused]] inline auto worldline_fields(const T*) {                          \
        return std::make_tuple(WL_MAP(WL_ROW_FIELD, T, __VA_ARGS__));                  \
    }                                                                                  \
    [[maybe_unused]] inline void worldline_row_names_every_field(const T& wl_row) {    \
        [[maybe_unused]] const auto& [__VA_ARGS__] = wl_row;                           \
    }                                                                                  \
    static_assert(true, "")
