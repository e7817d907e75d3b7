"""Sentences and small tables that state results, computed from the tidy result tables (never typed
by hand): the chapters call these and show them with :func:`say`."""

from __future__ import annotations




from .prose_format import states_of






def study_sentence(study) -> str:
    """What was analysed: the model, its depth, the states and the sample sizes."""
    p = study.params
    tidy = study.tidy
    layers = tidy.loc[tidy["layer"] >= 0, "layer"]
    last = int(layers.max()) if not layers.empty else 0
    n = tidy.loc[tidy["metric"] == "token_cosine_mean", "n"]
    ps = getattr(study, "per_sentence", None)
    n_sent = int(ps["sentence"].nunique()) if ps is not None and not ps.empty else None
    states = states_of(tidy, "token_cosine_mean") or states_of(tidy, tidy["metric"].iloc[0])
    text = (f"Model: {p.display_name} (`{p.model.id}`), {last} layers after the embedding output; "
            f"states: {', '.join(states)}.")
    if n_sent:
        text += f" Token statistics use {n_sent} test sentences"
        text += f" (up to {int(n.max()):,} token pairs per layer and state)." if not n.empty else "."
    return text






































def say(*sentences: str):
    """The sentences as one Markdown paragraph (``IPython.display.Markdown``), empty ones dropped."""
    from IPython.display import Markdown

    return Markdown(" ".join(s.strip() for s in sentences if s and s.strip()))


