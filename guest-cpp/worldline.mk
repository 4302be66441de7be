# Build rules for a Worldline C++ module. A project's Makefile sets MODULE
# (the component's name) and SOURCES (its .cpp files), then includes this
# file:
#
#     MODULE  := bank
#     SOURCES := bank.cpp
#     include path/to/guest-cpp/worldline.mk
#
# `make` then builds $(BUILD_DIR)/$(MODULE).wasm, a component implementing
# worldline:module@0.2.0:
#   1. `wit-bindgen c` generates the C bindings of wit/worldline.wit;
#   2. clang-19 compiles them, the SDK and the sources for wasm32-wasi
#      (C++20, no exceptions) and links a reactor (no main);
#   3. `wasm-tools component new` wraps the core module with the WASI
#      preview-1 reactor adapter of wasmtime 48, which tools/adapter writes
#      (from the crate wasi-preview1-component-adapter-provider).
# Every tool can be overridden on the command line (CXX_WASM=..., etc.).

WORLDLINE_CPP_SDK := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
WORLDLINE_ROOT    ?= $(abspath $(WORLDLINE_CPP_SDK)/..)
WIT_DIR           ?= $(WORLDLINE_ROOT)/wit
BUILD_DIR         ?= build

CC_WASM     ?= clang-19
CXX_WASM    ?= clang++-19
WASM_TARGET ?= wasm32-wasi
WIT_BINDGEN ?= $(firstword $(wildcard $(WORLDLINE_ROOT)/target/tools/bin/wit-bindgen) wit-bindgen)
WASM_TOOLS  ?= wasm-tools
CARGO       ?= cargo
# The adapter is written once per checkout and shared by every project.
ADAPTER_DIR ?= $(WORLDLINE_ROOT)/target/cpp-adapter
ADAPTER     ?= $(ADAPTER_DIR)/wasi_snapshot_preview1.reactor.wasm

OPT        ?= -O2
# -Werror=return-type: a reducer body that can end without `return {};` is
# an error, not a warning (falling off its end traps as `unreachable`).
CXXFLAGS_WASM = --target=$(WASM_TARGET) $(OPT) -std=c++20 -fno-exceptions -fno-rtti -Wall -Wextra \
                -Werror=return-type -I$(WORLDLINE_CPP_SDK)/include -I$(BUILD_DIR)/gen -MMD -MP $(EXTRA_CXXFLAGS)
CFLAGS_WASM   = --target=$(WASM_TARGET) $(OPT) -I$(BUILD_DIR)/gen
# --stack-first: wasm-ld puts the stack at the bottom of linear memory, below
# .data and .bss, so a stack overflow runs off address 0 and traps at once
# (as a Rust module's does) instead of silently overwriting static data.
LDFLAGS_WASM  = --target=$(WASM_TARGET) $(OPT) -fno-exceptions -mexec-model=reactor -Wl,--stack-first \
                -Wl,--strip-debug $(EXTRA_LDFLAGS)

# These rules: a change of flags here rebuilds what they built.
RULES   := $(WORLDLINE_CPP_SDK)/worldline.mk
GEN     := $(BUILD_DIR)/gen
OBJECTS := $(patsubst %.cpp,$(BUILD_DIR)/obj/%.o,$(SOURCES)) $(BUILD_DIR)/obj/worldline-sdk.o
COMPONENT := $(BUILD_DIR)/$(MODULE).wasm

.PHONY: all clean print-component
all: $(COMPONENT)

# The component's path, for tools (`worldline publish --project-path`).
print-component:
	@echo $(abspath $(COMPONENT))

$(GEN)/module.h: $(WIT_DIR)/worldline.wit
	@mkdir -p $(GEN)
	$(WIT_BINDGEN) c $(WIT_DIR) --world module --out-dir $(GEN) > /dev/null
$(GEN)/module.c $(GEN)/module_component_type.o: $(GEN)/module.h

$(BUILD_DIR)/obj/bindings.o: $(GEN)/module.c $(RULES)
	@mkdir -p $(dir $@)
	$(CC_WASM) $(CFLAGS_WASM) -c $< -o $@

$(BUILD_DIR)/obj/worldline-sdk.o: $(WORLDLINE_CPP_SDK)/src/worldline.cpp $(GEN)/module.h $(RULES)
	@mkdir -p $(dir $@)
	$(CXX_WASM) $(CXXFLAGS_WASM) -c $< -o $@

$(BUILD_DIR)/obj/%.o: %.cpp $(GEN)/module.h $(RULES)
	@mkdir -p $(dir $@)
	$(CXX_WASM) $(CXXFLAGS_WASM) -c $< -o $@

$(BUILD_DIR)/$(MODULE).core.wasm: $(OBJECTS) $(BUILD_DIR)/obj/bindings.o $(GEN)/module_component_type.o $(RULES)
	$(CXX_WASM) $(LDFLAGS_WASM) $(filter %.o,$^) -o $@

$(ADAPTER):
	@mkdir -p $(dir $@)
	$(CARGO) run --quiet --release --locked --manifest-path $(WORLDLINE_CPP_SDK)/tools/adapter/Cargo.toml \
		--target-dir $(ADAPTER_DIR)/build -- $@

$(COMPONENT): $(BUILD_DIR)/$(MODULE).core.wasm $(ADAPTER)
	$(WASM_TOOLS) component new $< --adapt wasi_snapshot_preview1=$(ADAPTER) -o $@

clean:
	rm -rf $(BUILD_DIR)

-include $(OBJECTS:.o=.d)
