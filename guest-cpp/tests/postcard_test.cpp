// Tests the SDK's postcard codec against the shared vectors
// (tests/vectors/postcard.json, written by the Rust implementation): every
// vector's bytes must decode to its value (compared as canonical text, see
// tests/tests/postcard_vectors.rs), re-encode to the same bytes, and fail
// to decode when cut short. A vector of a type this test does not know
// fails the test, so new vectors cannot be skipped silently.
//
// Built natively: clang++-19 -std=c++20 -I../include postcard_test.cpp
// Run: ./a.out path/to/postcard.json
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "worldline/postcard.hpp"

using namespace worldline;

namespace {

struct Vector {
    std::string type, value, bytes;
};

// --- a reader for the vector file: an array of flat objects of strings ---

bool parse_string(const std::string& s, size_t& i, std::string& out) {
    if (s[i] != '"') return false;
    ++i;
    out.clear();
    while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\') {
            char e = s[++i];
            if (e == 'u') {
                unsigned cp = std::stoul(s.substr(i + 1, 4), nullptr, 16);
                i += 4;
                if (cp < 0x80) {
                    out.push_back(static_cast<char>(cp));
                } else if (cp < 0x800) {
                    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
                    out.push_back(static_cast<char>(0x80 | (cp & 63)));
                } else {
                    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
                    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 63)));
                    out.push_back(static_cast<char>(0x80 | (cp & 63)));
                }
            } else {
                out.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
            }
        } else {
            out.push_back(s[i]);
        }
        ++i;
    }
    ++i;
    return true;
}

std::vector<Vector> read_vectors(const std::string& path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string s = buffer.str();
    std::vector<Vector> out;
    size_t i = 0;
    while ((i = s.find('{', i)) != std::string::npos) {
        Vector v;
        size_t end = s.find('}', i);
        ++i;
        while (i < end) {
            if (s[i] != '"') {
                ++i;
                continue;
            }
            std::string key, value;
            parse_string(s, i, key);
            i = s.find('"', i);
            parse_string(s, i, value);
            if (key == "type") v.type = value;
            if (key == "value") v.value = value;
            if (key == "bytes") v.bytes = value;
            end = s.find('}', i);
        }
        out.push_back(v);
    }
    return out;
}

Bytes unhex(const std::string& h) {
    Bytes b;
    for (size_t i = 0; i + 1 < h.size(); i += 2) b.push_back(static_cast<uint8_t>(std::stoul(h.substr(i, 2), nullptr, 16)));
    return b;
}

// --- canonical text of values ---

std::string u128_text(unsigned __int128 v) {
    if (v == 0) return "0";
    std::string s;
    while (v) {
        s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
        v /= 10;
    }
    return s;
}

std::string i128_text(__int128 v) {
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

int failures = 0;

template <class T>
void check(const Vector& v) {
    Bytes bytes = unhex(v.bytes);
    auto decoded = decode<T>(bytes);
    if (!decoded) {
        std::printf("FAIL %s %s: %s does not decode\n", v.type.c_str(), v.value.c_str(), v.bytes.c_str());
        ++failures;
        return;
    }
    if (text(*decoded) != v.value) {
        std::printf("FAIL %s: decoded %s, expected %s\n", v.type.c_str(), text(*decoded).c_str(), v.value.c_str());
        ++failures;
    }
    if (encode(*decoded) != bytes) {
        std::printf("FAIL %s %s: re-encoding differs\n", v.type.c_str(), v.value.c_str());
        ++failures;
    }
    if (!bytes.empty() && decode<T>(bytes.data(), bytes.size() - 1)) {
        std::printf("FAIL %s %s: decoded with its last byte cut\n", v.type.c_str(), v.value.c_str());
        ++failures;
    }
    Bytes longer = bytes;
    longer.push_back(0);
    if (decode<T>(longer)) {
        std::printf("FAIL %s %s: decoded with a byte left over\n", v.type.c_str(), v.value.c_str());
        ++failures;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s postcard.json\n", argv[0]);
        return 2;
    }
    std::map<std::string, std::function<void(const Vector&)>> checks = {
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
    auto vectors = read_vectors(argv[1]);
    if (vectors.empty()) {
        std::printf("FAIL no vectors in %s\n", argv[1]);
        return 1;
    }
    for (const auto& v : vectors) {
        auto found = checks.find(v.type);
        if (found == checks.end()) {
            std::printf("FAIL no check for type %s\n", v.type.c_str());
            ++failures;
            continue;
        }
        found->second(v);
    }
    std::printf("%zu vectors, %d failures\n", vectors.size(), failures);
    return failures == 0 ? 0 : 1;
}
