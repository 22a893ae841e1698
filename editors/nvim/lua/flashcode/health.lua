-- :checkhealth flashcode
local M = {}

local health = vim.health

function M.check()
  health.start("flashcode")
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. tostring(vim.version()))
  else
    health.error("Neovim 0.10 or newer is needed (vim.lsp.start, inline virtual text)")
  end

  local client_mod = require("flashcode.client")
  local cfg = client_mod.config
  if not cfg then
    health.warn('setup() has not run: add require("flashcode").setup({}) to your config')
    return
  end
  local cmd = require("flashcode.config").server_cmd(cfg)
  if vim.fn.executable(cmd[1]) == 1 then
    health.ok("server command: " .. table.concat(cmd, " "))
  else
    health.error(cmd[1] .. " is not executable", {
      "pip install flashcode (or the repository) into a Python environment",
      'set `python = "/path/to/venv/bin/python"` or `cmd = { ... }` in setup()',
    })
  end

  local clients = client_mod.all()
  if #clients == 0 then
    health.info("no server running (it starts when a file buffer opens)")
  else
    for _, client in ipairs(clients) do
      local caps = client.server_capabilities or {}
      health.ok(string.format("server running (client id %d, root %s)", client.id, client.root_dir or "?"))
      if caps.inlineCompletionProvider then
        health.ok("the server offers inline completion")
      else
        health.warn("the server does not offer textDocument/inlineCompletion")
      end
    end
  end

  local s = client_mod.status
  local line = string.format("status: %s, model %s, device %s", tostring(s.state), tostring(s.model), tostring(s.device))
  if s.state == "ready" then
    health.ok(line .. (s.lastLatencyMs and string.format(", last completion %.0f ms", s.lastLatencyMs) or ""))
  elseif s.state == "error" then
    health.error(line .. (s.message and (": " .. s.message) or ""))
  else
    health.info(line)
  end

  for name, lhs in pairs(cfg.keymap) do
    if lhs then
      health.info(string.format("keymap %s: %s", name, lhs))
    end
  end
  health.info("log file: " .. require("flashcode.log").path())
end

return M
