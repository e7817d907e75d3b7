"""Numbers and series for prose (shared by :mod:`layerwise.words.prose` and :mod:`layerwise.words.prose_layers`):
how a value, a signed effect, an interval and a p-value are printed, and the per-layer series of one
metric and state."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ..core.schema import state_order


def fmt(x: float | None, digits: int = 2) -> str:
    """A number for prose: ``digits`` decimals (no "-0.00"), thousands separated and no decimals from
    1000 on, n/a for NaN/None."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    x = float(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    text = f"{x:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def fmt_signed(x: float, digits: int = 2) -> str:
    """:func:`fmt` with an explicit sign (``+0.39``, ``-0.12``, ``0.00``)."""
    text = fmt(x, digits)
    return text if text.startswith("-") or text == "n/a" or float(text.replace(",", "")) == 0 else "+" + text


def fmt_ci(value: float, low: float | None, high: float | None, digits: int = 2) -> str:
    """``0.83 (95% CI 0.80 to 0.86)``, or just the value when there is no interval."""
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return fmt(value, digits)
    return f"{fmt(value, digits)} (95% CI {fmt(low, digits)} to {fmt(high, digits)})"


def fmt_p(p: float) -> str:
    """A p-value for prose."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def series(tidy: pd.DataFrame, metric: str, state: str, model: str | None = None) -> pd.DataFrame:
    """The per-layer rows (layer >= 0) of one metric and state, sorted by layer."""
    df = tidy[(tidy["metric"] == metric) & (tidy["state"] == state) & (tidy["layer"] >= 0)]
    if model is not None:
        df = df[df["model"] == model]
    return df.sort_values("layer").reset_index(drop=True)


def states_of(tidy: pd.DataFrame, metric: str) -> list[str]:
    """The states that have ``metric``, in the canonical order."""
    return state_order(tidy.loc[tidy["metric"] == metric, "state"])


def effect_digits(*values: float) -> int:
    """Decimals that show two significant digits of the smallest non-zero magnitude among ``values``
    (at least 2): a difference of -0.0014 is not printed as -0.00."""
    mags = [abs(v) for v in values if v == v and v not in (None, 0) and abs(v) != float("inf")]
    return 2 if not mags else max(2, min(6, 1 - math.floor(math.log10(min(mags)))))


def ci_digits(low: float, high: float, fallback: int = 3) -> int:
    """Decimals an interval supports: its half-width rounded by the Particle Data Group rule (two
    significant digits when the half-width's first three digits are 100-354, else one), the value printed
    to the same decimal (0 to 6 decimals); ``fallback`` without a finite, positive half-width."""
    half = (high - low) / 2 if all(v == v and v is not None for v in (low, high)) else math.nan
    if not (half == half) or half <= 0 or math.isinf(half):
        return fallback
    exponent = math.floor(math.log10(half))
    lead = int(f"{half / 10 ** (exponent - 2):.0f}")  # the first three digits, 100-999 (1000 after rounding)
    significant = 2 if lead <= 354 or lead >= 950 else 1
    return max(0, min(6, significant - 1 - exponent - (lead >= 950)))


def fmt_interval(value: float, low: float, high: float, level: float = 0.95, fallback: int = 3,
                 signed: bool = True) -> str:
    """``-0.016, 95% CI -0.021 to -0.011``: a signed value with its interval, both rounded to what the
    interval supports (:func:`ci_digits`); the value alone without an interval."""
    show = fmt_signed if signed else fmt
    if any(v is None or v != v for v in (low, high)):
        return show(value, fallback)
    digits = ci_digits(low, high, fallback)
    return f"{show(value, digits)}, {fmt_level(level)} CI {show(low, digits)} to {show(high, digits)}"


def fmt_level(level: float) -> str:
    """A confidence level as a percentage with the fewest decimals that keep its alpha = 1 - level within 2.5%:
    ``95%``, ``90%``, ``99.82%`` (a family-adjusted level, 1 - 0.05/28), ``98.75%`` (1 - 0.05/4)."""
    pct, alpha = 100 * float(level), 100 * (1 - float(level))
    for d in range(5):
        if abs(round(pct, d) - pct) <= 0.025 * alpha:
            return f"{pct:.{d}f}%"
    return f"{pct:.5f}%"


def layer_span(layers: Sequence[int]) -> str:
    """``layer 4`` / ``layers 0, 2 and 4–6``: consecutive layers as a range. The report's one layer-list
    formatter (every sentence, table cell and chart subtitle that lists layers uses it)."""
    ls = sorted(int(v) for v in layers)
    runs: list[list[int]] = []
    for v in ls:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    parts = [str(r[0]) if len(r) == 1 else (f"{r[0]}, {r[1]}" if len(r) == 2 else f"{r[0]}–{r[-1]}") for r in runs]
    if len(ls) == 1:
        return f"layer {parts[0]}"
    return "layers " + (parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1])


def and_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``: the report's one way to join a list in prose."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def capitalised(text: str) -> str:
    """``text`` with its first letter in upper case (a sentence that opens with a computed clause)."""
    return text[:1].upper() + text[1:]


def value_span(values, digits: int = 2) -> str:
    """``0.05–0.12`` (``0.05`` when both ends print the same)."""
    lo, hi = fmt(min(values), digits), fmt(max(values), digits)
    return lo if lo == hi else f"{lo}–{hi}"
