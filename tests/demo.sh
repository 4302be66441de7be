#!/usr/bin/env bash
# The Worldline demo, end to end with the real `worldline` binary:
# start a server on a temporary directory, publish the chat module from
# source, subscribe from one client over QUIC, send messages from two
# other identities, show them arriving, query and read the logs, stop.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Setting up: the toolchains (tests/setup.sh) and the worldline binary"
tests/setup.sh
# WORLDLINE_BINARY may name a `worldline` already built (CI uses the one its
# test run built, rather than building the CLI again with other features).
if [ -n "${WORLDLINE_BINARY:-}" ]; then
    worldline="$WORLDLINE_BINARY"
else
    cargo build -p worldline-cli
    worldline="$PWD/target/debug/worldline"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

say "worldline start (data in $work/data)"
"$worldline" start --data-dir "$work/data" --listen 127.0.0.1:0 --quic-listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q "ready" "$work/server.log" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.1
done
cat "$work/server.log"
server="$(sed -n 's/.*HTTP and WebSocket on \(http:[^ ]*\).*/\1/p' "$work/server.log")"
export WORLDLINE_SERVER="$server"
export WORLDLINE_CONFIG="$work/alice.toml"

say "worldline publish chat --project-path guest-rust/examples/chat"
# The guest build shares the directory the test suite builds guests in.
CARGO_TARGET_DIR="$PWD/target/guests" "$worldline" publish chat --project-path guest-rust/examples/chat

say "alice says hello, then subscribes over QUIC"
"$worldline" call chat set_name alice
"$worldline" call chat send_message "hello, is anyone here?"
"$worldline" subscribe chat "SELECT * FROM message" --protocol quic -n 2 --timeout 60 >"$work/subscriber.out" &
subscriber_pid=$!
for _ in $(seq 1 100); do
    grep -q "initial" "$work/subscriber.out" 2>/dev/null && break
    sleep 0.1
done

say "bob and carol (identities of their own) reply"
WORLDLINE_CONFIG="$work/bob.toml" "$worldline" call chat send_message "hi alice, bob here"
WORLDLINE_CONFIG="$work/carol.toml" "$worldline" call chat send_message "carol too"
wait "$subscriber_pid"

say "what alice's subscription received"
cat "$work/subscriber.out"

say "worldline sql chat \"SELECT * FROM user\""
"$worldline" sql chat "SELECT * FROM user"

say "worldline logs chat"
"$worldline" logs chat

say "Stopping the server"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
echo "Done."
