// A test module for the C++ linear-memory layout (`tests/tests/cpp_features.rs`):
// `fill(n)` puts an n-byte buffer on the stack. worldline.mk links with
// `--stack-first`, so the stack lies below .data and .bss and a buffer
// larger than the stack runs off address 0 and traps at once; without it
// the stack grew down into static data and overwrote it silently.
#include <worldline/worldline.hpp>

// Static data a stack overflow would have run into.
volatile uint64_t marker = 0x1111111111111111ull;
volatile uint8_t zone[4096];

struct Filled {
    uint32_t bytes;
};
WORLDLINE_ROW(Filled, bytes);
inline worldline::Table<Filled> filled{"filled", worldline::Public};

[[gnu::noinline]] static void fill(uint32_t n) {
    volatile uint8_t big[n];  // a large local (VLA), like a big buffer on the stack
    for (uint32_t i = 0; i < n; ++i) big[i] = 0xAB;
}

WORLDLINE_REDUCER(fill_stack, (uint32_t, bytes)) {
    fill(bytes);
    uint32_t hit = 0;
    for (auto& b : zone) hit += (b != 0);
    if (marker != 0x1111111111111111ull || hit != 0)
        return "static data silently overwritten by the stack";
    filled.insert(Filled{bytes});
    return {};
}
