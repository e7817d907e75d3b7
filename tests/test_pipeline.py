"""The whole study on real (tiny) models: params file -> fine-tuning -> geometry engine -> probes and
statistics -> tidy tables -> export -> the real chapter notebooks, for the BERT, CamemBERT and FlauBERT
code paths. The report tests use a synthetic study; these tests run the real loader end to end."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from layerwise.inputs import data
from layerwise.measure import extract
from layerwise.model import finetune, models
from layerwise.study import pipeline
from layerwise.book import report
from layerwise.core import schema
from layerwise.inputs.config import load_params
from layerwise.core.repro import PROJECT_ROOT, is_done
from layerwise.model.testing import NUM_LAYERS, TINY_ARCHS, tiny_model_dir, write_tiny_jsonl
from book_layout import layout_problems, no_change_problems
from test_original import check_executed_chapters

STATES = {"pretrained", "finetuned", "random"}
TIDY_COLUMNS = ["model", "state", "layer", "metric", "value", "ci_low", "ci_high", "n"]
PER_LAYER = ("token_cosine_mean", "intra_similarity", "anisotropy_baseline", "cov_trace", "cov_trace_scaled",
             "norm_mean", "erank", "erank_uncentred", "isoscore", "rogue_top3_share", "token_cosine_mean_std",
             "probe_acc_cls", "probe_acc_mean", "probe_chance_acc_cls", "control_acc_cls", "selectivity_cls",
             "mdl_compression_cls", "probe_acc_seen_cls", "mdl_compression_seen_cls",
             "silhouette_cls", "centroid_angle_cls")


def _write_study(root: Path, arch: str) -> Path:
    """A params file for the tiny ``arch`` model on a local JSONL corpus, small analysis sizes."""
    data = write_tiny_jsonl(root / f"{arch}-reviews.jsonl", 80, seed=3)
    spec = {"name": f"tiny-{arch}", "title": f"Tiny {arch}",
            "model": {"id": str(tiny_model_dir(arch)), "label": f"tiny {arch}"},
            "dataset": {"source": str(data)},
            "finetune": {"num_train": 35, "num_probe": 15, "num_test": 30, "epochs": 2, "batch_size": 8, "learning_rate": 3e-3},
            "analysis": {"num_sentences": 20, "batch_size": 8, "max_length": 64, "token_sample": 64,
                         "sample_sentences": 10, "baseline_pairs": 200, "cosine_sample": 200, "probe_seeds": 2,
                         "bootstrap": 100, "seed_layers": [1, 2], "random_draws": 1}}
    if arch == "camembert":  # the original study's model: its chapters show the published figures beside ours
        spec["original_study"] = "camembert"
    path = root / "params" / f"tiny-{arch}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


#: What a run must do once at most (load the data, resolve the model, hash its weights) and the
#: expensive work a cached run must skip (train, load a model or a tokenizer, run the engine).
COUNTED = ((data, "load_raw"), (models, "resolve_model"), (models, "weights_key"), (models, "load_tokenizer"),
           (finetune, "_train"), (extract, "run_state"))


def count_calls(mp: pytest.MonkeyPatch) -> Counter:
    """Count the calls of :data:`COUNTED` (each still runs) until ``mp`` is undone."""
    calls: Counter = Counter()
    for module, name in COUNTED:
        def wrapper(*args, __f=getattr(module, name), __name=name, **kwargs):
            calls[__name] += 1
            return __f(*args, **kwargs)
        mp.setattr(module, name, wrapper)
    return calls


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """``{arch: (params path, Study)}`` computed in a fresh cache, one thread (tiny models); and the
    calls counted during the first (cold) study."""
    import torch

    root = tmp_path_factory.mktemp("pipeline")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERWISE_CACHE", str(root / "cache"))
        out = {}
        for arch in TINY_ARCHS:
            path = _write_study(root, arch)
            with pytest.MonkeyPatch.context() as counting:
                calls = count_calls(counting)
                out[arch] = (path, pipeline.load_study(path, progress=False))
            cold = calls if arch == TINY_ARCHS[0] else cold
        yield root, out, cold
    torch.set_num_threads(threads)


def metric_rows(study, metric: str, state: str | None = None):
    """Rows of the tidy table for one metric (and state), sorted by layer."""
    df = study.tidy[study.tidy.metric == metric]
    if state is not None:
        df = df[df.state == state]
    return df.sort_values(["state", "layer"]).reset_index(drop=True)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_load_study_gives_every_table(studies, arch):
    _, found, _ = studies
    _, study = found[arch]
    tidy = study.tidy
    assert list(tidy.columns) == TIDY_COLUMNS
    assert set(tidy.state) >= STATES and set(tidy.model) == {f"tiny-{arch}"}
    for metric in PER_LAYER:
        for state in STATES:
            layers = sorted(metric_rows(study, metric, state).layer)
            assert layers == list(range(NUM_LAYERS + 1)), (metric, state, layers)
    # the statistics compare the fine-tuned and random states with the pretrained one
    assert set(metric_rows(study, "test_p_holm_token_cosine").state) == {"finetuned", "random"}
    # a correlation across layers needs at least 4 layers: the tiny models have 3 hidden states, so it is
    # left out (the chapters must cope, see the last test); the demo's 7 give one per state
    assert NUM_LAYERS + 1 < 4 and metric_rows(study, "spearman_convergence_probe").empty
    # values are finite where they must be, probabilities and p-values in range
    for metric in ("erank", "isoscore", "token_cosine_mean", "cov_trace"):
        assert np.isfinite(metric_rows(study, metric).value).all(), metric
    acc = metric_rows(study, "probe_acc_cls")
    assert acc.value.between(0, 1).all() and (acc.ci_low <= acc.value + 1e-12).all()
    assert metric_rows(study, "test_p_token_cosine").value.between(0, 1).all()
    # isoscore and erank have the recorded sample size; the per-sentence table has the test sentences
    assert (metric_rows(study, "erank").n == 64).all()
    assert study.per_sentence.sentence.nunique() == 20
    assert set(study.cka.pooling) == {"cls", "mean"} and len(study.cones) > 0
    # fine-tuning metrics and the provenance of the result
    assert study.finetune["n_train"] == 35 and study.finetune["n_test"] == 30
    assert study.probe_correct.groupby(["state", "metric", "layer"]).size().eq(30).all()
    assert (metric_rows(study, "probe_acc_cls").n == 30).all() and len(study.manifest["selection"]["probe_index"]) == 15
    m = study.manifest
    assert m["selection"]["hash"] and m["versions"]["torch"] and "git_commit" in m
    assert all(is_done(Path(p)) for p in m["cache_entries"].values())


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_every_tidy_metric_is_declared_in_the_registry(studies, arch):
    """The schema registry is the list of metrics: a metric a study writes without declaring it fails."""
    _, found, _ = studies
    _, study = found[arch]
    undeclared = []
    for metric in sorted(set(study.tidy.metric)):
        try:
            spec = schema.lookup(metric)
        except KeyError:
            undeclared.append(metric)
            continue
        layers = study.tidy.loc[study.tidy.metric == metric, "layer"]
        assert (layers >= 0).all() if spec.per_layer else (layers == -1).all(), metric
    assert undeclared == []


def test_second_load_is_a_cache_hit(studies):
    root, found, _ = studies
    path, study = found["camembert"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERWISE_CACHE", str(root / "cache"))
        calls = count_calls(mp)
        t0 = time.perf_counter()
        again = pipeline.load_study(path, progress=False)
        elapsed = time.perf_counter() - t0
    assert again.key == study.key
    pd.testing.assert_frame_equal(again.tidy, study.tidy)
    assert elapsed < 10, f"a cached study took {elapsed:.1f} s to load"
    # the data is loaded and the model resolved once; nothing is trained, loaded or computed
    assert calls == Counter({"load_raw": 1, "resolve_model": 1, "weights_key": 1}), calls


def test_the_study_has_its_caveats(studies):
    """``manifest["caveats"]`` (issue 23): the five topics, JSON-ready, with the tiny study's numbers; and
    their sentences (a plain tiny BERT declares no pooling: no sentence for it)."""
    import json

    from layerwise.words.caveats import caveat_sentences

    _, found, _ = studies
    for arch, (_, study) in found.items():
        caveats = study.manifest["caveats"]
        assert set(caveats) == {"tokenizer", "first_token", "pooling", "provenance", "overlap"}, arch
        assert json.loads(json.dumps(caveats)) == caveats
        assert caveats["tokenizer"]["sentences"] == 80 and caveats["tokenizer"]["subwords_per_word"] >= 1, arch
        seed = f"finetuned@{study.params.finetune.seed}"
        assert set(caveats["first_token"]) == {"pretrained", "random", seed}, arch
        assert [r["layer"] for r in caveats["first_token"]["pretrained"]] == list(range(NUM_LAYERS + 1)), arch
        assert caveats["pooling"] is None and caveats["provenance"]["declared"] is False
        assert caveats["overlap"]["parts"] == {"train": 35, "probe": 15, "test": 30}
        assert set(caveat_sentences(study)) == {"tokenizer", "first_token", "provenance", "overlap"}, arch


def test_a_cold_run_resolves_its_inputs_once(studies):
    """The first study of the fixture: fine-tuning receives the selection and the model the
    pipeline resolved (one load of the data, one resolution and one hash of the weights)."""
    _, _, cold = studies
    assert (cold["load_raw"], cold["resolve_model"], cold["weights_key"]) == (1, 1, 1), cold
    assert cold["_train"] == 1 and cold["run_state"] == 3, cold


def test_export_writes_every_table(studies, tmp_path):
    _, found, _ = studies
    _, study = found["flaubert"]
    written = pipeline.export_tables(study, tmp_path / "tables")
    assert set(written) == set(pipeline.TABLES)
    for name, p in written.items():
        pd.testing.assert_frame_equal(pd.read_parquet(p), getattr(study, name).reset_index(drop=True))
    csv = pd.read_csv(tmp_path / "tables" / "tiny-flaubert_tidy.csv")
    assert len(csv) == len(study.tidy) and list(csv.columns) == TIDY_COLUMNS


def test_real_chapters_execute_on_real_studies(studies, tmp_path):
    """The committed chapter templates, executed by papermill with the real loader on two tiny studies
    (CamemBERT and FlauBERT, plus the comparison): no error output, every chart with HTML and SVG."""
    root, found, _ = studies
    params = [found["camembert"][0], found["flaubert"][0]]
    old = os.getcwd()
    try:
        os.chdir(tmp_path)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LAYERWISE_CACHE", str(root / "cache"))
            summary = report.run(params, out_dir=tmp_path / "report", preview=False, progress=False,
                                 chapters_dir=PROJECT_ROOT / "chapters")
    finally:
        os.chdir(old)
    notebooks = sorted((tmp_path / "report").rglob("*.ipynb"))
    names = {str(p.relative_to(tmp_path / "report")) for p in notebooks}
    assert {"tiny-camembert/geometry.ipynb", "tiny-camembert/probing.ipynb", "tiny-flaubert/geometry.ipynb",
            "tiny-flaubert/probing.ipynb", "comparison.ipynb"} <= names, names
    assert summary is not None
    charts = 0
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                assert out.get("output_type") != "error", f"{nb_path.name}: {out.get('ename')}: {out.get('evalue')}"
                data = out.get("data", {})
                assert "text/html" not in data and "application/javascript" not in data  # the mime rule
                if '{.content-visible when-format="html"}' in data.get("text/markdown", ""):
                    charts += 1
    assert charts >= 20
    # every chart fits the book's HTML text column and every table the PDF shows has at most 6 columns
    checked = [layout_problems(p) for p in notebooks]
    assert [p for problems, _, _ in checked for p in problems] == []
    assert sum(c for _, c, _ in checked) >= 20 and sum(t for _, _, t in checked) >= 5
    # "no change" is printed only for the answer model's equivalence outcome (issue 22)
    assert [p for nb_path in notebooks for p in no_change_problems(nb_path)] == []
    # the original study beside ours: shown for the tiny CamemBERT (original_study: camembert), absent without
    check_executed_chapters(tmp_path / "report" / "tiny-camembert", shown=True)
    check_executed_chapters(tmp_path / "report" / "tiny-flaubert", shown=False)
    # the params files were read as the user wrote them
    assert load_params(params[0]).name == "tiny-camembert"


# --------------------------------------------------------------------------------------------------
# several fine-tuning seeds (issue #12, part 1): one architecture, two seeds
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """A two-seed study of the tiny BERT with three random draws (cold cache; the first draw's init seed is
    also a fine-tuning seed, 3: every view must keep them apart), with the engine and training calls counted."""
    import torch

    root = tmp_path_factory.mktemp("seeds")
    path = _write_study(root, TINY_ARCHS[0])
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec["finetune"]["seeds"] = [3, 4]
    spec["analysis"]["random_draws"] = [3, 5, 6]
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERWISE_CACHE", str(root / "cache"))
        calls = count_calls(mp)
        study = pipeline.load_study(path, progress=False)
        yield path, study, calls
    torch.set_num_threads(threads)


def test_a_cold_run_records_every_phase(tmp_path):
    """``layerwise run`` on a cold cache (tiny BERT, two seeds) records the wall time of every phase
    (issue #13): fine-tuning per seed, the engine per state, similarities, probes, the chapter, the
    preview; each non-negative, the shares summing to 1; a warm rerun records no work and keeps the file."""
    import json

    import torch

    path = _write_study(tmp_path, TINY_ARCHS[0])
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec["finetune"]["seeds"] = [3, 4]
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    old = os.getcwd()
    try:
        os.chdir(tmp_path)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LAYERWISE_CACHE", str(tmp_path / "cache"))
            summary = report.run([path], out_dir=tmp_path / "report", progress=False, chapters=("geometry",),
                                 chapters_dir=PROJECT_ROOT / "chapters")
            saved = (tmp_path / "report/_layerwise/phases.json").read_text(encoding="utf-8")
            warm = report.run([path], out_dir=tmp_path / "report", progress=False, chapters=("geometry",),
                              chapters_dir=PROJECT_ROOT / "chapters")
    finally:
        os.chdir(old)
        torch.set_num_threads(threads)
    names = [r["phase"] for r in summary.phases]
    assert names[:2] == ["fine-tuning seed 3", "fine-tuning seed 4"], names
    expected = {"engine pretrained", "engine random@0", "similarities", "probes", "study files",
                f"chapter {spec['name']}/geometry", "preview", "other"}
    assert expected <= set(names) and len([n for n in names if n.startswith("engine finetuned")]) == 2, names
    assert all(r["seconds"] >= 0 for r in summary.phases)
    assert sum(r["share"] for r in summary.phases) == pytest.approx(1.0, abs=1e-3)
    assert json.loads(saved)["phases"] == summary.phases
    assert [r["phase"] for r in warm.phases] == ["other"]  # nothing computed, nothing executed
    assert (tmp_path / "report/_layerwise/phases.json").read_text(encoding="utf-8") == saved


def test_seeds_pretrained_and_random_once_each_seed_trained(two_seeds):
    _, study, calls = two_seeds
    assert calls["_train"] == 2                       # one fine-tuning per seed
    assert calls["run_state"] == 6                    # pretrained once; the fine-tuned state per seed, random per draw
    assert set(study.finetune["seeds"]) == {"3", "4"}


def test_seeds_per_seed_rows_and_the_aggregate_view(two_seeds):
    from layerwise.measure import stats

    _, study, _ = two_seeds
    assert list(study.tidy.columns) == TIDY_COLUMNS   # the chapters' view is unchanged
    seeds = study.tidy_seeds
    assert "seed" in seeds.columns and set(seeds.loc[seeds.state == "finetuned", "seed"].dropna()) == {3, 4}
    assert set(seeds["state"]) == {"finetuned", "random"}
    for metric in ("erank", "probe_acc_cls", "effect_token_cosine"):
        per = seeds[(seeds.metric == metric) & (seeds.layer == 2) & (seeds.state == "finetuned")].sort_values("seed")
        assert len(per) == 2
        agg = study.tidy[(study.tidy.metric == metric) & (study.tidy.layer == 2) & (study.tidy.state == "finetuned")]
        assert len(agg) == 1
        assert agg["value"].iloc[0] == pytest.approx(per["value"].mean())
        if metric != "effect_token_cosine":          # (effect rows: the paired test on seed means)
            se = stats.se_from_ci(per["ci_low"].to_numpy(), per["ci_high"].to_numpy())
            ci = stats.seed_sentence_interval(per["value"].to_numpy(), se)
            low, high = stats.respect_range(float(ci.estimate), float(ci.low), float(ci.high),
                                            schema.value_range(metric))          # kept in the statistic's range
            assert agg["ci_low"].iloc[0] == pytest.approx(low)
            assert agg["ci_high"].iloc[0] == pytest.approx(high)
    # pretrained: one row per layer and metric, no per-seed rows
    pre = study.tidy[(study.tidy.metric == "erank") & (study.tidy.state == "pretrained")]
    assert len(pre) == NUM_LAYERS + 1 and not (seeds.state == "pretrained").any()
    between = seeds[seeds.metric == "cka_debiased_cls_between_seeds"]
    assert len(between) == NUM_LAYERS + 1 and (between["seed"] == 3).all()
    # the other tables keep one aggregate fine-tuned view
    ps = study.per_sentence
    assert "seed" not in ps.columns and not ps.duplicated(["state", "layer", "sentence", "metric"]).any()


def test_draws_per_draw_rows_and_the_aggregate_view(two_seeds):
    """Three random draws (issue 22 item 6): every statistic, probe, similarity and class-geometry row of the
    random state exists per draw (``seed`` = the init seed, kept apart from the fine-tuning seed 3), and the
    aggregate random row is the mean over the draws with the seed-and-sentence interval."""
    from layerwise.measure import stats

    _, study, _ = two_seeds
    draws = study.tidy_seeds[study.tidy_seeds.state == "random"]
    assert set(draws["seed"]) == {3, 5, 6}
    for metric in ("erank", "token_cosine_mean", "probe_acc_cls", "mdl_compression_cls", "silhouette_cls",
                   "cka_debiased_cls_vs_pretrained", "effect_token_cosine"):
        per = draws[(draws.metric == metric) & (draws.layer == 2)].sort_values("seed")
        assert list(per["seed"]) == [3, 5, 6], metric
        agg = study.tidy[(study.tidy.metric == metric) & (study.tidy.layer == 2) & (study.tidy.state == "random")]
        assert len(agg) == 1 and agg["value"].iloc[0] == pytest.approx(per["value"].mean()), metric
        if metric not in ("effect_token_cosine", "cka_debiased_cls_vs_pretrained"):   # (no per-draw interval)
            se = stats.se_from_ci(per["ci_low"].to_numpy(), per["ci_high"].to_numpy())
            ci = stats.seed_sentence_interval(per["value"].to_numpy(), se)
            low, high = stats.respect_range(float(ci.estimate), float(ci.low), float(ci.high),
                                            schema.value_range(metric))
            assert agg["ci_low"].iloc[0] == pytest.approx(low) and agg["ci_high"].iloc[0] == pytest.approx(high)
    # the draws are different weights, and the fine-tuned seed 3 is not the random draw 3
    erank = draws[(draws.metric == "erank") & (draws.layer == NUM_LAYERS)]["value"]
    assert erank.nunique() == 3
    # no similarity between random draws; the other tables hold one aggregate random state
    assert not draws.metric.str.endswith("_between_seeds").any()
    assert set(study.cka.state_a) | set(study.cka.state_b) == STATES
    assert not study.cka.duplicated(["state_a", "state_b", "pooling", "layer_a", "layer_b"]).any()
    for table in ("cosine_sample", "rogue", "cones", "probe_correct", "per_sentence"):
        assert {"finetuned", "random"} <= set(getattr(study, table)["state"]), table
    assert study.manifest["random_draws"] == [3, 5, 6]


def test_draws_random_vs_pretrained_outcomes_count_the_draws(two_seeds):
    """Random against pretrained in the answer model: k = 3 draws, said "3 random draws"; the fine-tuned
    outcomes still count the two fine-tuning seeds (the draws never count as seeds)."""
    from layerwise.words import claims, findings, prose_outcomes, prose_probes

    _, study, _ = two_seeds
    for metric in ("token_cosine", "erank", "probe_acc_cls"):
        verdicts = [v for v in claims.seed_floor_verdicts(study.tidy_all, metric, state="random",
                                                               correct=study.probe_correct) if v.word != "not measured"]
        assert verdicts and all(v.n == 3 and v.detail["seeds"] == 3 for v in verdicts), metric
        fine = [v for v in claims.seed_floor_verdicts(study.tidy_all, metric, correct=study.probe_correct)
                if v.word != "not measured"]
        assert fine and all(v.n == 2 for v in fine), metric
    assert "3 random draws" in prose_outcomes.seed_floor_sentence(study.tidy_all, "token_cosine", "the mean token cosine",
                                                         state="random")
    probe = prose_probes.probe_paragraph(study.tidy, study.probe_correct, tidy_all=study.tidy_all)
    assert "Random weights against pretrained on the same probe, 3 random draws:" in probe
    assert "leave-one-seed-out" not in probe.split("3 random draws:")[1]
    words = [claims.outcome_label(v, "random draw") for v in verdicts]
    assert all("one random draw" not in w for w in words)
    f = findings.model_findings(study)
    assert f.seeds == 2
    assert all("(3 random draws)" in o for o in f.observations) and f.observations
    # the similarity outcomes and the seed-apart rule read the fine-tuning seeds only
    assert all(v.n == 2 for v in claims.similarity_outcomes(study.tidy_all, "cls"))


def test_one_random_draw_says_so(studies):
    """One random draw (``analysis.random_draws: 1``): the random state is that draw, said "one random draw"."""
    from layerwise.words import findings, prose_outcomes

    _, found, _ = studies
    _, study = found[TINY_ARCHS[0]]
    draws = study.tidy_seeds[study.tidy_seeds.state == "random"]
    assert set(draws["seed"]) == {study.params.analysis.seed}
    assert "one random draw" in prose_outcomes.seed_floor_sentence(study.tidy_all, "token_cosine", "the mean token cosine",
                                                          state="random")
    assert all("(one random draw)" in o for o in findings.model_findings(study).observations)


def test_seeds_floor_rule_and_prose(two_seeds, tmp_path):
    from layerwise.words import claims, prose_outcomes, prose_training

    _, study, _ = two_seeds
    text = prose_outcomes.seed_floor_sentence(study.tidy_all, "token_cosine", "the mean token cosine")
    assert "seed" in text and "not measured" not in text
    one = study.tidy_all[study.tidy_all["seed"].isna() | (study.tidy_all["seed"] == 3)]
    one = one[~one.metric.str.endswith("_between_seeds")]
    assert claims.SEED_VARIATION_NOT_MEASURED.split(" (")[0] in prose_outcomes.seed_floor_sentence(
        one, "token_cosine", "the mean token cosine")
    table = prose_training.finetune_table(study.finetune)
    assert {"seed 3", "seed 4", "mean over seeds"} <= set(table.index)


def test_seeds_old_one_seed_key_is_accepted(tmp_path):
    path = _write_study(tmp_path, TINY_ARCHS[0])
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec["finetune"]["seed"] = 7
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    params = load_params(path)
    assert params.finetune.seeds == [7] and params.finetune.seed == 7
    assert params.dataset.selection_seed == 7          # it keeps selecting its data with 7
    spec["dataset"]["selection_seed"] = 1
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    assert load_params(path).dataset.selection_seed == 1


def test_seeds_charts_draw_the_seed_band(two_seeds):
    from layerwise.book import charts

    _, study, _ = two_seeds
    frame = charts.seed_band_frame(study.tidy_all, "erank")
    ft = frame[frame.state == "finetuned"]
    per = study.tidy_seeds[(study.tidy_seeds.metric == "erank") & (study.tidy_seeds.state == "finetuned")]
    per = per.groupby("layer")["value"]
    assert (ft["seeds"] == 2).all()
    assert ft.set_index("layer")["low"].to_dict() == pytest.approx(per.min().to_dict())
    assert charts.seed_band(study.tidy_all, "erank").to_dict()["layer"]
    with_seeds = charts.similarity_floors(study.tidy_all).to_dict()["spec"]["layer"]
    # two seeds (fewer than MIN_SEEDS_FOR_BAND): null band, the pair of seeds as points, line
    assert len(with_seeds) == 3 and "pair" in str(with_seeds[1]) and with_seeds[1]["mark"]["type"] == "point"
    assert list(charts.seed_histories(study.finetune)) == ["seed 3", "seed 4"]     # every seed's training curve
    assert len(charts.similarity_floors(study.tidy).to_dict()["spec"]["layer"]) == 2
    # the random draws: averaged in every chart of the fine-tuned seeds, or drawn per draw when asked
    rnd = charts.seed_band_frame(study.tidy_all, "erank", state="random")
    assert (rnd.loc[rnd.state == "random", "seeds"] == 3).all()
    assert set(charts.seed_points(study.tidy_all, "erank", state="random")["seed"]) == {"3", "5", "6"}
    assert charts.seed_band(study.tidy_all, "erank", state="random").to_dict()["layer"]
    from layerwise.book import charts_answer

    frames = charts_answer.summary_frames(study)
    lines = frames.similarity[frames.similarity.part == "line"]
    assert not lines.duplicated(["series", "layer"]).any() and "random" in set(lines.series)
    assert frames.seeds == ["seed 3", "seed 4"] and charts_answer.summary_figure(study).to_dict()


def test_the_finetuning_plan_is_made_once_per_seed(monkeypatch):
    """The analysis key, the training on a miss and the metrics read all take each seed's plan from the
    run's inputs (:meth:`pipeline.StudyInputs.plan`): one plan per seed per run."""
    from types import SimpleNamespace

    made = []

    def plan(params, *, splits, source, device, poolings):
        made.append(params.finetune.seed)
        return SimpleNamespace(entry=Path(f"/cache/finetune/demo-{params.finetune.seed:016x}"))

    monkeypatch.setattr(pipeline, "plan_finetune", plan)
    monkeypatch.setattr(pipeline, "finetune", lambda params, progress, plan: SimpleNamespace(path=plan.entry))
    params = load_params(PROJECT_ROOT / "params" / "demo.yml")
    inputs = pipeline.StudyInputs(SimpleNamespace(selection={"hash": "h"}), SimpleNamespace(key="k"))
    key = pipeline._analysis_key(params, inputs)
    assert pipeline._analysis_key(params, inputs) == key
    for seed in params.finetune.seeds:
        assert pipeline.finetuned(params, False, inputs=inputs, seed=seed).path == inputs.plans[seed].entry
    assert sorted(made) == sorted(params.finetune.seeds)
