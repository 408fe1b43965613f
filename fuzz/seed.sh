#!/usr/bin/env bash
# Builds the fuzz seed corpus from the RSPLIB 3.4.4 vectors and the sample generator (not in git).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${RSERPOOL_SHARED:-$here/../../shared}
mkdir -p "$here/corpus/decode" "$here/corpus/capture"
python3 - "$shared/vectors/rsplib-3.4.4" "$here/corpus/decode" <<'PY'
import json, sys, os
src, dst = sys.argv[1], sys.argv[2]
for name in ("messages.jsonl", "stimuli.jsonl"):
    for line in open(os.path.join(src, name)):
        m = json.loads(line)
        key = m.get("id") or m["name"]
        open(os.path.join(dst, key.replace("/", "_")), "wb").write(bytes.fromhex(m["hex"]))
PY
cargo run -q --manifest-path "$here/../Cargo.toml" --example wire-samples -- "$here/corpus/capture/samples.pcap" >/dev/null
echo "seeds: $(ls "$here/corpus/decode" | wc -l) messages, $(ls "$here/corpus/capture" | wc -l) captures"
