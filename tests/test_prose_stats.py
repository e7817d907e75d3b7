"""The prose counter (issue 24): words, sentences, the longest sentence, sentences over 35 words and nested
parentheses of an executed chapter, on a synthetic notebook with known counts. The executed tiny-model
chapters are checked in ``tests/test_report.py`` (``test_chapter_prose_reads_short``, its ``project`` fixture)."""

from __future__ import annotations

from layerwise.book import prose_stats

LONG = " ".join(["word"] * 39) + "."          # 39 words


def _notebook() -> dict:
    markdown = ("## A heading that is not counted\n\n"
                "The value is 0.72 here, e.g. at layer 3. Fine-tuning moved it (by 0.1 (95% CI 0.0 to 0.2)).\n\n"
                "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                "```python\nprint('code is not prose. Not at all.')\n```\n\n"
                "- A list item is a sentence\n- Another item ends here. And a third sentence follows!\n\n"
                "Math $x = 1. Y$ is dropped; `inline. Code` counts as one word.\n")
    return {"cells": [{"cell_type": "markdown", "source": markdown},
                      {"cell_type": "code", "source": "prose.say(...)",
                       "outputs": [{"output_type": "display_data", "data": {"text/markdown": [LONG]}},
                                   {"output_type": "stream", "text": "Not counted. At all."}]}]}


def test_sentences_split_after_a_stop_before_a_capital_not_in_numbers_or_abbreviations():
    assert prose_stats.sentences("The value is 0.72 here, e.g. at layer 3. Fine-tuning moved it.") == [
        "The value is 0.72 here, e.g. at layer 3.", "Fine-tuning moved it."]
    assert prose_stats.sentences("Ethayarajh et al. 2019 said so. (It is.) Yes!") == [
        "Ethayarajh et al. 2019 said so.", "(It is.)", "Yes!"]


def test_counts_of_a_synthetic_notebook():
    stats = prose_stats.chapter_stats(_notebook(), "synthetic")
    # sentences: 2 (paragraph 1) + 1 + 2 (list items) + 1 (math, code span) + 1 (the long output)
    assert stats.sentences == 7
    assert stats.longest == 39 and stats.long_sentences == 1
    assert stats.nested_parentheses == 1
    assert stats.words == 19 + 6 + 9 + 8 + 39  # headings, the table, code, math and the stream left out
    assert "| synthetic | 81 | 7 | 39 | 1 | 1 |" in prose_stats.table([stats])


def test_nested_parentheses_count_every_inner_opening():
    assert prose_stats.nested_parentheses("a (b (c) (d)) e (f)") == 2
    assert prose_stats.nested_parentheses("a (b) c (d)") == 0
