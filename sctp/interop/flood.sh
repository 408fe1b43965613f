#!/usr/bin/env bash
# INIT flood: rounds of 100000 INITs at a listening sctp-tool server on 127.0.0.1; the server
# keeps no state for them (stateless cookies): its memory grows only by its buffers during the
# first round and stays flat from then on, and a legitimate client associates after each round.
#
# Usage: sctp/interop/flood.sh [COUNT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
cargo build -q --release -p rserpool-sctp --example sctp-tool --manifest-path "$repo/Cargo.toml"
tool="$target/release/examples/sctp-tool"
port=$(( 20000 + RANDOM % 20000 ))
"$tool" server --bind 127.0.0.1:$port --port 5001 > /dev/null 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
sleep 0.5
for round in 1 2 3; do
  echo "round $round:"
  "$tool" flood --peer 127.0.0.1:$port --port 5001 --count "${1:-100000}" --server-pid $srv
done
