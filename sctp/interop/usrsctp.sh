#!/usr/bin/env bash
# Interop of rserpool-sctp with usrsctp (libusrsctp-examples) on 127.0.0.1, both directions
# (sctp/tests/usrsctp.rs), captured on the loopback interface; the capture must decode in
# tshark with correct CRC32c checksums and no malformed packet.
#
# Usage: sctp/interop/usrsctp.sh [OUTDIR]       (capturing needs root or dumpcap rights)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$(mktemp -d /tmp/rserpool-interop-usrsctp.XXXXXX)}
mkdir -p "$out"
cap="$out/usrsctp.pcapng"
cargo test -q --no-run -p rserpool-sctp --test usrsctp --manifest-path "$repo/Cargo.toml" 2>/dev/null
dumpcap -q -i lo -f 'udp portrange 29896-29899' -w "$cap" > "$out/dumpcap.log" 2>&1 &
dc=$!
trap 'kill $dc 2>/dev/null || true' EXIT
# dumpcap creates the file once it captures.
for _ in $(seq 50); do [ -s "$cap" ] && break; sleep 0.1; done
fail=0
if CI=${CI:-1} cargo test -q -p rserpool-sctp --test usrsctp --manifest-path "$repo/Cargo.toml" > "$out/test.log" 2>&1; then
  echo "PASS: usrsctp echo_server <- our client, and usrsctp client -> our echo server"
else
  echo "FAIL: usrsctp interop tests (see $out/test.log)"; fail=1
fi
sleep 0.5
kill "$dc"; wait "$dc" 2>/dev/null || true
trap - EXIT
d=(-d udp.port==29896,sctp -d udp.port==29897,sctp -d udp.port==29898,sctp -d udp.port==29899,sctp)
n=$(tshark -n -r "$cap" "${d[@]}" -Y sctp 2>/dev/null | wc -l)
bad=$(tshark -n -r "$cap" "${d[@]}" -o sctp.checksum:CRC-32C \
        --disable-protocol asap --disable-protocol enrp --disable-protocol m2tp \
        -Y 'sctp.checksum.status == 0 || _ws.malformed || _ws.expert.severity >= 8388608' 2>/dev/null | wc -l)
if [ "$n" -gt 20 ] && [ "$bad" -eq 0 ]; then
  echo "PASS: $n SCTP packets captured, all CRC32c correct, none malformed"
else
  echo "FAIL: capture: $n SCTP packets, $bad bad or malformed (see $cap)"; fail=1
fi
exit $fail
