#!/usr/bin/env bash
# Headless Neovim test of editors/nvim with the real ax-lsp: profiles
# examples/word-count for real (ax run --profile, writing its .ax/profile.json),
# then runs attach.lua in `nvim --headless`. Prints TAP with "# pass N".
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
cargo build -q -p ax-lsp -p ax-cli
calls="$(mktemp)"
trap 'rm -f "$calls"' EXIT
printf '%s\n' '{"method":"count","input":{"text":"a b c"}}' '{"method":"count","input":{"text":"hello big world"}}' > "$calls"
"$target/debug/ax" run --profile --calls "$calls" examples/word-count >/dev/null 2>&1
status=0
out="$(AX_REPO="$repo" AX_LSP="$target/debug/ax-lsp" timeout 60 \
    nvim --headless -n -u NONE -i NONE -c "luafile tests/nvim/attach.lua" 2>&1 </dev/null)" || status=$?
echo "$out"
# A Lua error stops the script before its totals: count it as a failure.
if ! grep -q '^# fail ' <<<"$out"; then
    echo "not ok - attach.lua did not finish (nvim exit status $status)"
    echo "# fail 1"
    [ "$status" -ne 0 ] || status=1
fi
exit "$status"
