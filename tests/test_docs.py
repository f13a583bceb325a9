"""User-facing docs are self-contained: no path outside the repository (``../shared``), no
link that leaves it or points at a missing file, no process wording ("issue 14",
"acceptance 2", "the issue text", "other engineers"), and every "paper 00x" links to
docs/papers.md, which names each paper by title, authors, venue and arXiv id."""

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]
FORBIDDEN = [
    (re.compile(r"\.\./shared"), "a path outside the repository"),
    (re.compile(r"\b[Ii]ssue\s+#?\d+"), "an issue number"),
    (re.compile(r"\b[Aa]cceptance\s+\d+"), "an acceptance item"),
    (re.compile(r"\bthe issue text\b|\bthe issue asked\b", re.I), "process wording"),
    (re.compile(r"\bother engineers\b", re.I), "process wording"),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")
PAPER = re.compile(r"(\[)?paper (00[0-4])")
PAPERS = {"000": "1905.12960", "001": "1905.12948", "002": "1905.03817", "003": "2104.05245", "004": "1911.09030"}


def _rel(path):
    return os.path.relpath(path, REPO)


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_no_process_wording_or_outside_paths(path):
    text = open(path, encoding="utf-8").read()
    bad = [f"{_rel(path)}:{text.count(chr(10), 0, m.start()) + 1}: {why}: {m.group(0)!r}"
           for rx, why in FORBIDDEN for m in rx.finditer(text)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_links_stay_in_the_repository(path):
    text = open(path, encoding="utf-8").read()
    bad = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"[a-z]+://|mailto:|#", target):
            continue  # a web page or an anchor in this file
        if os.path.isabs(target):
            bad.append(f"absolute path {target}")
            continue
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target.split("#")[0]))
        if not resolved.startswith(REPO + os.sep):
            bad.append(f"{target} leaves the repository")
        elif not os.path.exists(resolved):
            bad.append(f"{target} does not exist")
    assert not bad, f"{_rel(path)}: " + "; ".join(bad)


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_every_paper_reference_links_to_papers_md(path):
    text = open(path, encoding="utf-8").read()
    if path.endswith("papers.md"):
        return
    bad = []
    for m in PAPER.finditer(text):
        after = text[m.end(): m.end() + 40]
        if not m.group(1) or not re.match(r"[^\]]*\]\([^)]*papers\.md", after):
            bad.append(text[max(0, m.start() - 20): m.end() + 20].replace("\n", " "))
    assert not bad, f"{_rel(path)}: unlinked paper references: {bad}"


def test_papers_md_names_every_paper():
    text = open(os.path.join(REPO, "docs", "papers.md"), encoding="utf-8").read()
    for num, arxiv in PAPERS.items():
        m = re.search(rf'<a id="paper-{num}"></a>(.*?)(?=<a id="paper-|\Z)', text, re.S)
        assert m, f"paper {num} has no anchored entry"
        entry = m.group(1)
        assert f"arXiv:{arxiv}" in entry, (num, entry)
        for field in ("Authors:", "Venue:"):
            assert field in entry, (num, field)
