#!/usr/bin/env bash
# ENRP interop with RSPLIB 3.4.4 in the multi-guest rsplib-vm (two guests on one bridge):
#   vm1 198.18.0.2  RSPLIB rspregistrar, ID 0x22222222, with an rspserver -echo PE homed at it
#   vm2 198.18.0.3  RSPLIB rspregistrar, ID 0x33333333, with an rspserver -echo PE homed at it
#   host 198.18.0.1 our rserpool-registrar, ID 0x11111111, peering statically with both; our
#                   echo PE on 198.18.0.100 (an extra address of the host) homed at it
# Each PE knows only its own registrar, so only a takeover re-homes it. Checks:
#   1. every registrar resolves all three PEs (our `rserpool resolve` against each);
#   2. `hsdump` against our registrar and `rserpool handlespace` against RSPLIB's list the
#      same PEs, and the owners' checksums agree (no audit loop: our registrar audits at most
#      a few times while peers join, not on and on);
#   3. ours is SIGKILLed: RSPLIB takes our PE over and our PE re-homes (its log says so);
#   4. ours restarts: it synchronises from an RSPLIB mentor and serves every PE;
#   5. RSPLIB's registrar in vm2 is SIGKILLed: its PE gets a new live home, which every live
#      registrar agrees on, and stays resolvable (RSPLIB completes a takeover only with another
#      live peer to ack it, so ours is killed first, while both RSPLIB registrars live);
#   6. wire-check --strict on every ASAP/ENRP message our side sent (the host-local traffic of
#      our PE with our registrar does not cross the bridge: its capture is its registration at
#      RSPLIB's registrar after the takeover).
# Usage: interop/enrp.sh [OUTDIR]   (needs root: network namespace, taps, capture)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=${RSERPOOL_SHARED:-$repo/../shared}
vm=$shared/tools/rsplib-vm
wirecheck=$shared/tools/wire-check
out=${1:-$(mktemp -d /tmp/rserpool-interop-enrp.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
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
share="$out/share"; rm -rf "$share"; mkdir -p "$share"
cp "$bin/rserpool" "$bin/rserpool-registrar" "$share/"

cat > "$share/orch.sh" <<'ORCH'
#!/bin/bash
# Host side, inside the run's network namespace.
set -u
. "$RSPVM_TOOLS/scenarios/hlib.sh"
S=$RSPVM_SHARE
H=198.18.0.1; PEADDR=198.18.0.100; A=198.18.0.2; B=198.18.0.3
ip addr add $PEADDR/24 dev "$RSPVM_BRIDGE"
cleanup() { kill -KILL $OURPR $OURPE 2>/dev/null; finish; }
trap cleanup EXIT
result() { echo "RESULT $*" | tee -a "$S/results.txt"; }
REG="-logcolor=off -loglevel=3 -asap=0.0.0.0:3863 -enrp=0.0.0.0:9901 -asapannounce=off -enrpannounce=off"
resolve_at() {  # resolve_at REGISTRAR -> the sorted PE IDs (0x...) of EchoPool there
  "$S/rserpool" resolve EchoPool --registrar "$1" --local $H --announce off \
    --t1 3000 2>/dev/null | awk '{print $1}' | sort | tr '\n' ' '
}
hs_json() { "$S/rserpool" handlespace "$1:9901" --local $H --timeout 5000 --json 2>>"$S/handlespace.err"; }
homes() {  # homes REGISTRAR -> "pe=home ..." sorted
  hs_json "$1" | python3 -c 'import json,sys
d=json.load(sys.stdin); print(" ".join(sorted("%08x=%08x" % (p["id"], p["home"]) for p in d["pes"])))'
}

phase "RSPLIB registrars in vm1 and vm2, ours on the host, peering statically"
"$S/rserpool-registrar" --id 0x11111111 --asap $H:3863 --enrp $H:9901 --announce off \
  --enrp-announce off --peer $A --peer $B --keep-alive-interval 1000 --keep-alive-timeout 1000 \
  --log-level debug > "$S/ourpr.out" 2> "$S/ourpr.err" &
OURPR=$!
on 1 "start pr rspregistrar -identifier=0x22222222 $REG -peer=$H:9901 -peer=$B:9901 -logfile=\$LOGD/pr.log"
on 2 "start pr rspregistrar -identifier=0x33333333 $REG -peer=$H:9901 -peer=$A:9901 -logfile=\$LOGD/pr.log"
pause 6 "mentor phases"

phase "an echo PE at each registrar"
on 1 "start pe rspserver -echo -identifier=0x0e000001 -registrar=$A:3863 -asapannounce=off -logcolor=off -loglevel=3 -logfile=\$LOGD/pe.log"
on 2 "start pe rspserver -echo -identifier=0x0e000002 -registrar=$B:3863 -asapannounce=off -logcolor=off -loglevel=3 -logfile=\$LOGD/pe.log"
"$S/rserpool" pe --service echo --registrar $H:3863 --local $PEADDR --no-share-host --announce off \
  --log-level info > "$S/ourpe.out" 2> "$S/ourpe.err" &
OURPE=$!
for i in $(seq 100); do grep -q 'rserpool pe ready' "$S/ourpe.out" && break; sleep 0.2; done
OURID=$(sed -n 's/.*rserpool pe ready.* id=0x\([0-9a-f]*\).*/\1/p' "$S/ourpe.out")
echo "our PE: $OURID"
ALL=$(printf '0x%s\n' 0e000001 0e000002 "$OURID" | sort | tr '\n' ' ')
for i in $(seq 60); do
  ok=1
  for r in $H $A $B; do [ "$(resolve_at $r)" = "$ALL" ] || ok=0; done
  [ $ok = 1 ] && break; sleep 0.5
done
for r in $H $A $B; do
  got=$(resolve_at $r)
  [ "$got" = "$ALL" ] && result "PASS: registrar $r resolves all three PEs ($got)" \
                      || result "FAIL: registrar $r resolves '$got', not '$ALL'"
done

phase "hsdump against ours, rserpool handlespace against RSPLIB's"
ON_TIMEOUT=40 on 1 "timeout 20 hsdump $H:9901 -logcolor=off > \$LOGD/hsdump-ours.txt 2>&1; grep -E 'Pool \"' \$LOGD/hsdump-ours.txt"
HSD=$(grep -o -i -E '\$?(0x)?0*(0e000001|0e000002|'"$OURID"')' "$S/logs/vm1/hsdump-ours.txt" | grep -o -i -E '(0e000001|0e000002|'"$OURID"')' | sort -u | wc -l)
[ "$HSD" = 3 ] && result "PASS: RSPLIB's hsdump lists our registrar's three PEs" \
               || result "FAIL: hsdump of our registrar lists $HSD of the three PEs (see logs/vm1/hsdump-ours.txt)"
for r in $A $B $H; do
  hs_json $r > "$S/handlespace-$r.json" || true
  python3 - "$S/handlespace-$r.json" "$OURID" <<'PY' | tee -a "$S/results.txt"
import json, sys
d = json.load(open(sys.argv[1]))
ids = sorted("%08x" % p["id"] for p in d["pes"])
want = sorted(["0e000001", "0e000002", sys.argv[2]])
r = "%08x" % d["registrar"]
print(("RESULT PASS: " if ids == want else "RESULT FAIL: ") +
      "rserpool handlespace of %s lists %s" % (r, ids))
print(("RESULT PASS: " if d["checksum_matches"] else "RESULT FAIL: ") +
      "%s's own checksum %s matches its PEs" % (r, d["checksum"]))
PY
done
pause 15 "steady state: Presences with checksums, no audit loop"
A1=$(grep -c 'checksum differs: auditing' "$S/ourpr.err" || true)
pause 10 "counting audits"
A2=$(grep -c 'checksum differs: auditing' "$S/ourpr.err" || true)
[ "$A2" = "$A1" ] && result "PASS: no audit loop (our registrar audited $A2 times while peers joined, none in steady state)" \
                  || result "FAIL: our registrar keeps auditing ($A1 then $A2)"

start_ours() {
  "$S/rserpool-registrar" --id 0x11111111 --asap $H:3863 --enrp $H:9901 --announce off \
    --enrp-announce off --peer $A --peer $B --keep-alive-interval 1000 --keep-alive-timeout 1000 \
    --log-level debug >> "$S/ourpr.out" 2>> "$S/ourpr.err" &
  OURPR=$!
}
phase "SIGKILL our registrar: RSPLIB takes our PE over, our PE re-homes"
kill -KILL $OURPR
T0=$(date +%s.%N)
for i in $(seq 60); do grep -q 'adopting a new home registrar' "$S/ourpe.err" && break; sleep 0.5; done
T1=$(date +%s.%N)
grep -q 'adopting a new home registrar' "$S/ourpe.err" \
  && result "PASS: our PE adopted RSPLIB's registrar as its home, $(python3 -c "print(round($T1-$T0,1))") s after the kill: $(grep -o 'adopting a new home registrar.*' "$S/ourpe.err" | head -1)" \
  || result "FAIL: our PE was not taken over (see ourpe.err)"
for r in $A $B; do
  got=$(resolve_at $r)
  [ "$got" = "$ALL" ] && result "PASS: RSPLIB's registrar $r resolves all three PEs after our registrar's death" \
                      || result "FAIL: RSPLIB's registrar $r resolves '$got' after our registrar's death"
done

phase "our registrar restarts: it synchronises from an RSPLIB mentor"
start_ours
for i in $(seq 60); do [ "$(resolve_at $H)" = "$ALL" ] && break; sleep 0.5; done
got=$(resolve_at $H)
[ "$got" = "$ALL" ] && result "PASS: our restarted registrar serves all three PEs, learnt from its RSPLIB mentor" \
                    || result "FAIL: our restarted registrar resolves '$got'"
grep -q 'synchronised from the mentor' "$S/ourpr.err" \
  && result "PASS: $(grep -o 'synchronised from the mentor.*' "$S/ourpr.err" | tail -1)" \
  || result "FAIL: no mentor synchronisation in our registrar's log"

phase "SIGKILL RSPLIB's registrar in vm2: its PE is taken over"
on 2 "sig pr KILL"
T0=$(date +%s.%N)
NEW=""
for i in $(seq 120); do
  h1=$(homes $H); h2=$(homes $A)
  home=$(echo "$h1" | tr ' ' '\n' | sed -n 's/^0e000002=//p')
  if [ -n "$home" ] && [ "$home" != 33333333 ] && [ "$h1" = "$h2" ] \
     && ! echo "$h1" | grep -q '=33333333'; then NEW=$home; break; fi
  sleep 0.5
done
T1=$(date +%s.%N)
[ -n "$NEW" ] && result "PASS: RSPLIB PE 0e000002 re-homed to $NEW, both live registrars agree on every home, $(python3 -c "print(round($T1-$T0,1))") s after the kill" \
              || result "FAIL: PE 0e000002 not re-homed consistently (ours: $h1; vm1: $h2)"
for r in $H $A; do
  got=$(resolve_at $r)
  [ "$got" = "$ALL" ] && result "PASS: registrar $r still resolves all three PEs" \
                      || result "FAIL: registrar $r resolves '$got' after the takeover"
done
ORCH

"$vm/run.sh" -q -N 2 -t 400 -o "$out/run" -s "$share" -d "$vm/scenarios/agent" -p "$out/enrp.pcap" \
  -H "bash $share/orch.sh" "$vm/scenarios/agent/agent.sh" > "$out/run.log" 2>&1 || true
fail=0
if [ -s "$share/results.txt" ]; then
  sed 's/^RESULT //' "$share/results.txt"
  grep -q '^RESULT FAIL' "$share/results.txt" && fail=1
  [ "$(grep -c '^RESULT PASS' "$share/results.txt")" -ge 18 ] || { echo "FAIL: not every check ran"; fail=1; }
else
  echo "FAIL: no results (see $out/run.log)"; fail=1
fi
# Our messages on the wire: every ASAP/ENRP message the host side (registrar and tools on
# 198.18.0.1, PE on 198.18.0.100) sent is padded and passes wire-check --strict.
"$wirecheck" --jsonl "$out/enrp.jsonl" --quiet "$out/enrp.pcap" > "$out/wire-check.txt" 2>&1 || true
python3 "$here/check_capture.py" "$out/enrp.jsonl" 198.18.0.1 "ENRP run, our registrar" \
  --expect 1:EchoPool:theirs || fail=1
python3 "$here/check_capture.py" "$out/enrp.jsonl" 198.18.0.100 "ENRP run, our PE" \
  --expect 1:EchoPool:ours || fail=1
exit $fail
