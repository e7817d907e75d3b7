"""Claim-first paragraphs of layerwise.words.prose_geometry and the rules they rest on (claims.null_verdict,
claims.correlation_verdict): known answers on small tables, each assertion one a wrong rule would fail."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layerwise.words import claims, prose_geometry, prose_similarity


def _row(state, metric, layer, value, low=np.nan, high=np.nan, n=100, seed=None):
    return dict(model="m", state=state, layer=layer, metric=metric, value=value, ci_low=low, ci_high=high, n=n,
                seed=seed)


def _frame(rows):
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype("Int64")
    return df


def test_null_verdict_known_answers():
    obs = pd.DataFrame([_row("finetuned", "silhouette_cls", 6, 0.25, 0.2, 0.3)])
    null = pd.DataFrame([_row("finetuned", "silhouette_perm_cls", 6, 0.0, -0.01, 0.013)])
    v = claims.null_verdict(obs, null)
    assert v.word == "above chance" and v.detail["null_upper"] == 0.013 and v.detail["layer"] == 6
    inside = pd.DataFrame([_row("finetuned", "silhouette_cls", 6, 0.01, 0.0, 0.02)])
    assert claims.null_verdict(inside, null).word == "at chance"          # below the null's 97.5th percentile
    assert claims.null_verdict(obs, null.iloc[0:0]).word == "not measured"
    tidy = pd.concat([obs, null, inside.assign(layer=5), null.assign(layer=5)], ignore_index=True)
    words = {v.detail["layer"]: v.word for v in claims.null_verdicts(tidy, "silhouette_cls", "silhouette_perm_cls",
                                                                      "finetuned")}
    assert words == {5: "at chance", 6: "above chance"}


def test_correlation_verdict_known_answers():
    def one(v, lo, hi):
        return claims.correlation_verdict(pd.DataFrame([_row("finetuned", "rho", -1, v, lo, hi, n=7)]))
    assert one(0.89, 0.27, 0.99).word == "significant"
    assert one(-0.9, -0.99, -0.3).word == "significant"
    assert one(0.6, -0.1, 0.9).word == "not significant"                  # interval covers 0
    assert one(0.6, np.nan, np.nan).word == "not measured"
    assert one(0.89, 0.27, 0.99).n == 7


def _silhouette_study(seed_values):
    """pretrained silhouette inside its null at every layer; finetuned above it; per-seed finetuned rows."""
    rows = []
    for layer in range(3):
        rows += [_row("pretrained", "silhouette_cls", layer, 0.001, -0.002, 0.004),
                 _row("pretrained", "silhouette_perm_cls", layer, 0.0, -0.005, 0.005),
                 _row("finetuned", "silhouette_cls", layer, 0.1 * layer, 0.1 * layer - 0.01, 0.1 * layer + 0.01),
                 _row("finetuned", "silhouette_perm_cls", layer, 0.0, -0.005, 0.005),
                 _row("finetuned", "centroid_angle_cls", layer, 10.0 * layer)]
        rows += [_row("finetuned", "silhouette_cls", layer, v(layer), v(layer) - 0.01, v(layer) + 0.01, seed=s)
                 for s, v in seed_values.items()]
    return _frame(rows)


def test_class_geometry_paragraph_chance_and_seed_floor():
    consistent = {42: lambda l: 0.1 * l, 43: lambda l: 0.1 * l + 0.002, 44: lambda l: 0.1 * l - 0.002}
    tidy_all = _silhouette_study(consistent)
    tidy = tidy_all[tidy_all["seed"].isna()]
    text = prose_geometry.class_geometry_paragraph(tidy, "cls", tidy_all=tidy_all)
    assert "at no layer in pretrained" in text                           # inside its permuted-label null
    assert "at layers 1, 2 in finetuned" in text                         # layer 0 (0.0) is not above 0.005
    assert "across 3 fine-tuning seeds: changed at layers 1, 2" in text     # 0.1, 0.2 against delta 0.05
    assert "finetuned 20.0°" in text
    # the same mean with seeds that disagree in sign: not a change beyond the seed floor
    spread = {42: lambda l: 0.6 * l, 43: lambda l: -0.3 * l, 44: lambda l: 0.0}
    tidy_all = _silhouette_study(spread)
    text = prose_geometry.class_geometry_paragraph(tidy_all[tidy_all["seed"].isna()], "cls", tidy_all=tidy_all)
    assert "not established with 3 seeds at layers 1, 2" in text.lower() and "changed at" not in text


def test_convergence_paragraph_groups_by_verdict():
    tidy = pd.DataFrame([_row("pretrained", "spearman_convergence_probe", -1, -0.07, -0.78, 0.72, n=7),
                         _row("finetuned", "spearman_convergence_probe", -1, 0.89, 0.27, 0.99, n=7),
                         _row("random", "spearman_convergence_probe", -1, -0.04, -0.77, 0.74, n=7)])
    text = prose_geometry.convergence_paragraph(tidy)
    assert "It is significant in finetuned (rho = 0.89, 95% CI 0.27 to 0.99). It is not significant in pretrained" in text
    assert "and random (rho = -0.04" in text and "7 layers" in text
    assert "not computed" in prose_geometry.convergence_paragraph(tidy.iloc[0:0])


def test_self_similarity_paragraph_flat_and_no_change_within_seeds():
    rows = []
    for layer in range(3):
        for metric in ("self_similarity", "self_similarity_adjusted"):
            rows += [_row("pretrained", metric, layer, 0.9 - 0.1 * layer, 0.89 - 0.1 * layer, 0.91 - 0.1 * layer),
                     _row("random", metric, layer, 0.72, 0.71, 0.73),
                     _row("finetuned", metric, layer, 0.9 - 0.1 * layer, 0.7, 1.0)]
            rows += [_row("finetuned", metric, layer, 0.9 - 0.1 * layer + d, seed=s) for s, d in
                     ((42, 0.1), (43, -0.1), (44, 0.0))]
    tidy_all = _frame(rows)
    text = prose_geometry.self_similarity_paragraph(tidy_all[tidy_all["seed"].isna()], tidy_all=tidy_all)
    assert text.startswith("Self-similarity after fine-tuning, over 3 seeds: not established at "
                           "layers 0–2. Through the layers, self-similarity falls in pretrained and finetuned and "
                           "is flat in random.")
    table = text.split("\n\n")[1].splitlines()                       # one row per layer, random flat at 0.72
    assert table[0].startswith("| layer | pretrained | finetuned | random | over 3 seeds: difference |")
    assert [row.split(" | ")[3] for row in table[2:]] == ["0.72"] * 3
    assert [row.split(" | ")[4].split(":")[0] for row in table[2:]] == ["not established"] * 3
    assert "100 frequent words" in text and "adjusted self-similarity" in text


def test_cka_diagonal_sentence_has_no_threshold_verdict():
    tidy = pd.DataFrame([_row("finetuned", "cka_cls_vs_pretrained", 0, np.nan)] +
                        [_row("finetuned", "cka_cls_vs_pretrained", layer, v) for layer, v in
                         ((1, 0.993), (2, 0.96), (3, 0.215))])
    text = prose_similarity.cka_diagonal_sentence(tidy, "cls")
    assert "falls in finetuned. Layer 1 → 3: finetuned 0.993 → 0.215." in text
    assert "0.9 " not in text and "judged on the debiased CKA" in text
    assert "permutation null was not computed" in text                    # no null rows: no chance level claimed
    assert prose_similarity.cka_diagonal_sentence(tidy, "cls", label="M").startswith("M: through the layers, the biased")
    assert "judged on the debiased CKA" not in prose_similarity.cka_diagonal_sentence(tidy, "cls", judged=False)


def test_standardised_sentence_numbers_from_the_table():
    rows = []
    for state, raw, std, cos in (("pretrained", 0.139, 0.005, 0.195), ("random", 0.366, 0.001, -0.005)):
        rows += [_row(state, "anisotropy_baseline", 6, raw), _row(state, "anisotropy_baseline_std", 6, std),
                 _row(state, "token_cosine_mean_std", 6, cos)]
    text = prose_geometry.standardised_sentence(pd.DataFrame(rows))
    assert "at layer 6" in text and "pretrained 0.139 → 0.005; random 0.366 → 0.001" in text
    assert "random -0.005 against 0.001" in text
