// The checks of the shared postcard vectors (tests/vectors/postcard.json,
// written by the Rust implementation), used natively by postcard_test.cpp
// and inside a component by the handles test module: each vector's bytes
// must decode to its value (compared as the canonical text described in
// tests/tests/postcard_vectors.rs) and re-encode to the same bytes.
#pragma once

#include <cinttypes>
#include <cstdio>

#include "worldline/postcard.hpp"

namespace worldline::vectors {

inline std::string u128_text(unsigned __int128 v) {
    if (v == 0) return "0";
    std::string s;
    while (v) {
        s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
        v /= 10;
    }
    return s;
}

inline std::string i128_text(__int128 v) {
    if (v >= 0) return u128_text(static_cast<unsigned __int128>(v));
    return "-" + u128_text(static_cast<unsigned __int128>(0) - static_cast<unsigned __int128>(v));
}

template <class T>
struct Text;

template <class T>
std::string text(const T& v) {
    return Text<T>::of(v);
}

template <class T>
struct Text {
    static std::string of(const T& v) {
        if constexpr (std::is_same_v<T, bool>) {
            return v ? "true" : "false";
        } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
            return std::to_string(static_cast<long long>(v));
        } else if constexpr (std::is_integral_v<T>) {
            return std::to_string(static_cast<unsigned long long>(v));
        } else if constexpr (std::is_same_v<T, float>) {
            uint32_t bits;
            std::memcpy(&bits, &v, 4);
            char buf[32];
            std::snprintf(buf, sizeof buf, "bits:%08" PRIx32, bits);
            return buf;
        } else {
            static_assert(std::is_same_v<T, double>);
            uint64_t bits;
            std::memcpy(&bits, &v, 8);
            char buf[32];
            std::snprintf(buf, sizeof buf, "bits:%016" PRIx64, bits);
            return buf;
        }
    }
};
template <>
struct Text<U128> {
    static std::string of(const U128& v) { return u128_text(v.value); }
};
template <>
struct Text<I128> {
    static std::string of(const I128& v) { return i128_text(v.value); }
};
template <>
struct Text<std::string> {
    static std::string of(const std::string& v) {
        std::string out = "\"";
        for (char c : v) {
            if (c == '"' || c == '\\') out.push_back('\\');
            out.push_back(c);
        }
        return out + "\"";
    }
};
template <>
struct Text<Identity> {
    static std::string of(const Identity& v) { return v.to_hex(); }
};
template <>
struct Text<ConnectionId> {
    static std::string of(const ConnectionId& v) { return v.to_hex(); }
};
template <>
struct Text<Timestamp> {
    static std::string of(const Timestamp& v) { return std::to_string(v.micros); }
};
template <>
struct Text<Unit> {
    static std::string of(const Unit&) { return "()"; }
};
template <class T>
struct Text<std::optional<T>> {
    static std::string of(const std::optional<T>& v) { return v ? "some(" + text(*v) + ")" : "none"; }
};
template <class T>
struct Text<std::vector<T>> {
    static std::string of(const std::vector<T>& v) {
        std::string out = "[";
        for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + text(v[i]);
        return out + "]";
    }
};
template <class... Ts>
struct Text<std::tuple<Ts...>> {
    static std::string of(const std::tuple<Ts...>& v) {
        std::string out = "(";
        bool first = true;
        std::apply([&](const auto&... e) { ((out += (first ? "" : ","), out += text(e), first = false), ...); }, v);
        return out + ")";
    }
};
template <class... Ts>
struct Text<std::variant<Ts...>> {
    static std::string of(const std::variant<Ts...>& v) {
        return "#" + std::to_string(v.index()) + "(" + std::visit([](const auto& e) { return text(e); }, v) + ")";
    }
};

/// A struct declared with WORLDLINE_ROW, as the chat module's `user`.
struct UserRow {
    Identity identity;
    std::optional<std::string> name;
    bool online;
};
WORLDLINE_ROW(UserRow, identity, name, online);
template <>
struct Text<UserRow> {
    static std::string of(const UserRow& u) { return text(std::make_tuple(u.identity, u.name, u.online)); }
};

/// Checks one vector of type `T`: its bytes decode to its value, re-encode
/// to the same bytes, and do not decode cut short or with a byte left over.
/// Returns what went wrong, or nothing.
template <class T>
std::string check(const std::string& type, const std::string& value, const Bytes& bytes) {
    auto decoded = decode<T>(bytes);
    std::string at = type + " " + value + ": ";
    if (!decoded) return at + "does not decode";
    if (text(*decoded) != value) return at + "decoded as " + text(*decoded);
    if (encode(*decoded) != bytes) return at + "re-encoding differs";
    if (!bytes.empty() && decode<T>(bytes.data(), bytes.size() - 1)) return at + "decoded with its last byte cut";
    Bytes longer = bytes;
    longer.push_back(0);
    if (decode<T>(longer)) return at + "decoded with a byte left over";
    return {};
}

/// Checks a vector of the type named `type` (as the vector file names it).
inline std::string check_vector(const std::string& type, const std::string& value, const Bytes& bytes) {
    using Check = std::string (*)(const std::string&, const std::string&, const Bytes&);
    static const std::pair<const char*, Check> checks[] = {
        {"bool", check<bool>},
        {"u8", check<uint8_t>},
        {"u16", check<uint16_t>},
        {"u32", check<uint32_t>},
        {"u64", check<uint64_t>},
        {"u128", check<U128>},
        {"i8", check<int8_t>},
        {"i16", check<int16_t>},
        {"i32", check<int32_t>},
        {"i64", check<int64_t>},
        {"i128", check<I128>},
        {"f32", check<float>},
        {"f64", check<double>},
        {"string", check<std::string>},
        {"identity", check<Identity>},
        {"connection-id", check<ConnectionId>},
        {"timestamp", check<Timestamp>},
        {"unit", check<Unit>},
        {"option<u32>", check<std::optional<uint32_t>>},
        {"option<string>", check<std::optional<std::string>>},
        {"option<option<u8>>", check<std::optional<std::optional<uint8_t>>>},
        {"array<u8>", check<std::vector<uint8_t>>},
        {"array<string>", check<std::vector<std::string>>},
        {"array<i64>", check<std::vector<int64_t>>},
        {"product<u32,i64>", check<std::tuple<uint32_t, int64_t>>},
        {"product<u64,identity,timestamp,string>", check<std::tuple<uint64_t, Identity, Timestamp, std::string>>},
        {"product<identity,option<string>,bool>", check<UserRow>},
        {"array<product<u32,i64>>", check<std::vector<std::tuple<uint32_t, int64_t>>>},
        {"sum<unit,u32,string>", check<std::variant<Unit, uint32_t, std::string>>},
    };
    for (const auto& [name, run] : checks)
        if (type == name) return run(type, value, bytes);
    return "no check for type " + type;
}

}  // namespace worldline::vectors
