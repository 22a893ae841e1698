#!/usr/bin/env bash
# Takes editors/screenshots/nvim-ghost-text.png: Neovim with the plugin and the real server in a tmux
# pane, a function header typed, the pane captured with its colours once the ghost text shows, and
# the capture rendered by chromium. Needs .ci/editors.sh's tools plus tmux and aha (Debian).
#   usage: tests/editors/nvim_screenshot.sh [output.png]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${1:-$ROOT/editors/screenshots/nvim-ghost-text.png}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
NVIM=$(dirname "$PYTHON")/nvim
MODEL=${FLASHCODE_TEST_MODEL:-$ROOT/inference/models/default}
WORK=$(mktemp -d)
SESSION=flashcode-shot-$$
trap '[[ -n ${KEEP:-} ]] || { tmux kill-session -t "$SESSION" 2>/dev/null || true; rm -rf "$WORK"; }' EXIT

mkdir -p "$WORK/project" "$(dirname "$OUT")"
cp "$ROOT/tests/editors/sample/geometry.py" "$WORK/project/geometry.py"
touch "$WORK/project/pyproject.toml"
cat >"$WORK/init.lua" <<EOF
vim.opt.runtimepath:prepend("$ROOT/editors/nvim")
vim.opt.termguicolors = false
vim.opt.number = true
vim.opt.swapfile = false
vim.opt.laststatus = 2
vim.opt.statusline = " %f %= %{v:lua.require'flashcode'.statusline()} "
require("flashcode").setup({
  cmd = { "$PYTHON", "-m", "lsp_server" },
  settings = { modelPath = "$MODEL", device = "cpu" },
  log = { file = "$WORK/flashcode.log" },
})
-- Comment's colour in the 16-colour default scheme is plain white: make the ghost text stand out.
vim.api.nvim_set_hl(0, "FlashcodeSuggestion", { ctermfg = 244, italic = true })
EOF

ready() { tmux capture-pane -p -t "$SESSION" | grep -q "flashcode .*ms\|flashcode ready"; }
wait_until() { # what, command...
    local what=$1 deadline=$((SECONDS + 120))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || { echo "timed out waiting for $what" >&2; exit 1; }
        sleep 0.2
    done
}
suggestion() {
    "$NVIM" --server "$WORK/nvim.sock" --remote-expr \
        'luaeval("(require(\"flashcode\").suggestion() or \"\"):match(\"^[^\\n]*\")")' 2>/dev/null
}
ghost_shown() { [[ -n $(suggestion) ]]; }
ghost_drawn() { tmux capture-pane -p -t "$SESSION" | grep -qF -- "$(suggestion)"; }

cd "$WORK/project"
tmux new-session -d -s "$SESSION" -x 92 -y 30 \
    "env PYTHONPATH=$ROOT TERM=xterm-256color $NVIM -n -u $WORK/init.lua --listen $WORK/nvim.sock geometry.py"
wait_until "the server to load" ready
tmux send-keys -t "$SESSION" "G" "o" "Enter" "def median(values: list[float]) -> float:" "Enter"
wait_until "ghost text" ghost_shown
wait_until "the ghost text on screen" ghost_drawn

tmux capture-pane -e -p -t "$SESSION" | aha --black --title "flashcode in Neovim" \
    | sed 's|<pre>|<pre style="font:15px/1.25 DejaVu Sans Mono,monospace;margin:8px">|' >"$WORK/pane.html"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --hide-scrollbars \
    --window-size=860,590 --screenshot="$OUT" "file://$WORK/pane.html" >/dev/null 2>&1
echo "wrote $OUT"
