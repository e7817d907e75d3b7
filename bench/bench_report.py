"""Benchmark of the report step (``layerwise.book.report`` / ``charts`` / ``preview``), side by side in one run.

1. Chart output size per chapter: our bundle (vega libraries inlined once per notebook + SVG) against
   Altair's offline alternative ``alt.renderers.enable("html", template="inline")`` (libraries inlined
   in every chart), for the geometry chapter's charts.
2. Time to draw the SVG of each chart (vl-convert), the JS bundle once.
3. ``report.run`` on a synthetic study (the tables of a 7-layer model: the demo's depth): all chapters
   executed (``force=True``) against a run where nothing changed (every notebook skipped), and the
   preview build.
4. With ``--real``: ``layerwise run --params params/demo.yml`` (the README's ``make report``), twice:
   the first run computes whatever the caches lack (cold if the cache is empty), the second must skip
   everything (< 60 s is the acceptance).

   ``--cold`` runs the first one in a fresh empty cache (what a fresh clone does).

Run:  python bench/bench_report.py [--real [--cold]]     Results: bench/RESULTS-report.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

import altair as alt  # noqa: E402

from layerwise.book import charts, report  # noqa: E402
from layerwise.words import prose_outcomes# noqa: E402
from report_fakes import fake_study, load_fake_study, write_params  # noqa: E402


def geometry_charts(s):
    t = s.tidy
    return [charts.token_cosine_boxes(t), charts.token_cosine_boxes(t, "_content"),
            charts.per_sentence_boxes(s.per_sentence, "token_cosine_var"), charts.cosine_histograms(s.cosine_sample),
            charts.layer_lines(t, {"token_cosine_mean": "a", "anisotropy_baseline": "b", "token_cosine_adjusted": "c"},
                               title="x", dash="metric"),
            charts.layer_lines(t, {"intra_similarity": "a", "intra_similarity_adjusted": "b"}, title="x",
                               dash="metric"),
            charts.layer_lines(t, "rogue_top3_share", title="x"), charts.rogue_dims(s.rogue),
            charts.layer_lines(t, {"token_cosine_mean": "a", "token_cosine_mean_std": "b"}, title="x", dash="metric"),
            charts.per_sentence_boxes(s.per_sentence, "cov_trace"),
            charts.layer_lines(t, {"cov_trace": "a", "cov_trace_scaled": "b"}, title="x"),
            charts.layer_lines(t, "norm_mean", title="x"),
            charts.layer_lines(t, {"erank": "a", "erank_uncentred": "b"}, title="x", dash="metric"),
            charts.layer_lines(t, "isoscore", title="x"), charts.cka_heatmap(s.cka),
            charts.layer_lines(t, {"cka_cls_vs_pretrained": "a", "cka_mean_vs_pretrained": "b"}, title="x",
                               dash="metric"),
            charts.effect_heatmap(t, marks=prose_outcomes.effect_marks(t)[0], key="marks")]


def sizes(s) -> tuple[list[str], dict]:
    cs = geometry_charts(s)
    charts.reset_library()
    t0 = time.perf_counter()
    js = charts.javascript_bundle()
    t_js = time.perf_counter() - t0
    ours, svg_times = 0, []
    for c in cs:
        t0 = time.perf_counter()
        b = charts.mimebundle(c)
        svg_times.append(time.perf_counter() - t0)
        ours += len(b["text/html"]) + len(b["image/svg+xml"])
    alt.renderers.enable("html", template="inline")
    try:
        inline = 0
        for c in cs:
            b = c._repr_mimebundle_()
            b = b[0] if isinstance(b, tuple) else b
            inline += len(b["text/html"])
    finally:
        alt.renderers.enable("default")
    rows = [f"| charts in the geometry chapter | {len(cs)} |",
            f"| our outputs (HTML, libraries once + SVG per chart) | {ours / 1e6:.2f} MB |",
            f"| Altair `html` renderer, `template=\"inline\"` (libraries in every chart, no SVG) "
            f"| {inline / 1e6:.2f} MB |",
            f"| vega + vega-lite + vega-embed bundle (once per chapter) | {len(js) / 1e6:.2f} MB |",
            f"| JS bundle from vl-convert (first call) | {t_js:.2f} s |",
            f"| one chart: spec + SVG + HTML, median (max) | {sorted(svg_times)[len(svg_times) // 2]:.3f} s "
            f"({max(svg_times[1:] or svg_times):.3f} s) |"]
    return rows, {"ours": ours, "inline": inline}


def run_synthetic(tmp: Path) -> list[str]:
    params = write_params(tmp / "params", "bench", "Bench model")
    old = os.getcwd()
    os.chdir(tmp)
    try:
        kw = dict(out_dir=Path("report"), load_study=load_fake_study, progress=False)
        t0 = time.perf_counter()
        s1 = report.run([params], force=True, preview=False, **kw)
        t_force = time.perf_counter() - t0
        t0 = time.perf_counter()
        s2 = report.run([params], preview=False, **kw)
        t_skip = time.perf_counter() - t0
        from layerwise.book.preview import build_preview

        t0 = time.perf_counter()
        build_preview(tmp / "report")
        t_prev = time.perf_counter() - t0
        nb_sizes = {p.relative_to(tmp / "report").as_posix(): p.stat().st_size for p in s1.executed}
    finally:
        os.chdir(old)
    rows = [f"| execute every chapter (`force=True`, {len(s1.executed)} notebooks) | {t_force:.1f} s "
            f"({t_force / len(s1.executed):.1f} s per notebook) |",
            f"| nothing changed ({len(s2.skipped)} notebooks skipped) | {t_skip:.2f} s |",
            f"| HTML preview (nbconvert, {len(s1.executed)} pages + index) | {t_prev:.2f} s |"]
    rows += [f"| size of `{k}` | {v / 1e6:.2f} MB |" for k, v in nb_sizes.items()]
    return rows


def run_real(cold: bool) -> list[str]:
    """Time ``layerwise run --params params/demo.yml`` twice (``cold``: in a fresh, empty cache and a
    fresh output folder)."""
    rows = []
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    out = "report"
    tmp = None
    if cold:
        tmp = tempfile.mkdtemp(prefix="lw-bench-")
        env["LAYERWISE_CACHE"] = str(Path(tmp) / "cache")
        out = str(Path(tmp) / "report")
    exe = [sys.executable, "-m", "layerwise.cli", "run", "--params", "params/demo.yml", "--out", out]
    first = "first run, empty cache (cold)" if cold else "first run (computes what the cache lacks)"
    for label in (first, "second run (nothing changed)"):
        t0 = time.perf_counter()
        res = subprocess.run(exe, cwd=ROOT, capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t0
        status = "ok" if res.returncode == 0 else f"FAILED: {res.stderr.strip().splitlines()[-1:]}"
        rows.append(f"| `layerwise run --params params/demo.yml`, {label} | {dt:.1f} s ({status}) |")
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="also time the real demo run (minutes when the cache is cold)")
    ap.add_argument("--cold", action="store_true", help="with --real: start from an empty cache (a fresh clone)")
    args = ap.parse_args()
    s = fake_study(n_layers=7)
    size_rows, _ = sizes(s)
    with tempfile.TemporaryDirectory() as tmp:
        run_rows = run_synthetic(Path(tmp))
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    real_rows = run_real(args.cold) if args.real else []
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = ["## report", "",
            f"`python bench/bench_report.py{' --real' if args.real else ''}{' --cold' if args.cold else ''}` on {platform.platform()}, "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs. Synthetic study: the tables of a "
            "7-layer model (the demo's depth) from `tests/report_fakes.py`; chapter execution is dominated by "
            "kernel start-up, imports and one SVG per chart, not by the data size.", "",
            "### Chart outputs (geometry chapter)", "", "| measure | value |", "|---|---|", *size_rows, "",
            "### Chapter execution (papermill) and preview", "", "| measure | value |", "|---|---|", *run_rows, ""]
    if real_rows:
        text += ["### The demo report (`make report`)", "",
                 f"Machine load average (1 min) {load_before:.1f} before and {load_after:.1f} after: other "
                 "processes share the CPUs, so these are upper bounds of the time on an idle machine.", "",
                 "| measure | value |", "|---|---|", *real_rows, ""]
    out = HERE / "RESULTS-report.md"
    out.write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
