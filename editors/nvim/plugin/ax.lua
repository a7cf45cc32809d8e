-- ax.nvim: user commands, defined at startup and cheap; everything else is
-- loaded on first use (require("ax") runs only when a command is invoked or
-- the user calls setup()).
if vim.g.loaded_ax then
  return
end
vim.g.loaded_ax = true

vim.api.nvim_create_user_command("AxRun", function(opts)
  require("ax").run_command(opts.fargs)
end, { nargs = "*", desc = "ax: run the plugin crate of this buffer ([METHOD [INPUT]], else a calls file)" })

vim.api.nvim_create_user_command("AxProfile", function()
  require("ax").profile()
end, { nargs = 0, desc = "ax: profile the plugin crate of this buffer (ax run --profile)" })

vim.api.nvim_create_user_command("AxFlamegraph", function()
  require("ax").flamegraph()
end, { nargs = 0, desc = "ax: draw the plugin's profile as a flame graph and open it" })

vim.api.nvim_create_user_command("AxReport", function()
  require("ax").report()
end, { nargs = 0, desc = "ax: write the plugin's HTML performance report (ax perf report) and open it" })
