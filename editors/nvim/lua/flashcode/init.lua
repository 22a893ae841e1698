-- flashcode: local AI code completion for Neovim 0.10+.
--
--   require("flashcode").setup({ python = "/path/to/venv/bin/python" })
--
-- See :help flashcode.
local M = {}

local did_setup = false

---@param opts table|nil see :help flashcode-config
function M.setup(opts)
  if vim.fn.has("nvim-0.10") ~= 1 then
    vim.notify("flashcode needs Neovim 0.10 or newer", vim.log.levels.ERROR)
    return
  end
  local cfg = require("flashcode.config").resolve(opts)
  local log = require("flashcode.log")
  log.configure(cfg.log.file, cfg.log.level)
  log.info("setup: server %s", table.concat(require("flashcode.config").server_cmd(cfg), " "))

  require("flashcode.client").setup(cfg)
  require("flashcode.ghost").setup()

  local keymap = require("flashcode.keymap")
  keymap.map(cfg.keymap.accept, "accept suggestion", M.accept)
  keymap.map(cfg.keymap.accept_word, "accept next word", M.accept_word)
  keymap.map(cfg.keymap.accept_line, "accept next line", M.accept_line)
  keymap.map(cfg.keymap.dismiss, "dismiss suggestion", M.dismiss)
  did_setup = true
end

function M.is_setup()
  return did_setup
end

-- Each returns true when it acted, so a completion plugin's <Tab> can try flashcode first:
--   if require("flashcode").accept() then return end

function M.accept()
  return require("flashcode.ghost").accept("all")
end

function M.accept_word()
  return require("flashcode.ghost").accept("word")
end

function M.accept_line()
  return require("flashcode.ghost").accept("line")
end

function M.dismiss()
  return require("flashcode.ghost").dismiss()
end

--- Whether ghost text is shown.
function M.visible()
  return require("flashcode.ghost").visible()
end

--- The ghost text still to be inserted, or nil.
function M.suggestion()
  return require("flashcode.ghost").text()
end

--- Asks for ghost text now (without waiting for typing).
function M.suggest()
  local ghost = require("flashcode.ghost")
  ghost.clear()
  ghost.request(ghost.TRIGGER_INVOKED)
end

function M.generate_tests(on_done)
  require("flashcode.commands").generate_tests(on_done)
end

function M.docstring()
  require("flashcode.commands").docstring()
end

--- Last `flashcode/status` from the server: { state, model, device, message?, lastLatencyMs? }.
function M.status()
  return require("flashcode.client").status
end

--- The server's flashcode/stats (usage report, this server's counts, cache): on_done(err, result).
function M.stats(on_done)
  require("flashcode.stats").fetch(on_done)
end

--- Short text for a statusline, e.g. "flashcode 42 ms" or "flashcode loading".
function M.statusline()
  local s = M.status()
  if s.state == "ready" and s.lastLatencyMs then
    return string.format("flashcode %.0f ms", s.lastLatencyMs)
  end
  return "flashcode " .. tostring(s.state)
end

--- New server settings (same keys as setup's `settings`), sent to running servers.
function M.set_settings(settings)
  require("flashcode.client").update_settings(settings)
end

function M.restart()
  require("flashcode.client").restart()
end

return M
