#!/usr/bin/env bash
# The VS Code extension inside a real VS Code (scenario.js says what it does).
# Installs what it needs by itself, offline apart from the npm registry and
# Debian's archive, and caches it in tests/vscode/node_modules:
#   - Debian's chromium, ripgrep, and what node-gyp needs (g++, make, the
#     node headers of Debian's nodejs, libkrb5-dev for `kerberos`);
#   - code-server 4.99.4 (VS Code 1.99.3; 4.100+ needs node 22) and
#     playwright-core from package-lock.json, with --ignore-scripts: the
#     postinstall would download ripgrep from GitHub. Its steps are done here
#     instead: VS Code's own dependencies (its npm-shrinkwrap.json), the native
#     modules built against the system node's headers, @vscode/ripgrep's
#     binary pointed at Debian's rg.
# Expects ./scripts/test to have built the workspace and packaged the .vsix.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v rg >/dev/null || need+=(ripgrep)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
[ -f /usr/include/krb5.h ] || need+=(libkrb5-dev)
[ -f /usr/include/node/node_api.h ] || need+=(nodejs)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "error: ${need[*]} not found; the VS Code test needs them (Debian: apt-get install ${need[*]})" >&2
        exit 1
    fi
fi

if ! cmp -s package-lock.json node_modules/.installed-from-lock; then
    npm ci --ignore-scripts --no-audit --no-fund --silent
    # node-gyp (npm's own) builds against Debian's node headers instead of
    # downloading them; prebuilt binaries would come from GitHub.
    export npm_config_nodedir=/usr npm_config_build_from_source=true
    gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
    npm rebuild --silent argon2 2>/dev/null # node-pre-gyp, building from source
    vscode=node_modules/code-server/lib/vscode
    # `npm install` as code-server's postinstall does: its shrinkwrap lacks a
    # package (tslib), which `npm ci` refuses.
    (cd "$vscode" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --silent)
    # @parcel/watcher's Linux binary is an npm package of its own.
    for module in kerberos @vscode/spdlog native-watchdog node-pty; do
        (cd "$vscode/node_modules/$module" && node "$gyp" rebuild --silent --jobs=2 --nodedir=/usr >/dev/null)
    done
    mkdir -p "$vscode/node_modules/@vscode/ripgrep/bin"
    ln -sf "$(command -v rg)" "$vscode/node_modules/@vscode/ripgrep/bin/rg"
    # What code-server's postinstall does besides: VS Code looks in node_modules.asar.
    ln -sfn node_modules "$vscode/node_modules.asar"
    cp package-lock.json node_modules/.installed-from-lock
fi

node scenario.js
