#!/bin/sh
# Makes a Python virtual environment with the official `openai` client (a pinned version) for
# tests/openai_client/check.py, and prints its python's path. Idempotent: a venv that already
# imports that version is reused. Cache: $OPRL_MODEL_CACHE, else ~/.cache/oprl/models (next to
# the test model). Progress goes to stderr; stdout is the path only, so
# `PY=$(sh scripts/openai-client-venv.sh)` works. Needs python3 with the venv module and
# network access to PyPI on first use.
set -eu

VERSION=3.63.0
CACHE=${OPRL_MODEL_CACHE:-$HOME/.cache/oprl/models}
VENV=$CACHE/venv-openai-$VERSION
PY=$VENV/bin/python

if [ -x "$PY" ] && [ "$("$PY" -c 'import openai; print(openai.__version__)' 2>/dev/null)" = "$VERSION" ]; then
  echo "$PY"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || {
  echo "openai-client-venv: python3 is needed" >&2
  exit 1
}
mkdir -p "$CACHE"
# Build under a private name and rename, so a failed or concurrent run never leaves a half-made
# venv under the final name.
WORK=$(mktemp -d "$CACHE/.venv.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
echo "openai-client-venv: installing openai==$VERSION into $VENV" >&2
python3 -m venv "$WORK/venv" >&2
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "openai==$VERSION" >&2
# Only `python` is used, which finds its packages relative to itself, so the venv may move.
rm -rf "$VENV"
mv "$WORK/venv" "$VENV"
echo "$PY"
