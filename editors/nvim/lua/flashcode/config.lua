-- Defaults, merging and validation of the table given to require("flashcode").setup().
local M = {}

---@class flashcode.Config
M.defaults = {
  -- Command line that starts the server. nil: { python, "-m", "lsp_server" } when `python` is set,
  -- else { "flashcode", "serve" } from $PATH.
  cmd = nil, ---@type string[]|nil
  -- Python interpreter that has flashcode installed (a virtual environment's bin/python).
  python = nil, ---@type string|nil
  -- Filetypes to attach to; { "*" } means every normal file buffer.
  filetypes = { "*" },
  -- Markers that find the project root (the server's workspace folder).
  root_markers = { ".git", "pyproject.toml", "package.json", "go.mod", "Cargo.toml" },
  -- The server's "flashcode" settings section (sent as initializationOptions and answered on
  -- workspace/configuration); keys in :help flashcode-settings. Only its being a table is checked
  -- here: the server validates every key itself and reports a bad value with its default.
  settings = {},
  suggestion = {
    -- Ask for ghost text automatically while typing in insert mode.
    auto_trigger = true,
    -- Milliseconds of quiet typing before a request is sent.
    debounce_ms = 150,
    -- Hide ghost text while the popup menu (a completion plugin's menu) is open.
    hide_during_completion = true,
  },
  -- Insert-mode keys; false disables one. Each falls back to what the key did before (another
  -- plugin's mapping, or the key itself) when no ghost text is shown.
  keymap = {
    accept = "<Tab>",
    accept_word = "<C-Right>",
    accept_line = "<C-Down>",
    dismiss = "<C-]>",
  },
  log = {
    -- Log file; nil means stdpath("log")/flashcode.log.
    file = nil, ---@type string|nil
    -- "error" | "warn" | "info" | "debug"
    level = "info",
  },
}

local LEVELS = { error = true, warn = true, info = true, debug = true }

local function is_list_of_strings(v)
  if type(v) ~= "table" then
    return false
  end
  for _, s in ipairs(v) do
    if type(s) ~= "string" then
      return false
    end
  end
  return true
end

local function key_or_false(v)
  return v == false or type(v) == "string"
end

-- vim.validate's signature changed in 0.11 (the table form is deprecated there).
local function check(name, value, validator, optional, message)
  if vim.fn.has("nvim-0.11") == 1 then
    vim.validate(name, value, validator, optional, message)
  else
    vim.validate({ [name] = { value, validator, message or optional } })
  end
end

---@param opts table|nil
---@return flashcode.Config
function M.resolve(opts)
  opts = opts or {}
  check("opts", opts, "table")
  local cfg = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)

  check("cmd", cfg.cmd, is_list_of_strings, true, "list of strings")
  check("python", cfg.python, "string", true)
  check("filetypes", cfg.filetypes, is_list_of_strings, false, "list of strings")
  check("root_markers", cfg.root_markers, is_list_of_strings, false, "list of strings")
  check("settings", cfg.settings, "table")
  check("suggestion", cfg.suggestion, "table")
  check("suggestion.auto_trigger", cfg.suggestion.auto_trigger, "boolean")
  check("suggestion.debounce_ms", cfg.suggestion.debounce_ms, function(v)
    return type(v) == "number" and v >= 0
  end, false, "number >= 0")
  check("suggestion.hide_during_completion", cfg.suggestion.hide_during_completion, "boolean")
  check("keymap", cfg.keymap, "table")
  for _, name in ipairs({ "accept", "accept_word", "accept_line", "dismiss" }) do
    check("keymap." .. name, cfg.keymap[name], key_or_false, false, "key string or false")
  end
  check("log", cfg.log, "table")
  check("log.file", cfg.log.file, "string", true)
  check("log.level", cfg.log.level, function(v)
    return LEVELS[v] ~= nil
  end, false, "one of error, warn, info, debug")

  if cfg.cmd ~= nil and #cfg.cmd == 0 then
    error("flashcode: cmd must not be empty", 0)
  end
  return cfg
end

---@param cfg flashcode.Config
---@return string[]
function M.server_cmd(cfg)
  if cfg.cmd then
    return cfg.cmd
  end
  if cfg.python then
    return { cfg.python, "-m", "lsp_server" }
  end
  return { "flashcode", "serve" }
end

return M
