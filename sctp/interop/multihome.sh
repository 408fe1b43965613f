#!/usr/bin/env bash
# Multi-homing on real links: two network namespaces joined by two veth pairs (10.1.0.0/24 and
# 10.2.0.0/24). A client sends 3000 request/response messages to an echo server over a
# multi-homed association; after 1 s the primary link goes down. Every message must still be
# echoed (no message lost), over the second path, and the client must report the path change.
#
# Usage: sctp/interop/multihome.sh [OUTDIR]     (needs root: ip netns)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$(mktemp -d /tmp/rserpool-interop-mh.XXXXXX)}
mkdir -p "$out"
target=${CARGO_TARGET_DIR:-$repo/target}
cargo build -q --release -p rserpool-sctp --example sctp-tool --manifest-path "$repo/Cargo.toml"
tool="$target/release/examples/sctp-tool"
a=rsmh-a-$$ b=rsmh-b-$$
cleanup() {
  [ -n "${srv:-}" ] && kill "$srv" 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip -n "$a" link set lo up; ip -n "$b" link set lo up
for i in 1 2; do
  ip -n "$a" link add va$i type veth peer name vb$i netns "$b"
  ip -n "$a" addr add 10.$i.0.1/24 dev va$i; ip -n "$a" link set va$i up
  ip -n "$b" addr add 10.$i.0.2/24 dev vb$i; ip -n "$b" link set vb$i up
done
ip netns exec "$b" "$tool" server --bind 0.0.0.0:9899 --port 5001 --fast --exit-after 1 \
  --address 10.1.0.2 --address 10.2.0.2 > "$out/server.log" 2>&1 &
srv=$!
sleep 0.5
( sleep 1; ip -n "$a" link set va1 down; echo "link 1 down at $(date +%T.%N)" >> "$out/cut.log" ) &
fail=0
if ip netns exec "$a" "$tool" client --peer 10.1.0.2:9899 --port 5001 --fast \
     --address 10.1.0.1 --address 10.2.0.1 check --count 3000 --interval-ms 1 \
     > "$out/client.log" 2>&1; then :; else fail=1; fi
wait "$srv" 2>/dev/null || true
cat "$out/client.log"
grep -q 'RESULT client ok 3000 echoes' "$out/client.log" \
  && echo "PASS: 3000 messages echoed across the loss of the primary link" \
  || { echo "FAIL: messages lost or association failed (see $out)"; fail=1; }
grep -q 'PathChanged { address: 10.1.0.2, state: Inactive }' "$out/client.log" \
  && echo "PASS: the client reported the primary path inactive" \
  || { echo "FAIL: no path change reported (see $out/client.log)"; fail=1; }
grep -q 'RESULT server port 5001: 3000 messages' "$out/server.log" \
  && echo "PASS: the server received each of the 3000 messages once" \
  || { echo "FAIL: server count (see $out/server.log)"; fail=1; }
exit $fail
