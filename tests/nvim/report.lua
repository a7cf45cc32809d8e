-- Headless test of :AxReport in a current Neovim with the real ax: the
-- command is defined at startup without loading the plugin, writes the
-- crate's HTML performance report beside its profile (.ax/report.html) and
-- hands it to vim.ui.open; a failing opener still leaves the path shown, a
-- missing profile is one error naming it.
--
-- Prints TAP ("# pass N" / "# fail N"). Run by tests/nvim/run.sh (which
-- profiles examples/word-count first) with AX_REPO and AX_BIN set.

local repo = assert(os.getenv("AX_REPO"), "AX_REPO not set")
local ax_bin = assert(os.getenv("AX_BIN"), "AX_BIN not set")
local crate = repo .. "/examples/word-count"
local report_path = crate .. "/.ax/report.html"

vim.opt.runtimepath:append(repo .. "/editors/nvim")
vim.cmd("runtime plugin/ax.lua")

local function print(line)
  io.stdout:write(line, "\n")
end

local n, failed = 0, 0
local function check(cond, name, detail)
  n = n + 1
  if cond then
    print(string.format("ok %d - %s", n, name))
  else
    failed = failed + 1
    print(string.format("not ok %d - %s", n, name))
    if detail then
      print("  # " .. tostring(detail):gsub("\n", "\n  # "))
    end
  end
  return cond
end

local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, { msg = msg, level = level })
end
local function noted(pattern)
  for _, note in ipairs(notes) do
    if note.msg:find(pattern) then
      return note
    end
  end
end

check(vim.fn.exists(":AxReport") == 2 and package.loaded["ax"] == nil,
  ":AxReport is defined without loading the plugin")

os.remove(report_path)
vim.cmd("edit " .. crate .. "/src/lib.rs")
-- Without setup(): the commands need only the ax binary.
local opened = {}
vim.ui.open = function(path)
  table.insert(opened, path)
  return { wait = function() end }, nil
end
require("ax").config.ax = ax_bin
vim.cmd("AxReport")
vim.wait(60000, function()
  return #opened > 0 or noted("failed") ~= nil
end, 20)
local file = io.open(report_path, "r")
local head = file and file:read(200) or ""
if file then
  file:close()
end
check(opened[1] == report_path and head:find("^<!DOCTYPE html>"),
  ":AxReport writes .ax/report.html beside the crate's profile and opens it", vim.inspect({ opened, notes }))
check(noted("performance report written to " .. vim.pesc(report_path)) ~= nil, "the report's path is shown",
  vim.inspect(notes))

notes = {}
vim.ui.open = function()
  return nil, "vim.ui.open: no handler found"
end
vim.cmd("AxReport")
vim.wait(60000, function()
  return noted("cannot open") ~= nil or noted("failed") ~= nil
end, 20)
local warned = noted("cannot open")
check(warned and warned.msg:find(report_path, 1, true) and warned.level == vim.log.levels.WARN,
  ":AxReport with no opener says where the report is", vim.inspect(notes))

notes = {}
require("ax").report("/nonexistent/.ax/profile.json")
vim.wait(30000, function()
  return noted("failed") ~= nil
end, 20)
local err = noted("performance report failed")
check(err and err.msg:find("/nonexistent/.ax/profile.json", 1, true) and err.level == vim.log.levels.ERROR,
  "a missing profile is one error naming it", vim.inspect(notes))

os.remove(report_path)
print("1.." .. n)
print("# pass " .. (n - failed))
print("# fail " .. failed)
vim.cmd(failed == 0 and "qall!" or "cquit!")
