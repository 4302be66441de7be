// Tests the SDK's postcard codec against the shared vectors
// (tests/vectors/postcard.json, written by the Rust implementation): every
// vector's bytes must decode to its value (compared as canonical text, see
// tests/tests/postcard_vectors.rs), re-encode to the same bytes, and fail
// to decode when cut short. A vector of a type this test does not know
// fails the test, so new vectors cannot be skipped silently.
//
// Built natively: clang++-19 -std=c++20 -I../include postcard_test.cpp
// Run: ./a.out path/to/postcard.json
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "vector_checks.hpp"

using namespace worldline;
using worldline::vectors::check_vector;

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

// `from_hex` reads back what `to_hex` writes, with or without `0x`, in
// either case, and refuses anything else. Returns the failures.
int check_from_hex() {
    int failures = 0;
    auto expect = [&](bool ok, const char* what) {
        if (!ok) {
            std::printf("FAIL from_hex: %s\n", what);
            ++failures;
        }
    };
    Identity id;
    for (size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = static_cast<uint8_t>(i * 37 + 5);
    std::string hex = id.to_hex();
    expect(Identity::from_hex(hex) == id, "its own hex");
    expect(Identity::from_hex("0x" + hex) == id, "with 0x");
    std::string upper = hex;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    expect(Identity::from_hex(upper) == id, "upper case");
    expect(!Identity::from_hex(hex.substr(2)), "31 bytes refused");
    expect(!Identity::from_hex(hex + "00"), "33 bytes refused");
    expect(!Identity::from_hex(" " + hex.substr(1)), "a space refused");
    expect(!Identity::from_hex("0x0x" + hex.substr(4)), "a second 0x refused");
    expect(!Identity::from_hex(hex.substr(0, 63) + "g"), "a non-digit refused");
    ConnectionId conn;
    conn.bytes.fill(0xab);
    expect(ConnectionId::from_hex("0x" + conn.to_hex()) == conn, "a connection id");
    expect(!ConnectionId::from_hex(hex), "an identity is not a connection id");
    return failures;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s postcard.json\n", argv[0]);
        return 2;
    }
    auto vectors = read_vectors(argv[1]);
    if (vectors.empty()) {
        std::printf("FAIL no vectors in %s\n", argv[1]);
        return 1;
    }
    int failures = 0;
    for (const auto& v : vectors) {
        std::string problem = check_vector(v.type, v.value, unhex(v.bytes));
        if (!problem.empty()) {
            std::printf("FAIL %s\n", problem.c_str());
            ++failures;
        }
    }
    failures += check_from_hex();
    std::printf("%zu vectors, %d failures\n", vectors.size(), failures);
    return failures == 0 ? 0 : 1;
}
