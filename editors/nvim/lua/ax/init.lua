-- ax.nvim: the ax language server (ax-lsp) for plugin crates, the ax debug
-- adapter (ax-dap) for nvim-dap, and commands to run and profile a plugin.
--
-- A buffer belongs to a plugin crate when an ancestor directory holds
-- `ax-plugin.toml`; one ax-lsp client serves each such crate. Works on Neovim
-- 0.7 (vim.lsp.start_client + buf_attach_client) and on 0.8+ (vim.lsp.start).

local M = {}

local defaults = {
  -- Command starting the language server.
  cmd = { "ax-lsp", "--stdio" },
  -- The ax CLI, for :AxRun, :AxProfile and the code lens commands.
  ax = "ax",
  -- Command starting the debug adapter, registered as dap.adapters.ax.
  dap_cmd = { "ax-dap", "--stdio" },
  -- Register dap.adapters.ax and dap.configurations.rust when nvim-dap is installed.
  dap = true,
  -- Show ax-lsp's inlay hints in its buffers (Neovim 0.10+, which draws them).
  inlay_hints = true,
  -- Refresh ax-lsp's code lenses on attach, BufEnter and InsertLeave (0.8+).
  codelens = true,
  -- Settings passed to ax-lsp (initializationOptions; see :help ax-settings).
  settings = {
    inlayHints = { enabled = true, percentiles = { "p50", "p95" }, calls = true, share = "profile" },
    hotSpots = 5,
  },
}

M.config = vim.deepcopy(defaults)

-- Calls file per plugin dir, asked once and remembered for the session.
local calls_files = {}
-- ax-lsp client id per crate root (Neovim 0.7 path).
local clients = {}

local uv = vim.loop

local function exists(path)
  return uv.fs_stat(path) ~= nil
end

--- The plugin crate directory holding `path` (nearest ancestor with ax-plugin.toml), or nil.
function M.root_of(path)
  if not path or path == "" then
    return nil
  end
  local dir = vim.fn.fnamemodify(path, ":p:h")
  while dir and dir ~= "" do
    if exists(dir .. "/ax-plugin.toml") then
      return dir
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      return nil
    end
    dir = parent
  end
  return nil
end

local function notify(msg, level)
  vim.notify("ax: " .. msg, level or vim.log.levels.INFO)
end

local function current_root()
  local root = M.root_of(vim.api.nvim_buf_get_name(0))
  if not root then
    notify("this buffer is not in a plugin crate (no ax-plugin.toml above it)", vim.log.levels.ERROR)
  end
  return root
end

-- Runs `args` as a job; on exit calls done(code, stdout_lines, stderr_lines).
local function job(args, done)
  local out, err = {}, {}
  local ok, id = pcall(vim.fn.jobstart, args, {
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = function(_, data)
      out = data or {}
    end,
    on_stderr = function(_, data)
      err = data or {}
    end,
    on_exit = function(_, code)
      vim.schedule(function()
        done(code, out, err)
      end)
    end,
  })
  if not ok or id <= 0 then
    notify("cannot run " .. args[1] .. ": is it installed and on PATH? (see :checkhealth ax)", vim.log.levels.ERROR)
  end
end

local function last_error(lines)
  for i = #lines, 1, -1 do
    if lines[i] ~= "" then
      return lines[i]
    end
  end
  return "(no output)"
end

-- Asks for (and remembers) the calls file of a plugin dir: JSON lines {"method":…,"input":…}.
local function ask_calls_file(dir)
  if calls_files[dir] then
    return calls_files[dir]
  end
  local default = dir .. "/calls.jsonl"
  local file = vim.fn.input("ax calls file (JSON lines): ", exists(default) and default or "", "file")
  if file == "" then
    return nil
  end
  calls_files[dir] = vim.fn.fnamemodify(file, ":p")
  return calls_files[dir]
end

--- Profiles the plugin at `dir` (default: the current buffer's crate):
--- `ax run --profile --calls FILE DIR`. ax-lsp sees the new profile by itself.
function M.profile(dir)
  dir = dir or current_root()
  if not dir then
    return
  end
  local calls = ask_calls_file(dir)
  if not calls then
    return
  end
  notify("profiling " .. dir .. " …")
  job({ M.config.ax, "run", "--profile", "--calls", calls, dir }, function(code, _, err)
    if code == 0 then
      notify("profile written: " .. dir .. "/.ax/profile.json")
    else
      notify("profiling failed: " .. last_error(err), vim.log.levels.ERROR)
    end
  end)
end

--- Runs the plugin at `dir` with its calls file; shows the results.
function M.run(dir, method, input)
  dir = dir or current_root()
  if not dir then
    return
  end
  local args = { M.config.ax, "run", dir }
  if method then
    table.insert(args, method)
    if input then
      table.insert(args, input)
    end
  else
    local calls = ask_calls_file(dir)
    if not calls then
      return
    end
    args = { M.config.ax, "run", "--calls", calls, dir }
  end
  job(args, function(code, out, err)
    if code == 0 then
      notify(table.concat(vim.tbl_filter(function(l)
        return l ~= ""
      end, out), "\n"))
    else
      notify("run failed: " .. last_error(err), vim.log.levels.ERROR)
    end
  end)
end

--- :AxRun [METHOD [INPUT]]
function M.run_command(fargs)
  M.run(nil, fargs[1], fargs[2] and table.concat(vim.list_slice(fargs, 2), " ") or nil)
end

-- Opens `path` (a flame graph, a report: `what`) with the system's opener.
-- The path is always shown first, so that a missing or failing opener still
-- leaves the user knowing where the file is; a failure to start one says so.
local function open_file(path, what)
  notify(what .. " written to " .. path)
  local cannot = function(why)
    notify("cannot open " .. path .. " (" .. why .. "): open it in a browser", vim.log.levels.WARN)
  end
  if vim.ui and vim.ui.open then
    local ok, opened, err = pcall(vim.ui.open, path)
    if not ok then
      cannot(tostring(opened))
    elseif opened == nil and err then
      cannot(tostring(err))
    end
    return
  end
  local opener = vim.fn.executable("xdg-open") == 1 and "xdg-open" or vim.fn.executable("open") == 1 and "open"
  if not opener then
    cannot("no xdg-open or open on PATH")
    return
  end
  local id = vim.fn.jobstart({ opener, path }, {
    on_exit = function(_, code)
      if code ~= 0 then
        vim.schedule(function()
          cannot(opener .. " exited with " .. code)
        end)
      end
    end,
  })
  if id <= 0 then
    cannot("cannot run " .. opener)
  end
end

--- The current crate's profile (`.ax/profile.json`), or nil after saying why there is no crate.
local function current_profile()
  local dir = current_root()
  return dir and dir .. "/.ax/profile.json"
end

--- Draws `profile` (default: the current crate's) as an SVG flame graph and opens it.
function M.flamegraph(profile)
  profile = profile or current_profile()
  if not profile then
    return
  end
  local svg = vim.fn.tempname() .. ".svg"
  job({ M.config.ax, "perf", "flamegraph", profile, "-o", svg }, function(code, _, err)
    if code == 0 then
      open_file(svg, "flame graph")
    else
      notify("flame graph failed: " .. last_error(err), vim.log.levels.ERROR)
    end
  end)
end

--- Writes the HTML performance report of `profile` (default: the current
--- crate's) with `ax perf report --html`, beside it (`.ax/report.html`), and
--- opens it in the browser.
function M.report(profile)
  profile = profile or current_profile()
  if not profile then
    return
  end
  local html = vim.fn.fnamemodify(profile, ":p:h") .. "/report.html"
  job({ M.config.ax, "perf", "report", profile, "--html", "-o", html }, function(code, _, err)
    if code == 0 then
      open_file(html, "performance report")
    else
      notify("performance report failed: " .. last_error(err), vim.log.levels.ERROR)
    end
  end)
end

-- The client-side commands of ax-lsp's code lenses (the server runs none itself).
local function register_commands()
  vim.lsp.commands["ax.profile"] = function(command)
    M.profile((command.arguments or {})[1])
  end
  vim.lsp.commands["ax.run"] = function(command)
    M.run((command.arguments or {})[1])
  end
  vim.lsp.commands["ax.openFlamegraph"] = function(command)
    M.flamegraph((command.arguments or {})[1])
  end
end

local function lsp_config(root)
  return {
    name = "ax-lsp",
    cmd = M.config.cmd,
    root_dir = root,
    init_options = M.config.settings,
    settings = { ax = M.config.settings },
    workspace_folders = { { uri = vim.uri_from_fname(root), name = vim.fn.fnamemodify(root, ":t") } },
  }
end

--- Attaches ax-lsp to `bufnr` if it is a Rust file or the manifest of a plugin crate.
function M.attach(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local name = vim.api.nvim_buf_get_name(bufnr)
  if not (name:match("%.rs$") or name:match("ax%-plugin%.toml$")) then
    return
  end
  local root = M.root_of(name)
  if not root then
    return
  end
  if vim.lsp.start then
    vim.api.nvim_buf_call(bufnr, function()
      vim.lsp.start(lsp_config(root))
    end)
    return
  end
  -- Neovim 0.7: one client per crate root, started once, attached per buffer.
  local id = clients[root]
  if not id or not vim.lsp.get_client_by_id(id) then
    id = vim.lsp.start_client(lsp_config(root))
    if not id then
      notify("cannot start " .. M.config.cmd[1] .. " (see :checkhealth ax)", vim.log.levels.ERROR)
      return
    end
    clients[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
end

--- The plugin crate a launch debugs: the current buffer's (nearest
--- ax-plugin.toml upward), else the working directory's; nil if neither is in one.
function M.launch_root()
  return M.root_of(vim.api.nvim_buf_get_name(0)) or M.root_of(vim.fn.getcwd() .. "/ax-plugin.toml")
end

local function register_dap()
  local ok, dap = pcall(require, "dap")
  if not ok then
    return false
  end
  -- The launch's plugin and its calls file come from one crate, the current
  -- buffer's, whatever the workspace folder is (the repository root, say).
  local function launch_root()
    local root = M.launch_root()
    if not root then
      notify(
        "launch plugin: neither this buffer nor " .. vim.fn.getcwd() .. " is in a plugin crate (no ax-plugin.toml above it); open a file of the plugin first",
        vim.log.levels.ERROR
      )
    end
    return root
  end
  dap.adapters.ax = {
    type = "executable",
    command = M.config.dap_cmd[1],
    args = vim.list_slice(M.config.dap_cmd, 2),
  }
  dap.configurations.rust = dap.configurations.rust or {}
  for _, c in ipairs(dap.configurations.rust) do
    if c.type == "ax" then
      return true
    end
  end
  table.insert(dap.configurations.rust, {
    type = "ax",
    request = "launch",
    name = "ax: launch plugin",
    plugin = function()
      return launch_root() or dap.ABORT
    end,
    -- nvim-dap evaluates every field before it looks for ABORT: only
    -- `plugin` says why.
    callsFile = function()
      local dir = M.launch_root()
      return dir and ask_calls_file(dir) or dap.ABORT
    end,
    build = true,
    stopOnEntry = false,
  })
  table.insert(dap.configurations.rust, {
    type = "ax",
    request = "attach",
    name = "ax: attach to a host (ax run --debug-listen)",
    host = "127.0.0.1",
    port = function()
      return tonumber(vim.fn.input("ax host port: "))
    end,
    token = function()
      return vim.fn.input("ax host token: ")
    end,
  })
  return true
end

--- Configures ax.nvim: merges `opts` into the defaults, registers the DAP adapter
--- (with nvim-dap), the code lens commands, and starts ax-lsp for plugin crates.
function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  register_commands()
  if M.config.dap then
    M.dap_registered = register_dap()
  end
  local group = vim.api.nvim_create_augroup("ax", { clear = true })
  vim.api.nvim_create_autocmd({ "BufReadPost", "BufNewFile" }, {
    group = group,
    pattern = { "*.rs", "ax-plugin.toml" },
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  if vim.fn.has("nvim-0.8") == 1 then
    vim.api.nvim_create_autocmd("LspAttach", {
      group = group,
      callback = function(args)
        local client = vim.lsp.get_client_by_id(args.data.client_id)
        if not client or client.name ~= "ax-lsp" then
          return
        end
        if M.config.inlay_hints and vim.lsp.inlay_hint and vim.lsp.inlay_hint.enable then
          pcall(vim.lsp.inlay_hint.enable, true, { bufnr = args.buf })
        end
        if M.config.codelens then
          pcall(vim.lsp.codelens.refresh)
          vim.api.nvim_create_autocmd({ "BufEnter", "InsertLeave" }, {
            group = group,
            buffer = args.buf,
            callback = function()
              pcall(vim.lsp.codelens.refresh)
            end,
          })
        end
      end,
    })
  end
  -- Buffers opened before setup().
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      M.attach(buf)
    end
  end
end

return M
