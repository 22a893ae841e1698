-- Starts the server through vim.lsp and keeps its `flashcode/status`.
local config = require("flashcode.config")
local log = require("flashcode.log")
local util = require("flashcode.util")

local M = {}

local NAME = "flashcode"

---@type flashcode.Config|nil
M.config = nil

--- Last `flashcode/status` params: { state, model, device, message?, lastLatencyMs? }.
M.status = { state = "stopped", model = "", device = "" }

local function on_status(_, params)
  if type(params) ~= "table" then
    return
  end
  local previous = M.status.state
  M.status = params
  if params.state ~= previous then
    log.info("status %s (model %s, device %s)%s", tostring(params.state), tostring(params.model),
      tostring(params.device), params.message and (": " .. params.message) or "")
    if params.state == "error" then
      log.notify("error", "%s", params.message or "the server reported an error")
    end
  end
  vim.schedule(function()
    vim.api.nvim_exec_autocmds("User", { pattern = "FlashcodeStatus", modeline = false, data = params })
    -- Statuslines that show require("flashcode").statusline() are not redrawn by anything else.
    vim.cmd("redrawstatus!")
  end)
end

local function wants(buf)
  local cfg = M.config
  if not cfg or not vim.api.nvim_buf_is_valid(buf) then
    return false
  end
  if vim.bo[buf].buftype ~= "" or vim.api.nvim_buf_get_name(buf) == "" then
    return false
  end
  if vim.tbl_contains(cfg.filetypes, "*") then
    return vim.bo[buf].filetype ~= ""
  end
  return vim.tbl_contains(cfg.filetypes, vim.bo[buf].filetype)
end

local function root_dir(buf)
  local markers = M.config and M.config.root_markers or {}
  local found = vim.fs.root(buf, markers)
  return found or vim.fn.getcwd()
end

--- Starts (or reuses) the server for `buf`; returns the client id or nil.
function M.attach(buf)
  if not wants(buf) then
    return nil
  end
  local cfg = M.config
  local cmd = config.server_cmd(cfg)
  if vim.fn.executable(cmd[1]) ~= 1 then
    log.notify("error", "cannot start the server: %q is not executable (set `cmd` or `python` in setup())", cmd[1])
    return nil
  end
  local settings = vim.deepcopy(cfg.settings)
  local id = vim.lsp.start({
    name = NAME,
    cmd = cmd,
    root_dir = root_dir(buf),
    init_options = settings,
    -- Neovim answers workspace/configuration from here, by section.
    settings = { flashcode = settings },
    handlers = { ["flashcode/status"] = on_status },
    on_exit = function(code, signal)
      M.status = { state = "stopped", model = M.status.model, device = M.status.device }
      if code ~= 0 then
        log.notify("error", "the server exited (code %d, signal %d); see %s", code, signal, log.path())
      end
    end,
  }, { bufnr = buf })
  if id then
    log.debug("attached buffer %d to client %d", buf, id)
  end
  return id
end

---@return vim.lsp.Client|nil
function M.get(buf)
  local clients = vim.lsp.get_clients({ name = NAME, bufnr = buf })
  return clients[1]
end

function M.all()
  return vim.lsp.get_clients({ name = NAME })
end

--- Sends new settings to every running server (they re-read them on didChangeConfiguration).
function M.update_settings(settings)
  M.config.settings = vim.tbl_deep_extend("force", M.config.settings, settings)
  for _, client in ipairs(M.all()) do
    client.settings = { flashcode = vim.deepcopy(M.config.settings) }
    util.notify(client, "workspace/didChangeConfiguration", { settings = client.settings })
  end
end

function M.stop()
  for _, client in ipairs(M.all()) do
    util.stop(client)
  end
end

function M.restart()
  local bufs = {}
  for _, client in ipairs(M.all()) do
    for buf in pairs(client.attached_buffers) do
      table.insert(bufs, buf)
    end
  end
  M.stop()
  vim.wait(5000, function()
    return #M.all() == 0
  end, 50)
  for _, buf in ipairs(bufs) do
    M.attach(buf)
  end
end

function M.setup(cfg)
  M.config = cfg
  local group = vim.api.nvim_create_augroup("flashcode.client", { clear = true })
  vim.api.nvim_create_autocmd({ "FileType", "BufReadPost", "BufNewFile" }, {
    group = group,
    callback = function(ev)
      M.attach(ev.buf)
    end,
  })
  -- The cursor resting ('updatetime'), or a buffer entered: the server prefills the prompt there
  -- before the next keystroke (warmContext). LSP itself says nothing of the cursor.
  vim.api.nvim_create_autocmd({ "CursorHold", "CursorHoldI", "BufEnter" }, {
    group = group,
    callback = function(ev)
      local client = M.get(ev.buf)
      if client and ev.buf == vim.api.nvim_get_current_buf() then
        local position = util.cursor_position(vim.api.nvim_get_current_win())
        util.notify(client, "flashcode/cursor", {
          textDocument = { uri = vim.uri_from_bufnr(ev.buf) },
          position = position,
        })
      end
    end,
  })
  -- Buffers opened before setup() ran (lazy loading).
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      M.attach(buf)
    end
  end
end

return M
