#!/usr/bin/env bash
# Interop of rserpool-sctp with Linux kernel SCTP (6.1, RFC 6951 UDP encapsulation on 9899) in
# the guest of ../shared/tools/rsplib-vm, both directions:
#   run 1: the guest's kernel serves (sctp_peer server), our sctp-tool connects;
#   run 2: our sctp-tool serves, the guest's kernel connects (sctp_peer client).
# Each direction: data both ways on streams 0-3 with PPIDs 11, 12 and 99, a 20000-byte message
# (larger than the MTU), one association ended by SHUTDOWN and one by ABORT. The captures must
# decode in tshark with correct CRC32c checksums and no malformed packet.
#
# Usage: sctp/interop/kernel.sh [OUTDIR]        (needs root for the network namespace)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=${RSERPOOL_SHARED:-$repo/../shared}
vm=$shared/tools/rsplib-vm
out=${1:-$(mktemp -d /tmp/rserpool-interop-kernel.XXXXXX)}
mkdir -p "$out"
target=${CARGO_TARGET_DIR:-$repo/target}
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

[ -x "$vm/run.sh" ] || { echo "no rsplib-vm at $vm (set RSERPOOL_SHARED)"; exit 2; }
if [ ! -e "${RSPVM_DIR:-/var/tmp/rsplib-vm}/out/vmlinux" ]; then
  echo "building the rsplib-vm guest (once)"
  "$vm/build.sh" > "$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 2; }
fi
share="$out/share"
mkdir -p "$share"
cc -static -O2 -Wall -o "$share/sctp_peer" "$here/sctp_peer.c"
cargo build -q --release -p rserpool-sctp --example sctp-tool --manifest-path "$repo/Cargo.toml"
tool="$target/release/examples/sctp-tool"

echo "== run 1: kernel SCTP serves, rserpool-sctp connects"
"$vm/run.sh" -q -t 120 -o "$out/run1" -s "$share" -p "$out/kernel-server.pcap" \
  -c '/share/sctp_peer server 5001 > /share/guest-5001.log 2>&1 &
      /share/sctp_peer server 5002 > /share/guest-5002.log 2>&1 &
      sleep 1; rspvm-ready "kernel servers"; wait' \
  -H "set -e
      '$tool' client --peer \$RSPVM_GUEST_ADDR:9899 --port 5001 check --count 12 --end shutdown
      '$tool' client --peer \$RSPVM_GUEST_ADDR:9899 --port 5002 check --count 12 --end abort
      sleep 1" > "$out/host-clients.log" 2>&1 || true
cat "$out/host-clients.log" "$share"/guest-500*.log > "$out/run1.log"
grep -q 'RESULT client ok 12 echoes, then association shut down' "$out/host-clients.log" \
  && pass "our client -> kernel server: 12 echoes (streams 0-3, PPIDs 11/12/99, 20000 B), SHUTDOWN" \
  || bad "our client -> kernel server with SHUTDOWN (see $out/run1.log)"
grep -q 'RESULT client ok 12 echoes, then aborted' "$out/host-clients.log" \
  && pass "our client -> kernel server: 12 echoes, ABORT" \
  || bad "our client -> kernel server with ABORT (see $out/run1.log)"
grep -q 'RESULT server echoed 12 messages, peer shut down' "$share/guest-5001.log" \
  && pass "kernel saw our graceful SHUTDOWN" || bad "kernel did not see our SHUTDOWN (see $out/run1.log)"
grep -q 'RESULT server echoed 12 messages, association ended' "$share/guest-5002.log" \
  && pass "kernel saw our ABORT" || bad "kernel did not see our ABORT (see $out/run1.log)"

echo "== run 2: rserpool-sctp serves, kernel SCTP connects"
"$vm/run.sh" -q -t 120 -o "$out/run2" -s "$share" -p "$out/kernel-client.pcap" -W \
  -c 'rspvm-ready "kernel clients"; sleep 2
      /share/sctp_peer client $RSPVM_HOST_ADDR 6001 12 shutdown > /share/guest-client-1.log 2>&1
      /share/sctp_peer client $RSPVM_HOST_ADDR 6002 12 abort > /share/guest-client-2.log 2>&1
      sleep 2' \
  -H "'$tool' server --bind 0.0.0.0:9899 --port 6001 --port 6002 --exit-after 2 > '$share/host-server.log' 2>&1" \
  > /dev/null 2>&1 || true
cat "$share/host-server.log" "$share"/guest-client-*.log > "$out/run2.log" 2>/dev/null || true
grep -q 'RESULT client ok 12 echoes, shutdown' "$share/guest-client-1.log" \
  && pass "kernel client -> our server: 12 echoes, SHUTDOWN" || bad "kernel client with SHUTDOWN (see $out/run2.log)"
grep -q 'RESULT client ok 12 echoes, abort' "$share/guest-client-2.log" \
  && pass "kernel client -> our server: 12 echoes, ABORT" || bad "kernel client with ABORT (see $out/run2.log)"
grep -q 'RESULT server port 6001: 12 messages, then association shut down' "$share/host-server.log" \
  && pass "we saw the kernel's SHUTDOWN" || bad "we did not see the kernel's SHUTDOWN (see $out/run2.log)"
grep -Eq 'RESULT server port 6002: 12 messages, then association lost: aborted by the peer' "$share/host-server.log" \
  && pass "we saw the kernel's ABORT" || bad "we did not see the kernel's ABORT (see $out/run2.log)"

echo "== captures"
for cap in "$out/kernel-server.pcap" "$out/kernel-client.pcap"; do
  [ -s "$cap" ] || { bad "no capture $cap"; continue; }
  n=$(tshark -n -r "$cap" -d udp.port==9899,sctp -Y 'sctp' 2>/dev/null | wc -l)
  # The test payloads are not ASAP/ENRP/M2TP messages (PPIDs 11, 12, 99): check the SCTP layer
  # with those dissectors off.
  badsum=$(tshark -n -r "$cap" -d udp.port==9899,sctp -o sctp.checksum:CRC-32C \
             --disable-protocol asap --disable-protocol enrp --disable-protocol m2tp \
             -Y 'sctp.checksum.status == 0 || _ws.malformed || _ws.expert.severity >= 8388608' 2>/dev/null | wc -l)
  data=$(tshark -n -r "$cap" -d udp.port==9899,sctp -Y 'sctp.data_payload_proto_id == 99' 2>/dev/null | wc -l)
  if [ "$n" -gt 0 ] && [ "$badsum" -eq 0 ] && [ "$data" -gt 0 ]; then
    pass "$(basename "$cap"): $n SCTP packets, all CRC32c correct, none malformed, PPID 99 DATA present"
  else
    bad "$(basename "$cap"): $n SCTP packets, $badsum bad/malformed, $data PPID-99 DATA"
  fi
done
echo "results in $out"
exit $fail
