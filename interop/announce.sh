#!/usr/bin/env bash
# Registrar discovery by multicast Server Announces (RFC 5352 §3.6), with every program on its
# embedded defaults: in a network namespace of its own (a veth pair, 198.18.7.1/24, multicast
# routed to it), `rserpool-registrar` announces itself on 239.0.0.50:3863, and an echo PE
# (`rserpool pe`) and a pool user (`rserpool resolve`, `rserpool terminal`) started without
# `--registrar` find it. The capture (all interfaces of the namespace) must pass
# ../shared/tools/wire-check --strict: the announces and every ASAP message are ours.
#
# Usage: interop/announce.sh [OUTDIR]      (needs root: network namespace, capture)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=${RSERPOOL_SHARED:-$repo/../shared}
out=${1:-$(mktemp -d /tmp/rserpool-interop-announce.XXXXXX)}
mkdir -p "$out"; out=$(cd "$out" && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
cargo build -q --release -p rserpool-tool --bin rserpool --manifest-path "$repo/Cargo.toml"
cargo build -q --release -p rserpool-registrar --manifest-path "$repo/Cargo.toml"
rsp="$target/release/rserpool"
reg="$target/release/rserpool-registrar"
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

ns=rsp-announce-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
# Background programs are started with `ip netns exec` itself (not through a function), so
# that $! is their PID (ip execs them) and the cleanup reaches them.
in_ns() { ip netns exec "$ns" "$@"; }
wait_for() {
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1
}

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add v0 type veth peer name v1
ip -n "$ns" link set v0 up
ip -n "$ns" link set v1 up
ip -n "$ns" addr add 198.18.7.1/24 dev v0
ip -n "$ns" route add 224.0.0.0/4 dev v0

ip netns exec "$ns" dumpcap -q -i any -w "$out/announce.pcapng" > "$out/dumpcap.log" 2>&1 &
pids+=($!)
wait_for "$out/dumpcap.log" 'Capturing on' || { cat "$out/dumpcap.log"; bad "no capture"; }

ip netns exec "$ns" "$reg" > "$out/registrar.out" 2> "$out/registrar.err" &
pids+=($!)
wait_for "$out/registrar.out" ready || bad "registrar not ready (see $out/registrar.err)"
id=$(sed -n 's/.* id=\(0x[0-9a-f]*\).*/\1/p' "$out/registrar.out")
ip netns exec "$ns" "$rsp" pe > "$out/pe.out" 2> "$out/pe.err" &
pids+=($!)
if wait_for "$out/pe.out" ready; then
  pass "an echo PE without --registrar registered: $(cat "$out/pe.out")"
else
  bad "the PE did not register (see $out/pe.err)"
fi
in_ns timeout 20 "$rsp" resolve EchoPool > "$out/resolve.out" 2>&1 || true
if grep -q "home $id" "$out/resolve.out"; then
  pass "a pool user without --registrar resolved EchoPool at registrar $id: $(head -1 "$out/resolve.out")"
else
  bad "resolution through an announced registrar failed (see $out/resolve.out)"
fi
echo "hello by announce" | in_ns timeout 20 "$rsp" terminal > "$out/terminal.out" 2> "$out/terminal.err" || true
grep -q "hello by announce" "$out/terminal.out" \
  && pass "rserpool terminal reached the PE through the announced registrar" \
  || bad "no echo (see $out/terminal.err)"
# Stop the registrar and the PE, then the capture (so that it is complete).
kill -TERM "${pids[1]}" "${pids[2]}" 2>/dev/null || true
wait "${pids[1]}" "${pids[2]}" 2>/dev/null || true
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

ports=$(sed -n 's/.*udp=[^ ]*:\([0-9]*\).*/\1/p' "$out/pe.out")
args=(--strict --jsonl "$out/announce.jsonl" --quiet)
for p in $ports; do args+=(--sctp-udp-port "$p"); done
if "$shared/tools/wire-check" "${args[@]}" "$out/announce.pcapng" > "$out/wire-check.txt" 2>&1; then
  n=$(grep -c . "$out/announce.jsonl" || true)
  a=$(grep -c 'SERVER_ANNOUNCE' "$out/announce.jsonl" || true)
  if [ "$a" -ge 1 ]; then
    pass "capture: all $n ASAP messages ($a Server Announces) pass wire-check --strict"
  else
    bad "no Server Announce in the capture"
  fi
else
  bad "wire-check --strict (see $out/wire-check.txt)"; tail -20 "$out/wire-check.txt"
fi
exit $fail
