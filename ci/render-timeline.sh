#!/usr/bin/env bash
# Renders a real timeline to PNG with headless Chromium and checks the picture is not
# blank: it must hold many colours, the finding red among them. Installs Chromium from
# Debian's packages when it is missing (CI runs as root); says SKIP when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug/oversell"
[ -x "$bin" ] || cargo build --quiet
if ! command -v chromium >/dev/null 2>&1; then
  echo "render: installing chromium"
  log=$(mktemp)
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
    echo "render: SKIP: chromium could not be installed; the last lines of apt:"
    tail -n 5 "$log"; rm -f "$log"
    exit 0
  fi
  rm -f "$log"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
TMPDIR="$tmp" "$bin" explore --lock none --schedule pct --trials 20 --seed 9 --quiet \
  --timeline "$tmp/t.svg" --json "$tmp/r.json" >/dev/null || true
[ -s "$tmp/t.svg" ] || { echo "render: no timeline was written"; exit 1; }
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/profile" --window-size=1400,900 \
  --screenshot="$tmp/t.png" "file://$tmp/t.svg" >/dev/null 2>&1
python3 - "$tmp/t.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, hdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        hdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
w, h, depth, ctype = hdr[0], hdr[1], hdr[2], hdr[3]
assert depth == 8 and ctype in (2, 6), f"unexpected PNG format {hdr}"
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, colours, i = bytearray(stride), set(), 0
for _ in range(h):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp * 4):
        colours.add(bytes(line[x:x + 3]))
    prev = line
red = any(r > 180 and g < 90 and b < 90 for r, g, b in colours)
print(f"render: {w}x{h} PNG, {len(colours)} colours sampled, finding red present: {red}")
assert len(colours) >= 16, "the picture is blank or nearly so"
assert red, "no finding is drawn in red"
PY
echo "render: the timeline renders as a readable picture"
