#!/usr/bin/env python3
"""Checks a capture of an interop run from wire-check's JSON lines (wire-check --jsonl).

  check_capture.py JSONL HOST WHAT [--expect TYPE:POOL:SIDE[:MIN] ...]

- Every ASAP/ENRP message sent from HOST (our side) must be OK under wire-check --strict, and
  padded to a multiple of 4 bytes (RFC 5354 §4). The one warning wire-check gives every such
  message whose length field is not a multiple of 4, "length field N != payload M", is not
  counted when M is N rounded up to 4 and the extra bytes are zeros: its length rule counts the
  padding that its padding rule (and the RFC) asks for.
- Each --expect TYPE:POOL:SIDE[:MIN] needs at least MIN (default 1) messages of ASAP type TYPE (a
  number) for pool handle POOL sent by SIDE ("ours" = from HOST, "theirs" = from the other side),
  e.g. 8:LUPool:theirs for RSPLIB's Keep-Alive Ack of our keep-alive for LUPool.
- Messages quoted inside ICMP errors are not counted: they are someone else's packet.

Prints PASS/FAIL lines; exits 1 on any FAIL.
"""
import json
import subprocess
import sys


def icmp_frames(capture):
    """Frames that are ICMP errors: the message in them is a quote of someone's packet (e.g. a
    port unreachable for a datagram to a killed process), not one sent by the ICMP's source."""
    try:
        out = subprocess.run(["tshark", "-r", capture, "-Y", "icmp || icmpv6", "-T", "fields",
                              "-e", "frame.number"], capture_output=True, text=True, check=False)
    except OSError:
        return set()
    return {int(x) for x in out.stdout.split()}


def real_warnings(m):
    hl = m.get("header_length") or 0
    padded = (hl + 3) & ~3
    data = bytes.fromhex(m.get("hex") or "")
    padding_only = (hl % 4 != 0 and len(data) == padded and not any(data[hl:])
                    and m.get("user_data_length") == padded)
    expected = "length field %d != payload %d" % (hl, padded)
    return [w for w in m.get("warnings") or [] if not (padding_only and w == expected)]


def main(argv):
    path, host, what = argv[1:4]
    expects = []
    rest = argv[4:]
    while rest:
        if rest[0] != "--expect" or len(rest) < 2:
            print("usage: check_capture.py JSONL HOST WHAT [--expect TYPE:POOL:SIDE[:MIN] ...]")
            return 2
        f = rest[1].split(":")
        expects.append(((int(f[0]), f[1], f[2]), int(f[3]) if len(f) > 3 else 1))
        rest = rest[2:]
    msgs = [json.loads(line) for line in open(path)]
    quoted = icmp_frames(msgs[0]["capture"]) if msgs and msgs[0].get("capture") else set()
    msgs = [m for m in msgs if m.get("frame") not in quoted]
    ours, bad, theirs = 0, [], {}
    seen = {}
    for m in msgs:
        name = (m.get("type") or {}).get("name")
        side = "ours" if m.get("src") == host else "theirs"
        for f in m.get("fields") or []:
            if f[0].endswith(".pool_handle_pool_handle") and m.get("protocol") == "asap":
                try:
                    pool = bytes.fromhex(f[1].replace(":", "")).decode("utf-8", "replace")
                except ValueError:
                    continue
                key = ((m.get("type") or {}).get("number"), pool, side)
                seen[key] = seen.get(key, 0) + 1
        if side == "ours":
            ours += 1
            status = m.get("status")
            if status == "WARN" and not real_warnings(m) and not m.get("problems"):
                status = "OK"
            if status != "OK" or (m.get("length") or 0) % 4:
                bad.append((m.get("frame"), name, m.get("status"), m.get("warnings"), m.get("problems")))
        else:
            theirs[m.get("status")] = theirs.get(m.get("status"), 0) + 1
    fail = False
    if ours == 0:
        print("FAIL: %s: no message of ours in the capture" % what)
        fail = True
    elif bad:
        print("FAIL: %s: %d of our %d messages not OK: %s" % (what, len(bad), ours, bad[:5]))
        fail = True
    else:
        print("PASS: %s: all %d messages we sent are padded and pass wire-check --strict (RSPLIB's: %s)"
              % (what, ours, theirs))
    missing = ["%d:%s:%s: %d of %d" % (k + (seen.get(k, 0), n)) for k, n in expects if seen.get(k, 0) < n]
    if missing:
        print("FAIL: %s: too few messages of type:pool:side in the capture: %s" % (what, ", ".join(missing)))
        fail = True
    elif expects:
        print("PASS: %s: every expected type:pool:side in the capture (count): %s"
              % (what, ", ".join("%d:%s:%s (%d)" % (k + (seen[k],)) for k, _ in expects)))
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
