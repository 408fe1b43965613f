#!/usr/bin/env bash
# ASAP interop with RSPLIB 3.4.4 (kernel SCTP over UDP 9899) in the guest of
# ../shared/tools/rsplib-vm. The host side (198.18.0.1, inside the run's network namespace) runs
# rserpool; the guest (198.18.0.2) runs RSPLIB:
#   run 1: our registrar on the host; RSPLIB's `rspserver -echo` registers with it, RSPLIB's
#          `rspterminal` reaches the echo PE through it; our `rserpool resolve` sees the PE;
#   run 2: RSPLIB's registrar in the guest; our echo PE (`rserpool pe`) registers with it and
#          RSPLIB's `rspterminal` reaches our PE;
#   run 3: RSPLIB's registrar and echo PE in the guest; our pool user resolves the pool there
#          (`rserpool resolve`) and talks to the PE (`rserpool terminal`).
# Every capture is checked with ../shared/tools/wire-check: the messages our side sends must
# pass --strict (RSPLIB's carry known warnings, see shared/vectors/rsplib-3.4.4/README.md).
# (Our pool users resolve without `--items`: that sends RSPLIB's non-RFC option 0x803f.)
#
# Usage: interop/rsplib.sh [OUTDIR]      (needs root: network namespace, tap, capture)
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

[ -x "$vm/run.sh" ] || { echo "no rsplib-vm at $vm (set RSERPOOL_SHARED)"; exit 2; }
if [ ! -e "${RSPVM_DIR:-/var/tmp/rsplib-vm}/out/vmlinux" ]; then
  echo "building the rsplib-vm guest (once)"
  "$vm/build.sh" > "$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 2; }
fi
cargo build -q --release -p rserpool --bin rserpool --manifest-path "$repo/Cargo.toml"
cargo build -q --release -p rserpool-registrar --manifest-path "$repo/Cargo.toml"
rsp="$target/release/rserpool"
reg="$target/release/rserpool-registrar"
host=198.18.0.1
guest=198.18.0.2

# Waits (up to $2 tenths of a second) for a file to exist.
wait_file() { local i=0; until [ -e "$1" ] || [ $i -ge "$2" ]; do sleep 0.1; i=$((i+1)); done; [ -e "$1" ]; }

# wire-check a capture; our messages (sent from the host) must all be OK under --strict.
check_capture() {
  local cap=$1 what=$2
  "$wirecheck" --jsonl "$cap.jsonl" --quiet "$cap" > "$cap.wire-check.txt" 2>&1 || true
  python3 - "$cap.jsonl" "$host" "$what" <<'EOF'
import json, sys
path, host, what = sys.argv[1:4]
ours, bad, theirs = 0, [], {}
for line in open(path):
    m = json.loads(line)
    name = (m.get("type") or {}).get("name")
    if m.get("src") == host:
        ours += 1
        if m.get("status") != "OK":
            bad.append((m.get("frame"), name, m.get("status"), m.get("warnings"), m.get("problems")))
    else:
        theirs[m.get("status")] = theirs.get(m.get("status"), 0) + 1
if ours == 0:
    print("FAIL: %s: no message of ours in the capture" % what); sys.exit(1)
if bad:
    print("FAIL: %s: %d of our %d messages not OK: %s" % (what, len(bad), ours, bad[:5])); sys.exit(1)
print("PASS: %s: all %d messages we sent pass wire-check --strict (RSPLIB's: %s)" % (what, ours, theirs))
EOF
}

# ---------------------------------------------------------------------------------------------
echo "== run 1: our registrar, RSPLIB's echo PE and rspterminal"
share1="$out/share1"; rm -rf "$share1"; mkdir -p "$share1"
cat > "$share1/guest.sh" <<EOF
#!/bin/sh
rspvm-ready "waiting for the host registrar"
i=0; until [ -e /share/host-ready ] || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
rspserver -echo -poolhandle=EchoPool -registrar=$host:3863 -asapannounce=off \
  -logcolor=off -loglevel=3 -logfile=/share/rspserver.log >/share/rspserver.out 2>&1 &
i=0; until grep -q 'Home registrar is' /share/rspserver.log 2>/dev/null || [ \$i -ge 200 ]; do sleep 0.1; i=\$((i+1)); done
( echo "hello from rspterminal"; sleep 4 ) | timeout 20 rspterminal -poolhandle=EchoPool \
  -registrar=$host:3863 -asapannounce=off -logcolor=off -loglevel=2 > /share/rspterminal.out 2>/share/rspterminal.err
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
      '$rsp' resolve EchoPool --registrar $host --local $host --announce off --t1 3000 > '$share1/resolve.out' 2>&1
      sleep 3
      kill -TERM \$r; wait \$r" > "$out/run1.log" 2>&1 || true
grep -q 'Home registrar is' "$share1/rspserver.log" 2>/dev/null \
  && pass "RSPLIB rspserver -echo registered with our registrar" \
  || bad "rspserver did not register with our registrar (see $share1/rspserver.log, $share1/registrar.err)"
grep -q "hello from rspterminal" "$share1/rspterminal.out" 2>/dev/null \
  && pass "RSPLIB rspterminal reached RSPLIB's echo PE through our registrar" \
  || bad "rspterminal got no echo through our registrar (see $share1/rspterminal.out/.err)"
grep -q "sctp $guest:" "$share1/resolve.out" 2>/dev/null \
  && pass "our resolve lists RSPLIB's PE at our registrar: $(head -1 "$share1/resolve.out")" \
  || bad "RSPLIB's PE not in our registrar's handlespace (see $share1/resolve.out)"
grep -q "keep_alive_acks: [1-9]" "$share1/registrar.err" \
  && pass "RSPLIB's PE acknowledged our registrar's keep-alives" \
  || bad "no keep-alive acknowledged by RSPLIB's PE (see $share1/registrar.err)"
check_capture "$out/run1.pcap" "run 1 (our registrar)" || fail=1

# ---------------------------------------------------------------------------------------------
echo "== run 2: RSPLIB's registrar, our echo PE, rspterminal"
share2="$out/share2"; rm -rf "$share2"; mkdir -p "$share2"
cat > "$share2/guest.sh" <<EOF
#!/bin/sh
rspregistrar -logcolor=off -loglevel=3 -logfile=/share/rspregistrar.log \
  -asap=0.0.0.0:3863 -enrp=0.0.0.0:9901 -asapannounce=off -enrpannounce=off \
  -endpointkeepalivetransmissioninterval=1000 >/share/rspregistrar.out 2>&1 &
i=0; until grep -q ' 3863 ' /proc/net/sctp/eps 2>/dev/null || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i+1)); done
rspvm-ready "RSPLIB registrar up"
i=0; until [ -e /share/pe-ready ] || [ \$i -ge 400 ]; do sleep 0.1; i=\$((i+1)); done
( echo "hello to a rserpool PE"; sleep 4 ) | timeout 20 rspterminal -poolhandle=HostEchoPool \
  -registrar=127.0.0.1:3863 -asapannounce=off -logcolor=off -loglevel=2 > /share/rspterminal.out 2>/share/rspterminal.err
touch /share/guest-done
sleep 30
EOF
"$vm/run.sh" -q -t 150 -o "$out/run2" -s "$share2" -p "$out/run2.pcap" \
  -c 'sh /share/guest.sh' \
  -H "set -u
      '$rsp' pe --pool HostEchoPool --registrar $guest --announce off --rereg-interval 5000 \
        > '$share2/pe.out' 2> '$share2/pe.err' &
      p=\$!
      i=0; until grep -q ready '$share2/pe.out' || [ \$i -ge 300 ]; do sleep 0.1; i=\$((i+1)); done
      touch '$share2/pe-ready'
      i=0; until [ -e '$share2/guest-done' ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i+1)); done
      sleep 6
      kill -TERM \$p; wait \$p" > "$out/run2.log" 2>&1 || true
grep -q "rserpool pe ready" "$share2/pe.out" 2>/dev/null \
  && pass "our echo PE registered with RSPLIB's registrar: $(cat "$share2/pe.out")" \
  || bad "our PE did not register with RSPLIB's registrar (see $share2/pe.err)"
grep -q "hello to a rserpool PE" "$share2/rspterminal.out" 2>/dev/null \
  && pass "RSPLIB rspterminal reached our echo PE through RSPLIB's registrar" \
  || bad "rspterminal got no echo from our PE (see $share2/rspterminal.out/.err)"
n=$(tshark -n -r "$out/run2.pcap" -d udp.port==9899,sctp -Y 'asap.message_type == 8 && ip.src == '$host 2>/dev/null | wc -l)
[ "$n" -ge 1 ] && pass "our PE acknowledged $n keep-alive(s) of RSPLIB's registrar" \
  || bad "our PE acknowledged no keep-alive of RSPLIB's registrar"
n=$(tshark -n -r "$out/run2.pcap" -d udp.port==9899,sctp -Y 'asap.message_type == 1 && ip.src == '$host 2>/dev/null | wc -l)
[ "$n" -ge 2 ] && pass "our PE re-registered ($n registrations in 5 s cycles)" \
  || bad "our PE did not re-register ($n registrations)"
check_capture "$out/run2.pcap" "run 2 (our PE)" || fail=1

# ---------------------------------------------------------------------------------------------
echo "== run 3: RSPLIB's registrar and echo PE, our pool user"
"$vm/run.sh" -q -t 150 -o "$out/run3" -p "$out/run3.pcap" \
  -H "set -u
      '$rsp' resolve EchoPool --registrar $guest --announce off --t1 3000 > '$out/run3-resolve.out' 2>&1
      ( echo 'hello to an RSPLIB PE'; echo 'second line' ) | timeout 30 '$rsp' terminal EchoPool \
        --registrar $guest --announce off > '$out/run3-terminal.out' 2> '$out/run3-terminal.err'" \
  "$vm/scenarios/registrar.sh" > "$out/run3.log" 2>&1 || true
grep -q "sctp $guest:" "$out/run3-resolve.out" 2>/dev/null \
  && pass "our pool user resolved EchoPool at RSPLIB's registrar: $(head -1 "$out/run3-resolve.out")" \
  || bad "our resolve at RSPLIB's registrar failed (see $out/run3-resolve.out)"
grep -q "hello to an RSPLIB PE" "$out/run3-terminal.out" 2>/dev/null \
  && grep -q "second line" "$out/run3-terminal.out" \
  && pass "our terminal talked to RSPLIB's echo PE (2 lines echoed)" \
  || bad "our terminal got no echo from RSPLIB's PE (see $out/run3-terminal.err)"
check_capture "$out/run3.pcap" "run 3 (our pool user)" || fail=1

exit $fail
