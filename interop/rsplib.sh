#!/usr/bin/env bash
# ASAP interop with RSPLIB 3.4.4 (kernel SCTP over UDP 9899) in the guest of
# ../shared/tools/rsplib-vm. The host side (198.18.0.1, inside the run's network namespace) runs
# rserpool; the guest (198.18.0.2) runs RSPLIB:
#   run 1: our registrar on the host; one RSPLIB `rspserver -echo` per pool registers with it
#          and acknowledges its keep-alives, RSPLIB's `rspterminal` reaches each echo PE
#          through it, and our `rserpool resolve` sees each PE;
#   run 2: RSPLIB's registrar in the guest; one echo PE of ours (`rserpool pe`) per pool
#          registers with it and acknowledges its keep-alives, RSPLIB's `rspterminal` reaches
#          each, and our `rserpool resolve` resolves each pool there;
#   run 3: RSPLIB's registrar and echo PE in the guest; our pool user resolves the pool there
#          (`rserpool resolve`) and talks to the PE (`rserpool terminal`).
# Runs 1 and 2 use pool handles of every length modulo 4 ($pools), so that our messages end on
# a parameter of every padding (RFC 5354 §4: the sender pads the message; RSPLIB's parser fails
# on a message that is not). RSPLIB's logs must have no parse error about our messages.
# Every capture is checked with ../shared/tools/wire-check (through check_capture.py): the
# messages our side sends must be padded and pass --strict (RSPLIB's carry known warnings, see
# shared/vectors/rsplib-3.4.4/README.md), and each pool's registration, resolution and
# keep-alive exchanges must be there. (Our pool users resolve without `--items`: that sends
# RSPLIB's non-RFC option 0x803f.)
#
# Usage: interop/rsplib.sh [OUTDIR]      (needs root: network namespace, tap, capture)
#        RSERPOOL_BIN_DIR=DIR runs the rserpool and rserpool-registrar found there instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=${RSERPOOL_SHARED:-$repo/../shared}
vm=$shared/tools/rsplib-vm
wirecheck=$shared/tools/wire-check
out=${1:-$(mktemp -d /tmp/rserpool-interop-rsplib.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
# expect PATTERN FILE PASS-TEXT FAIL-TEXT: passes if FILE has a line matching PATTERN.
expect() { if grep -q -- "$1" "$2" 2>/dev/null; then pass "$3"; else bad "$4"; fi; }

[ -x "$vm/run.sh" ] || { echo "no rsplib-vm at $vm (set RSERPOOL_SHARED)"; exit 2; }
if [ ! -e "${RSPVM_DIR:-/var/tmp/rsplib-vm}/out/vmlinux" ]; then
  echo "building the rsplib-vm guest (once)"
  "$vm/build.sh" > "$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 2; }
fi
if [ -z "${RSERPOOL_BIN_DIR:-}" ]; then
  cargo build -q --release -p rserpool-tool --bin rserpool --manifest-path "$repo/Cargo.toml"
  cargo build -q --release -p rserpool-registrar --manifest-path "$repo/Cargo.toml"
fi
bin=${RSERPOOL_BIN_DIR:-$target/release}
rsp="$bin/rserpool"
reg="$bin/rserpool-registrar"
host=198.18.0.1
guest=198.18.0.2
# Pool handles of 8, 5, 6 and 11 bytes: lengths 4k, 4k+1, 4k+2 and 4k+3.
pools="EchoPool Pool1 LUPool DaytimePool"
npools=$(echo $pools | wc -w)
# What RSPLIB logs about a message it cannot parse (rsplib-notes §8.1; "Unxpected" is its
# spelling), at -loglevel=3.
parse_errors='Unxpected end of message|Unexpected end of message|Error while parsing|Sending ASAP Error|[Ii]nvalid TLV|[Ii]nvalid message|[Mm]alformed|[Pp]arse error'

# Fails unless RSPLIB's logs (the files after $1) are free of parse errors.
check_rsplib_logs() {
  local what=$1; shift
  local hits
  hits=$(grep -EH "$parse_errors" "$@" 2>/dev/null | head -5 || true)
  if [ -n "$hits" ]; then
    bad "$what: RSPLIB logged parse errors about our messages:
$hits"
  else
    pass "$what: no parse error in RSPLIB's logs ($(cat "$@" 2>/dev/null | wc -l) lines in $# files)"
  fi
}

# wire-check a capture: our messages (sent from the host) must all be padded and OK under
# --strict; the arguments after the first two are check_capture.py's TYPE:POOL:SIDE expectations.
check_capture() {
  local cap=$1 what=$2; shift 2
  local exp=() e
  for e in "$@"; do exp+=(--expect "$e"); done
  "$wirecheck" --jsonl "$cap.jsonl" --quiet "$cap" > "$cap.wire-check.txt" 2>&1 || true
  python3 "$here/check_capture.py" "$cap.jsonl" "$host" "$what" "${exp[@]}"
}

# Guest side: waits (up to 25 s) until every rspterminal of $pools got its line back.
wait_terminals='i=0; while [ $i -lt 250 ]; do
  n=0; for p in '"$pools"'; do grep -q "hello $p" /share/rspterminal-$p.out 2>/dev/null && n=$((n+1)); done
  [ $n -eq '"$npools"' ] && break; sleep 0.1; i=$((i+1))
done'

# ---------------------------------------------------------------------------------------------
echo "== run 1: our registrar, RSPLIB's echo PEs and rspterminal (pools: $pools)"
share1="$out/share1"; rm -rf "$share1"; mkdir -p "$share1"
cat > "$share1/guest.sh" <<EOF
#!/bin/sh
rspvm-ready "waiting for the host registrar"
i=0; until [ -e /share/host-ready ] || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
for p in $pools; do
  rspserver -echo -poolhandle=\$p -registrar=$host:3863 -asapannounce=off \
    -logcolor=off -loglevel=3 -logfile=/share/rspserver-\$p.log >/share/rspserver-\$p.out 2>&1 &
done
for p in $pools; do
  i=0; until grep -q 'Home registrar is' /share/rspserver-\$p.log 2>/dev/null || [ \$i -ge 200 ]; do sleep 0.1; i=\$((i+1)); done
done
for p in $pools; do
  ( echo "hello \$p from rspterminal"; sleep 4 ) | timeout 20 rspterminal -poolhandle=\$p \
    -registrar=$host:3863 -asapannounce=off -logcolor=off -loglevel=3 \
    > /share/rspterminal-\$p.out 2>/share/rspterminal-\$p.err &
done
$wait_terminals
touch /share/guest-done
sleep 30
EOF
"$vm/run.sh" -q -t 150 -o "$out/run1" -s "$share1" -p "$out/run1.pcap" \
  -c 'sh /share/guest.sh' \
  -H "set -u
      '$reg' --asap $host:3863 --announce off --keep-alive-interval 1000 --keep-alive-timeout 1000 \
        > '$share1/registrar.out' 2> '$share1/registrar.err' &
      r=\$!
      i=0; until grep -q ready '$share1/registrar.out' || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i+1)); done
      touch '$share1/host-ready'
      i=0; until [ -e '$share1/guest-done' ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i+1)); done
      for p in $pools; do
        '$rsp' resolve \$p --registrar $host --local $host --announce off --t1 3000 \
          > '$share1'/resolve-\$p.out 2>&1
      done
      sleep 3
      kill -TERM \$r; wait \$r" > "$out/run1.log" 2>&1 || true
for p in $pools; do
  n=${#p}
  expect 'Home registrar is' "$share1/rspserver-$p.log" \
    "$p ($n B, 4k+$((n % 4))): RSPLIB rspserver -echo registered with our registrar" \
    "$p: rspserver did not register with our registrar (see $share1/rspserver-$p.log, $share1/registrar.err)"
  expect "hello $p from rspterminal" "$share1/rspterminal-$p.out" \
    "$p: RSPLIB rspterminal reached RSPLIB's echo PE through our registrar" \
    "$p: rspterminal got no echo through our registrar (see $share1/rspterminal-$p.out/.err)"
  expect "sctp $guest:" "$share1/resolve-$p.out" \
    "$p: our resolve lists RSPLIB's PE at our registrar: $(head -1 "$share1/resolve-$p.out" 2>/dev/null)" \
    "$p: RSPLIB's PE not in our registrar's handlespace (see $share1/resolve-$p.out)"
done
expect "keep_alive_acks: [1-9]" "$share1/registrar.err" \
  "RSPLIB's PEs acknowledged our registrar's keep-alives" \
  "no keep-alive acknowledged by RSPLIB's PEs (see $share1/registrar.err)"
check_rsplib_logs "run 1" "$share1"/rspserver-*.log "$share1"/rspserver-*.out "$share1"/rspterminal-*.err
# Per pool: RSPLIB's registration (1) and our response (3), RSPLIB's handle resolution (5) and
# our response (6), our keep-alive (7) and RSPLIB's ack (8).
exp=()
for p in $pools; do exp+=("1:$p:theirs" "3:$p:ours" "5:$p:theirs" "6:$p:ours" "7:$p:ours" "8:$p:theirs"); done
check_capture "$out/run1.pcap" "run 1 (our registrar)" "${exp[@]}" || fail=1

# ---------------------------------------------------------------------------------------------
echo "== run 2: RSPLIB's registrar, our echo PEs, rspterminal, our resolve (pools: $pools)"
share2="$out/share2"; rm -rf "$share2"; mkdir -p "$share2"
cat > "$share2/guest.sh" <<EOF
#!/bin/sh
rspregistrar -logcolor=off -loglevel=3 -logfile=/share/rspregistrar.log \
  -asap=0.0.0.0:3863 -enrp=0.0.0.0:9901 -asapannounce=off -enrpannounce=off \
  -endpointkeepalivetransmissioninterval=1000 >/share/rspregistrar.out 2>&1 &
i=0; until grep -q ' 3863 ' /proc/net/sctp/eps 2>/dev/null || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i+1)); done
rspvm-ready "RSPLIB registrar up"
i=0; until [ -e /share/pe-ready ] || [ \$i -ge 400 ]; do sleep 0.1; i=\$((i+1)); done
for p in $pools; do
  ( echo "hello \$p to a rserpool PE"; sleep 4 ) | timeout 20 rspterminal -poolhandle=\$p \
    -registrar=127.0.0.1:3863 -asapannounce=off -logcolor=off -loglevel=3 \
    > /share/rspterminal-\$p.out 2>/share/rspterminal-\$p.err &
done
$wait_terminals
touch /share/guest-done
sleep 30
EOF
"$vm/run.sh" -q -t 150 -o "$out/run2" -s "$share2" -p "$out/run2.pcap" \
  -c 'sh /share/guest.sh' \
  -H "set -u
      pids=()
      for p in $pools; do
        '$rsp' pe --pool \$p --registrar $guest --announce off --rereg-interval 5000 \
          > '$share2'/pe-\$p.out 2> '$share2'/pe-\$p.err &
        pids+=(\$!)
      done
      for p in $pools; do
        i=0; until grep -q ready '$share2'/pe-\$p.out || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
      done
      touch '$share2/pe-ready'
      for p in $pools; do
        '$rsp' resolve \$p --registrar $guest --announce off --t1 3000 > '$share2'/resolve-\$p.out 2>&1
      done
      i=0; until [ -e '$share2/guest-done' ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i+1)); done
      sleep 6
      kill -TERM \${pids[@]}; wait \${pids[@]}" > "$out/run2.log" 2>&1 || true
for p in $pools; do
  n=${#p}
  expect "rserpool pe ready" "$share2/pe-$p.out" \
    "$p ($n B, 4k+$((n % 4))): our echo PE registered with RSPLIB's registrar: $(cat "$share2/pe-$p.out" 2>/dev/null)" \
    "$p: our PE did not register with RSPLIB's registrar (see $share2/pe-$p.err)"
  expect "hello $p to a rserpool PE" "$share2/rspterminal-$p.out" \
    "$p: RSPLIB rspterminal reached our echo PE through RSPLIB's registrar" \
    "$p: rspterminal got no echo from our PE (see $share2/rspterminal-$p.out/.err)"
  expect "sctp $host:" "$share2/resolve-$p.out" \
    "$p: our resolve at RSPLIB's registrar lists our PE: $(head -1 "$share2/resolve-$p.out" 2>/dev/null)" \
    "$p: our resolve at RSPLIB's registrar failed: $(head -3 "$share2/resolve-$p.out" 2>/dev/null)"
done
check_rsplib_logs "run 2" "$share2/rspregistrar.log" "$share2/rspregistrar.out" "$share2"/rspterminal-*.err
# Per pool: our registration and a re-registration (1, 5 s cycle) and RSPLIB's responses (3),
# our handle resolution (5) and RSPLIB's response (6), RSPLIB's keep-alive (7) and our ack (8).
exp=()
for p in $pools; do exp+=("1:$p:ours:2" "3:$p:theirs:2" "5:$p:ours" "6:$p:theirs" "7:$p:theirs" "8:$p:ours"); done
check_capture "$out/run2.pcap" "run 2 (our PEs and pool user)" "${exp[@]}" || fail=1

# ---------------------------------------------------------------------------------------------
echo "== run 3: RSPLIB's registrar and echo PE, our pool user"
"$vm/run.sh" -q -t 150 -o "$out/run3" -p "$out/run3.pcap" \
  -H "set -u
      '$rsp' resolve EchoPool --registrar $guest --announce off --t1 3000 > '$out/run3-resolve.out' 2>&1
      ( echo 'hello to an RSPLIB PE'; echo 'second line' ) | timeout 30 '$rsp' terminal EchoPool \
        --registrar $guest --announce off > '$out/run3-terminal.out' 2> '$out/run3-terminal.err'" \
  "$vm/scenarios/registrar.sh" > "$out/run3.log" 2>&1 || true
expect "sctp $guest:" "$out/run3-resolve.out" \
  "our pool user resolved EchoPool at RSPLIB's registrar: $(head -1 "$out/run3-resolve.out" 2>/dev/null)" \
  "our resolve at RSPLIB's registrar failed (see $out/run3-resolve.out)"
grep -q "hello to an RSPLIB PE" "$out/run3-terminal.out" 2>/dev/null \
  && grep -q "second line" "$out/run3-terminal.out" \
  && pass "our terminal talked to RSPLIB's echo PE (2 lines echoed)" \
  || bad "our terminal got no echo from RSPLIB's PE (see $out/run3-terminal.err)"
check_capture "$out/run3.pcap" "run 3 (our pool user)" || fail=1

exit $fail
