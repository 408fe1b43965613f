#!/usr/bin/env bash
# librserpool (the C API) interop with RSPLIB 3.4.4 in the guest of ../shared/tools/rsplib-vm,
# with the C demos of examples/c/ on the host (198.18.0.1) and RSPLIB in the guest (198.18.0.2):
#   run 1: RSPLIB's registrar in the guest; our C ping-pong PE serves RSPLIB's pingpongclient,
#          and when that PE is killed (SIGKILL) mid-run, a second PE of ours takes over the
#          session with the newest cookie (Cookie Echo) and answers every Ping from then on;
#          RSPLIB's rspterminal gets its line echoed by our C echo PE;
#   run 2: our registrar on the host; RSPLIB's `rspserver -pingpong` in the guest serves our C
#          ping-pong client, which fails over to a second rspserver when the first is killed,
#          and gets every Pong with the reply count going on from the cookie;
#   run 3: our registrar on the host; our C ping-pong PE serves RSPLIB's pingpongclient
#          through it.
# Every capture is checked with ../shared/tools/wire-check (through check_capture.py): every
# ASAP message of ours padded and OK under --strict, and the session layer's Cookies and
# Cookie Echo there.
#
# Usage: interop/capi.sh [OUTDIR]     (needs root: network namespace, tap, capture)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=${RSERPOOL_SHARED:-$repo/../shared}
vm=$shared/tools/rsplib-vm
wirecheck=$shared/tools/wire-check
out=${1:-$(mktemp -d /tmp/rserpool-interop-capi.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
expect() { if grep -q -- "$1" "$2" 2>/dev/null; then pass "$3"; else bad "$4"; fi; }

[ -x "$vm/run.sh" ] || { echo "no rsplib-vm at $vm (set RSERPOOL_SHARED)"; exit 2; }
if [ ! -e "${RSPVM_DIR:-/var/tmp/rsplib-vm}/out/vmlinux" ]; then
  echo "building the rsplib-vm guest (once)"
  "$vm/build.sh" > "$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 2; }
fi
cargo build -q --release --lib -p rserpool --manifest-path "$repo/Cargo.toml"
cargo build -q --release -p rserpool-registrar --manifest-path "$repo/Cargo.toml"
reg="$target/release/rserpool-registrar"
# The demos, built against the library installed under a prefix of this run, with pkg-config.
"$repo/scripts/install-lib" --prefix "$out/prefix" --from "$target/release" > "$out/install.log"
bin="$out/bin"; mkdir -p "$bin"
for d in echo-server pingpong-server pingpong-client; do
  # shellcheck disable=SC2046
  cc -std=gnu11 -O2 -Wall -Werror "$repo/examples/c/$d.c" -o "$bin/$d" \
    $(PKG_CONFIG_PATH="$out/prefix/lib/pkgconfig" pkg-config --cflags --libs rserpool) \
    -Wl,-rpath,"$out/prefix/lib"
done
host=198.18.0.1
guest=198.18.0.2
export RSERPOOL_LOCAL=$host RSERPOOL_ANNOUNCE=off

# wire-check a capture; the arguments after the first two are check_capture.py's expectations.
check_capture() {
  local cap=$1 what=$2; shift 2
  local exp=() e
  for e in "$@"; do exp+=(--expect "$e"); done
  "$wirecheck" --jsonl "$cap.jsonl" --quiet "$cap" > "$cap.wire-check.txt" 2>&1 || true
  python3 "$here/check_capture.py" "$cap.jsonl" "$host" "$what" "${exp[@]}"
}

# ---------------------------------------------------------------------------------------------
echo "== run 1: RSPLIB's registrar, pingpongclient and rspterminal; our C PEs"
s1="$out/share1"; rm -rf "$s1"; mkdir -p "$s1"
cat > "$s1/guest.sh" <<GUEST
#!/bin/sh
rspregistrar -logcolor=off -loglevel=3 -logfile=/share/rspregistrar.log \
  -asap=0.0.0.0:3863 -enrp=0.0.0.0:9901 -asapannounce=off -enrpannounce=off \
  -endpointkeepalivetransmissioninterval=1000 >/share/rspregistrar.out 2>&1 &
i=0; until grep -q ' 3863 ' /proc/net/sctp/eps 2>/dev/null || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i+1)); done
rspvm-ready "RSPLIB registrar up"
i=0; until [ -e /share/pe-ready ] || [ \$i -ge 400 ]; do sleep 0.1; i=\$((i+1)); done
( echo "hello from rspterminal to librserpool"; sleep 4 ) | timeout 20 rspterminal \
  -registrar=127.0.0.1:3863 -asapannounce=off -logcolor=off -loglevel=3 \
  > /share/rspterminal.out 2>/share/rspterminal.err &
# RSPLIB's pool user notices a dead PE only through kernel SCTP, with the RTO settings its
# session sockets set (1-5 s, 8 retransmissions; sysctls do not change them): 25-40 s after
# the kill. 75 s leaves the second PE 30 s and more.
timeout -s TERM 75 pingpongclient -registrar=127.0.0.1:3863 -asapannounce=off -interval=250 \
  -logcolor=off -loglevel=3 > /share/ppc.out 2>/share/ppc.err &
c=\$!
sleep 3
touch /share/kill-now
wait \$c
touch /share/guest-done
sleep 30
GUEST
"$vm/run.sh" -q -t 200 -o "$out/run1" -s "$s1" -p "$out/run1.pcap" -c 'sh /share/guest.sh' \
  -H "set -u
      '$bin/echo-server' -registrar=$guest:3863 -asapannounce=off > '$s1/echo.out' 2> '$s1/echo.err' &
      e=\$!
      '$bin/pingpong-server' -registrar=$guest:3863 -asapannounce=off > '$s1/pp-a.out' 2> '$s1/pp-a.err' &
      a=\$!
      i=0; until grep -q registered '$s1/pp-a.out' && grep -q registered '$s1/echo.out' || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
      touch '$s1/pe-ready'
      i=0; until [ -e '$s1/kill-now' ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i+1)); done
      '$bin/pingpong-server' -registrar=$guest:3863 -asapannounce=off > '$s1/pp-b.out' 2> '$s1/pp-b.err' &
      b=\$!
      i=0; until grep -q registered '$s1/pp-b.out' || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
      kill -KILL \$a
      i=0; until [ -e '$s1/guest-done' ] || [ \$i -ge 1200 ]; do sleep 0.1; i=\$((i+1)); done
      kill -TERM \$b \$e; wait \$b \$e" > "$out/run1.log" 2>&1 || true
expect "hello from rspterminal to librserpool" "$s1/rspterminal.out" \
  "RSPLIB's rspterminal got its line echoed by our C echo PE (through RSPLIB's registrar)" \
  "rspterminal got no echo from our C echo PE (see $s1/rspterminal.out/.err, $s1/echo.err)"
# RSPLIB's pingpongclient prints "Ack #N from PE $ID (reply #R)" for each Pong. The second PE
# must resume at the newest cookie: one past the last reply the killed PE got out (two past,
# if it was killed between a cookie and its Pong), and answer every Ping from then on.
python3 - "$s1" <<'PY' && ok=1 || ok=0
import re, sys
d = sys.argv[1]
def pe(name):
    m = re.search(r"registered in \S+ as 0x([0-9a-f]+)", open(f"{d}/{name}").read())
    return int(m.group(1), 16) if m else None
a, b = pe("pp-a.out"), pe("pp-b.out")
acks = [(int(p, 16), int(r)) for p, r in
        re.findall(r"Ack #\d+ from PE \$([0-9a-f]+) \(reply #(\d+)\)", open(f"{d}/ppc.out").read())]
from_a = [r for p, r in acks if p == a]
from_b = [r for p, r in acks if p == b]
m = re.search(r"resumes at reply (\d+)", open(f"{d}/pp-b.out").read())
resumed = int(m.group(1)) if m else None
print(f"  pongs from the killed PE: {len(from_a)} (last reply {from_a[-1] if from_a else None}), "
      f"from the second: {len(from_b)} (replies {from_b[:1]}..{from_b[-1:]}), it resumed at {resumed}")
ok = (from_a and resumed is not None and resumed - from_a[-1] in (1, 2) and len(from_b) >= 10
      and from_b[0] == resumed and from_b == list(range(resumed, resumed + len(from_b))))
sys.exit(0 if ok else 1)
PY
if [ "$ok" = 1 ]; then
  pass "RSPLIB's pingpongclient failed over from our killed C PE to the second, which resumed at its newest cookie and answered every Ping after: $(grep -m1 resumes "$s1/pp-b.out")"
else
  bad "no failover with the newest cookie to our second C PE (see $s1/ppc.out/.err, $s1/pp-a.out, $s1/pp-b.out)"
fi
check_capture "$out/run1.pcap" "run 1 (our C PEs)" || fail=1

# ---------------------------------------------------------------------------------------------
echo "== run 2: our registrar, RSPLIB's rspserver -pingpong, our C ping-pong client"
s2="$out/share2"; rm -rf "$s2"; mkdir -p "$s2"
cat > "$s2/guest.sh" <<GUEST
#!/bin/sh
rspvm-ready "waiting for the host registrar"
i=0; until [ -e /share/host-ready ] || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
rspserver -pingpong -registrar=$host:3863 -asapannounce=off -logcolor=off -loglevel=3 \
  -logfile=/share/pp1.log > /share/pp1.out 2>&1 &
p1=\$!
i=0; until grep -q 'Home registrar is' /share/pp1.log 2>/dev/null || [ \$i -ge 200 ]; do sleep 0.1; i=\$((i+1)); done
touch /share/pe1-ready
i=0; until [ -e /share/kill-now ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i+1)); done
rspserver -pingpong -registrar=$host:3863 -asapannounce=off -logcolor=off -loglevel=3 \
  -logfile=/share/pp2.log > /share/pp2.out 2>&1 &
i=0; until grep -q 'Home registrar is' /share/pp2.log 2>/dev/null || [ \$i -ge 200 ]; do sleep 0.1; i=\$((i+1)); done
kill -KILL \$p1
touch /share/killed
i=0; until [ -e /share/host-done ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i+1)); done
sleep 30
GUEST
"$vm/run.sh" -q -t 150 -o "$out/run2" -s "$s2" -p "$out/run2.pcap" -c 'sh /share/guest.sh' \
  -H "set -u
      '$reg' --asap $host:3863 --announce off > '$s2/registrar.out' 2> '$s2/registrar.err' &
      r=\$!
      i=0; until grep -q ready '$s2/registrar.out' || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i+1)); done
      touch '$s2/host-ready'
      i=0; until [ -e '$s2/pe1-ready' ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i+1)); done
      timeout 60 '$bin/pingpong-client' -registrar=$host:3863 -asapannounce=off -interval=200 -count=40 \
        > '$s2/client.out' 2> '$s2/client.err' &
      c=\$!
      i=0; until grep -q 'reply=5 ' '$s2/client.out' || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
      touch '$s2/kill-now'
      wait \$c
      touch '$s2/host-done'
      kill -TERM \$r; wait \$r" > "$out/run2.log" 2>&1 || true
summary=$(tail -1 "$s2/client.out" 2>/dev/null || true)
expect "40 pongs" "$s2/client.out" \
  "our C ping-pong client got every Pong from RSPLIB's rspserver -pingpong: $summary" \
  "our C client did not get its Pongs (see $s2/client.out/.err)"
expect "PE lost, failing over" "$s2/client.out" \
  "our C client failed over from the killed rspserver: Pongs from $(grep -o 'pe=0x[0-9a-f]*' "$s2/client.out" 2>/dev/null | sort -u | wc -l) PEs" \
  "our C client never failed over (see $s2/client.out, $s2/pp1.log)"
expect " 0 gaps, 1 failovers" "$s2/client.out" \
  "RSPLIB's second rspserver went on counting from our client's Cookie Echo (no reply gap)" \
  "reply numbers jumped across the failover: $summary"
check_capture "$out/run2.pcap" "run 2 (our registrar, our C pool user)" || fail=1

# ---------------------------------------------------------------------------------------------
echo "== run 3: our registrar and C ping-pong PE, RSPLIB's pingpongclient"
s3="$out/share3"; rm -rf "$s3"; mkdir -p "$s3"
cat > "$s3/guest.sh" <<GUEST
#!/bin/sh
rspvm-ready "waiting for the host"
i=0; until [ -e /share/host-ready ] || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
timeout -s TERM 6 pingpongclient -registrar=$host:3863 -asapannounce=off -interval=250 \
  -logcolor=off -loglevel=3 > /share/ppc.out 2>/share/ppc.err
touch /share/guest-done
sleep 30
GUEST
"$vm/run.sh" -q -t 150 -o "$out/run3" -s "$s3" -p "$out/run3.pcap" -c 'sh /share/guest.sh' \
  -H "set -u
      '$reg' --asap $host:3863 --announce off > '$s3/registrar.out' 2> '$s3/registrar.err' &
      r=\$!
      i=0; until grep -q ready '$s3/registrar.out' || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i+1)); done
      '$bin/pingpong-server' -registrar=$host:3863 -asapannounce=off > '$s3/pp.out' 2> '$s3/pp.err' &
      p=\$!
      i=0; until grep -q registered '$s3/pp.out' || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
      touch '$s3/host-ready'
      i=0; until [ -e '$s3/guest-done' ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i+1)); done
      kill -TERM \$p \$r; wait \$p \$r" > "$out/run3.log" 2>&1 || true
acks=$(grep -c 'Ack #' "$s3/ppc.out" 2>/dev/null || true)
if [ "${acks:-0}" -ge 5 ]; then pass "RSPLIB's pingpongclient got $acks Pongs from our C PE through our registrar"
else bad "pingpongclient got ${acks:-0} Pongs through our registrar (see $s3/ppc.out/.err, $s3/pp.err)"; fi
check_capture "$out/run3.pcap" "run 3 (our registrar and C PE)" || fail=1
exit $fail
