-- A log file plus vim.notify for what the user must see. Never logs document text above debug.
local M = {}

local LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }
local NOTIFY = {
  debug = vim.log.levels.DEBUG,
  info = vim.log.levels.INFO,
  warn = vim.log.levels.WARN,
  error = vim.log.levels.ERROR,
}

local state = { file = nil, level = LEVELS.info }

function M.configure(file, level)
  state.file = file or (vim.fn.stdpath("log") .. "/flashcode.log")
  state.level = LEVELS[level] or LEVELS.info
  vim.fn.mkdir(vim.fn.fnamemodify(state.file, ":h"), "p")
end

function M.path()
  return state.file or (vim.fn.stdpath("log") .. "/flashcode.log")
end

local function write(level, msg)
  if LEVELS[level] < state.level then
    return
  end
  local f = io.open(M.path(), "a")
  if f then
    f:write(string.format("%s [%s] %s\n", os.date("%Y-%m-%d %H:%M:%S"), level:upper(), msg))
    f:close()
  end
end

local function logger(level)
  return function(fmt, ...)
    write(level, select("#", ...) > 0 and string.format(fmt, ...) or fmt)
  end
end

M.debug = logger("debug")
M.info = logger("info")
M.warn = logger("warn")
M.error = logger("error")

--- Logs and shows a message; safe to call from callbacks (textlock, fast events).
function M.notify(level, fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  write(level, msg)
  vim.schedule(function()
    vim.notify("flashcode: " .. msg, NOTIFY[level])
  end)
end

return M
