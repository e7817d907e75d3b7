"""Methods defines every measure and rule the report shows (issue 24, item 2).

An entry of chapters/methods.qmd is found by its marker, an HTML comment on its own line just above the
entry's paragraph: ``<!-- methods: <registry name> <registry name> ... -->`` (keyed on the base names of
``layerwise.core.schema.REGISTRY``). A comment renders to nothing in Quarto's HTML and typst output and
in the preview, like the margins table's markers.

"Shown" is :data:`SHOWN`, the registry names the chapters draw, declared here with where they are drawn;
:data:`NOT_SHOWN` holds the rest, each with its reason, so a new registry metric must be placed in one of
them. Two guards keep the declaration honest: every registry name that a chapter's code cells spell out,
that page 1 or the Findings judge, or that the similarity chart draws is in :data:`SHOWN`; and no name of
:data:`NOT_SHOWN` is spelled out in a chapter or in the modules that write the chapters.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest

from layerwise.core import schema

ROOT = Path(__file__).resolve().parents[1]
METHODS = ROOT / "chapters" / "methods.qmd"
MARKER = re.compile(r"^<!-- methods: ([\w ]+) -->$", re.M)
SRC = ROOT / "src" / "layerwise"

_FLOORS = ("cka", "cka_debiased", "procrustes", "mutual_knn")
#: registry base names the chapters show (chapter: what draws or prints them)
SHOWN: dict[str, str] = {
    **{f"token_cosine_{q}": "geometry: token-cosine boxes (charts.token_cosine_boxes)" for q in schema.QUANTILES},
    "token_cosine_mean": "geometry: anisotropy and standardisation charts",
    "token_cosine_sentence_mean": "page 1 and Findings: the answer model's token cosine",
    "token_cosine_var_mean": "geometry: variance of token cosines",
    "anisotropy_baseline": "geometry: anisotropy chart",
    "intra_similarity": "geometry: intra-sentence similarity",
    "token_cosine_adjusted": "geometry and comparison: adjusted cosine",
    "intra_similarity_adjusted": "geometry: intra-sentence similarity",
    "self_similarity": "geometry: self-similarity",
    "self_similarity_adjusted": "geometry: self-similarity",
    "token_cosine_mean_std": "geometry: raw and standardised cosines",
    "cov_trace": "geometry: covariance trace",
    "cov_trace_scaled": "geometry and comparison: scale-free trace",
    "norm_mean": "geometry: token norms",
    "erank": "geometry and comparison: effective rank",
    "erank_uncentred": "geometry: effective rank, the original study's uncentred view",
    "isoscore": "geometry and comparison: IsoScore",
    "rogue_top3_share": "geometry: rogue dimensions",
    "cka_cls_vs_pretrained": "geometry and comparison: CKA with pretrained",
    "cka_mean_vs_pretrained": "geometry: CKA with pretrained",
    "cka_last_vs_pretrained": "geometry and comparison: CKA with pretrained (a decoder's primary pooling)",
    **{m: "geometry: similarity chart (charts_seeds.similarity_floors)" for m in _FLOORS[1:]},
    **{f"{m}_null_{s}": "geometry: the similarity chart's chance band" for m in _FLOORS for s in ("mean", "q95")},
    **{f"{m}_{p}_between_seeds": "geometry: the similarity chart's seed pairs; the answer model's floor"
       for m in _FLOORS for p in schema.POOLINGS},
    "probe_acc": "probing: probe charts, best layers, the original study's grid",
    "mlp_probe_acc": "probing: probe charts (the original study's head)",
    "probe_chance_acc": "probing: probe charts, permuted labels",
    "control_acc": "probing: probe charts, control task",
    "selectivity": "probing: probe paragraphs",
    "control_coverage": "probing: control-task coverage",
    "probe_majority_baseline": "probing and page 1: majority class",
    "lexical_probe_acc": "probing and page 1: lexical baseline",
    "mdl_compression": "probing: MDL chart",
    "probe_acc_seen": "probing: memorisation check",
    "mdl_compression_seen": "probing: memorisation check",
    "silhouette": "probing and page 1: silhouette",
    "silhouette_perm": "probing: silhouette against permuted labels",
    "centroid_angle": "probing: centroid angle",
    "effect": "geometry: effect heatmap and paired tests",
    "test_p": "geometry: paired tests",
    "test_p_holm": "geometry: effect heatmap marks (Holm)",
    "reference_sd": "geometry: the negligible-effect rule",
    "spearman_convergence_probe": "geometry, probing and comparison: convergence table",
    "spearman_convergence_probe_p": "convergence table",
    "spearman_convergence_probe_p_holm": "the one correction family",
}
#: registry names no chapter shows, with the reason
NOT_SHOWN: dict[str, str] = {
    "token_cosine_sd": "computed; no chart or sentence",
    "token_cosine_min": "computed; no chart or sentence",
    "token_cosine_max": "computed; no chart or sentence",
    "cka_std": "computed; the similarity chart draws four other measures",
    "cka_std_cls_between_seeds": "computed with cka_std",
    "cka_std_mean_between_seeds": "computed with cka_std",
    "cka_std_last_between_seeds": "computed with cka_std",
    "procrustes_heldout": "the pipeline does not pass the fit sentences yet",
    "centroid_margin": "computed; no chart or sentence",
    "rank_biserial": "computed; no chart or sentence",
}
#: the rules behind the report's verdict words: each is named in Methods (``claims.py:<name>`` or ``claims.<name>``)
RULES = ("difference_outcome", "primary_family", "seed_similarity_change", "seed_apart", "best_layers", "versus", "state_versus",
         "chance_verdict", "probe_chance_verdict", "null_verdict", "effect_verdict", "layer_trend",
         "correlation_verdict", "interval_versus")
#: claims functions the words and book modules call, and the rule each applies (helpers map to None)
CALLS = {"best_layers": "best_layers", "chance_verdicts": "chance_verdict", "correlation_verdict": "correlation_verdict",
         "interval_versus": "interval_versus", "layer_trend": "layer_trend", "null_verdict": "null_verdict",
         "null_verdicts": "null_verdict", "probe_chance_verdict": "probe_chance_verdict", "seed_apart": "seed_apart",
         "seed_change": "difference_outcome", "seed_similarity_change": "seed_similarity_change",
         "state_change_verdicts": "effect_verdict", "effect_words": "effect_verdict", "state_versus": "state_versus",
         "versus": "versus", "difference_outcome": "difference_outcome",
         "seed_floor_verdicts": "primary_family", "similarity_outcomes": "primary_family", "layer_verdicts": None,
         "difference_rows": None, "family_size": None, "outcome_label": None, "at_layer": None}


def _methods() -> str:
    return METHODS.read_text(encoding="utf-8")


def _entries() -> dict[str, str]:
    """Registry name -> the text of its entry (from its marker to the next marker or heading)."""
    text = _methods()
    out: dict[str, str] = {}
    marks = list(MARKER.finditer(text))
    for m, nxt in zip(marks, [*marks[1:], None]):
        end = nxt.start() if nxt else len(text)
        body = text[m.end():end]
        heading = re.search(r"^#{1,6} ", body, re.M)
        body = body[:heading.start()] if heading else body
        for name in m.group(1).split():
            assert name not in out, f"{name} has two Methods entries"
            out[name] = body
    return out


def _registry_name(text: str) -> str | None:
    """The registry base name of a tidy metric or per-sentence statistic spelled ``text``, or None."""
    stem = text.removeprefix("effect_").removesuffix("_content")
    if stem in schema.PER_SENTENCE_SPECS:
        return schema.PER_SENTENCE_SPECS[stem]
    try:
        return schema.lookup(text).name
    except KeyError:
        return None


def _chapter_code() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        out.append((path.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")))
    return out


def _strings(code: str) -> set[str]:
    """The string constants of ``code``, and each f-string with its fields read as each pooling's name (a chapter
    spells ``f"probe_acc_{P[0]}"``: the study's primary pooling)."""
    tree = ast.parse(code)
    inside = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
           and id(n) not in inside}
    for n in ast.walk(tree):
        if isinstance(n, ast.JoinedStr):
            out |= {"".join(v.value if isinstance(v, ast.Constant) else p for v in n.values) for p in schema.POOLINGS}
    return out


def test_shown_and_not_shown_split_the_registry():
    names = [m.name for m in schema.REGISTRY]
    assert not set(SHOWN) & set(NOT_SHOWN)
    assert sorted(SHOWN) + sorted(NOT_SHOWN) and set(SHOWN) | set(NOT_SHOWN) == set(names), \
        "place every registry metric in SHOWN or NOT_SHOWN: " + str(sorted(set(names) - set(SHOWN) - set(NOT_SHOWN)))
    assert set(SHOWN) <= set(names) and set(NOT_SHOWN) <= set(names)


def test_what_the_chapters_spell_out_is_declared_shown():
    from layerwise.book import charts_seeds
    from layerwise.words import answer, findings

    spelled = {_registry_name(s) for _, code in _chapter_code() for s in _strings(code)} - {None}
    judged = {_registry_name(m) for m in (*schema.PER_SENTENCE_METRICS, *findings.PROBES, *findings.SCALARS,
                                          *(metric for _, metric, _, _ in answer.QUESTIONS))}
    drawn = set(inspect.signature(charts_seeds.similarity_floors).parameters["measures"].default)
    floors = {_registry_name(f"{m}_cls_vs_pretrained") for m in drawn} | \
             {f"{m}_null_{s}" for m in drawn for s in ("mean", "q95")} | \
             {f"{m}_{p}_between_seeds" for m in drawn for p in schema.POOLINGS}
    assert len(spelled) >= 20
    assert None not in judged and None not in floors
    assert (spelled | judged | floors) - set(SHOWN) == set()


def test_what_is_declared_not_shown_is_spelled_nowhere_in_the_report():
    sources = [(p.name, p.read_text(encoding="utf-8")) for d in ("words", "book") for p in sorted((SRC / d).glob("*.py"))]
    for name in NOT_SHOWN:
        pattern = re.compile(rf"\b{name}\b")
        hits = [where for where, code in [*_chapter_code(), *sources] if pattern.search(code)]
        assert hits == [], f"{name} is declared not shown, yet {hits} spell it out: move it to SHOWN"


def test_every_marker_names_registry_metrics():
    markers = MARKER.findall(_methods())
    assert len(markers) >= 20
    names = {m.name for m in schema.REGISTRY}
    unknown = [n for group in markers for n in group.split() if n not in names]
    assert unknown == []
    assert "<!-- methods:" not in MARKER.sub("", _methods()), "a malformed marker"


@pytest.mark.parametrize("name", sorted(SHOWN))
def test_every_shown_measure_has_its_methods_entry(name):
    entry = _entries().get(name)
    assert entry is not None, f"chapters/methods.qmd has no entry for {name}: add <!-- methods: {name} -->"
    first = entry.strip().split("\n\n")[0]
    assert first.startswith("**") and len(first.split()) >= 15, f"the entry of {name} starts with its bold name"


@pytest.mark.parametrize("name,reference", [("cka_debiased", "Song et al. 2012"),
                                            ("procrustes", "Ding, Denain and Steinhardt 2021"),
                                            ("mutual_knn", "Huh et al. 2024"),
                                            ("cka_cls_vs_pretrained", "Kornblith et al. 2019")])
def test_the_similarities_have_formula_reference_and_chance(name, reference):
    entry = " ".join(_entries()[name].split())
    assert "$$" in entry and reference in entry and "Chance:" in entry
    assert reference.split(",")[0].split()[0] + ", " in _methods().split("## References")[1]


def test_mutual_knn_states_its_centring_reason_and_effect():
    entry = " ".join(_entries()["mutual_knn"].split())
    assert "column-centred" in entry and "unlike Huh et al." in entry
    assert "anisotropy" in entry and "offset" in entry and "Both choices are legitimate" in entry
    assert "k / (n - 1)" in entry


def test_the_null_and_seed_entries_state_the_code_defaults():
    from layerwise.measure import similarity

    params = inspect.signature(similarity.cka_between_states).parameters
    null = " ".join(_entries()["cka_debiased_null_q95"].split())
    assert f"{params['n_permutations'].default} and {params['procrustes_permutations'].default}" in null
    assert "95th percentile" in null and "`n_permutations`" in null and "`procrustes_permutations`" in null
    knn = " ".join(_entries()["mutual_knn"].split())
    assert f"$k = {params['k'].default}$" in knn
    seeds = " ".join(_entries()["cka_debiased_cls_between_seeds"].split())
    assert "every pair of fine-tuned seeds" in seeds


def test_the_best_layer_rule_and_its_holes():
    from layerwise.words import claims

    text = " ".join(_methods().split())
    n_boot = inspect.signature(claims.best_layers).parameters["n_boot"].default
    assert f"{n_boot} resamples" in text and "Why the set can have holes" in text


def test_every_margin_is_listed_and_its_measure_has_an_entry():
    text, entries = _methods(), _entries()
    for name, m in schema.MARGINS.items():
        assert f"| {schema.label(name)} | {m.text()} |" in text, name
        assert name in entries, name
    for word in ("changed", "changed, size unclear", "no change beyond δ", "not established with $k$ seeds"):
        assert f"**{word}**" in text, word


def test_every_verdict_rule_the_report_applies_is_named_in_methods():
    calls = set()
    for d in ("words", "book"):
        for path in (SRC / d).glob("*.py"):
            calls |= set(re.findall(r"\bclaims\.([a-z_]+)\(", path.read_text(encoding="utf-8")))
    for _, code in _chapter_code():
        calls |= set(re.findall(r"\bclaims\.([a-z_]+)\(", code))
    assert calls - set(CALLS) == set(), "declare the rule of each new claims call in CALLS"
    assert {r for r in CALLS.values() if r} <= set(RULES)
    from layerwise.words import claims

    text = _methods()
    missing = [r for r in RULES if not re.search(rf"claims(\.py:|\.){r}`", text)]
    assert missing == []
    assert all(callable(getattr(claims, r)) for r in RULES)
