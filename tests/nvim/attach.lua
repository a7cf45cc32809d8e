-- Headless Neovim test of ax.nvim + ax-lsp: loads the plugin from
-- editors/nvim, opens examples/word-count/src/lib.rs (profiled by run.sh just
-- before), and checks that ax-lsp attaches, publishes diagnostics and answers a
-- hover. Prints TAP (ok / not ok, then "# pass N" / "# fail N"); exits 1 on failure.
--
-- Run by tests/nvim/run.sh with AX_LSP (the ax-lsp binary) and AX_REPO set.

local repo = assert(os.getenv("AX_REPO"), "AX_REPO not set")
local lsp_bin = assert(os.getenv("AX_LSP"), "AX_LSP not set")
vim.opt.runtimepath:append(repo .. "/editors/nvim")
vim.cmd("filetype on")
vim.cmd("runtime plugin/ax.lua")

-- TAP goes to stdout directly: print() shares a line with Neovim's own messages.
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
end

check(vim.fn.exists(":AxProfile") == 2 and vim.fn.exists(":AxRun") == 2, "plugin/ax.lua defines :AxRun and :AxProfile")

require("ax").setup({ cmd = { lsp_bin, "--stdio" } })
for _, c in ipairs({ "ax.profile", "ax.run", "ax.openFlamegraph" }) do
  check(type(vim.lsp.commands[c]) == "function", "client-side command " .. c .. " registered")
end

local file = repo .. "/examples/word-count/src/lib.rs"
vim.cmd("edit " .. vim.fn.fnameescape(file))
local buf = vim.api.nvim_get_current_buf()

local attached = vim.wait(10000, function()
  return #vim.lsp.buf_get_clients(buf) > 0
end, 20)
check(attached, "ax-lsp attaches to word-count's lib.rs")
local client = vim.lsp.buf_get_clients(buf)[next(vim.lsp.buf_get_clients(buf)) or 1]
check(client and client.name == "ax-lsp", "the client is ax-lsp", client and client.name)

local function hot()
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    if d.message:match("^hot spot #1") then
      return d
    end
  end
end
local got = vim.wait(10000, function()
  return hot() ~= nil
end, 20)
local all = vim.tbl_map(function(d)
  return d.message
end, vim.diagnostic.get(buf))
check(got, "diagnostics published: a hot spot", table.concat(all, " | "))

local line
for i, text in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
  if text:find("fn count_words(", 1, true) then
    line = i - 1
  end
end
local params = { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = line, character = 4 } }
local responses = vim.lsp.buf_request_sync(buf, "textDocument/hover", params, 5000) or {}
local hover = ""
for _, r in pairs(responses) do
  if r.result and r.result.contents then
    hover = r.result.contents.value or ""
  end
end
check(hover:find("`count_words`", 1, true) and hover:find("| calls |", 1, true) and hover:find("| p95 |", 1, true),
  "hover on count_words shows the profile table", hover)

local manifest = repo .. "/examples/word-count/ax-plugin.toml"
vim.cmd("edit " .. vim.fn.fnameescape(manifest))
local mbuf = vim.api.nvim_get_current_buf()
check(vim.wait(5000, function()
  return #vim.lsp.buf_get_clients(mbuf) > 0
end, 20), "ax-lsp attaches to ax-plugin.toml too")
local key_line = 0
for i, text in ipairs(vim.api.nvim_buf_get_lines(mbuf, 0, -1, false)) do
  if text:find("^max_duration") then
    key_line = i - 1
  end
end
local mresp = vim.lsp.buf_request_sync(mbuf, "textDocument/hover", {
  textDocument = { uri = vim.uri_from_bufnr(mbuf) },
  position = { line = key_line, character = 2 },
}, 5000) or {}
local mhover = ""
for _, r in pairs(mresp) do
  if r.result and r.result.contents then
    mhover = r.result.contents.value or ""
  end
end
check(mhover:find("Wall time a call may take", 1, true), "hover on a manifest key shows its documentation", mhover)

local health_ok, health_err = pcall(vim.cmd, "silent checkhealth ax")
local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
check(health_ok and report:find("ax.nvim", 1, true) and report:find("ax-lsp found", 1, true) or false,
  ":checkhealth ax runs and finds ax-lsp", health_err or report)

print("1.." .. n)
print("# pass " .. (n - failed))
print("# fail " .. failed)
for _, c in pairs(vim.lsp.get_active_clients()) do
  c.stop()
end
vim.cmd((failed == 0 and "qall!" or "cquit!"))
