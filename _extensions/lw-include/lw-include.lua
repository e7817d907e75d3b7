-- {{< lw-include report/_layerwise/summary.md >}}: the Markdown text that `layerwise run` (Quarto's
-- pre-render step) wrote, read when the page is filtered.
--
-- Why not {{< include >}}: Quarto expands includes while it lists the book's inputs (to choose each
-- file's engine), BEFORE pre-render runs, so including a generated file fails on a fresh clone.
-- Shortcodes run when the page itself is rendered, after pre-render. The path is relative to the
-- project directory. A missing file stops the render with one message saying how to fix it.

local function project_dir()
  if quarto and quarto.project and quarto.project.directory then
    return quarto.project.directory
  end
  return os.getenv("QUARTO_PROJECT_DIR") or "."
end

return {
  ["lw-include"] = function(args, kwargs, meta, raw_args, context)
    if #args < 1 then
      error("lw-include: no file given. Fix: write {{< lw-include report/_layerwise/<file>.md >}}")
    end
    local rel = pandoc.utils.stringify(args[1])
    local path = pandoc.path.join({ project_dir(), rel })
    local f = io.open(path, "r")
    if f == nil then
      error("lw-include: " .. path .. " does not exist. It is written by `layerwise run`, Quarto's "
        .. "pre-render step. Fix: render the whole project (`quarto render`), or run `make report` first.")
    end
    local text = f:read("a")
    f:close()
    return pandoc.read(text, "markdown").blocks
  end
}
