#!/usr/bin/env bash
# Interop of rserpool-sctp with Linux kernel SCTP (6.1, RFC 6951 UDP encapsulation on 9899) in
# the guest of ../shared/tools/rsplib-vm, both directions:
#   run 1: the guest's kernel serves (sctp_peer server), our sctp-tool connects;
#   run 2: our sctp-tool serves, the guest's kernel connects (sctp_peer client);
#   run 3: host port sharing (SctpEndpoint::bind_shared): on the host, one sctp-tool is the
#          front on UDP 9899 (SCTP port 6001), a second one a member on an ephemeral UDP port of
#          its own (SCTP port 6003); the guest's kernel connects to both through UDP 9899. The
#          capture must show that after the INIT (forwarded by the front) the kernel sends the
#          member's association to the member's own UDP port: it learned the port.
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

echo "== run 3: host port sharing: a front on UDP 9899 and a member on its own UDP port"
"$vm/run.sh" -q -t 120 -o "$out/run3" -s "$share" -p "$out/kernel-shared.pcap" -W \
  -c 'rspvm-ready "kernel clients"; sleep 3
      /share/sctp_peer client $RSPVM_HOST_ADDR 6003 12 shutdown > /share/guest-shared-6003.log 2>&1
      /share/sctp_peer client $RSPVM_HOST_ADDR 6001 12 shutdown > /share/guest-shared-6001.log 2>&1
      sleep 2' \
  -H "'$tool' server --share-host --bind 0.0.0.0:9899 --port 6001 --exit-after 1 > '$share/host-front.log' 2>&1 &
      for i in \$(seq 100); do grep -q 'listening on UDP' '$share/host-front.log' && break; sleep 0.05; done
      '$tool' server --share-host --bind 0.0.0.0:9899 --port 6003 --exit-after 1 > '$share/host-member.log' 2>&1 &
      wait" \
  > /dev/null 2>&1 || true
cat "$share/host-front.log" "$share/host-member.log" "$share"/guest-shared-*.log > "$out/run3.log" 2>/dev/null || true
grep -q 'SHARE front of UDP port 9899, sending from UDP port 9899' "$share/host-front.log" \
  && pass "the first sharing process is the front on UDP 9899" || bad "no front (see $out/run3.log)"
eph=$(sed -n 's/^SHARE member of UDP port 9899, sending from UDP port \([0-9]*\)$/\1/p' "$share/host-member.log")
if [ -n "$eph" ] && [ "$eph" != 9899 ]; then
  pass "the second sharing process is a member sending from its own UDP port $eph"
else
  bad "the second sharing process is not a member (see $out/run3.log)"; eph=0
fi
grep -q 'RESULT client ok 12 echoes, shutdown' "$share/guest-shared-6003.log" \
  && pass "kernel client -> member's SCTP port 6003 via the host's UDP 9899: 12 echoes, SHUTDOWN" \
  || bad "kernel client -> member (see $out/run3.log)"
grep -q 'RESULT server port 6003: 12 messages, then association shut down' "$share/host-member.log" \
  && pass "the member saw 12 messages and the kernel's SHUTDOWN" || bad "member side (see $out/run3.log)"
grep -q 'RESULT client ok 12 echoes, shutdown' "$share/guest-shared-6001.log" \
  && pass "kernel client -> front's own SCTP port 6001: 12 echoes, SHUTDOWN" \
  || bad "kernel client -> front (see $out/run3.log)"
fwd=$(sed -n 's/^RESULT share: front of UDP port 9899, forwarded \([0-9]*\),.*/\1/p' "$share/host-front.log")
[ -n "$fwd" ] && [ "$fwd" -ge 1 ] \
  && pass "the front forwarded $fwd datagram(s) to the member" || bad "the front forwarded nothing (see $out/run3.log)"
cap="$out/kernel-shared.pcap"
if [ -s "$cap" ] && [ "$eph" != 0 ]; then
  # Kernel -> member (SCTP destination port 6003): UDP destination port and chunk types.
  tshark -n -r "$cap" -d udp.port==9899,sctp -d "udp.port==$eph,sctp" -Y 'sctp.dstport == 6003' \
    -T fields -e frame.number -e udp.srcport -e udp.dstport -e sctp.chunk_type 2>/dev/null > "$out/run3-to-member.txt" || true
  tshark -n -r "$cap" -d udp.port==9899,sctp -d "udp.port==$eph,sctp" -Y 'sctp.srcport == 6003' \
    -T fields -e frame.number -e udp.srcport -e udp.dstport -e sctp.chunk_type 2>/dev/null > "$out/run3-from-member.txt" || true
  to_wk=$(awk '$3 == 9899' "$out/run3-to-member.txt" | wc -l)
  init_to_wk=$(awk '$3 == 9899 && $4 == "1"' "$out/run3-to-member.txt" | wc -l)
  to_eph=$(awk -v e="$eph" '$3 == e' "$out/run3-to-member.txt" | wc -l)
  data_to_eph=$(awk -v e="$eph" '$3 == e && $4 ~ /(^|,)0(,|$)/' "$out/run3-to-member.txt" | wc -l)
  first_after_init=$(awk '$3 != 9899 {print $3 " " $4; exit}' "$out/run3-to-member.txt")
  from_other=$(awk -v e="$eph" '$2 != e' "$out/run3-from-member.txt" | wc -l)
  from_eph=$(awk -v e="$eph" '$2 == e' "$out/run3-from-member.txt" | wc -l)
  echo "   kernel -> member: $to_wk packet(s) to UDP 9899 ($init_to_wk INIT), $to_eph to UDP $eph ($data_to_eph with DATA), first after the INIT: UDP port/chunks '$first_after_init'"
  echo "   member -> kernel: $from_eph packet(s) from UDP $eph, $from_other from another port"
  if [ "$to_wk" -eq 1 ] && [ "$init_to_wk" -eq 1 ] && [ "$to_eph" -gt 0 ] && [ "$data_to_eph" -gt 0 ] \
     && [ "$from_other" -eq 0 ] && [ "$from_eph" -gt 0 ]; then
    pass "KERNEL LEARNED THE PORT: only the INIT went to UDP 9899; the kernel sent the other $to_eph packets of the association (COOKIE ECHO, DATA, SACK, SHUTDOWN...) to the member's UDP port $eph, and the member sent everything from it"
  else
    bad "the kernel did not follow the member's UDP port $eph (see $out/run3-to-member.txt, $out/run3-from-member.txt)"
  fi
else
  bad "no capture $cap or no member port"
fi

echo "== captures"
for cap in "$out/kernel-server.pcap" "$out/kernel-client.pcap" "$out/kernel-shared.pcap"; do
  [ -s "$cap" ] || { bad "no capture $cap"; continue; }
  dec=(-d udp.port==9899,sctp)
  [ "$cap" = "$out/kernel-shared.pcap" ] && [ "${eph:-0}" != 0 ] && dec+=(-d "udp.port==$eph,sctp")
  n=$(tshark -n -r "$cap" "${dec[@]}" -Y 'sctp' 2>/dev/null | wc -l)
  # The test payloads are not ASAP/ENRP/M2TP messages (PPIDs 11, 12, 99): check the SCTP layer
  # with those dissectors off.
  badsum=$(tshark -n -r "$cap" "${dec[@]}" -o sctp.checksum:CRC-32C \
             --disable-protocol asap --disable-protocol enrp --disable-protocol m2tp \
             -Y 'sctp.checksum.status == 0 || _ws.malformed || _ws.expert.severity >= 8388608' 2>/dev/null | wc -l)
  data=$(tshark -n -r "$cap" "${dec[@]}" -Y 'sctp.data_payload_proto_id == 99' 2>/dev/null | wc -l)
  if [ "$n" -gt 0 ] && [ "$badsum" -eq 0 ] && [ "$data" -gt 0 ]; then
    pass "$(basename "$cap"): $n SCTP packets, all CRC32c correct, none malformed, PPID 99 DATA present"
  else
    bad "$(basename "$cap"): $n SCTP packets, $badsum bad/malformed, $data PPID-99 DATA"
  fi
done
echo "results in $out"
exit $fail
