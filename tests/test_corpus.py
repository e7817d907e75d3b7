"""The embedded demo corpus: size, domains, balance, no duplicates, lengths, datasheet."""

import json
from collections import Counter

from layerwise.inputs.data import RESOURCES, demo_corpus_files


def rows():
    out = []
    for f in demo_corpus_files():
        out += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def test_size_domains_balance_and_uniqueness():
    data = rows()
    assert len(data) >= 600
    domains = Counter(r["domain"] for r in data)
    assert set(domains) == {"livres", "films", "musique"}
    for d in domains:
        labels = Counter(r["label"] for r in data if r["domain"] == d)
        assert set(labels) == {0, 1}
        assert abs(labels[1] - labels[0]) / domains[d] <= 0.05, (d, labels)
    texts = [" ".join(r["text"].lower().split()) for r in data]
    assert len(set(texts)) == len(texts), "duplicate texts"
    assert len({r["id"] for r in data}) == len(data)


def test_lengths_and_fields():
    for r in rows():
        assert set(r) == {"id", "domain", "label", "text"}
        assert 5 <= len(r["text"].split()) <= 80, r["id"]


def test_datasheet_present():
    sheet = (RESOURCES / "demo_fr" / "DATASHEET.md")
    assert sheet.is_file()
    text = sheet.read_text(encoding="utf-8").lower()
    for word in ("licen", "intended use", "fields", "not a benchmark"):
        assert word in text
