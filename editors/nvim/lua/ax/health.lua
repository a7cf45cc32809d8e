-- :checkhealth ax — is everything ax.nvim starts installed?
-- Works with the health API of Neovim 0.7 (require("health").report_*),
-- 0.8/0.9 (vim.health.report_*) and 0.10+ (vim.health.start/ok/…).
local M = {}

local h = vim.health or require("health")
local start = h.start or h.report_start
local ok = h.ok or h.report_ok
local warn = h.warn or h.report_warn
local err = h.error or h.report_error

local function check_exe(cmd, what, required)
  if vim.fn.executable(cmd) == 1 then
    ok(cmd .. " found: " .. vim.fn.exepath(cmd))
  elseif required then
    err(cmd .. " not found on PATH: " .. what, { "cargo install --path server (ax-lsp), runtime/cli (ax), adapter (ax-dap)" })
  else
    warn(cmd .. " not found on PATH: " .. what)
  end
end

-- The version as `:version` says it ("0.12.0-dev-fbb1caf" for a dev build),
-- else from vim.version() with its prerelease and build when it has them.
local function version_string(v)
  local line = vim.fn.execute("version"):match("NVIM v(%S+)")
  if line then
    return line
  end
  local s = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  if type(v.prerelease) == "string" then
    s = s .. "-" .. v.prerelease
  elseif v.prerelease or v.api_prerelease then
    s = s .. "-dev"
  end
  return v.build and (s .. "+" .. v.build) or s
end

function M.check()
  start("ax.nvim")
  local v = vim.version()
  if v.major == 0 and v.minor < 7 then
    err(string.format("Neovim %s: ax.nvim needs 0.7 or newer", version_string(v)))
  else
    ok("Neovim " .. version_string(v))
  end
  local config = require("ax").config
  check_exe(config.cmd[1], "the language server (inlay hints, diagnostics, hovers of the profile)", true)
  check_exe(config.ax, "the ax CLI (:AxRun, :AxProfile, the code lens commands)", true)
  check_exe(config.dap_cmd[1], "the debug adapter (nvim-dap)", false)
  if pcall(require, "dap") then
    ok("nvim-dap found: dap.adapters.ax is registered by setup()")
  else
    warn("nvim-dap not installed: debugging plugins needs it (https://github.com/mfussenegger/nvim-dap)")
  end
end

return M
