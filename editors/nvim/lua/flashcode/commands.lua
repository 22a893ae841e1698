-- Unit tests and docstrings: the server's workspace/executeCommand and code action.
local client_mod = require("flashcode.client")
local log = require("flashcode.log")
local util = require("flashcode.util")

local M = {}

-- The command's result: { written = true|false, testFile = a file URI, message = ... }.
local function written_test_file(result)
  if type(result) ~= "table" or result.written ~= true then
    return nil
  end
  if type(result.testFile) ~= "string" or result.testFile == "" then
    return nil
  end
  return vim.uri_to_fname(result.testFile)
end

--- Asks the server for unit tests of the function or class under the cursor. The server writes the
--- file (workspace/applyEdit) and reports progress; the file it wrote is opened in a split.
---@param on_done fun(err: table|nil, result: any)|nil
function M.generate_tests(on_done)
  local buf = vim.api.nvim_get_current_buf()
  local client = client_mod.get(buf)
  if not client then
    log.notify("warn", "no flashcode server is attached to this buffer")
    return
  end
  local position = util.cursor_position(0)
  local args = { vim.uri_from_bufnr(buf), position }
  log.info("generating tests for %s at %d:%d", vim.api.nvim_buf_get_name(buf), position.line, position.character)
  vim.notify("flashcode: generating unit tests…", vim.log.levels.INFO)
  util.request(client, "workspace/executeCommand", {
    command = "flashcode.generateTests",
    arguments = args,
  }, function(err, result)
    if err then
      log.notify("error", "generating tests failed: %s", err.message or vim.inspect(err))
    else
      local path = written_test_file(result)
      -- The server has already said what it did (window/showMessage); show the file.
      if path then
        log.info("tests written to %s", path)
        if vim.fn.bufwinnr(path) == -1 then
          vim.cmd.split(vim.fn.fnameescape(path))
        end
      end
    end
    vim.api.nvim_exec_autocmds("User", {
      pattern = "FlashcodeTestsDone",
      modeline = false,
      data = { error = err and (err.message or vim.inspect(err)) or nil, result = result },
    })
    if on_done then
      on_done(err, result)
    end
  end, buf)
end

--- Applies the "Insert docstring" code action at the cursor (the same as picking it from
--- vim.lsp.buf.code_action()).
function M.docstring()
  vim.lsp.buf.code_action({
    filter = function(action)
      return action.title == "Insert docstring"
    end,
    apply = true,
  })
end

return M
