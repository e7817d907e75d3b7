"""Several fine-tuning seeds and random draws in one study: the per-seed rows and the aggregate view.

Inside the pipeline each fine-tuned seed is its own engine state, labelled ``finetuned@<seed>``, and so
is each random draw (the random-weights state initialised with one seed), ``random@<seed>``
(:func:`state_label`); :func:`tag` turns those labels back into the state and a nullable ``seed``
column (NA on the pretrained rows, computed once). A seed is a fine-tuning seed on the fine-tuned rows
and an init seed on the random rows: every view below groups by state, so the two never mix (they may
share numbers). The study then keeps two views of the tidy table (see docs/architecture.md, "Seeds"):

* ``Study.tidy`` — the aggregate view, the contract's columns (:data:`layerwise.core.tables.TIDY_COLUMNS`):
  the fine-tuned (random) state's value is the mean over the seeds (draws) with the interval of
  :func:`layerwise.measure.stats.seed_sentence_interval` (seed and sentence variation); with one seed the
  seed's own row, unchanged;
* ``Study.tidy_seeds`` — the per-seed rows (``state="finetuned"`` or ``"random"``, ``seed`` = the
  fine-tuning or init seed), and the similarities between fine-tuning seeds
  (``<measure>_<pooling>_between_seeds``, one row per pair of seeds, ``seed`` = the pair's first seed;
  none between random draws).

The other tables hold one aggregate view: per-sentence values, cones and probe correctness are means
over the seeds (draws); the cosine sample and the rogue dimensions are each state's first seed's (a
sample and a ranking have no mean); the CKA matrices are means over the seeds (draws).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from ..core.tables import TIDY_COLUMNS, tidy_frame

SEP = "@"
#: the floor measures compared between seeds, and the suffix of their metric names
BETWEEN = "_between_seeds"


def state_label(seed: int, state: str = "finetuned") -> str:
    """The engine state of one fine-tuned seed (``state="random"``: of one random draw, ``random@<seed>``)."""
    return f"{state}{SEP}{int(seed)}"


def split_label(value: str) -> tuple[str, int | None]:
    """``finetuned@7`` -> ("finetuned", 7), ``random@0`` -> ("random", 0); any other state -> (state, None)."""
    state, sep, seed = str(value).partition(SEP)
    return (state, int(seed)) if sep else (state, None)


def tag(df: pd.DataFrame, column: str = "state", seed_column: str = "seed") -> pd.DataFrame:
    """``df`` with the labels of ``column`` split into the state and a nullable Int64 ``seed_column``."""
    parts = [split_label(v) for v in df[column]] if len(df) else []
    out = df.copy()
    out[column] = [p[0] for p in parts]
    given = out[seed_column] if seed_column in out.columns else pd.Series(pd.NA, index=out.index)
    found = pd.Series(pd.array([p[1] for p in parts], dtype="Int64"), index=out.index)
    out[seed_column] = found.fillna(given.astype("Int64")).astype("Int64")  # (rows already tagged keep theirs)
    return out


def _is_seed(df: pd.DataFrame) -> pd.Series:
    return df["seed"].notna() if "seed" in df.columns else pd.Series(False, index=df.index)


def aggregate_tidy(tidy: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The aggregate view (contract columns) of a tidy table with a ``seed`` column: rows without a
    seed as they are, plus for each (model, state, layer, metric) of per-seed rows that has no aggregate
    row yet, the mean over the seeds with the seed-and-sentence interval (one seed: its row), kept inside
    the statistic's range (``schema.RANGES``, :func:`layerwise.measure.stats.respect_range`, said in Methods)."""
    from ..core.tables import value_range
    from .stats import respect_range, se_from_ci, seed_sentence_interval

    per_seed = _is_seed(tidy)
    base = tidy[~per_seed]
    have = set(map(tuple, base[["model", "state", "layer", "metric"]].itertuples(index=False)))
    rows = []
    for key, g in tidy[per_seed].groupby(["model", "state", "layer", "metric"], sort=False):
        if key in have:
            continue
        if len(g) == 1:
            rows.append(g.iloc[0][TIDY_COLUMNS].to_dict())
            continue
        v = g["value"].to_numpy(float)
        se = se_from_ci(g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float), level)
        ci = seed_sentence_interval(v, se, level) if np.isfinite(v).all() else None
        low, high = respect_range(float(np.mean(v)), float(ci.low) if ci else np.nan,
                                  float(ci.high) if ci else np.nan, value_range(key[3]))
        rows.append({**dict(zip(["model", "state", "layer", "metric"], key)),
                     "value": float(np.mean(v)), "ci_low": low, "ci_high": high, "n": int(g["n"].max())})
    out = pd.concat([base[TIDY_COLUMNS], pd.DataFrame(rows, columns=TIDY_COLUMNS)], ignore_index=True)
    return tidy_frame(out)


def per_seed_rows(tidy: pd.DataFrame) -> pd.DataFrame:
    """The per-seed rows of a tidy table with a ``seed`` column (contract columns + ``seed``)."""
    if "seed" not in tidy.columns:
        return pd.DataFrame({**{c: tidy_frame([])[c] for c in TIDY_COLUMNS}, "seed": pd.array([], dtype="Int64")})
    out = tidy[_is_seed(tidy)]
    return tidy_frame(out).assign(seed=out["seed"].astype("Int64").to_numpy())


def mean_over_seeds(df: pd.DataFrame, values: list[str], seed_columns: tuple[str, ...] = ("seed",)) -> pd.DataFrame:
    """Rows that differ only by seed averaged into one (``values`` averaged, the seed columns dropped);
    a table without seed columns comes back as it is."""
    cols = [c for c in seed_columns if c in df.columns]
    if not cols:
        return df
    keys = [c for c in df.columns if c not in values and c not in cols]
    if not len(df):
        return df.drop(columns=cols)
    out = df.drop(columns=cols).groupby(keys, sort=False, dropna=False)[values].mean().reset_index()
    return out[[c for c in df.columns if c not in cols]]


def first_seed(df: pd.DataFrame) -> pd.DataFrame:
    """Rows without a seed, and each state's first seed's rows (seed column dropped)."""
    if "seed" not in df.columns:
        return df
    keep = df["seed"].isna() | (df["seed"] == df.groupby("state")["seed"].transform("min"))
    return df[keep].drop(columns="seed").reset_index(drop=True)


def aggregate_cka(cka: pd.DataFrame) -> pd.DataFrame:
    """The CKA matrices averaged over seeds (pairs of two different seeds of one state dropped: they are
    the seed-to-seed matrices, kept only in the entry; a fine-tuned seed against a random draw is kept)."""
    if "seed_a" not in cka.columns:
        return cka
    between = (cka["seed_a"].notna() & cka["seed_b"].notna() & (cka["seed_a"] != cka["seed_b"])
               & (cka["state_a"] == cka["state_b"]))
    return mean_over_seeds(cka[~between], ["value"], ("seed_a", "seed_b"))


def between_seed_rows(test_embeddings: dict[str, dict[str, np.ndarray]], model_name: str,
                      seeds: list[int], k: int = 10) -> pd.DataFrame:
    """Similarity of fine-tuned seed s with seed s' at the same layer, for every pair s < s' (tidy rows
    ``<measure>_<pooling><BETWEEN>``, ``state="finetuned"``, ``seed`` = s; no permutation null)."""
    from .similarity import present_poolings, same_layer_similarities

    parts = []
    for a, b in combinations(seeds, 2):
        pair = {state_label(a): test_embeddings[state_label(a)], state_label(b): test_embeddings[state_label(b)]}
        for pooling in present_poolings(pair):
            rows = pd.DataFrame(same_layer_similarities(pair, model_name, pooling, state_label(a), n_permutations=1,
                                                        procrustes_permutations=0, k=k))
            if rows.empty:
                continue
            rows = rows[~rows["metric"].str.contains("_null_")]
            rows["metric"] = rows["metric"].str.replace(f"_vs_{state_label(a)}", BETWEEN, regex=False)
            parts.append(tidy_frame(rows).assign(state="finetuned", seed=pd.array([a] * len(rows), dtype="Int64")))
    return pd.concat(parts, ignore_index=True) if parts else per_seed_rows(pd.DataFrame(columns=TIDY_COLUMNS))


def cka_between_seed_rows(cka: pd.DataFrame, n: int = 0) -> pd.DataFrame:
    """Linear CKA between seeds at the same layer (``cka_<pooling>_between_seeds``) from the CKA matrices
    (columns with ``seed_a``/``seed_b``, :func:`tag` applied to both states)."""
    sel = (cka["state_a"] == "finetuned") & (cka["state_b"] == "finetuned") & (cka["layer_a"] == cka["layer_b"])
    if "seed_a" in cka.columns:
        sel &= cka["seed_a"].notna() & cka["seed_b"].notna() & (cka["seed_a"] != cka["seed_b"])
    else:
        sel &= False
    g = cka[sel]
    seed = np.minimum(g["seed_a"].astype(int), g["seed_b"].astype(int)) if len(g) else []
    out = pd.DataFrame({"model": g["model"], "state": "finetuned", "layer": g["layer_a"],
                        "metric": "cka_" + g["pooling"] + BETWEEN, "value": g["value"], "ci_low": np.nan,
                        "ci_high": np.nan, "n": int(n)})
    return tidy_frame(out).assign(seed=pd.array(list(seed), dtype="Int64"))
