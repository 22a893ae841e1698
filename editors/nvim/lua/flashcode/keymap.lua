-- Insert-mode keys that act on ghost text when it is shown and otherwise do what the key did before
-- setup(): another plugin's mapping (nvim-cmp's <Tab>, say) or the key itself.
local M = {}

-- The mapping each key had before the first setup(), kept across repeated setup() calls.
local originals = {}

local function feed(keys, remap)
  -- "i": in front of the typeahead, so keys typed after this one keep their order.
  vim.api.nvim_feedkeys(keys, (remap and "m" or "n") .. "i", false)
end

local function termcodes(s)
  return vim.api.nvim_replace_termcodes(s, true, true, true)
end

--- Runs a mapping captured with maparg(..., true) as if its key had been pressed.
local function run_previous(previous, lhs)
  if not previous or vim.tbl_isempty(previous) then
    feed(termcodes(lhs), false)
    return
  end
  local remap = previous.noremap ~= 1
  if previous.callback then
    local result = previous.callback()
    if previous.expr == 1 and type(result) == "string" and result ~= "" then
      feed(previous.replace_keycodes == 1 and termcodes(result) or result, remap)
    end
    return
  end
  local rhs = previous.rhs or ""
  if previous.expr == 1 then
    rhs = vim.api.nvim_eval(rhs)
  end
  feed(termcodes(rhs), remap)
end

---@param lhs string|false
---@param desc string
---@param action fun(): boolean returns false when there was nothing to act on
function M.map(lhs, desc, action)
  if not lhs then
    return
  end
  local previous = vim.fn.maparg(lhs, "i", false, true)
  if previous.desc and previous.desc:find("^flashcode:") then
    previous = originals[lhs] -- setup() ran again: ours is already there
  else
    originals[lhs] = previous
  end
  vim.keymap.set("i", lhs, function()
    if not action() then
      run_previous(previous, lhs)
    end
  end, { desc = "flashcode: " .. desc, silent = true })
end

return M
