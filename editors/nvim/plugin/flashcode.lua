-- Commands only: nothing starts until require("flashcode").setup() is called.
if vim.g.loaded_flashcode then
  return
end
vim.g.loaded_flashcode = true

local function flashcode()
  return require("flashcode")
end

local subcommands = {
  status = function()
    local s = flashcode().status()
    local text = string.format("flashcode: %s, model %s, device %s", tostring(s.state), tostring(s.model), tostring(s.device))
    if s.lastLatencyMs then
      text = text .. string.format(", last completion %.0f ms", s.lastLatencyMs)
    end
    if s.message then
      text = text .. " (" .. s.message .. ")"
    end
    vim.notify(text)
  end,
  restart = function()
    flashcode().restart()
  end,
  log = function()
    vim.cmd.split(vim.fn.fnameescape(require("flashcode.log").path()))
  end,
  suggest = function()
    flashcode().suggest()
  end,
  tests = function()
    flashcode().generate_tests()
  end,
  docstring = function()
    flashcode().docstring()
  end,
  stats = function()
    require("flashcode.stats").show()
  end,
}

vim.api.nvim_create_user_command("Flashcode", function(args)
  local sub = subcommands[args.fargs[1] or "status"]
  if not sub then
    vim.notify("flashcode: unknown subcommand " .. args.fargs[1], vim.log.levels.ERROR)
    return
  end
  sub()
end, {
  nargs = "?",
  desc = "flashcode: status | restart | log | suggest | tests | docstring | stats",
  complete = function(lead)
    return vim.tbl_filter(function(name)
      return name:find(lead, 1, true) == 1
    end, vim.tbl_keys(subcommands))
  end,
})

vim.api.nvim_create_user_command("FlashcodeGenerateTests", function()
  flashcode().generate_tests()
end, { desc = "flashcode: generate unit tests for the function or class under the cursor" })

for plug, fn in pairs({
  ["accept"] = "accept",
  ["accept-word"] = "accept_word",
  ["accept-line"] = "accept_line",
  ["dismiss"] = "dismiss",
}) do
  vim.keymap.set("i", "<Plug>(flashcode-" .. plug .. ")", function()
    flashcode()[fn]()
  end, { desc = "flashcode: " .. plug:gsub("-", " ") })
end
