-- :Flashcode stats: the server's flashcode/stats (usage report, this session, cache) as text in a
-- scratch buffer. `lines()` is pure, so the layout can be read without a server.
local client_mod = require("flashcode.client")
local log = require("flashcode.log")
local util = require("flashcode.util")

local M = {}

local SOURCES = {
  { "model", "model" },
  { "cache", "cache" },
  { "typeahead", "typing-ahead" },
  { "none", "no answer" },
  { "cancelled", "cancelled" },
}

local function rate(counts)
  if (counts.shown or 0) == 0 then
    return "-"
  end
  return string.format("%.1f%%", 100 * (counts.acceptanceRate or 0))
end

local function row(label, counts)
  return string.format(
    "%-14s %9d %7d %9d %15s",
    label,
    counts.requested or 0,
    counts.shown or 0,
    counts.accepted or 0,
    rate(counts)
  )
end

local function ms(value)
  return type(value) == "number" and string.format("%d ms", value) or "-"
end

local HEADER = string.format("%-14s %9s %7s %9s %15s", "", "requested", "shown", "accepted", "accepted/shown")

--- The report as lines of text.
---@param stats table the flashcode/stats result
---@return string[]
function M.lines(stats)
  local out = {}
  local usage = stats.usage or {}
  if usage.enabled == false then
    table.insert(out, "flashcode usage: off (settings: usage.enabled)")
  elseif (usage.days or 0) == 0 then
    table.insert(out, "flashcode usage: nothing counted yet")
  else
    table.insert(out, string.format("flashcode usage, %s to %s (%d days)", usage.firstDay, usage.lastDay, usage.days))
    table.insert(out, "")
    table.insert(out, HEADER)
    for _, source in ipairs(SOURCES) do
      table.insert(out, row(source[2], (usage.bySource or {})[source[1]] or {}))
    end
    table.insert(out, row("all", usage))
    table.insert(out, "")
    local languages = vim.tbl_keys(usage.byLanguage or {})
    table.sort(languages)
    for _, language in ipairs(languages) do
      table.insert(out, row(language ~= "" and language or "(none)", usage.byLanguage[language]))
    end
    local tokens, latency = usage.tokens or {}, usage.latencyMs or {}
    table.insert(out, "")
    table.insert(
      out,
      string.format(
        "tokens: %d generated; prompt %d computed, %d reused",
        tokens.generated or 0,
        tokens.promptComputed or 0,
        tokens.promptReused or 0
      )
    )
    table.insert(out, string.format("latency of the suggestions shown: p50 %s, p95 %s", ms(latency.p50), ms(latency.p95)))
    table.insert(
      out,
      string.format(
        "cost avoided: %.4f USD at %.2f USD per million tokens",
        usage.costAvoidedUsd or 0,
        usage.pricePerMillionTokens or 0
      )
    )
  end
  local session = stats.completions
  if session then
    table.insert(out, "")
    table.insert(
      out,
      string.format(
        "this server: %d requests, %d answered, %d cancelled, last %s",
        session.requests or 0,
        session.answered or 0,
        session.cancelled or 0,
        ms(session.lastLatencyMs and math.floor(session.lastLatencyMs + 0.5))
      )
    )
  end
  local cache = stats.cache
  if cache and cache.enabled and cache.total then
    table.insert(
      out,
      string.format("cache: %.1f%% hit rate over %d lookups", 100 * (cache.total.hitRate or 0), cache.total.lookups or 0)
    )
  elseif cache then
    table.insert(out, "cache: off")
  end
  return out
end

--- Asks the server for flashcode/stats; `on_done(err, result)`.
function M.fetch(on_done)
  local buf = vim.api.nvim_get_current_buf()
  local client = client_mod.get(buf) or client_mod.all()[1]
  if not client then
    on_done({ message = "no flashcode server is running" }, nil)
    return
  end
  util.request(client, "flashcode/stats", vim.empty_dict(), function(err, result)
    on_done(err, result)
  end, buf)
end

--- Shows the report in a scratch buffer in a split.
function M.show()
  M.fetch(function(err, result)
    if err or type(result) ~= "table" then
      log.notify("warn", "no statistics: %s", err and (err.message or vim.inspect(err)) or "empty answer")
      return
    end
    vim.schedule(function()
      local buf = vim.api.nvim_create_buf(false, true)
      vim.api.nvim_buf_set_lines(buf, 0, -1, false, M.lines(result))
      vim.bo[buf].modifiable = false
      vim.bo[buf].bufhidden = "wipe"
      pcall(vim.api.nvim_buf_set_name, buf, "flashcode://stats")
      vim.cmd("botright split")
      vim.api.nvim_win_set_buf(0, buf)
      vim.api.nvim_exec_autocmds("User", { pattern = "FlashcodeStats", modeline = false, data = result })
    end)
  end)
end

return M
