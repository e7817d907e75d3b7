"""The geometry engine against a naive reference (one sentence at a time, no padding, metrics.py),
padding exclusion (FlauBERT zeroes pad rows), batch-size independence, tables and CKA between states
(layerwise.measure.similarity)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from layerwise.measure import extract, metrics, similarity
from layerwise.inputs import tokens
from layerwise.inputs.config import AnalysisSpec
from layerwise.core.errors import LayerwiseError
from layerwise.model.models import load_model
from layerwise.core.schema import PER_SENTENCE_METRICS, QUANTILES, TIDY_COLUMNS, VARIANTS
from layerwise.model.testing import tiny_model_dir, tiny_texts

MAX_LEN = 64
# varied lengths, a one-word review (one content token) and an empty one (no content token)
TEXTS = tiny_texts(9, seed=3) + ["Super", "", "Bof, pas terrible du tout, je ne le conseille à personne, vraiment pas."]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: threads only add synchronisation (20x slower on a busy 2-core machine)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models():
    out = {}
    for arch in ("bert", "camembert", "flaubert"):
        out[arch] = load_model(str(tiny_model_dir(arch)), 2)
    return out


def settings(**kw):
    base = dict(token_sample=40, sample_sentences=100, baseline_pairs=300, cosine_sample=200, seed=7, batch_size=4,
                max_length=MAX_LEN, pool_tokens=1000)
    base.update(kw)
    return AnalysisSpec(**base)


def run(model, tok, texts=TEXTS, **kw):
    geometry = kw.pop("geometry_mask", None)
    return extract.run_state(model, tok, texts, state="pretrained", model_name="tiny", geometry_mask=geometry,
                             settings=settings(**kw), progress=False)


def naive(model, tok, text):
    """Hidden states of one sentence alone (no padding): list over layers of [n, d] float64, special mask."""
    enc = tok([text], truncation=True, max_length=MAX_LEN, return_tensors="pt", return_special_tokens_mask=True)
    spec = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
    with torch.inference_mode():
        hs = model(**enc, output_hidden_states=True).hidden_states
    return [h[0].double().numpy() for h in hs], spec


def value(tidy, metric, layer):
    row = tidy[(tidy.metric == metric) & (tidy.layer == layer)]
    assert len(row) == 1, (metric, layer)
    return float(row.value.iloc[0]), int(row.n.iloc[0])


def close(a, b, tol=1e-4):
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol * max(1.0, abs(b))


@pytest.mark.parametrize("arch", ["bert", "camembert", "flaubert"])
def test_engine_equals_naive_reference(models, arch):
    model, tok = models[arch]
    res = run(model, tok)
    ref = [naive(model, tok, t) for t in TEXTS]
    L1 = len(ref[0][0])
    ps = res.per_sentence.set_index(["sentence", "layer", "metric"]).value
    pooled = {v: [[] for _ in range(L1)] for v in VARIANTS}
    norms = {v: [[] for _ in range(L1)] for v in VARIANTS}
    for s, (hs, spec) in enumerate(ref):
        for layer, X in enumerate(hs):
            for v, keep in (("", np.ones(len(spec), bool)), ("_content", ~spec)):
                Y = X[keep]
                norms[v][layer].extend(np.linalg.norm(Y, axis=1))
                if len(Y) >= 2:
                    c = metrics.pairwise_cosines_upper(Y)
                    pooled[v][layer].extend(c)
                    assert ps[(s, layer, f"token_cosine{v}")] == pytest.approx(c.mean(), abs=1e-5)
                    assert ps[(s, layer, f"token_cosine_var{v}")] == pytest.approx(c.var(), abs=1e-5)
                    assert ps[(s, layer, f"cov_trace{v}")] == pytest.approx(metrics.cov_trace(Y), rel=1e-4)
                    assert ps[(s, layer, f"cov_trace_scaled{v}")] == pytest.approx(metrics.cov_trace_scaled(Y), abs=1e-5)
                else:
                    assert np.isnan(ps[(s, layer, f"token_cosine{v}")])
                    assert np.isnan(ps[(s, layer, f"cov_trace{v}")])
                expected_intra = metrics.intra_similarity(Y) if len(Y) else np.nan
                assert close(ps[(s, layer, f"intra_similarity{v}")], expected_intra, 1e-5)
            np.testing.assert_allclose(res.pooled["cls"][s, layer], X[0], rtol=2e-3, atol=2e-3)
            np.testing.assert_allclose(res.pooled["mean"][s, layer], X.mean(0), rtol=2e-3, atol=2e-3)
    for layer in range(L1):
        for v in VARIANTS:
            vals = np.sort(np.asarray(pooled[v][layer]))
            mean, n = value(res.tidy, f"token_cosine_mean{v}", layer)
            assert n == len(vals) and mean == pytest.approx(vals.mean(), abs=1e-5)
            assert value(res.tidy, f"token_cosine_min{v}", layer)[0] == pytest.approx(vals[0], abs=1e-5)
            assert value(res.tidy, f"token_cosine_max{v}", layer)[0] == pytest.approx(vals[-1], abs=1e-5)
            assert value(res.tidy, f"norm_mean{v}", layer)[0] == pytest.approx(np.mean(norms[v][layer]), rel=1e-5)
            w = 2 / AnalysisSpec().hist_bins + 1e-5
            for name, q in QUANTILES.items():
                got = value(res.tidy, f"token_cosine_{name}{v}", layer)[0]
                k = q * len(vals)  # the histogram quantile lies between the order statistics around rank qN
                lo, hi = vals[max(int(np.floor(k)) - 1, 0)], vals[min(int(np.ceil(k)), len(vals) - 1)]
                assert lo - w <= got <= hi + w, (name, got, lo, hi)
    # the cosine sample holds true within-sentence pair values
    cs = res.cosine_sample
    assert len(cs) == L1 * 200 and set(cs.layer) == set(range(L1))
    for r in cs.sample(40, random_state=0).itertuples():
        X = ref[r.sentence][0][r.layer]
        assert r.i < r.j and r.value == pytest.approx(metrics.cosine_matrix(X)[r.i, r.j], abs=1e-5)
        assert r.content == (not (ref[r.sentence][1][r.i] or ref[r.sentence][1][r.j]))


def test_sampled_statistics_equal_naive_on_the_same_sample(models):
    """Token sample (erank, IsoScore), anisotropy baseline, rogue dimensions and standardised cosines,
    recomputed from the naive hidden states with the engine's (seeded, batch-independent) plan."""
    model, tok = models["bert"]
    res = run(model, tok)
    ref = [naive(model, tok, t) for t in TEXTS]
    lengths = np.array([len(s) for _, s in ref])
    plan = extract.plan_samples(lengths, [s for _, s in ref], np.ones(len(TEXTS), bool), settings())
    grouped = np.arange(len(plan.pool_sentence)) < (plan.pool_index >= 0).sum()
    assert grouped.sum() == lengths.sum()  # pool_tokens=1000: every token is in the pool
    # the baseline tokens: uniform over all tokens (here all of them, each once), after the grouped rows
    uniform = set(zip(plan.pool_sentence[~grouped], plan.pool_token[~grouped]))
    assert len(uniform) == (~grouped).sum() == lengths.sum()
    for layer in range(len(ref[0][0])):
        pool = np.stack([ref[s][0][layer][t] for s, t in zip(plan.pool_sentence, plan.pool_token)])
        for v in VARIANTS:
            X = pool[plan.token_sample[v]]
            assert value(res.tidy, f"erank{v}", layer) == (pytest.approx(metrics.effective_rank(X), rel=1e-5), len(X))
            assert value(res.tidy, f"erank_uncentred{v}", layer)[0] == pytest.approx(
                metrics.effective_rank(X, centre=False), rel=1e-5)
            assert value(res.tidy, f"isoscore{v}", layer)[0] == pytest.approx(metrics.isoscore(X), abs=1e-5)
            a, b = plan.baseline_pairs[v]
            assert len(a) == 300 and np.all(plan.pool_sentence[a] != plan.pool_sentence[b])
            base = metrics.paired_cosines(pool[a], pool[b]).mean()
            assert value(res.tidy, f"anisotropy_baseline{v}", layer)[0] == pytest.approx(base, abs=1e-5)
            tc = value(res.tidy, f"token_cosine_mean{v}", layer)[0]
            assert value(res.tidy, f"token_cosine_adjusted{v}", layer)[0] == pytest.approx(tc - base, abs=1e-5)
            cc = metrics.cosine_contributions(pool[a], pool[b])
            top3 = np.sort(cc)[::-1][:3].sum() / cc.sum()
            assert value(res.tidy, f"rogue_top3_share{v}", layer)[0] == pytest.approx(top3, abs=1e-4)
            if v == "":
                rg = res.rogue[res.rogue.layer == layer].sort_values("rank")
                assert rg.dim.iloc[0] == int(np.argmax(cc))
                np.testing.assert_allclose(rg.contribution, np.sort(cc)[::-1][: len(rg)], atol=1e-6)
            # standardisation with mean / sd (ddof 0) over every token of the variant
            keep = grouped & (True if v == "" else ~plan.pool_special)
            tokens = pool[keep]
            Z = metrics.standardise(pool, tokens.mean(0), tokens.std(0))
            zb = metrics.paired_cosines(Z[a], Z[b]).mean()
            assert value(res.tidy, f"anisotropy_baseline_std{v}", layer)[0] == pytest.approx(zb, abs=1e-4)
            within = []
            for s in range(len(TEXTS)):
                rows = np.flatnonzero((plan.pool_sentence == s) & keep)
                if len(rows) >= 2:
                    within.extend(metrics.pairwise_cosines_upper(Z[rows]))
            assert value(res.tidy, f"token_cosine_mean_std{v}", layer)[0] == pytest.approx(np.mean(within), abs=1e-4)


def test_flaubert_padding_never_enters_a_statistic(models):
    model, tok = models["flaubert"]
    short, long1, long2 = "Bof.", TEXTS[0] + " " + TEXTS[1], TEXTS[2] + " " + TEXTS[3]
    # the fixture is meaningful: FlauBERT's pad rows are exact zero vectors
    enc = tok([short, long1], padding=True, return_tensors="pt")
    assert (enc["attention_mask"][0] == 0).sum() > 5
    with torch.inference_mode():
        hs = model(**enc, output_hidden_states=True).hidden_states
    pad = enc["attention_mask"][0] == 0
    assert all(torch.all(h[0][pad] == 0) for h in hs[1:])
    alone = run(model, tok, [short], batch_size=8)
    batched = run(model, tok, [long1, short, long2], geometry_mask=np.array([False, True, False]), batch_size=8)
    batched_all = run(model, tok, [long1, short, long2], batch_size=8)
    a = alone.per_sentence.drop(columns="sentence").reset_index(drop=True)
    for res in (batched, batched_all):
        b = res.per_sentence[res.per_sentence.sentence == 1].drop(columns="sentence").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(res.pooled["cls"][1].astype(float), alone.pooled["cls"][0].astype(float), atol=2e-3, rtol=2e-3)
        np.testing.assert_allclose(res.pooled["mean"][1].astype(float), alone.pooled["mean"][0].astype(float), atol=2e-3, rtol=2e-3)
    # with only the short sentence in the geometry, every token statistic is the same as alone
    ta = alone.tidy.set_index(["layer", "metric"]).value
    tb = batched.tidy.set_index(["layer", "metric"]).value
    assert set(ta.index) == set(tb.index)
    for key in ta.index:
        assert close(ta[key], tb[key], 1e-4), key


def test_zero_vector_at_a_valid_token_is_refused(models):
    inner, tok = models["bert"]

    class ZeroSecondToken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, **kw):
            hs = list(self.inner(**kw).hidden_states)
            hs[1] = hs[1].clone()
            hs[1][:, 1] = 0
            return SimpleNamespace(hidden_states=tuple(hs))

    with pytest.raises(LayerwiseError, match="zero hidden vector"):
        run(ZeroSecondToken(), tok, TEXTS[:3])
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()  # the batch loop was closed


def test_same_results_whatever_the_batch_size(models):
    model, tok = models["camembert"]
    texts = TEXTS + tiny_texts(10, seed=11)
    kw = dict(pool_tokens=6, sample_sentences=8, token_sample=30)
    results = [run(model, tok, texts, batch_size=b, **kw) for b in (1, 5, 32)]
    ref = results[0]
    for res in results[1:]:
        for name in ("tidy", "per_sentence", "cosine_sample"):
            x, y = getattr(ref, name), getattr(res, name)
            pd.testing.assert_frame_equal(x, y, atol=1e-4, rtol=1e-4, check_exact=False)
        pd.testing.assert_frame_equal(ref.rogue.drop(columns="dim"), res.rogue.drop(columns="dim"), atol=1e-4)
        np.testing.assert_allclose(ref.pooled["cls"].astype(float), res.pooled["cls"].astype(float), atol=2e-3, rtol=2e-3)
        np.testing.assert_allclose(ref.pooled["mean"].astype(float), res.pooled["mean"].astype(float), atol=2e-3, rtol=2e-3)


def test_geometry_mask_and_table_schema(models):
    model, tok = models["bert"]
    geometry = np.zeros(len(TEXTS), bool)
    geometry[[0, 2, 3, 5, 7]] = True
    res = run(model, tok, geometry_mask=geometry)
    L1 = res.pooled["cls"].shape[1]
    assert res.pooled["cls"].shape == res.pooled["mean"].shape == (len(TEXTS), L1, 32) and res.pooled["cls"].dtype == np.float16
    assert np.all(np.abs(res.pooled["cls"].astype(float)).sum((1, 2)) > 0)  # every sentence has embeddings
    assert set(res.per_sentence.sentence) == {0, 2, 3, 5, 7}
    assert set(res.per_sentence.metric) == {m + v for m in PER_SENTENCE_METRICS for v in VARIANTS}
    assert set(res.cosine_sample.sentence) <= {0, 2, 3, 5, 7}
    t = res.tidy
    assert list(t.columns) == TIDY_COLUMNS
    assert t.layer.dtype == np.int64 and t.n.dtype == np.int64 and t.value.dtype == np.float64
    assert set(t.layer) == set(range(L1)) and set(t.state) == {"pretrained"} and set(t.model) == {"tiny"}
    names = {"token_cosine_mean", "token_cosine_q05", "token_cosine_q25", "token_cosine_q50", "token_cosine_q75",
             "token_cosine_q95", "token_cosine_min", "token_cosine_max", "token_cosine_var_mean", "intra_similarity",
             "anisotropy_baseline", "token_cosine_adjusted", "intra_similarity_adjusted", "cov_trace",
             "cov_trace_scaled", "norm_mean", "erank", "erank_uncentred", "isoscore", "rogue_top3_share",
             "token_cosine_mean_std", "anisotropy_baseline_std"}
    for name in names:
        for v in VARIANTS:
            assert len(t[t.metric == name + v]) == L1, name + v
    assert value(t, "intra_similarity", 0)[1] == 5
    assert value(t, "erank", 0)[1] == 40  # token_sample, recorded as n
    assert list(res.rogue.columns) == ["model", "state", "layer", "rank", "dim", "contribution", "share"]
    # a sentence outside the geometry still gets the right embeddings
    hs, _ = naive(model, tok, TEXTS[1])
    np.testing.assert_allclose(res.pooled["mean"][1, -1], hs[-1].mean(0), atol=2e-3, rtol=2e-3)


def test_plan_is_seeded_and_bounded():
    lengths = np.array([5, 40, 12, 3, 60, 8])
    special = [np.r_[True, np.zeros(n - 2, bool), True] for n in lengths]
    s = settings(cosine_sample=50, sample_sentences=3, pool_tokens=4, token_sample=10)
    p1 = extract.plan_samples(lengths, special, np.ones(6, bool), s)
    p2 = extract.plan_samples(lengths, special, np.ones(6, bool), s)
    np.testing.assert_array_equal(p1.cosine_sentence, p2.cosine_sentence)
    np.testing.assert_array_equal(p1.token_sample[""], p2.token_sample[""])
    grouped = p1.pool_index[p1.pool_index >= 0]
    assert len(np.unique(p1.pool_sentence[grouped])) == 3 and len(grouped) <= 12 and len(p1.token_sample[""]) == 10
    assert set(p1.token_sample[""]) <= set(grouped)
    pairs = set(zip(p1.cosine_sentence, p1.cosine_i, p1.cosine_j))
    assert len(pairs) == 50 and all(i < j < lengths[s_] for s_, i, j in pairs)  # without replacement
    # baseline tokens: drawn uniformly over the 128 tokens (not per sentence), split into independent draws
    p4 = extract.plan_samples(lengths, special, np.ones(6, bool), settings(baseline_tokens=64, baseline_pairs=200))
    first = (p4.pool_index >= 0).sum()
    tokens = list(zip(p4.pool_sentence[first:], p4.pool_token[first:]))
    assert len(tokens) == len(set(tokens)) == 64
    assert np.sum(p4.pool_sentence[first:] == 4) > np.sum(p4.pool_sentence[first:] == 0) + 10  # 60 vs 5 tokens
    a, b = p4.baseline_pairs[""]
    assert len(a) == 200 and set(p4.baseline_draw[""]) == set(range(3))  # 64 tokens: 3 draws of >= 20
    assert np.all(p4.pool_sentence[a] != p4.pool_sentence[b]) and np.all(a >= first) and np.all(b >= first)
    p3 = extract.plan_samples(lengths, special, np.ones(6, bool), settings(cosine_sample=50, seed=8))
    assert not np.array_equal(p1.cosine_sentence, p3.cosine_sentence) or not np.array_equal(p1.cosine_i, p3.cosine_i)


def test_cka_between_states(models):
    model, tok = models["bert"]
    rnd, _ = load_model(str(tiny_model_dir("bert")), 2, state="random", seed=3)
    pre = run(model, tok)
    ran = extract.run_state(rnd, tok, TEXTS, state="random", model_name="tiny", settings=settings(), progress=False)
    emb = {"pretrained": {"cls": pre.pooled["cls"], "mean": pre.pooled["mean"]}, "random": {"cls": ran.pooled["cls"], "mean": ran.pooled["mean"]},
           "finetuned": {"cls": pre.pooled["cls"], "mean": pre.pooled["mean"]}}
    tidy, cka = similarity.cka_between_states(emb, "tiny", n_permutations=20, procrustes_permutations=5)
    L1 = pre.pooled["cls"].shape[1]
    assert list(tidy.columns) == TIDY_COLUMNS
    assert {"cka_cls_vs_pretrained", "cka_mean_vs_pretrained", "cka_debiased_cls_vs_pretrained"} <= set(tidy.metric)
    tidy = tidy[tidy.metric.isin(["cka_cls_vs_pretrained", "cka_mean_vs_pretrained"])]  # the floor rows: test_similarity_floors
    assert set(tidy.state) == {"random", "finetuned"} and len(tidy) == 2 * 2 * L1
    same = tidy[tidy.state == "finetuned"].set_index(["metric", "layer"]).value
    # the first token at layer 0 is the same vector for every sentence: no variance, CKA undefined
    assert np.isnan(same[("cka_cls_vs_pretrained", 0)])
    assert np.allclose(same.drop(("cka_cls_vs_pretrained", 0)), 1.0)
    assert set(tidy.n) == {len(TEXTS)}
    assert list(cka.columns) == ["model", "pooling", "state_a", "state_b", "layer_a", "layer_b", "value"]
    # 6 unordered state pairs (within-state included) x 2 poolings x (L+1)^2
    assert len(cka) == 6 * 2 * L1 * L1
    within = cka[(cka.state_a == "pretrained") & (cka.state_b == "pretrained") & (cka.layer_a == cka.layer_b)]
    assert np.allclose(within[~((within.pooling == "cls") & (within.layer_a == 0))].value, 1.0)
    row = cka[(cka.pooling == "mean") & (cka.state_a == "pretrained") & (cka.state_b == "random")
              & (cka.layer_a == 1) & (cka.layer_b == 2)]
    expected = metrics.linear_cka(pre.pooled["mean"][:, 1].astype(float), ran.pooled["mean"][:, 2].astype(float))
    assert float(row.value.iloc[0]) == pytest.approx(expected, abs=1e-9)
    got = tidy[(tidy.state == "random") & (tidy.metric == "cka_cls_vs_pretrained") & (tidy.layer == 2)].value.iloc[0]
    assert got == pytest.approx(metrics.linear_cka(pre.pooled["cls"][:, 2].astype(float), ran.pooled["cls"][:, 2].astype(float)))


def test_bad_inputs_are_clear_errors(models):
    model, tok = models["bert"]
    with pytest.raises(LayerwiseError, match="no sentences"):
        run(model, tok, [])
    with pytest.raises(LayerwiseError, match="geometry_mask"):
        run(model, tok, TEXTS[:3], geometry_mask=np.ones(2, bool))
    with pytest.raises(LayerwiseError, match="not a string"):
        run(model, tok, ["ok", None])
    with pytest.raises(ValueError, match="token_sample"):
        settings(token_sample=1)  # AnalysisSpec validates the engine settings
    with pytest.raises(ValueError, match="hist_bins"):
        settings(hist_bins=8)


@pytest.mark.parametrize("arch", ["bert", "camembert", "flaubert"])
def test_batches_are_padded_as_the_tokenizer_pads(models, arch):
    _, tok = models[arch]
    texts = TEXTS[:4]
    enc = tokens.encode(tok, texts, MAX_LEN)
    inputs, spec = extract._collate(tok, enc, np.arange(4))
    ref = tok(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt",
              return_special_tokens_mask=True)
    assert set(inputs) == set(ref) - {"special_tokens_mask"}
    for k, v in inputs.items():
        assert torch.equal(v, ref[k]), k
    valid = ref["attention_mask"].bool()
    assert torch.equal(spec[valid], ref["special_tokens_mask"].bool()[valid])


def test_truncation_follows_the_model_limits(models):
    cfg = SimpleNamespace(max_position_embeddings=514, model_type="camembert", pad_token_id=1)
    assert tokens.effective_max_length(SimpleNamespace(model_max_length=int(1e30)), 1000, cfg) == 512
    assert tokens.effective_max_length(SimpleNamespace(model_max_length=128), 512, cfg) == 128
    assert tokens.effective_max_length(SimpleNamespace(), 64) == 64
    model, tok = models["bert"]  # 128 positions: a long review is truncated, not an index error
    res = run(model, tok, [" ".join(TEXTS * 3), TEXTS[0]], max_length=512)
    assert res.info["max_length"] == 128
    assert res.per_sentence[(res.per_sentence.metric == "token_cosine")].value.notna().all()


def test_run_state_iterates_forward_batches(models, monkeypatch):
    """One batch loop: run_state consumes forward_batches, which visits every text once."""
    model, tok = models["bert"]
    seen = []
    original = extract.forward_batches

    def spy(*args, **kwargs):
        for batch in original(*args, **kwargs):
            seen.extend(batch[0])
            yield batch

    monkeypatch.setattr(extract, "forward_batches", spy)
    res = run(model, tok, batch_size=3)
    assert sorted(seen) == list(range(len(TEXTS))) and res.info["n_batches"] == -(-len(TEXTS) // 3)


@pytest.mark.parametrize("arch", ["bert", "camembert", "flaubert"])
def test_self_similarity_equals_naive_reference(models, arch):
    """Self-similarity (Ethayarajh 2019) from the engine's single pass equals metrics.self_similarity on
    word vectors (mean of subword vectors) of sentences run alone; words are the tokenizer's groups
    (word_ids() for BERT and CamemBERT, </w> markers for FlauBERT's slow tokenizer)."""
    from layerwise.inputs import tokens

    model, tok = models[arch]
    texts = tiny_texts(30, seed=5)
    kw = dict(self_similarity_min_count=3, self_similarity_occurrences=4, self_similarity_words=15)
    res = run(model, tok, texts, batch_size=7, **kw)
    enc = tokens.encode(tok, texts, MAX_LEN)
    plan = extract.plan_samples(enc.lengths, enc.special, np.ones(len(texts), bool), settings(**kw), enc.words, enc.ids)
    words = plan.words
    assert 0 < len(words.keys) <= 15 and np.bincount(words.word).max() <= 4
    assert all(len(set(words.sentence[words.word == w])) == np.sum(words.word == w) >= 3 for w in range(len(words.keys)))
    if arch == "flaubert":  # a word is BPE tokens up to the one that ends with </w>
        for w_ids in words.keys:
            pieces = tok.convert_ids_to_tokens(list(w_ids))
            assert pieces[-1].endswith("</w>") and not any(p.endswith("</w>") for p in pieces[:-1])
    ref = {s: naive(model, tok, texts[s])[0] for s in set(words.sentence)}
    for layer in range(res.pooled["cls"].shape[1]):
        per_word = []
        for w in range(len(words.keys)):
            rows = np.flatnonzero(words.word == w)
            X = np.stack([metrics.word_vector(ref[words.sentence[r]][layer], words.positions[r][words.positions[r] >= 0])
                          for r in rows])
            per_word.append(metrics.self_similarity(X, words.sentence[rows]))
        got, n = value(res.tidy, "self_similarity", layer)
        assert n == len(per_word) and got == pytest.approx(np.mean(per_word), abs=1e-5)
        base = value(res.tidy, "anisotropy_baseline_content", layer)[0]
        assert value(res.tidy, "self_similarity_adjusted", layer)[0] == pytest.approx(got - base, abs=1e-6)
