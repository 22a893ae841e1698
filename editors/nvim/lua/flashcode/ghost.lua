-- Ghost text: textDocument/inlineCompletion after a debounce, drawn with extmarks, accepted whole,
-- by word or by line.
local client_mod = require("flashcode.client")
local log = require("flashcode.log")
local util = require("flashcode.util")

local M = {}

M.ns = vim.api.nvim_create_namespace("flashcode.ghost")
local HL = "FlashcodeSuggestion"
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2

---@class flashcode.Suggestion
---@field buf integer
---@field row integer 0-based row of the cursor the text continues from
---@field col integer byte column of that cursor
---@field prefix string the line up to `col`, to recognise typing that matches the suggestion
---@field text string what is still to be inserted
---@field range_end integer[]|nil {row, col} when the item replaces text after the cursor
---@field item table the InlineCompletionItem
---@field client_id integer
---@field tick integer changedtick when drawn

local state = {
  timer = nil, ---@type uv.uv_timer_t|nil
  seq = 0, -- answers to older requests are dropped
  pending = nil, ---@type {client: vim.lsp.Client, id: integer}|nil
  current = nil, ---@type flashcode.Suggestion|nil
}

local function opts()
  return client_mod.config and client_mod.config.suggestion or {}
end

local function in_insert_mode()
  return vim.api.nvim_get_mode().mode:sub(1, 1) == "i"
end

local function cancel_pending()
  local p = state.pending
  state.pending = nil
  if p then
    pcall(util.cancel, p.client, p.id)
  end
end

local function clear_marks()
  local c = state.current
  if c and vim.api.nvim_buf_is_valid(c.buf) then
    vim.api.nvim_buf_clear_namespace(c.buf, M.ns, 0, -1)
  end
end

--- Hides the ghost text and forgets the request in flight.
function M.clear()
  state.seq = state.seq + 1
  if state.timer then
    state.timer:stop()
  end
  cancel_pending()
  clear_marks()
  state.current = nil
end

function M.visible()
  return state.current ~= nil
end

--- The ghost text still to be inserted, or nil.
function M.text()
  return state.current and state.current.text or nil
end

local function display(text)
  -- Virtual text draws a tab as one cell; spaces keep the columns the real text will have.
  local spaces = string.rep(" ", vim.bo.tabstop > 0 and vim.bo.tabstop or 8)
  return (text:gsub("\t", spaces))
end

local function render()
  local c = state.current
  if not c then
    return
  end
  vim.api.nvim_buf_clear_namespace(c.buf, M.ns, 0, -1)
  local lines = vim.split(c.text, "\n", { plain = true })
  local mark = {
    virt_text = { { display(lines[1]), HL } },
    virt_text_pos = "inline",
    hl_mode = "combine",
    right_gravity = false,
  }
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      table.insert(mark.virt_lines, { { display(lines[i]), HL } })
    end
  end
  vim.api.nvim_buf_set_extmark(c.buf, M.ns, c.row, c.col, mark)
  c.tick = vim.api.nvim_buf_get_changedtick(c.buf)
end

local function item_text(item)
  local text = item.insertText
  if type(text) == "table" then
    -- A snippet: keep the placeholders' default text, drop tab stops.
    text = (text.value or ""):gsub("%${%d+:([^}]*)}", "%1"):gsub("%${%d+}", ""):gsub("%$%d+", "")
  end
  return type(text) == "string" and text or ""
end

--- Turns an item into a suggestion anchored at the cursor (row, col), or nil when it does not fit.
local function suggestion_from(buf, row, col, line, item, client_id)
  local text = item_text(item)
  local range_end = nil
  if item.range then
    local sr, sc = util.to_byte_position(buf, item.range.start)
    local er, ec = util.to_byte_position(buf, item.range["end"])
    if sr ~= row or sc > col then
      return nil
    end
    -- The item repeats what is already typed between the range start and the cursor.
    local typed = line:sub(sc + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
    if er > row or (er == row and ec > col) then
      range_end = { er, ec }
    end
  end
  if text == "" then
    return nil
  end
  return {
    buf = buf,
    row = row,
    col = col,
    prefix = line:sub(1, col),
    text = text,
    range_end = range_end,
    item = item,
    client_id = client_id,
    tick = 0,
  }
end

--- Asks the server for ghost text at the cursor of the current window.
---@param trigger integer|nil 1 invoked (a key), 2 automatic (typing)
function M.request(trigger)
  local buf = vim.api.nvim_get_current_buf()
  local client = client_mod.get(buf)
  if not client then
    return
  end
  if not client.server_capabilities.inlineCompletionProvider then
    log.debug("the server does not offer inline completion")
    return
  end
  cancel_pending()
  state.seq = state.seq + 1
  local seq = state.seq
  local win = vim.api.nvim_get_current_win()
  local position, row, col, line = util.cursor_position(win)
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = position,
    context = { triggerKind = trigger or TRIGGER_AUTOMATIC },
  }
  local started = vim.uv.hrtime()
  local id = util.request(client, "textDocument/inlineCompletion", params, function(err, result)
    if seq ~= state.seq then
      return
    end
    state.pending = nil
    local ms = (vim.uv.hrtime() - started) / 1e6
    if err then
      -- -32800 is our own cancellation.
      if err.code ~= -32800 then
        log.warn("inline completion failed: %s", err.message or vim.inspect(err))
      end
      return
    end
    local items = result and (result.items or result) or {}
    log.debug("inline completion at %d:%d: %d item(s) in %.0f ms", row, col, #items, ms)
    if #items == 0 or not vim.api.nvim_buf_is_valid(buf) or vim.api.nvim_get_current_buf() ~= buf then
      return
    end
    local cursor = vim.api.nvim_win_get_cursor(0)
    if vim.api.nvim_buf_get_changedtick(buf) ~= tick or cursor[1] - 1 ~= row or cursor[2] ~= col then
      return
    end
    if not in_insert_mode() or (opts().hide_during_completion and vim.fn.pumvisible() == 1) then
      return
    end
    clear_marks()
    state.current = suggestion_from(buf, row, col, line, items[1], client.id)
    render()
  end, buf)
  if id then
    state.pending = { client = client, id = id }
  end
end

--- Debounced request, restarted by each keystroke.
function M.schedule()
  if not state.timer then
    state.timer = vim.uv.new_timer()
  end
  state.timer:stop()
  state.timer:start(
    opts().debounce_ms or 150,
    0,
    vim.schedule_wrap(function()
      if in_insert_mode() then
        M.request(TRIGGER_AUTOMATIC)
      end
    end)
  )
end

--- After a text change: keep the suggestion if the user typed its beginning, else ask again.
local function on_text_changed()
  local c = state.current
  if c then
    local buf = vim.api.nvim_get_current_buf()
    local cursor = vim.api.nvim_win_get_cursor(0)
    local row, col = cursor[1] - 1, cursor[2]
    if buf == c.buf and row == c.row and col >= c.col then
      local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
      local typed = line:sub(c.col + 1, col)
      if line:sub(1, c.col) == c.prefix and #typed < #c.text and c.text:sub(1, #typed) == typed then
        c.text = c.text:sub(#typed + 1)
        c.col = col
        c.prefix = line:sub(1, col)
        render()
        return
      end
    end
    M.clear()
  end
  if opts().auto_trigger and client_mod.get(vim.api.nvim_get_current_buf()) then
    M.schedule()
  end
end

local function next_word(text)
  return text:match("^\r?\n[ \t]*")
    or text:match("^[ \t]*[%w_]+")
    or text:match("^[ \t]*[^%w_%s]+")
    or text:match("^[ \t]+")
    or text
end

local function next_line(text)
  local first = text:match("^[^\n]*")
  if first ~= "" then
    return first
  end
  return text:match("^\n[^\n]*")
end

local function run_accept_command(c)
  local command = c.item.command
  local client = vim.lsp.get_client_by_id(c.client_id)
  if not command or not client then
    return
  end
  util.request(client, "workspace/executeCommand", {
    command = command.command,
    arguments = command.arguments,
  }, function(err)
    if err then
      log.debug("%s failed: %s", command.command, err.message or "")
    end
  end, c.buf)
end

--- Inserts the whole suggestion ("all"), its next word or its next line. Returns false when there
--- is nothing to accept at the cursor, so that callers can fall back to the key's usual meaning.
---@param what "all"|"word"|"line"
---@return boolean
function M.accept(what)
  local c = state.current
  if not c or not vim.api.nvim_buf_is_valid(c.buf) or vim.api.nvim_get_current_buf() ~= c.buf then
    return false
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  if cursor[1] - 1 ~= c.row or cursor[2] ~= c.col then
    M.clear()
    return false
  end
  local part = c.text
  if what == "word" then
    part = next_word(c.text)
  elseif what == "line" then
    part = next_line(c.text)
  end
  local whole = #part >= #c.text
  local end_row, end_col = c.row, c.col
  if whole and c.range_end then
    end_row, end_col = c.range_end[1], c.range_end[2]
  end
  local lines = vim.split(part, "\n", { plain = true })
  cancel_pending()
  vim.api.nvim_buf_set_text(c.buf, c.row, c.col, end_row, end_col, lines)
  local new_row = c.row + #lines - 1
  local new_col = #lines == 1 and c.col + #lines[1] or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  if whole then
    clear_marks()
    state.current = nil
    run_accept_command(c)
  else
    -- The rest stays on screen; the TextChangedI that follows sees the same anchor and keeps it.
    c.text = c.text:sub(#part + 1)
    c.row, c.col = new_row, new_col
    c.prefix = (vim.api.nvim_buf_get_lines(c.buf, new_row, new_row + 1, false)[1] or ""):sub(1, new_col)
    render()
  end
  return true
end

--- Hides the ghost text; false when there was none.
function M.dismiss()
  local shown = state.current ~= nil
  M.clear()
  return shown
end

function M.setup()
  vim.api.nvim_set_hl(0, HL, { link = "Comment", default = true })
  local group = vim.api.nvim_create_augroup("flashcode.ghost", { clear = true })
  vim.api.nvim_create_autocmd("TextChangedI", { group = group, callback = on_text_changed })
  vim.api.nvim_create_autocmd("TextChangedP", {
    group = group,
    callback = function()
      if opts().hide_during_completion then
        M.clear()
      else
        on_text_changed()
      end
    end,
  })
  vim.api.nvim_create_autocmd("CursorMovedI", {
    group = group,
    callback = function()
      local c = state.current
      if not c or vim.api.nvim_buf_get_changedtick(c.buf) ~= c.tick then
        return -- a text change: TextChangedI decides
      end
      local cursor = vim.api.nvim_win_get_cursor(0)
      if vim.api.nvim_get_current_buf() ~= c.buf or cursor[1] - 1 ~= c.row or cursor[2] ~= c.col then
        M.clear()
      end
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, { group = group, callback = M.clear })
  vim.api.nvim_create_autocmd("ColorScheme", {
    group = group,
    callback = function()
      vim.api.nvim_set_hl(0, HL, { link = "Comment", default = true })
    end,
  })
end

M.TRIGGER_INVOKED = TRIGGER_INVOKED

return M
