#!/usr/bin/env python3
"""Checks the labelled retrieval set (retrieval.jsonl) against the sample corpus.

Stdlib only (Python 3.11+). Reads the corpus the way the ingest loaders label it: doc_id, regions
and title from Markdown TOML front matter (`+++`) or a sidecar `NAME.meta.toml`; headings from
Markdown `#` lines and HTML <h1>..<h6>. PDFs are taken to have no headings, so their questions
must leave `section` empty.

Every line must be a JSON object with exactly the keys id, region, question, doc_id, section, style;
ids are unique, the doc exists and is visible to the question's region, a non-empty section is a
heading of that doc, and no question copies a run of words from its document. The set as a whole
must meet the minimum counts below. Prints a summary and exits 1 on any problem.

    python3 ingest/eval/check_questions.py [--corpus DIR] [--questions FILE]
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent / "corpus"
DEFAULT_QUESTIONS = HERE / "retrieval.jsonl"

KEYS = {"id", "region", "question", "doc_id", "section", "style"}
REGIONS = ("us", "uk", "eu")
STYLES = ("customer", "agent", "paraphrase", "typo", "regional")
CORPUS_DIRS = ("us", "uk", "eu", "shared")

MIN_TOTAL = 90
MIN_PER_REGION = 25
MIN_PER_STYLE = 12
MIN_PER_DOC = 2
# A question sharing this many consecutive words with its document copies a sentence.
MAX_COPIED_WORDS = 6


@dataclass
class Doc:
    doc_id: str
    path: Path
    regions: list[str]
    headings: list[str] = field(default_factory=list)
    text: str = ""


# ---------------------------------------------------------------- corpus


def split_front_matter(text: str) -> tuple[str | None, str]:
    if not text.startswith("+++"):
        return None, text
    lines = text.splitlines(keepends=True)
    if lines[0].strip() != "+++":
        return None, text
    for i in range(1, len(lines)):
        if lines[i].strip() == "+++":
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    raise ValueError("front matter opened with +++ is never closed")


def strip_inline_markdown(text: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images keep their text
    text = re.sub(r"`([^`]*)`", r"\1", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<!\w)[*_](.+?)[*_](?!\w)", r"\1", text)
    return " ".join(text.split())


def markdown_headings(body: str) -> list[str]:
    headings = []
    fence = None
    for line in body.splitlines():
        stripped = line.strip()
        marker = re.match(r"(`{3,}|~{3,})", stripped)
        if marker:
            if fence is None:
                fence = marker.group(1)[0]
            elif stripped.startswith(fence * 3):
                fence = None
            continue
        if fence is not None:
            continue
        m = re.match(r"^ {0,3}#{1,6}(?:\s+(.*?))?\s*$", line)
        if m and m.group(1):
            text = re.sub(r"\s+#+$", "", m.group(1))  # closing hashes
            headings.append(strip_inline_markdown(text))
    return headings


class HtmlText(HTMLParser):
    """Headings and visible text of an HTML page (what the HTML loader keeps)."""

    SKIP = {"script", "style", "nav", "header", "footer", "form", "head", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[str] = []
        self.text: list[str] = []
        self._skip = 0
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag) and not self._skip:
            self._heading = []

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            text = " ".join("".join(self._heading).split())
            if text:
                self.headings.append(text)
            self._heading = None

    def handle_data(self, data):
        if self._skip:
            return
        if self._heading is not None:
            self._heading.append(data)
        self.text.append(data)


def pdf_text(path: Path) -> str:
    """Best-effort text of a PDF without third-party libraries: the generator script's strings if
    it is there (the committed PDF compresses its content streams), else nothing."""
    script = path.parent.parent / "make_pdf.py"
    if script.is_file():
        return " ".join(re.findall(r'"([^"\n]*)"', script.read_text(encoding="utf-8")))
    return ""


def load_sidecar(path: Path) -> dict:
    sidecar = path.with_name(path.stem + ".meta.toml")
    if sidecar.is_file():
        with sidecar.open("rb") as f:
            return tomllib.load(f)
    return {}


def load_corpus(root: Path) -> tuple[dict[str, Doc], list[str]]:
    docs: dict[str, Doc] = {}
    problems: list[str] = []
    for sub in CORPUS_DIRS:
        folder = root / sub
        if not folder.is_dir():
            problems.append(f"corpus folder missing: {folder}")
            continue
        for path in sorted(folder.iterdir()):
            if path.name.endswith(".meta.toml") or not path.is_file():
                continue
            ext = path.suffix.lower()
            try:
                meta: dict = {}
                headings: list[str] = []
                text = ""
                if ext in (".md", ".markdown"):
                    raw = path.read_text(encoding="utf-8")
                    front, body = split_front_matter(raw)
                    if front is not None:
                        meta = tomllib.loads(front)
                    headings = markdown_headings(body)
                    text = body
                elif ext in (".html", ".htm"):
                    parser = HtmlText()
                    parser.feed(path.read_text(encoding="utf-8"))
                    parser.close()
                    headings = parser.headings
                    text = " ".join(parser.text)
                elif ext == ".pdf":
                    text = pdf_text(path)
                elif ext == ".txt":
                    text = path.read_text(encoding="utf-8")
                else:
                    continue
                # Front matter wins; the sidecar fills what it leaves out (the ingest merge order).
                for key, value in load_sidecar(path).items():
                    meta.setdefault(key, value)
            except (OSError, ValueError, tomllib.TOMLDecodeError) as err:
                problems.append(f"{path}: cannot read: {err}")
                continue
            doc_id = meta.get("doc_id") or path.stem
            regions = meta.get("regions") or ([sub] if sub in REGIONS else [])
            if doc_id in docs:
                problems.append(f"{path}: doc_id {doc_id!r} also used by {docs[doc_id].path}")
                continue
            unknown = [r for r in regions if r not in REGIONS]
            if unknown:
                problems.append(f"{path}: unknown regions {unknown}")
            docs[doc_id] = Doc(doc_id, path, list(regions), headings, html.unescape(text))
    return docs, problems


# ---------------------------------------------------------------- questions


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:['.][a-z0-9]+)*", text.lower())


def copied_run(question: str, doc_text: str) -> str | None:
    """The first run of MAX_COPIED_WORDS consecutive question words found in the document."""
    q = words(question)
    doc = " " + " ".join(words(doc_text)) + " "
    for i in range(len(q) - MAX_COPIED_WORDS + 1):
        run = " ".join(q[i : i + MAX_COPIED_WORDS])
        if f" {run} " in doc:
            return run
    return None


def check(questions_path: Path, docs: dict[str, Doc]) -> tuple[list[dict], list[str], list[str]]:
    rows: list[dict] = []
    problems: list[str] = []
    warnings: list[str] = []
    ids: set[str] = set()
    texts: dict[str, str] = {}
    try:
        lines = questions_path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        return rows, [f"cannot read {questions_path}: {err}"], warnings
    for number, line in enumerate(lines, 1):
        where = f"{questions_path.name}:{number}"
        if not line.strip():
            problems.append(f"{where}: blank line")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{where}: not JSON: {err}")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        if set(row) != KEYS:
            missing, extra = sorted(KEYS - set(row)), sorted(set(row) - KEYS)
            problems.append(f"{where}: keys must be exactly {sorted(KEYS)} (missing {missing}, extra {extra})")
            continue
        bad = [k for k in sorted(KEYS) if not isinstance(row[k], str)]
        if bad:
            problems.append(f"{where}: not strings: {bad}")
            continue
        qid, region, question, doc_id, section, style = (
            row[k] for k in ("id", "region", "question", "doc_id", "section", "style")
        )
        where = f"{where} ({qid})"
        if not re.fullmatch(r"q\d{3,}", qid):
            problems.append(f"{where}: id should look like q001")
        if qid in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(qid)
        if region not in REGIONS:
            problems.append(f"{where}: region {region!r} is not one of {REGIONS}")
        if style not in STYLES:
            problems.append(f"{where}: style {style!r} is not one of {STYLES}")
        if len(question.strip()) < 10 or question != question.strip():
            problems.append(f"{where}: question is empty, too short or has outer whitespace")
        key = " ".join(words(question))
        if key in texts:
            problems.append(f"{where}: same question as {texts[key]}")
        texts[key] = qid
        if section != section.strip():
            problems.append(f"{where}: section has outer whitespace")
        doc = docs.get(doc_id)
        if doc is None:
            problems.append(f"{where}: unknown doc_id {doc_id!r}")
        else:
            if region in REGIONS and region not in doc.regions:
                problems.append(f"{where}: doc {doc_id} is not visible to region {region} (regions {doc.regions})")
            if section:
                if section not in doc.headings:
                    problems.append(f"{where}: section {section!r} is not a heading of {doc_id} {doc.headings}")
                elif doc.headings and section == doc.headings[0]:
                    warnings.append(f"{where}: section is the document title; every passage matches it")
                if doc.headings.count(section) > 1:
                    warnings.append(f"{where}: heading {section!r} occurs more than once in {doc_id}")
            elif doc.headings:
                warnings.append(f"{where}: empty section on a doc with headings (intro answer; judged by doc_id only)")
            run = copied_run(question, doc.text)
            if run:
                problems.append(f"{where}: copies {MAX_COPIED_WORDS}+ words from {doc_id}: {run!r}")
        rows.append(row)
    return rows, problems, warnings


def table(title: str, counts: Counter, keys, minimum: int, extra=None) -> list[str]:
    out = [f"{title:<32} {'count':>5}  min"]
    for k in keys:
        note = "" if counts[k] >= minimum else "  <-- below minimum"
        label = f"{k}{extra(k) if extra else ''}"
        out.append(f"  {label:<30} {counts[k]:>5}  {minimum}{note}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    args = parser.parse_args()

    docs, problems = load_corpus(args.corpus)
    rows, row_problems, warnings = check(args.questions, docs)
    problems += row_problems

    by_region = Counter(r["region"] for r in rows)
    by_style = Counter(r["style"] for r in rows)
    by_doc = Counter(r["doc_id"] for r in rows)
    sections = defaultdict(set)
    for r in rows:
        sections[r["doc_id"]].add(r["section"])

    if len(rows) < MIN_TOTAL:
        problems.append(f"{len(rows)} questions; at least {MIN_TOTAL} are needed")
    problems += [f"region {k}: {by_region[k]} questions (min {MIN_PER_REGION})" for k in REGIONS if by_region[k] < MIN_PER_REGION]
    problems += [f"style {k}: {by_style[k]} questions (min {MIN_PER_STYLE})" for k in STYLES if by_style[k] < MIN_PER_STYLE]
    problems += [f"doc {k}: {by_doc[k]} questions (min {MIN_PER_DOC})" for k in sorted(docs) if by_doc[k] < MIN_PER_DOC]

    print(f"corpus: {len(docs)} documents under {args.corpus}")
    print(f"questions: {len(rows)} in {args.questions}\n")
    lines = table("region", by_region, REGIONS, MIN_PER_REGION)
    lines += [""] + table("style", by_style, STYLES, MIN_PER_STYLE)
    lines += [""] + table("doc_id (regions)", by_doc, sorted(docs), MIN_PER_DOC,
                          extra=lambda k: f" ({','.join(docs[k].regions)})")
    print("\n".join(lines))
    print("\nregion x style")
    print("  " + " " * 6 + "".join(f"{s:>11}" for s in STYLES))
    for reg in REGIONS:
        print(f"  {reg:<6}" + "".join(f"{sum(1 for r in rows if r['region'] == reg and r['style'] == s):>11}" for s in STYLES))
    print("\nheadings covered per doc")
    for k in sorted(docs):
        labelled = sorted(s for s in sections[k] if s)
        subs = docs[k].headings[1:]
        print(f"  {k:<24} {len(labelled)}/{len(subs)} sub-headings" + ("  (no headings: doc_id only)" if not docs[k].headings else ""))

    for w in warnings:
        print(f"note: {w}")
    if problems:
        print(f"\nFAILED: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
