-- Small compatibility layer over the APIs that changed between Neovim 0.10 and 0.11.
local M = {}

local has_011 = vim.fn.has("nvim-0.11") == 1

--- UTF-16 index of byte `col` (0-based) in `line`.
function M.utf16_index(line, col)
  col = math.min(col, #line)
  if has_011 then
    return vim.str_utfindex(line, "utf-16", col, false)
  end
  local _, u16 = vim.str_utfindex(line, col)
  return u16
end

--- Byte index (0-based) of UTF-16 index `index` in `line`.
function M.byte_index(line, index)
  if has_011 then
    return vim.str_byteindex(line, "utf-16", index, false)
  end
  local ok, b = pcall(vim.str_byteindex, line, index, true)
  return ok and b or #line
end

--- Sends a request through `client`; returns the request id or nil.
function M.request(client, method, params, handler, bufnr)
  local ok, id
  if has_011 then
    ok, id = client:request(method, params, handler, bufnr)
  else
    ok, id = client.request(method, params, handler, bufnr)
  end
  return ok and id or nil
end

function M.cancel(client, id)
  if has_011 then
    client:cancel_request(id)
  else
    client.cancel_request(id)
  end
end

function M.notify(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.stop(client)
  if has_011 then
    client:stop()
  else
    client.stop()
  end
end

--- LSP position of the cursor in window `win`, as UTF-16. Built by hand: in insert mode the cursor
--- may sit after the last character, where make_position_params would clamp it.
function M.cursor_position(win)
  local buf = vim.api.nvim_win_get_buf(win)
  local cursor = vim.api.nvim_win_get_cursor(win)
  local row, col = cursor[1] - 1, cursor[2]
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  return { line = row, character = M.utf16_index(line, col) }, row, col, line
end

--- (row, byte col) of an LSP position in `buf`.
function M.to_byte_position(buf, pos)
  local line = vim.api.nvim_buf_get_lines(buf, pos.line, pos.line + 1, false)[1] or ""
  return pos.line, M.byte_index(line, pos.character)
end

return M
