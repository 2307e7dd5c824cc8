#!/usr/bin/env python3
"""Builds the prompt-tuning data for the `us`, `uk` and `eu` bundles.

    python3 prompts/data/build_data.py

Standard library only, deterministic (one seeded RNG), and safe to rerun: it rewrites
prompts/data/{us,uk,eu}/{train,heldout}.jsonl from the sample corpus in ingest/corpus/ and the
example intents written below, checks them, and prints a summary.

Passages are read from the corpus at run time, one per section (heading path), the way ingestion
cuts these short documents: Markdown through a small CommonMark subset, the HTML pages through
html.parser with the page furniture (head, header, nav, footer, script, style) dropped, and the PDF
from the paragraph list in ingest/corpus/make_pdf.py (the text the PDF was made from; amounts there
read "EUR 15"). The user turn is rendered exactly as services/generation/src/fusion.rs does.

An *intent* is one question purpose for one region ("uk: how long is the return window"). Every
intent belongs to exactly one split, decided by its concept (the part after the region): concepts in
HELDOUT_CONCEPTS are held out in every region that has them, so the held-out questions are never
paraphrases of training questions.
"""

from __future__ import annotations

import ast
import html.parser
import json
import random
import re
import sys
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = ROOT / "ingest" / "corpus"
REGIONS = ("us", "uk", "eu")
SEED = 20261121

# Examples per region: (split, kind) -> count.
TARGETS = {
    ("train", "answer"): 154,
    ("train", "decline"): 36,
    ("train", "not_covered"): 30,
    ("heldout", "answer"): 32,
    ("heldout", "decline"): 8,
    ("heldout", "not_covered"): 8,
}
MIN_LINES = {"train": 200, "heldout": 40}
# A user + assistant pair longer than this loses distractors until it fits (or has none left).
MAX_CHARS = 900
# A share of single-source examples get two distractors under a looser cap, so that the cited
# passage is sometimes [3] (serving shows several passages).
THREE_PASSAGE_SHARE = 0.15
THREE_PASSAGE_MAX_CHARS = 1150
# Distractors longer than this are not used (examples stay short).
MAX_DISTRACTOR_CHARS = 420
# Retrieval shows a passage that quotes every region's prices (gift card values) next to many money
# questions, and tuned models copied its foreign amounts into answers. In this share of training
# examples that have distractors, one of them is such a passage, so the steering learns to quote only
# the region's currency. The held-out set keeps the natural draw.
MULTI_CURRENCY_DISTRACTOR_SHARE = {"train": 0.25, "heldout": 0.0}

HELDOUT_CONCEPTS = {
    "shipping.express",
    "shipping.free_above",
    "shipping.free_below",
    "loyalty.summit",
    "giftcards.amounts",
    "warranty.claim_how",
    "privacy.retention",
    "returns.personalised",
    "price.cap",
    "shipping.click_collect",
    "warranty.out_of_warranty",
    "warranty.free_repair_old",
    "warranty.repair_time",
    "nc.store_hours",
    "nc.crypto",
}

# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------


@dataclass
class Section:
    doc_id: str
    title: str
    version: str
    regions: list[str]
    path: list[str]
    text: str

    @property
    def key(self) -> str:
        return f"{self.doc_id}#{self.path[-1] if self.path else ''}"

    def block(self, marker: int) -> str:
        """passage_block in fusion.rs."""
        heading = self.title
        section = " > ".join(self.path)
        if section:
            heading += " § " + section
        if self.version:
            heading += f" (version {self.version})"
        return f"[{marker}] {heading}\n{self.text.strip()}"


def collapse(text: str) -> str:
    return " ".join(text.split())


def inline_markdown(text: str) -> str:
    """The text events pulldown-cmark yields for this corpus's inline markup."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*", r"\1", text)
    text = text.replace("`", "")
    return text


def markdown_blocks(body: str) -> list[tuple[str, object]]:
    """('h', (level, text)) / ('p', text) / ('li', text) blocks; a CommonMark subset that covers the
    corpus (ATX headings, paragraphs, '-' and numbered lists)."""
    blocks: list[tuple[str, object]] = []
    para: list[str] = []
    item: list[str] | None = None
    item_marker = ""
    list_next: int | None = None  # next number of an open ordered list

    def flush():
        nonlocal para, item
        if para:
            blocks.append(("p", collapse(inline_markdown(" ".join(para)))))
            para = []
        if item is not None:
            blocks.append(("li", item_marker + collapse(inline_markdown(" ".join(item)))))
            item = None

    for raw in body.splitlines():
        line = raw.rstrip()
        if not line.strip():
            flush()
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        bullet = re.match(r"^\s*[-*+]\s+(.*)$", line)
        numbered = re.match(r"^\s*(\d+)[.)]\s+(.*)$", line)
        if heading:
            flush()
            list_next = None
            blocks.append(("h", (len(heading.group(1)), collapse(inline_markdown(heading.group(2))))))
        elif bullet:
            flush()
            item, item_marker = [bullet.group(1)], "- "
            list_next = None
        elif numbered:
            flush()
            if list_next is None:
                list_next = int(numbered.group(1))
            item, item_marker = [numbered.group(2)], f"{list_next}. "
            list_next += 1
        elif item is not None and raw.startswith((" ", "\t")):
            item.append(line.strip())
        else:
            if item is not None:
                flush()
            list_next = None
            para.append(line.strip())
    flush()
    return blocks


class HtmlWalker(html.parser.HTMLParser):
    """The readable blocks of a page, as ingest/src/loaders/html.rs keeps them."""

    SKIPPED = {"head", "nav", "header", "footer", "script", "style", "noscript", "template", "form",
               "button", "svg", "iframe", "aside", "select"}
    BLOCKS = {"address", "article", "blockquote", "body", "dd", "details", "dialog", "div", "dl", "dt",
              "fieldset", "figcaption", "figure", "html", "main", "p", "pre", "section", "summary",
              "table", "tbody", "thead", "tfoot", "caption", "hr", "ul", "ol", "li", "tr",
              "h1", "h2", "h3", "h4", "h5", "h6"}
    VOID = {"meta", "link", "br", "img", "hr", "input", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, object]] = []
        self.buf = ""
        self.kinds: list[str] = []
        self.lists: list[int | None] = []
        self.item_marker: str | None = None
        self.skip: list[str] = []

    def flush(self):
        text = collapse(self.buf)
        self.buf = ""
        if not text:
            return
        kind = self.kinds[-1] if self.kinds else "p"
        if kind.startswith("h"):
            self.blocks.append(("h", (int(kind[1]), text)))
        elif kind == "li":
            marker = self.item_marker if self.item_marker is not None else "  "
            self.item_marker = None
            self.blocks.append(("li", marker + text))
        else:
            self.blocks.append(("p", text))

    def handle_starttag(self, tag, attrs):
        if self.skip:
            if tag not in self.VOID:
                self.skip.append(tag)
            return
        if tag in self.SKIPPED:
            self.skip.append(tag)
            return
        if tag == "br":
            self.buf += " "
            return
        if tag in ("ul", "ol"):
            start = dict(attrs).get("start")
            self.lists.append((int(start) if start else 1) if tag == "ol" else None)
        if tag in self.BLOCKS:
            self.flush()
            if tag == "li":
                top = self.lists[-1] if self.lists else None
                if top is None:
                    self.item_marker = "- "
                else:
                    self.item_marker = f"{top}. "
                    self.lists[-1] = top + 1
            kind = tag if tag in ("li", "h1", "h2", "h3", "h4", "h5", "h6") else "p"
            if tag in self.VOID:
                return
            self.kinds.append(kind)

    def handle_endtag(self, tag):
        if self.skip:
            if self.skip[-1] == tag:
                self.skip.pop()
            return
        if tag in ("td", "th"):
            self.buf += " | "
        if tag in self.BLOCKS and tag not in self.VOID:
            self.flush()
            if self.kinds:
                self.kinds.pop()
        if tag in ("ul", "ol") and self.lists:
            self.lists.pop()

    def handle_data(self, data):
        if not self.skip:
            self.buf += data


def pdf_blocks() -> list[tuple[str, object]]:
    """The PDF's paragraphs from make_pdf.py's CONTENT (read with ast: fpdf need not be installed).
    The PDF loader makes the first heading level 1 and later ones level 2, as CONTENT does."""
    tree = ast.parse((CORPUS / "make_pdf.py").read_text(encoding="utf-8"))
    content = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONTENT" for t in node.targets):
            content = ast.literal_eval(node.value)
    assert content, "CONTENT not found in make_pdf.py"
    blocks: list[tuple[str, object]] = []
    for level, text in content:
        blocks.append(("h", (level, collapse(text))) if level else ("p", collapse(text)))
    return blocks


def sections_of(meta: dict, blocks: list[tuple[str, object]]) -> list[Section]:
    """One passage per heading path: its blocks joined as normalised_text() joins them."""
    out: list[Section] = []
    headings: list[tuple[int, str]] = []
    current: list[tuple[str, str]] = []

    def close():
        if not current:
            return
        text = current[0][1]
        for (prev_kind, _), (kind, block) in zip(current, current[1:]):
            text += ("\n" if prev_kind == kind == "li" else "\n\n") + block
        out.append(Section(meta["doc_id"], meta["title"], meta.get("version", ""), list(meta["regions"]),
                           [h for _, h in headings], text))

    for kind, value in blocks:
        if kind == "h":
            close()
            current = []
            level, text = value
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, text))
        else:
            current.append((kind, value))
    close()
    return out


def load_corpus() -> list[Section]:
    sections: list[Section] = []
    for path in sorted(CORPUS.glob("*/*")):
        if path.suffix == ".md":
            raw = path.read_text(encoding="utf-8")
            match = re.match(r"\+\+\+\n(.*?)\n\+\+\+\n(.*)", raw, re.S)
            assert match, f"{path}: no TOML front matter"
            meta = tomllib.loads(match.group(1))
            blocks = markdown_blocks(match.group(2))
        elif path.suffix == ".html":
            meta = tomllib.loads(path.with_suffix(".meta.toml").read_text(encoding="utf-8"))
            walker = HtmlWalker()
            walker.feed(path.read_text(encoding="utf-8"))
            walker.close()
            walker.flush()
            blocks = walker.blocks
        elif path.suffix == ".pdf":
            meta = tomllib.loads(path.with_suffix(".meta.toml").read_text(encoding="utf-8"))
            blocks = pdf_blocks()
        else:
            continue
        sections.extend(sections_of(meta, blocks))
    keys = Counter(s.key for s in sections)
    dupes = [k for k, n in keys.items() if n > 1]
    assert not dupes, f"section keys are not unique: {dupes}"
    return sections



# --------------------------------------------------------------------------------------------------
# Intents
# --------------------------------------------------------------------------------------------------


@dataclass
class Intent:
    region: str
    concept: str
    topic: str
    kind: str  # answer | decline | not_covered
    rel: list[str]  # section keys of the passages the answer relies on, cited as {c1}, {c2}, ...
    questions: list[str]
    answers: list[str]
    # None, a list of dicts (one is drawn per example) or a function of the RNG returning a dict.
    # A dict may carry "_q" / "_a" to pin the question / answer template for that draw.
    params: object = None
    forbidden: list[str] = field(default_factory=list)
    avoid: list[str] = field(default_factory=list)  # section keys or doc ids never used as distractors
    what: str = ""  # not_covered: what the question is about
    # Multiplies the intent's share of its split and kind (see `allot`).
    weight: float = 1.0

    @property
    def id(self) -> str:
        return f"{self.region}.{self.concept}"

    @property
    def split(self) -> str:
        return "heldout" if self.concept in HELDOUT_CONCEPTS else "train"


def money(symbol: str, amount: float) -> str:
    if abs(amount - round(amount)) < 1e-9:
        return f"{symbol}{int(round(amount))}"
    return f"{symbol}{amount:.2f}"


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def date_pair(rng: random.Random, days: int, us_style: bool) -> tuple[str, str]:
    """A delivery date between mid January and mid October 2026 and the date `days` later."""
    import datetime

    start = datetime.date(2026, 1, 15) + datetime.timedelta(days=rng.randrange(0, 240))
    end = start + datetime.timedelta(days=days)

    def fmt(d):
        return f"{MONTHS[d.month - 1]} {d.day}" if us_style else f"{d.day} {MONTHS[d.month - 1]}"

    return fmt(start), fmt(end)


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class Builder:
    def __init__(self, region: str):
        self.region = region
        self.intents: list[Intent] = []

    def add(self, concept, topic, kind, rel, questions, answers, params=None, forbidden=(), avoid=(), what="",
            weight=1.0):
        self.intents.append(Intent(self.region, concept, topic, kind, list(rel), list(questions), list(answers),
                                   params, list(forbidden), list(avoid), what, weight))

    def pressed(self, concept, questions):
        """The decline `concept` again, as its own intent, asked by a customer pressing for an exception."""
        base = next(i for i in self.intents if i.concept == concept and i.kind == "decline")
        self.intents.append(replace(base, concept=concept + ".pressed", questions=list(questions)))

    def nc(self, concept, topic, what, questions, avoid=()):
        self.add(concept, topic, "not_covered", [], questions, [], None, (), avoid, what)


NO_REFUND_PROMISES = ["full refund", "accept the return", "return it for a refund"]


# ---------------------------------------------------------------------------------------------- us


def us_intents() -> list[Intent]:
    b = Builder("us")
    items = ["a rain jacket", "a fleece pullover", "a pair of hiking boots", "a daypack", "a down vest",
             "a flannel shirt", "a pair of trail runners", "a beanie"]

    def within(rng):
        d = rng.choice([3, 6, 9, 12, 16, 20, 24, 27, 29])
        d1, d2 = date_pair(rng, d, True)
        return {"item": rng.choice(items), "d": d, "date1": d1, "date2": d2}

    def late(rng):
        d = rng.choice([33, 36, 41, 45, 52, 60, 75])
        d1, d2 = date_pair(rng, d, True)
        return {"item": rng.choice(items), "d": d, "date1": d1, "date2": d2}

    RW = "returns-us#Return window"
    b.add("returns.window", "returns", "answer", [RW], [
        "How long do I have to return something?",
        "What's your return window?",
        "how many days do i have to send stuff back",
        "Is there a time limit on returns?",
        "What is the return period for online orders?",
        "How long after delivery can I return an item?",
    ], [
        "You can return most unused items within 30 days of the delivery date for a refund to your original payment method {c1}. Items need to be unworn, unwashed and have their original tags attached.",
        "Most unused items can be returned within 30 days of delivery {c1}. Just make sure they're unworn, unwashed and still have the original tags attached.",
    ])
    b.add("returns.within", "returns", "answer", [RW], [
        "I ordered {item} and it arrived {d} days ago. I haven't worn it. Can I still return it?",
        "My order was delivered on {date1} and today is {date2}. The item is unused with tags. Can I still return it?",
        "got {item} {d} days ago and changed my mind, can i still return it? tags are on",
        "Is it still possible to return {item} that was delivered {d} days ago? It's unused.",
    ], [
        "Yes! Unused items can be returned within 30 days of the delivery date {c1}, so you're still in time. Just keep it unworn and unwashed with the original tags attached.",
        "You're still within the window: most unused items can be returned within 30 days of delivery for a refund to your original payment method {c1}.",
    ], within)
    b.add("returns.late", "returns", "decline", [RW], [
        "I got {item} {d} days ago and never used it. Can I still return it for a full refund?",
        "My order was delivered on {date1}. It's {date2} now. Can you make an exception and take it back?",
        "it's been {d} days since {item} arrived, still has tags. can i send it back?",
        "Can I return {item} I received {d} days ago? I just didn't get around to it.",
    ], [
        "Returns are accepted within 30 days of the delivery date {c1}. Since your order arrived {d} days ago, it's outside the return window.",
        "Our return window is 30 days from delivery for unused items {c1}, so an order delivered {d} days ago can't be returned.",
    ], late, forbidden=["full refund", "accept the return", "take it back"], avoid=["returns-us#Holiday returns"])
    b.add("returns.holiday", "returns", "answer", ["returns-us#Holiday returns"], [
        "I bought a gift on {hdate}. When's the last day I can return it?",
        "What's the holiday return deadline?",
        "Do holiday purchases get extra time for returns?",
        "I ordered a jacket on {hdate} as a Christmas present. How long can it be returned?",
    ], [
        "Items purchased between November 15 and December 24 can be returned until January 31 of the following year {c1}.",
        "Good news: holiday purchases made between November 15 and December 24 can be returned until January 31 of the next year {c1}.",
    ], [{"hdate": h} for h in ["November 20", "December 2", "December 10", "December 18", "November 28"]])
    b.add("returns.outdoor_used", "returns", "decline", ["returns-us#Outdoor tested items"], [
        "I used my new {item} on a camping trip and decided it's not for me. Can I return it?",
        "Took my {item} out on one hike, nothing wrong with it but I don't love it. Return for a full refund?",
        "Can I send back my {item}? I've used it outdoors once, it's in good shape, I just changed my mind.",
    ], [
        "Tents, sleeping bags and footwear that have been used outdoors can only be returned within 30 days if they're faulty {c1}. Used items that aren't faulty aren't accepted, so the {item} can't be returned.",
    ], [{"item": i} for i in ["tent", "sleeping bag", "pair of hiking boots", "pair of trail runners"]],
        forbidden=NO_REFUND_PROMISES)
    HR = "returns-us#How to return an item"
    b.add("returns.how", "returns", "answer", [HR], [
        "How do I start a return?",
        "What's the process for sending something back?",
        "how do i return an item i bought online",
        "Can you walk me through returning an order?",
        "What are the steps to return a purchase by mail?",
    ], [
        "Start a return in your Northwind account under Orders or call 1-800-555-0142, print the prepaid UPS label, and drop the parcel at any UPS Access Point within 7 days of printing it {c1}. A $6.95 label fee comes out of your refund unless the item is faulty or we sent the wrong item.",
    ])
    b.add("returns.label_fee", "returns", "answer", [HR], [
        "Is return shipping free?",
        "Do you charge for the return label?",
        "How much does it cost to mail a return?",
        "Will I pay anything to ship my return back?",
        "Is there a fee if I send my return with UPS?",
    ], [
        "The prepaid UPS return label costs $6.95, which is deducted from your refund unless the item is faulty or we sent the wrong item {c1}. Returns at any Northwind Outfitters store in the US are free.",
        "Mail returns carry a $6.95 label fee, taken out of your refund, unless the item is faulty or we sent the wrong item {c1}. You can also return items free of charge at any of our US stores.",
    ])
    b.add("returns.wrong_item", "returns", "answer", [HR], [
        "You sent me the wrong item. Do I have to pay for the return label?",
        "The box had the wrong jacket in it. Will you charge me $6.95 to send it back?",
        "The zipper on my new jacket was broken out of the box. Do I pay the return label fee?",
        "Got the wrong color in my package (your mistake). Is the label free?",
    ], [
        "No label fee in your case: the $6.95 fee isn't deducted when the item is faulty or we sent the wrong item {c1}.",
        "You won't pay for the label. The $6.95 label fee applies unless the item is faulty or we sent the wrong item {c1}.",
    ])
    b.add("returns.store", "returns", "answer", [HR], [
        "Can I return an online order at one of your stores?",
        "Is there a store where I can drop off my return?",
        "can i bring my return to a northwind store instead of mailing it",
        "Do in-store returns cost anything?",
    ], [
        "You can return items free of charge at any Northwind Outfitters store in the United States {c1}.",
    ])
    NR = "returns-us#Items that cannot be returned"
    b.add("returns.giftcard", "returns", "decline", [NR], [
        "Can I return a gift card I bought by mistake?",
        "I bought a $50 e-gift card and don't need it anymore. Can I get a refund?",
        "Is it possible to send back an unused gift card?",
        "My aunt gave me a gift card and I'd rather have the money. Can I return it?",
    ], [
        "Gift cards and e-gift cards can't be returned {c1}.",
        "Gift cards and e-gift cards are on the list of items that can't be returned {c1}.",
    ], forbidden=["refund the gift card", "return it for a refund"], avoid=["gift-cards#Cash and refunds"])
    b.add("returns.personalised", "returns", "decline", [NR], [
        "I had a backpack monogrammed with my initials and changed my mind. Can I return it?",
        "Can I return a personalized water bottle?",
        "The engraved camp mug I ordered has my name on it, but I don't want it anymore. Refund?",
        "do personalized items qualify for returns",
    ], [
        "Personalized or monogrammed items can't be returned {c1}.",
        "Personalized or monogrammed items are on the list of items that can't be returned {c1}.",
    ], forbidden=NO_REFUND_PROMISES)
    b.add("returns.final_sale", "returns", "decline", [NR], [
        "I bought a {item} on clearance for {p}. Can I return it?",
        "Can I send back a clearance {item}? It was {p}.",
        "I got a {item} for {p} in the clearance section and it doesn't fit. Return possible?",
    ], [
        'Items marked "Final Sale", meaning clearance prices ending in .97, can\'t be returned {c1}. A {item} bought on clearance for {p} falls into that group.',
    ], [{"item": i, "p": p} for i, p in [("jacket", "$59.97"), ("pair of boots", "$89.97"), ("fleece", "$24.97"),
                                          ("tent", "$129.97")]], forbidden=NO_REFUND_PROMISES)
    b.add("returns.hygiene", "returns", "decline", [NR], [
        "I tried on a swimsuit and removed the hygiene seal. Can I still return it?",
        "Can I return underwear if the hygiene seal is off?",
        "bought swim trunks, took the hygiene sticker off, they don't fit. return?",
    ], [
        "Swimwear and underwear with the hygiene seal removed can't be returned {c1}.",
    ], forbidden=NO_REFUND_PROMISES)
    b.add("returns.restocking", "returns", "answer", ["returns-us#Restocking fee"], [
        "I opened a {item} that cost ${p}. If I return it, what will you charge?",
        "Is there a restocking fee on an opened {item}? I paid ${p}.",
        "I want to return a ${p} {item} I took out of the box. Any fees?",
    ], [
        "Opened electronics like GPS units, headlamps and action cameras carry a 15% restocking fee unless they're faulty {c1}. On a ${p} {item}, that's {fee}.",
    ], [{"item": i, "p": p, "fee": money("$", p * 0.15)} for i, p in [
        ("GPS unit", 120), ("headlamp", 40), ("action camera", 250), ("GPS unit", 180), ("action camera", 300),
        ("headlamp", 60)]])
    b.add("returns.exchange", "returns", "answer", ["returns-us#Exchanges"], [
        "Can I exchange my boots for a different size?",
        "I'd like a different color of the same jacket. How do exchanges work?",
        "Do exchanges cost anything?",
        "If I exchange an item, does the return window restart?",
    ], [
        "Exchanges for a different size or color are free and ship by UPS Ground once we receive the original item {c1}. The exchange keeps the original 30-day window from the first delivery date.",
    ])
    b.add("returns.scope", "returns", "answer", ["returns-us#Returns Policy"], [
        "I live in Puerto Rico. Does your return policy apply to me?",
        "Does the returns policy cover orders shipped to Alaska?",
        "I'm in Hawaii, can I still return stuff under your policy?",
    ], [
        "Yes! The returns policy covers orders shipped to US addresses, including Alaska, Hawaii and Puerto Rico {c1}.",
    ])

    b.add("refunds.timing", "refunds", "answer", ["refunds-us#Refund timing"], [
        "When will I get my refund?",
        "How long do refunds take after you get my return?",
        "i mailed my return last week, when does the money come back",
        "It's been two days since you received my return. When should I see the refund?",
        "How many days until a refund shows up on my card?",
    ], [
        "We issue your refund within 3 business days of receiving the return at our Reno, Nevada returns center {c1}. Your bank may take another 5 to 7 business days to show the credit.",
    ])
    b.add("refunds.method", "refunds", "answer", ["refunds-us#Refund method"], [
        "I paid with {pay}. Where will my refund go?",
        "How do I get my refund if I used {pay} for the order?",
        "Will my refund go back to my {pay}?",
    ], ["{body}"], [
        {"pay": "credit card", "body": "Refunds go back to the original payment method, so the money returns to your credit card {c1}."},
        {"pay": "PayPal", "body": "Orders paid with PayPal are refunded to your PayPal account {c1}."},
        {"pay": "a gift card", "_q": "I paid with a gift card. Where will my refund go?",
         "body": "Orders paid with a gift card are refunded to a new e-gift card {c1}."},
        {"pay": "debit card", "body": "Refunds go back to the original payment method, which here is your debit card {c1}."},
    ])
    b.add("refunds.store_credit", "refunds", "answer", ["refunds-us#Store credit option"], [
        "I'm returning a ${p} jacket. What if I take store credit instead of a refund?",
        "Do I get anything extra if I choose store credit for my ${p} return?",
        "What's the store credit bonus? My return is worth ${p}.",
    ], [
        "If you choose store credit instead of a refund, we add a 10% bonus, so ${p} becomes {credit} in store credit {c1}. Store credit never expires in the United States.",
    ], [{"p": p, "credit": money("$", p * 1.1)} for p in [50, 80, 120, 65, 90, 45]])
    b.add("refunds.shipping_back", "refunds", "answer", ["refunds-us#Shipping costs"], [
        "Do I get my shipping cost back when I return something?",
        "Will you refund the $7.95 shipping if the item arrived broken?",
        "Is original shipping refunded on returns?",
    ], [
        "The original $7.95 standard shipping charge is refunded only when the item is faulty or we made an error {c1}. Express shipping charges are never refunded unless the item is faulty.",
    ])
    b.add("refunds.express_back", "refunds", "decline", ["refunds-us#Shipping costs"], [
        "I paid $19.95 for 2nd Day Air and I'm returning {item} because it didn't fit. Do I get the $19.95 back?",
        "Can you refund my express shipping? I changed my mind about the order.",
        "I'm sending back my order (nothing wrong with it). Will the express shipping fee be refunded too?",
    ], [
        "Express shipping charges are only refunded when the item is faulty {c1}, so for a return that isn't about a fault, the express charge stays with the order.",
        "Since the item isn't faulty, the express shipping charge isn't refunded: express charges are refunded only for faulty items {c1}.",
    ], [{"item": i} for i in items], forbidden=["refund the express", "refund your express", "get the $19.95 back"])
    b.add("refunds.partial", "refunds", "answer", ["refunds-us#Partial refunds"], [
        "I lost the tags on a ${p} jacket. Can I still return it?",
        "What happens if I return something with missing parts? It cost ${p}.",
        "My ${p} tent got a little damaged before I could send it back. What refund would I get?",
    ], [
        "Items returned damaged, with missing parts or without tags get a partial refund of up to 50% of the item price, decided by our returns team {c1}. For a ${p} item, that's at most {half}.",
    ], [{"p": p, "half": money("$", p / 2)} for p in [60, 100, 140, 80, 220]])
    b.add("refunds.price_drop", "refunds", "answer", ["refunds-us#Price adjustments"], [
        "The jacket I bought went on sale a week later. Can I get money back?",
        "Something I ordered got cheaper a few days after I bought it. Any refund?",
        "price dropped right after i bought it, what can i do",
    ], [
        "If an item you bought drops in price within 14 days, you can claim the difference; the Price Adjustment Policy explains how {c1}.",
    ])

    SS = "shipping-us#Standard shipping"
    no_free_ship = ["loyalty-us#Summit", "shipping-us#Alaska and Hawaii"]
    b.add("shipping.standard", "shipping", "answer", [SS], [
        "How much is standard shipping?",
        "What does regular shipping cost and how long does it take?",
        "how long does ground shipping take",
        "What's the cost of UPS Ground?",
    ], [
        "Standard UPS Ground delivery costs $7.95 and takes 3 to 5 business days {c1}.",
    ], avoid=no_free_ship)
    above = [{"p": money("$", p)} for p in [82.40, 96, 110, 149.99, 230, 78.50]]
    b.add("shipping.free_above", "shipping", "answer", [SS], [
        "My order comes to {p}. Do I get free shipping?",
        "Is shipping free if I spend {p}?",
        "My cart is at {p}. Does that qualify for free shipping?",
        "do orders of {p} ship free",
    ], [
        "Yes! Standard shipping is free on orders over $75 before tax {c1}, so your {p} order qualifies.",
    ], above, avoid=no_free_ship)
    b.add("shipping.free_below", "shipping", "decline", [SS], [
        "My cart is {p}. Can you give me free shipping anyway?",
        "I'm at {p}, could you waive the shipping fee just this once?",
        "Is there any way to get free shipping on a {p} order?",
        "My order is only {p}, can you make an exception on shipping?",
    ], [
        "Free standard shipping applies to orders over $75 before tax {c1}. For a {p} order, standard UPS Ground costs $7.95.",
        "Standard shipping is free only on orders over $75 before tax {c1}, so a {p} order pays the $7.95 standard rate.",
    ], [{"p": money("$", p)} for p in [42, 58.50, 64.99, 71, 74.50]],
        forbidden=["free shipping anyway", "waive the shipping", "waive the fee", "ship it free"], avoid=no_free_ship)
    ES = "shipping-us#Express shipping"
    b.add("shipping.free_express", "shipping", "decline", [SS, ES], [
        "My order is {p}, so shipping's free. Can you upgrade me to 2-day for free?",
        "I spent {p}. Does free shipping include express?",
        "Since my {p} order qualifies for free shipping, can I get 2nd Day Air at no charge?",
    ], [
        "Orders over $75 get free standard shipping {c1}, not express. UPS 2nd Day Air costs $19.95 {c2}.",
        "Free shipping on orders over $75 covers standard UPS Ground {c1}. Express by UPS 2nd Day Air is $19.95 {c2}.",
    ], above, forbidden=["free express", "free upgrade", "upgrade you for free", "at no charge"], avoid=no_free_ship)
    b.add("shipping.express", "shipping", "answer", [ES], [
        "How much is 2-day shipping?",
        "What does express shipping cost, and when do I need to order for same-day dispatch?",
        "If I order at 11 a.m. Eastern, does express ship today?",
        "What's the price of UPS 2nd Day Air?",
    ], [
        "UPS 2nd Day Air costs $19.95 {c1}. Orders placed by 12 p.m. Eastern Time on a business day ship the same day.",
    ], avoid=["loyalty-us#Summit"])
    ND = "shipping-us#Next-day shipping"
    AH = "shipping-us#Alaska and Hawaii"
    b.add("shipping.nextday", "shipping", "answer", [ND], [
        "Do you offer next-day delivery? How much is it?",
        "What does overnight shipping cost?",
        "I need my boots tomorrow. Is there a next-day option?",
    ], [
        "UPS Next Day Air costs $34.95 {c1}. It isn't available to Alaska, Hawaii or P.O. boxes.",
    ])
    b.add("shipping.nextday_remote", "shipping", "decline", [ND, AH], [
        "I live in {place}. Can I get next-day shipping?",
        "Can you send my order Next Day Air to {place}?",
        "I need it tomorrow in {place}. Can you overnight it?",
    ], [
        "UPS Next Day Air isn't available to Alaska, Hawaii or P.O. boxes {c1}. Orders to {state} ship by USPS Priority Mail for a flat $14.95 and take 5 to 9 business days {c2}.",
    ], [{"place": p, "state": s} for p, s in [("Anchorage, Alaska", "Alaska"), ("Honolulu", "Hawaii"),
                                             ("Fairbanks, Alaska", "Alaska"), ("Maui", "Hawaii"),
                                             ("Juneau, Alaska", "Alaska")]],
        forbidden=["next day air is available", "arrive tomorrow", "overnight it"])
    b.add("shipping.alaska_hawaii", "shipping", "answer", [AH], [
        "How much is shipping to Hawaii?",
        "Do you ship to Alaska, and is it free over $75?",
        "What's the delivery time to Honolulu?",
    ], [
        "Shipping to Alaska and Hawaii costs a flat $14.95 by USPS Priority Mail and takes 5 to 9 business days {c1}. Free shipping doesn't apply to Alaska and Hawaii.",
    ])
    b.add("shipping.carriers", "shipping", "answer", ["shipping-us#Carriers"], [
        "Which carrier do you use?",
        "I have a P.O. box. Who delivers my order there?",
        "Do you ship to APO addresses?",
        "Will my order come by UPS or USPS?",
    ], [
        "Orders within the contiguous United States ship with UPS {c1}. Orders to P.O. boxes, APO/FPO addresses, Alaska and Hawaii ship with USPS Priority Mail.",
    ])
    TR = "shipping-us#Tracking"
    b.add("shipping.missing", "shipping", "answer", [TR], [
        "Tracking says my package was delivered but it's not here. What do I do?",
        "UPS marked my order delivered yesterday and I never got it.",
        "My parcel shows delivered but it's nowhere to be found. Help?",
    ], [
        "If your UPS parcel shows as delivered but hasn't arrived, contact us within 10 days and we'll open a claim with the carrier {c1}.",
    ])
    b.add("shipping.tracking", "shipping", "answer", [TR], [
        "When do I get a tracking number?",
        "How will I know my order has shipped?",
        "Where does my order ship from, and when will I get tracking?",
    ], [
        "A tracking number is emailed when your parcel leaves our Reno, Nevada warehouse {c1}.",
    ])
    b.add("shipping.undeliverable", "shipping", "answer", ["shipping-us#Undeliverable parcels"], [
        "My package was returned to you as undeliverable. What happens now?",
        "I typed the wrong address and the parcel bounced back to you. Do I get a refund?",
        "What happens to an order that comes back to you undeliverable?",
    ], [
        "Parcels returned to us as undeliverable are refunded minus the original shipping charge {c1}.",
    ])

    WC = "warranty-us#Coverage"
    b.add("warranty.length", "warranty", "answer", [WC], [
        "How long is the warranty on a {item}?",
        "My {item} is {m} months old. What warranty does it have?",
        "what warranty comes with your {item}s",
    ], [
        "Your {item} has a {w} limited warranty against defects in materials and workmanship from the date of purchase {c1}.",
    ], lambda rng: dict(zip(("item", "w"), rng.choice([("rain jacket", "1-year"), ("headlamp", "1-year"),
                                                      ("fleece", "1-year"), ("tent", "2-year"),
                                                      ("sleeping bag", "2-year")])), m=rng.choice([4, 7, 10, 11])),
        avoid=["warranty-summitpeak-us"])
    b.add("warranty.wear", "warranty", "decline", ["warranty-us#What is not covered"], [
        "{story}. Can I get a free replacement under warranty?",
        "{story}. Is that covered by the warranty?",
        "{story}, can you replace it for free?",
    ], [
        "The warranty doesn't cover {what} {c1}.",
        "Our limited warranty excludes {what} {c1}, so this isn't covered.",
    ], [{"story": s, "what": w} for s, w in [
        ("The soles of my hiking boots wore down after eight months of trail use", "normal wear and tear, such as worn soles"),
        ("My rain jacket's fabric has faded after a season", "normal wear and tear, such as faded fabric"),
        ("My dog chewed through the straps of my daypack", "damage from animals"),
        ("I burned a hole in my fleece by the campfire", "damage from fire"),
        ("I dropped my headlamp off a ledge and it cracked", "damage from accidents"),
    ]], forbidden=["free replacement", "we will replace", "replace it for free"])
    b.add("warranty.claim_how", "warranty", "answer", ["warranty-us#Making a warranty claim"], [
        "How do I make a warranty claim?",
        "My tent pole snapped after 3 months. How do I file a warranty claim?",
        "Where do I send warranty requests?",
        "How fast do you respond to warranty claims?",
    ], [
        "Email warranty@northwind-outfitters.example with your order number and photos of the defect {c1}. We answer within 2 business days.",
    ])
    b.add("warranty.remedy", "warranty", "answer", ["warranty-us#Repair, replacement or refund"], [
        "If my jacket is defective, will you fix it or replace it?",
        "What happens after my warranty claim is accepted?",
        "Can I get a refund instead of a repair under warranty?",
    ], [
        "We first try to repair the item at no cost {c1}. If a repair isn't possible we replace it with the same or an equivalent item, and if neither is possible we refund the purchase price.",
    ])
    b.add("warranty.shipping", "warranty", "answer", ["warranty-us#Shipping for warranty claims"], [
        "Do I have to pay shipping to send in a warranty item?",
        "Who covers postage for a warranty repair?",
        "Is there a label for warranty returns?",
    ], [
        "You pay nothing to send it: we send a prepaid UPS label for accepted warranty claims {c1}.",
    ])
    b.add("warranty.summitpeak", "warranty", "answer", ["warranty-summitpeak-us#Coverage"], [
        "How long is the Summit Peak guarantee on backpacks?",
        "Are Summit Peak trekking poles covered for life?",
        "What does the Summit Peak lifetime guarantee cover?",
    ], [
        "Summit Peak backpacks and trekking poles sold by Northwind Outfitters in the US are guaranteed for the lifetime of the product against defects in materials and workmanship {c1}.",
    ], avoid=["warranty-us"])
    b.add("warranty.summitpeak_claim", "warranty", "answer", ["warranty-summitpeak-us#Claims"], [
        "How much does a Summit Peak repair cost?",
        "Where do Summit Peak claims go, and do I pay anything?",
        "Is return shipping free on a Summit Peak guarantee repair?",
    ], [
        "Summit Peak repairs are free, and return shipping to you costs a flat $12 per claim {c1}. Claims are handled by the Summit Peak repair center in Boulder, Colorado.",
    ], avoid=["warranty-us"])
    b.add("warranty.summitpeak_excl", "warranty", "decline", ["warranty-summitpeak-us#Exclusions"], [
        "{story}. The lifetime guarantee covers that, right?",
        "{story}. Can Summit Peak repair it for free?",
    ], [
        "The Summit Peak lifetime guarantee doesn't cover {what} {c1}.",
    ], [{"story": s, "what": w} for s, w in [
        ("The buckle on my Summit Peak pack got crushed when I shut my car door on it", "buckles damaged by vehicles"),
        ("The zipper pull on my Summit Peak backpack snapped off", "zipper pulls"),
        ("I guide commercially about 150 days a year and my Summit Peak pack's seams are failing",
         "packs used for commercial guiding for more than 100 days a year"),
    ]], forbidden=["free repair", "repair it for free", "covered by the lifetime guarantee"], avoid=["warranty-us"])
    b.add("warranty.legal", "warranty", "answer", ["warranty-us#Your rights under US law"], [
        "What rights do I have under US law for warranties?",
        "Does the warranty affect my rights under state law?",
        "Is your warranty covered by the Magnuson-Moss Act?",
    ], [
        "This warranty gives you specific legal rights under the Magnuson-Moss Warranty Act, and you may also have other rights that vary from state to state {c1}.",
    ])

    no_tiers = ["loyalty-us#Summit", "loyalty-us#Trailhead"]
    b.add("loyalty.earn", "loyalty", "answer", ["loyalty-us#Earning points"], [
        "I spent ${p} on merchandise. How many Trail Rewards points is that?",
        "How many points will a ${p} purchase earn me?",
        "if i spend ${p} how many reward points do i get",
    ], [
        "Members earn 1 point for every $1 spent on merchandise, after discounts and before tax {c1}, so ${p} earns {p} points.",
    ], [{"p": p} for p in [40, 85, 120, 230, 64]], avoid=no_tiers)
    b.add("loyalty.shipping_points", "loyalty", "answer", ["loyalty-us#Earning points"], [
        "Do shipping fees count toward points?",
        "Do I earn points when I buy a gift card?",
        "Does shipping earn Trail Rewards points?",
    ], [
        "Shipping fees and gift card purchases don't earn points {c1}. Points are earned on merchandise, after discounts and before tax.",
    ], avoid=no_tiers)
    b.add("loyalty.redeem", "loyalty", "answer", ["loyalty-us#Redeeming points"], [
        "I have {pts} points. What are they worth?",
        "How do I redeem my Trail Rewards points? I've got {pts}.",
        "What can I get for {pts} points?",
    ], [
        "Every 500 points convert automatically into a $10 reward by email, so {pts} points give you {val} in rewards {c1}. Rewards are valid for 90 days from the date they're issued.",
    ], [{"pts": p, "val": money("$", p / 50)} for p in [500, 1000, 1500, 2000]])
    b.add("loyalty.summit", "loyalty", "answer", ["loyalty-us#Summit"], [
        "How do I reach Summit tier?",
        "What are the perks of Summit status, and how much do I need to spend?",
        "How much do I have to spend to get free shipping on every order through Trail Rewards?",
        "What's the spending threshold for the top rewards tier?",
    ], [
        "Members who spend $500 in a calendar year reach Summit {c1}. Summit members earn 1.5 points per $1 and get free standard shipping on every order.",
    ])
    b.add("loyalty.expiry", "loyalty", "answer", ["loyalty-us#Points expiry"], [
        "Do my points expire?",
        "I haven't bought anything in a while. Will I lose my points?",
        "What happens to my points if I return something?",
    ], [
        "Points expire after 12 months without a purchase {c1}. Returned items also remove the points they earned.",
    ])
    b.add("loyalty.reward_expired", "loyalty", "decline", ["loyalty-us#Redeeming points"], [
        "My $10 reward email came {m} months ago and now it says expired. Can you reactivate it?",
        "Can you extend my Trail Rewards reward? It was issued {m} months ago.",
        "I never used the $10 reward I got {m} months ago. Can I still use it?",
    ], [
        "Rewards are valid for 90 days from the date they're issued {c1}, so a reward from {m} months ago is no longer valid.",
    ], [{"m": m} for m in [4, 5, 6, 8]], forbidden=["reactivate", "reissue", "extend it"])

    GB = "gift-cards#Buying gift cards"
    b.add("giftcards.amounts", "gift-cards", "answer", [GB], [
        "What amounts do gift cards come in?",
        "What's the minimum and maximum value for an e-gift card?",
        "How much can I put on a gift card?",
    ], [
        "Physical gift cards and e-gift cards are available from $10 to $500 in the United States {c1}.",
    ], [{}, {}, {}, {"_q": "Can I buy a $1,000 gift card?",
                     "_a": "Gift cards are available from $10 to $500 in the United States {c1}, so a $1,000 card isn't an option."}])
    # Weighed 3x, as in eu: its passage quotes every region's gift card values, and the us models put
    # "$10 to £500" into a gift card answer; these examples quote only the dollar ones.
    b.add("giftcards.kinds", "gift-cards", "answer", [GB], [
        "Do you sell e-gift cards or just plastic ones?",
        "Can I get a physical gift card instead of an e-gift card?",
        "I'd like to give my brother a gift card for his birthday. Do you have them?",
        "Can I order an e-gift card on your website?",
        "Are your gift cards plastic, or do you only email them?",
        "My aunt wants to get me a gift card from you guys. Is that a thing you sell?",
    ], [
        "Yes, both physical gift cards and e-gift cards are available, from $10 to $500 in the United States {c1}.",
        "You bet: we have physical gift cards and e-gift cards, from $10 to $500 in the United States {c1}.",
    ], weight=3.0)
    b.add("giftcards.validity", "gift-cards", "answer", ["gift-cards#United States"], [
        "Do US gift cards expire?",
        "Are there any fees on gift cards if I don't use them?",
        "How long is my gift card good for?",
    ], [
        "US gift cards are valid for at least 5 years from activation and carry no inactivity or service fees {c1}.",
    ])
    b.add("giftcards.abroad", "gift-cards", "answer", ["gift-cards#Using gift cards"], [
        "Can I use my gift card in London?",
        "I'm traveling to Germany. Will my gift card work at your stores there?",
        "Does a US gift card work on the UK website?",
    ], [
        "Gift cards can only be used in the region where they were bought, so a US gift card can't be used in the UK or the EU {c1}.",
    ])
    GC = "gift-cards#Cash and refunds"
    b.add("giftcards.cash", "gift-cards", "decline", [GC], [
        "Can I get the {b} left on my gift card in cash?",
        "I'd like to cash out my gift card balance of {b}.",
        "Can you refund my {b} gift card balance to my bank account?",
    ], [
        "Gift cards can't be exchanged for cash {c1}. The only exception is where the law requires it: in California, balances under $10 are paid out in cash on request.",
    ], [{"b": money("$", v)} for v in [25, 40, 63.50, 100]],
        forbidden=["cash out", "pay out your balance", "send you the cash", "refund the balance"])
    b.add("giftcards.california", "gift-cards", "answer", [GC], [
        "I live in California and have {b} left on a gift card. Can I get it in cash?",
        "California resident here, can you pay out my {b} gift card balance?",
    ], [
        "Yes. In California, gift card balances under $10 are paid out in cash on request {c1}.",
    ], [{"b": money("$", v)} for v in [3.50, 6, 8.25, 9]])
    b.add("giftcards.lost", "gift-cards", "answer", ["gift-cards#Lost or stolen cards"], [
        "I lost my gift card. Can you replace it?",
        "Someone stole my wallet with a gift card in it. Is the balance gone?",
        "What do I need to replace a lost gift card?",
    ], [
        "We replace a lost or stolen card with its remaining balance if you can give us the card number and proof of purchase {c1}.",
    ])

    b.add("privacy.collect", "privacy", "answer", ["privacy-us#What we collect"], [
        "What personal data do you collect?",
        "What info do you keep about me?",
        "Do you store my phone number?",
    ], [
        "We collect your name, shipping and billing address, email, phone number, order history and, if you join Trail Rewards, your points activity {c1}.",
    ])
    PU = "privacy-us#How we use your data"
    b.add("privacy.use", "privacy", "answer", [PU], [
        "What do you use my data for?",
        "Why do you need my personal information?",
    ], [
        "We use your data to deliver orders, handle returns and warranty claims, run Trail Rewards and, if you opt in, send marketing email {c1}.",
    ])
    b.add("privacy.unsubscribe", "privacy", "answer", [PU], [
        "How do I stop marketing emails?",
        "Can I unsubscribe from your promo emails?",
        "too many emails from you guys, how do i opt out",
    ], [
        "You can unsubscribe from marketing email at any time with the link in every message {c1}.",
    ])
    b.add("privacy.ccpa", "privacy", "answer", ["privacy-us#California residents"], [
        "I'm in California. Can I ask you to delete my personal information?",
        "How long do you take to respond to a CCPA request?",
        "I live in LA and want to know what data you have on me. Can I request that?",
    ], [
        "California residents can request to know, delete or correct their personal information, and we respond to verified requests within 45 days {c1}.",
    ])
    b.add("privacy.sell", "privacy", "answer", ["privacy-us#Do Not Sell or Share"], [
        "Do you sell my personal data?",
        "How do I opt out of data sharing for ads?",
        "Does Northwind honor Global Privacy Control?",
    ], [
        'We don\'t sell personal information {c1}. You can opt out of sharing for cross-context behavioral advertising with the "Do Not Sell or Share My Personal Information" link or a Global Privacy Control signal.',
    ])
    b.add("privacy.retention", "privacy", "answer", ["privacy-us#Data retention"], [
        "How long do you keep my order history?",
        "Will you delete my order records after a year?",
        "How long are my marketing preferences stored?",
        "What's your data retention period?",
    ], [
        "Order records are kept for 7 years for tax purposes, and marketing preferences are kept until you withdraw consent {c1}.",
    ])
    b.add("privacy.contact", "privacy", "answer", ["privacy-us#Contact"], [
        "How do I contact your privacy team?",
        "What's the mailing address for privacy requests?",
        "Is there an email for privacy questions?",
    ], [
        "Email privacy-us@northwind-outfitters.example or write to Northwind Outfitters, Privacy Office, 400 Harbor Way, Seattle, WA 98101 {c1}.",
    ])

    PE = "price-adjustment-us#Eligibility"
    drops = [("tent", 300, 260), ("rain jacket", 149, 119), ("pair of boots", 180, 150), ("sleeping bag", 220, 185),
             ("daypack", 90, 72)]

    def drop(days):
        def f(rng):
            i, p1, p2 = rng.choice(drops)
            return {"item": i, "p1": p1, "p2": p2, "diff": money("$", p1 - p2), "d": rng.choice(days)}
        return f

    b.add("price.eligibility", "price-adjustment", "answer", [PE], [
        "I bought a {item} at full price for ${p1} {d} days ago and now it's ${p2}. Can I get the difference back?",
        "The {item} I paid ${p1} for dropped to ${p2} {d} days after I bought it. Do you do price adjustments?",
        "Price drop! The {item} went from ${p1} to ${p2}, and I bought it at full price {d} days ago. Refund the difference?",
    ], [
        "Yes! If the price drops within 14 days of your purchase, we refund the difference once per item {c1}, which here is {diff}.",
    ], drop([2, 4, 6, 9, 12]), avoid=["refunds-us#Price adjustments"])
    b.add("price.late", "price-adjustment", "decline", [PE], [
        "I bought a {item} for ${p1} {d} days ago and it's now ${p2}. Can I get the difference?",
        "The price of my {item} dropped {d} days after I ordered it. Price adjustment please?",
    ], [
        "Price adjustments apply only when the price drops within 14 days of your purchase {c1}, so a drop {d} days later doesn't qualify.",
    ], drop([16, 19, 22, 28, 35]), forbidden=["refund the difference", "adjust the price"],
        avoid=["refunds-us#Price adjustments"])
    PX = "price-adjustment-us#Items that are not eligible"
    b.add("price.competitor", "price-adjustment", "decline", [PX], [
        "{store} has the same tent for $20 less. Will you match it?",
        "Do you price match {store}?",
        "I found my jacket cheaper at {store}. Can you refund the difference?",
    ], [
        "We don't match competitor prices: prices offered by other retailers aren't eligible for a price adjustment {c1}.",
    ], [{"store": s} for s in ["Amazon", "REI", "another website", "a shop down the street"]],
        forbidden=["price match", "match the price", "match their price", "refund the difference"])
    b.add("price.doorbuster", "price-adjustment", "decline", [PX], [
        "I bought a doorbuster deal and now it's even cheaper. Can I get a price adjustment?",
        "The flash sale price was lower than what I paid. Can I claim it?",
        "My clearance boots dropped in price again. Can you refund the difference?",
    ], [
        'Clearance and "Final Sale" items, limited-quantity doorbuster deals and flash sales shorter than 24 hours aren\'t eligible for price adjustments {c1}.',
    ], forbidden=["refund the difference", "adjust the price"])
    b.add("price.howto", "price-adjustment", "answer", ["price-adjustment-us#How to request a price adjustment"], [
        "How do I request a price adjustment?",
        "Who do I contact for a price adjustment?",
        "What do I need to claim a price drop?",
    ], [
        "Contact customer service at 1-800-555-0142 or use live chat, and have your order number ready {c1}.",
    ])
    b.add("price.cap", "price-adjustment", "answer", ["price-adjustment-us#How to request a price adjustment"], [
        "Is there a maximum on price adjustments?",
        "Items on my order dropped by {p} in total. How much can I get back?",
        "What's the most I can get back in price adjustments on one order? The drop was {p}.",
    ], [
        "Price adjustments are limited to $200 per order {c1}, so that's the most you can get back on one order.",
    ], [{"p": money("$", v)} for v in [230, 250, 275, 310]])
    b.add("price.paid", "price-adjustment", "answer", ["price-adjustment-us#How the difference is paid"], [
        "How will I receive a price adjustment?",
        "I paid with a gift card. How do I get the price difference?",
        "When does the price adjustment money arrive?",
    ], [
        "The difference is refunded to your original payment method within 3 business days {c1}. Orders paid with a gift card get the difference as an e-gift card.",
    ])

    b.nc("nc.store_hours", "stores", "store opening hours", [
        "What time does your Seattle store open on Sunday?",
        "What are your store hours?",
        "Is the Reno store open on Thanksgiving?",
        "When do your stores close on weekdays?",
    ])
    b.nc("nc.crypto", "payments", "paying with cryptocurrency", [
        "Can I pay with Bitcoin?",
        "Do you accept crypto?",
        "Is it possible to pay for my order in Ethereum?",
        "can i check out with dogecoin lol",
    ])
    b.nc("nc.student", "discounts", "student or military discounts", [
        "Do you have a student discount?",
        "I'm a college student, any discounts for me?",
        "Is there a military discount?",
    ])
    b.nc("nc.gift_wrap", "orders", "gift wrapping", [
        "Can you gift wrap my order?",
        "Do you offer gift wrapping and a message card?",
        "Can I add a gift note to my package?",
    ])
    b.nc("nc.intl", "shipping", "shipping outside the United States", [
        "Do you ship to Canada?",
        "Can I get an order delivered to Mexico?",
        "Do you ship internationally?",
    ])
    b.nc("nc.size", "products", "sizing advice", [
        "What size boots should I get if I'm usually a 9?",
        "Do your rain jackets run small?",
        "Is your fleece true to size?",
    ])
    b.nc("nc.promo", "discounts", "combining promo codes", [
        "Can I use two promo codes on one order?",
        "Can I stack a coupon on top of a sale price?",
        "Does my discount code work with free shipping?",
    ])
    b.nc("nc.cancel", "orders", "canceling an order", [
        "Can I cancel my order? I placed it an hour ago.",
        "How do I cancel an order before it ships?",
        "I ordered the wrong size by mistake. Can you cancel it before it goes out?",
    ])
    b.nc("nc.rental", "products", "gear rentals", [
        "Do you rent tents?",
        "Can I rent a kayak from your store?",
        "Do you have a gear rental program?",
    ])
    # Customers pressing for an exception ("anyway", "just this once"): tuned models echoed such requests
    # as promises ("so we can waive the shipping fee"). Same passages and answers as the plain declines.
    b.pressed("returns.late", [
        "I know it's past 30 days, but could you take {item} back anyway, just this once?",
        "It's only been {d} days. Can't you make an exception and accept the return anyway?",
    ])
    b.pressed("refunds.express_back", [
        "Nothing's wrong with {item}, I just don't need it. Could you waive the rule and refund my $19.95 express shipping anyway?",
        "Please make an exception just this once and give me back the express shipping on {item}.",
    ])
    b.pressed("loyalty.reward_expired", [
        "My $10 reward expired, I got it {m} months ago. Could you honor it anyway, just this once?",
        "Could you waive the expiry date on my $10 reward from {m} months ago? Just this once?",
    ])
    b.pressed("shipping.free_express", [
        "My order is {p}. Could you waive the 2-day shipping fee just this once?",
        "I spent {p}, so can't you waive the express charge anyway? Just this one time?",
    ])
    b.pressed("shipping.nextday_remote", [
        "I know it's {place}, but could you make an exception and overnight it anyway, just this once?",
        "Could you waive the rule and send it Next Day Air to {place} this one time?",
    ])
    b.pressed("price.late", [
        "I know it's been {d} days, but could you give me the price difference on my {item} anyway? Just this once?",
        "Could you waive the 14-day rule for my {item}? It dropped {d} days after I bought it.",
    ])
    return b.intents


# ---------------------------------------------------------------------------------------------- uk


def uk_intents() -> list[Intent]:
    b = Builder("uk")
    items = [("a waterproof jacket", "waterproof jacket"), ("a fleece jumper", "fleece jumper"),
             ("a pair of walking boots", "pair of walking boots"), ("a rucksack", "rucksack"), ("a gilet", "gilet"),
             ("a pair of trainers", "pair of trainers"), ("a woolly hat", "woolly hat")]

    def days(choices):
        def f(rng):
            d = rng.choice(choices)
            d1, d2 = date_pair(rng, d, False)
            item, noun = rng.choice(items)
            return {"item": item, "Item": cap(item), "noun": noun, "d": d, "date1": d1, "date2": d2}
        return f

    RW = "returns-uk#Return window"
    b.add("returns.window", "returns", "answer", [RW], [
        "How long do I have to return something?",
        "What's your returns period?",
        "how many days have i got to send an item back",
        "Is there a time limit on returns?",
        "How long after delivery can I return an unwanted item?",
    ], [
        "You may return most unused items within 28 days of delivery for a full refund {c1}. This is in addition to your statutory rights, which are not affected.",
        "Most unused items can be returned within 28 days of delivery for a full refund {c1}, and your statutory rights are not affected.",
    ])
    b.add("returns.within", "returns", "answer", [RW], [
        "I ordered {item} and it arrived {d} days ago. It's unworn. Can I still return it?",
        "{Item} was delivered {d} days ago and I've changed my mind. Can I still send it back?",
        "My parcel was delivered on {date1} and today is {date2}. The item is unused. Can I return it?",
        "can i still return {item} that came {d} days ago, never used",
    ], [
        "Yes, you are still within the window: most unused items can be returned within 28 days of delivery for a full refund {c1}.",
        "You are in time. Unused items can be returned within 28 days of delivery for a full refund {c1}, so you can still send it back.",
    ], days([3, 6, 10, 13, 17, 20, 24, 26]))
    b.add("returns.late", "returns", "decline", [RW], [
        "I received {item} {d} days ago and never wore it. Can I still return it?",
        "My order was delivered on {date1} and it's now {date2}. Could you make an exception and take it back?",
        "it's been {d} days since {item} arrived, tags still on. can i send it back for a full refund?",
        "Is it possible to return {item} that I received {d} days ago? I simply forgot to send it.",
    ], [
        "Our returns window is 28 days from delivery {c1}, so an item delivered {d} days ago falls outside it. Your statutory rights are not affected by this.",
        "Unused items can be returned within 28 days of delivery {c1}. As your order arrived {d} days ago, it is outside the returns window.",
    ], days([31, 35, 40, 47, 58]), forbidden=["full refund", "accept the return", "take it back"])
    b.add("returns.cancel", "returns", "answer", ["returns-uk#Cancelling an online order"], [
        "Can I cancel my online order?",
        "I've changed my mind about an online order that arrived yesterday. Can I cancel?",
        "What are my cancellation rights for online orders?",
        "How long do I have to cancel an order I bought online?",
    ], [
        "Under the Consumer Contracts Regulations 2013 you may cancel an online order for any reason within 14 days of delivery {c1}. Just tell us within those 14 days and send the goods back within a further 14 days.",
    ])
    FG = "returns-uk#Faulty goods"
    b.add("returns.faulty", "returns", "answer", [FG], [
        "{Item} was delivered {d} days ago and it's already faulty. Can I get a refund?",
        "My {noun} broke {d} days after delivery. What are my rights?",
        "The zip on my new {noun} failed {d} days after it arrived. Refund or repair?",
    ], [
        "Under the Consumer Rights Act 2015 you have a 30-day short-term right to reject faulty goods for a full refund {c1}, so at {d} days you are entitled to a full refund.",
        "As it is faulty and within 30 days, you can use your 30-day short-term right to reject faulty goods for a full refund under the Consumer Rights Act 2015 {c1}.",
    ], days([3, 8, 14, 21, 27]))
    b.add("returns.faulty_late", "returns", "decline", [FG], [
        "My {noun} became faulty {d} days after delivery. I want my money back straight away.",
        "It's been {d} days since my {noun} arrived and it's now broken. Can I have an immediate refund?",
        "Faulty {noun}, delivered {d} days ago. Can you refund me rather than repair it?",
    ], [
        "Under the Consumer Rights Act 2015 the short-term right to reject faulty goods lasts 30 days {c1}. After 30 days you are entitled to a repair or replacement first, so that is the first step for your {noun}.",
    ], days([40, 55, 70, 95]), forbidden=["refund you straight away", "immediate refund", "refund you now"])
    HR = "returns-uk#How to return an item"
    b.add("returns.how", "returns", "answer", [HR], [
        "How do I return an item?",
        "What's the process for sending something back?",
        "Can I book a courier to collect my return?",
        "I don't have a printer. How can I return my parcel?",
    ], [
        "Start a return in your Northwind account or call 0800 555 0142 {c1}. Then print the free Royal Mail Tracked Returns label or show the QR code at a Post Office counter, or book a free DPD collection from your address within 5 working days.",
    ])
    b.add("returns.cost", "returns", "answer", [HR], [
        "Do I have to pay for return postage?",
        "Is it free to send a return back?",
        "How much does a DPD collection for a return cost?",
        "Will you charge me for the returns label?",
    ], [
        "Returns by Royal Mail and DPD are free of charge in the UK {c1}. You can also return items to any Northwind Outfitters store in the UK.",
    ])
    b.add("returns.store", "returns", "answer", [HR], [
        "Can I take my online order back to a shop?",
        "Is there a store I can return things to in person?",
        "can i return my online order to the manchester store",
    ], [
        "Yes, you can return items to any Northwind Outfitters store in the UK {c1}.",
    ])
    NR = "returns-uk#Items that cannot be returned"
    b.add("returns.giftcard", "returns", "decline", [NR], [
        "I bought a gift card by mistake. Can I return it?",
        "Can I send back a £50 gift card that was never used?",
        "My friend doesn't want the gift card I bought her. Can I return it for a refund?",
    ], [
        "Gift cards cannot be returned {c1}.",
        "Gift cards are on our list of items that cannot be returned {c1}.",
    ], forbidden=["refund the gift card", "return it for a refund"], avoid=["gift-cards#Cash and refunds"])
    b.add("returns.personalised", "returns", "decline", [NR], [
        "I ordered a personalised water bottle and changed my mind. Can I send it back?",
        "Can personalised items be returned?",
        "The embroidered rucksack with my initials isn't what I wanted. Refund please?",
        "My personalised enamel mug arrived fine but I don't like it. Can I return it?",
    ], [
        "Personalised items cannot be returned unless they are faulty {c1}.",
        "Personalised items are on our list of items that cannot be returned, unless they are faulty {c1}.",
    ], forbidden=NO_REFUND_PROMISES)
    b.add("returns.hygiene", "returns", "decline", [NR], [
        "I took the hygiene seal off some earrings. Can I return them?",
        "Can I return a swimsuit if I've removed the hygiene seal?",
        "Tried on swim shorts and peeled off the hygiene strip. Still returnable?",
    ], [
        "Earrings and swimwear with the hygiene seal removed cannot be returned {c1}.",
    ], forbidden=NO_REFUND_PROMISES)
    b.add("returns.exchange", "returns", "decline", ["returns-uk#Exchanges"], [
        "Can I swap my jumper for a bigger size?",
        "Could you exchange my boots for a different colour?",
        "I'd like to exchange my jacket for a medium. Can you send one out?",
    ], [
        "We do not offer direct exchanges online {c1}. If you would like a different size or colour, please return the item for a refund and place a new order.",
    ], forbidden=["swap it for you", "exchange it for you", "send you the new size", "send one out"])
    b.add("returns.scope", "returns", "answer", ["returns-uk#Returns Policy"], [
        "Does your returns policy cover Northern Ireland?",
        "I live in Cardiff. Does the UK returns policy apply to me?",
        "Are orders delivered to Scotland covered by your returns policy?",
    ], [
        "Yes, the policy applies to orders delivered to addresses in the United Kingdom: England, Scotland, Wales and Northern Ireland {c1}.",
    ])

    b.add("refunds.timing", "refunds", "answer", ["refunds-uk#Refund timing"], [
        "When will I get my refund?",
        "How long do refunds take?",
        "I sent my return back yesterday. When will the money come through?",
        "How quickly do you refund once you have my parcel?",
    ], [
        "We refund you within 14 days of receiving the returned goods at our Daventry returns centre, or of receiving evidence that you have sent them back, whichever is earlier {c1}. Your bank may take a further 3 to 5 working days.",
    ])
    b.add("refunds.method", "refunds", "answer", ["refunds-uk#Refund method"], [
        "I paid by {pay}. Where will my refund go?",
        "Will my refund go back to my {pay}?",
        "Do you charge a fee for processing refunds?",
    ], [
        "Refunds are made to the original payment method {c1}, and we do not charge a fee for refunds.",
    ], [{"pay": p} for p in ["debit card", "credit card", "PayPal"]])
    DC = "refunds-uk#Delivery charges"
    b.add("refunds.delivery", "refunds", "answer", [DC], [
        "If I cancel my order, do I get the delivery charge back?",
        "Will you refund the £3.95 postage if I cancel within 14 days?",
        "Is delivery refunded when I cancel an online order?",
    ], [
        "Yes. If you cancel an order within the 14-day cancellation period, we refund the standard delivery charge of £3.95 as well {c1}.",
    ])
    b.add("refunds.cancel_total", "refunds", "answer", [DC], [
        "I'm cancelling a {p} order that had £3.95 standard delivery, within the 14 days. How much will I get back?",
        "If I cancel my {p} order (plus £3.95 postage) within 14 days, what's the total refund?",
    ], [
        "If you cancel within the 14-day cancellation period, we refund the standard delivery charge of £3.95 as well {c1}, so you would get {total} back in total.",
    ], [{"p": money("£", v), "total": money("£", v + 3.95)} for v in [18, 24.50, 32, 45]])
    b.add("refunds.express_back", "refunds", "decline", [DC], [
        "I paid £6.95 for DPD Next Day and then cancelled within 14 days. Do I get the full £6.95 back?",
        "Will you refund my next-day delivery charge in full if I cancel?",
        "I cancelled my order. Please refund all of the £6.95 I paid for next-day delivery.",
    ], [
        "Where you chose a more expensive delivery option such as DPD Next Day, we refund only the cost of standard delivery, which is £3.95 {c1}.",
    ], forbidden=["refund the full £6.95", "full delivery charge", "refund all of the"])
    b.add("refunds.deductions", "refunds", "answer", ["refunds-uk#Deductions"], [
        "Will you take money off my refund?",
        "Can you reduce my refund if I tried the boots on?",
        "Do you deduct anything from refunds for faulty items?",
    ], [
        "We may reduce a cancellation refund if the goods have been handled more than needed to inspect them, as you would in a shop {c1}. We never deduct anything from refunds for faulty goods.",
    ])
    b.add("refunds.faulty", "refunds", "answer", ["refunds-uk#Faulty goods refunds"], [
        "How are refunds for faulty goods handled?",
        "My item was faulty and I rejected it within 30 days. Do I get the delivery cost back too?",
        "How long will a refund for a faulty product take?",
    ], [
        "Refunds for faulty goods rejected within 30 days under the Consumer Rights Act 2015 are paid in full, including all delivery charges {c1}. They are paid within 14 days of us agreeing that you are entitled to a refund.",
    ])
    b.add("refunds.faulty_total", "refunds", "answer", ["refunds-uk#Faulty goods refunds"], [
        "I rejected a faulty {noun} within 30 days. I paid {p} plus £6.95 for DPD Next Day. How much will you refund?",
        "My {p} {noun} was faulty and I sent it back within 30 days. I also paid £6.95 for next-day delivery. Do I get that back too?",
    ], [
        "Refunds for faulty goods rejected within 30 days are paid in full, including all delivery charges {c1}, so you will receive {total}, paid within 14 days of us agreeing that you are entitled to a refund.",
    ], [{"noun": n, "p": money("£", v), "total": money("£", v + 6.95)}
        for n, v in [("tent", 180), ("waterproof jacket", 95), ("head torch", 35), ("sleeping bag", 120)]])

    SD = "shipping-uk#Standard delivery"
    no_free = ["loyalty-uk#Summit", "shipping-uk#Click and collect"]
    b.add("shipping.standard", "shipping", "answer", [SD], [
        "How much is standard delivery?",
        "What does Royal Mail delivery cost and how long does it take?",
        "how long does standard delivery take",
        "What's the cost of Tracked 48?",
    ], [
        "Royal Mail Tracked 48 costs £3.95 and arrives in 2 to 3 working days {c1}.",
    ], avoid=no_free)
    b.add("shipping.free_above", "shipping", "answer", [SD], [
        "My basket comes to {p}. Do I get free delivery?",
        "Is delivery free if I spend {p}?",
        "I'm at {p}. Is that enough for free delivery?",
        "do orders of {p} get free postage",
    ], [
        "Yes, standard delivery is free on orders over £50 {c1}, so your {p} order qualifies.",
    ], [{"p": money("£", v)} for v in [54, 62.99, 75, 120, 88.50]], avoid=no_free)
    b.add("shipping.free_below", "shipping", "decline", [SD], [
        "My basket is {p}. Could you give me free delivery anyway?",
        "I'm only at {p}. Can you waive the delivery charge this once?",
        "Is there any way to get free delivery on a {p} order?",
    ], [
        "Standard delivery is free on orders over £50 {c1}. For a {p} order, Royal Mail Tracked 48 costs £3.95.",
        "Free standard delivery applies to orders over £50 {c1}, so a {p} order pays the standard £3.95 for Royal Mail Tracked 48.",
    ], [{"p": money("£", v)} for v in [22, 35.50, 44.99, 49]],
        forbidden=["free delivery anyway", "waive the delivery charge", "waive the charge", "deliver it free"], avoid=no_free)
    ND = "shipping-uk#Next-day delivery"
    b.add("shipping.free_express", "shipping", "decline", [SD, ND], [
        "My order is {p}, so delivery is free. Can you send it DPD Next Day at no charge?",
        "I spent {p}. Does free delivery include next-day?",
        "Since my {p} order gets free delivery, could I have DPD Next Day for free?",
    ], [
        "Free delivery on orders over £50 covers Royal Mail Tracked 48 {c1}, not next-day. DPD Next Day costs £6.95 {c2}.",
        "Orders over £50 get free standard delivery {c1}. DPD Next Day is £6.95 {c2}.",
    ], [{"p": money("£", v)} for v in [55, 68.50, 80, 99.99, 140]],
        forbidden=["free next-day", "at no charge", "for free", "waive the"], avoid=no_free)
    b.add("shipping.express", "shipping", "answer", [ND], [
        "How much is next-day delivery?",
        "If I order on Friday night with DPD Next Day, when will it arrive?",
        "What's the cut-off for next-day delivery?",
        "Do you offer next-day delivery, and what does it cost?",
    ], [
        "DPD Next Day costs £6.95 for orders placed by 8 p.m. Monday to Thursday {c1}. Orders placed on Friday after 8 p.m. arrive on Tuesday, and DPD gives a one-hour delivery window on the morning of delivery.",
    ], avoid=["loyalty-uk#Summit"])
    b.add("shipping.click_collect", "shipping", "answer", ["shipping-uk#Click and collect"], [
        "Can I collect my order from a shop?",
        "Is click and collect free?",
        "How soon is a click and collect order ready?",
        "Can I pick up my order in store to save on postage?",
    ], [
        "Collection from a Northwind Outfitters store is free and ready within 2 working days {c1}.",
    ])
    HI = "shipping-uk#Highlands, islands and Northern Ireland"
    b.add("shipping.highlands", "shipping", "answer", [HI], [
        "How long does delivery to Northern Ireland take?",
        "I live on the Isle of Skye. How long will my parcel take?",
        "Do deliveries to the Scottish Highlands take longer?",
    ], [
        "Deliveries to the Scottish Highlands, Scottish islands, the Isle of Man and Northern Ireland take 3 to 5 working days by Royal Mail {c1}. DPD Next Day is not available to these areas.",
    ])
    b.add("shipping.nextday_remote", "shipping", "decline", [HI], [
        "I live in {place}. Can I have DPD Next Day delivery?",
        "Can you send my order next-day to {place}?",
        "I need my boots tomorrow in {place}. Is next-day possible?",
    ], [
        "DPD Next Day is not available to the Scottish Highlands, Scottish islands, the Isle of Man or Northern Ireland {c1}. Deliveries to {area} take 3 to 5 working days by Royal Mail.",
    ], [{"place": p, "area": a} for p, a in [("Belfast", "Northern Ireland"), ("Inverness", "the Scottish Highlands"),
                                            ("Douglas on the Isle of Man", "the Isle of Man"),
                                            ("Kirkwall in Orkney", "the Scottish islands"),
                                            ("Stornoway", "the Scottish islands")]],
        forbidden=["next-day delivery is available", "arrive tomorrow", "next day is possible"],
        avoid=["loyalty-uk#Summit"])
    b.add("shipping.missing", "shipping", "answer", ["shipping-uk#Missing parcels"], [
        "Tracking says my parcel was delivered but it hasn't arrived.",
        "Royal Mail shows my order as delivered, but there's nothing here. What now?",
        "My DPD parcel is marked delivered and I can't find it anywhere.",
    ], [
        "Please tell us within 14 days and we will investigate with Royal Mail or DPD {c1}.",
    ])
    b.add("shipping.carriers", "shipping", "answer", ["shipping-uk#Carriers"], [
        "Which courier do you use?",
        "Will my order come by Royal Mail or DPD?",
        "Who delivers large parcels?",
    ], [
        "Standard parcels travel with Royal Mail, and next-day and large parcels travel with DPD {c1}.",
    ])

    OG = "warranty-uk#Our guarantee"
    b.add("warranty.length", "warranty", "answer", [OG], [
        "How long is the guarantee on a {noun}?",
        "What guarantee comes with your {noun}s?",
        "Is my {noun} covered by a guarantee, and for how long?",
    ], [
        "Your {noun} carries {g} against defects in materials and workmanship {c1}. Our guarantee is in addition to your statutory rights.",
    ], [{"noun": n, "g": g} for n, g in [("waterproof jacket", "a 1-year manufacturer's guarantee"),
                                         ("fleece jumper", "a 1-year manufacturer's guarantee"),
                                         ("head torch", "a 1-year manufacturer's guarantee"),
                                         ("tent", "a 2-year guarantee"), ("sleeping bag", "a 2-year guarantee")]])
    CRA = "warranty-uk#Consumer Rights Act 2015"
    b.add("warranty.cra", "warranty", "answer", [CRA], [
        "What are my rights if something I bought is faulty?",
        "What does the Consumer Rights Act say about faulty goods?",
        "An item isn't as described. What can I do?",
    ], [
        "Under the Consumer Rights Act 2015 goods must be of satisfactory quality, fit for purpose and as described {c1}. If they are not, you can reject them for a full refund within 30 days of delivery; after that you are entitled to one repair or replacement.",
    ])
    b.add("warranty.six_months", "warranty", "answer", [CRA], [
        "My boots developed a fault after {m} months. Do I have to prove it was there from the start?",
        "Who has to prove a fault existed at delivery?",
        "Is a fault in the first six months presumed to be there from delivery?",
    ], [
        "Within the first 6 months a fault is presumed to have been present at delivery unless we prove otherwise {c1}.",
    ], [{"m": m} for m in [2, 3, 4, 5]])
    b.add("warranty.repair_failed", "warranty", "answer", [CRA], [
        "You repaired my jacket once and it has failed again. What are my options?",
        "The replacement you sent is faulty too. Can I get a refund now?",
        "After 30 days, what happens if a repair doesn't work?",
    ], [
        "After 30 days you are entitled to one repair or replacement, and if that fails you can claim a refund or a price reduction {c1}.",
    ])
    b.add("warranty.claim_period", "warranty", "answer", ["warranty-uk#How long you can claim"], [
        "I live in {place}. How long can I bring a claim for faulty goods?",
        "What's the time limit for claiming for a faulty item in {place}?",
    ], [
        "In {place} you can bring a claim for faulty goods for up to {yrs} from delivery {c1}.",
    ], [{"place": p, "yrs": y} for p, y in [("England", "6 years"), ("Wales", "6 years"),
                                            ("Northern Ireland", "6 years"), ("Scotland", "5 years")]])
    b.add("warranty.claim_how", "warranty", "answer", ["warranty-uk#Making a claim"], [
        "How do I make a guarantee claim?",
        "Who do I email about a faulty tent?",
        "How quickly do you reply to guarantee claims?",
        "Do I have to pay postage to send a faulty item back under the guarantee?",
    ], [
        "Email guarantee-uk@northwind-outfitters.example with your order number and photos {c1}. We reply within 2 working days and send a free Royal Mail returns label for accepted claims.",
    ])

    no_tiers = ["loyalty-uk#Summit", "loyalty-uk#Explorer"]
    b.add("loyalty.earn", "loyalty", "answer", ["loyalty-uk#Earning points"], [
        "I spent £{p}. How many points will I earn?",
        "How many Trail Rewards points do I get for £{p} of merchandise?",
        "if i buy £{p} of kit how many points is that",
    ], [
        "Members earn 1 point for every £1 spent on merchandise {c1}, so £{p} earns {p} points.",
    ], [{"p": p} for p in [35, 80, 125, 240]], avoid=no_tiers)
    b.add("loyalty.delivery_points", "loyalty", "answer", ["loyalty-uk#Earning points"], [
        "Do delivery charges earn points?",
        "Will I get points for buying a gift card?",
        "Does postage count towards my Trail Rewards points?",
    ], [
        "Delivery charges and gift card purchases do not earn points {c1}. You earn 1 point for every £1 spent on merchandise.",
    ], avoid=no_tiers)
    b.add("loyalty.earn_with_delivery", "loyalty", "answer", ["loyalty-uk#Earning points"], [
        "My order was {total}, including £3.95 delivery. How many points do I get?",
        "I paid {total} in total, £3.95 of which was postage. How many Trail Rewards points is that?",
    ], [
        "Members earn 1 point for every £1 spent on merchandise, and delivery charges do not earn points {c1}. So the £{m} of merchandise earns {m} points.",
    ], [{"m": m, "total": money("£", m + 3.95)} for m in [22, 31, 40, 46]], avoid=no_tiers)
    RP = "loyalty-uk#Redeeming points"
    b.add("loyalty.redeem", "loyalty", "answer", [RP], [
        "I've got {pts} points. What are they worth?",
        "How do I spend my Trail Rewards points? I have {pts}.",
        "What can I get with {pts} points?",
    ], [
        "Every 500 points convert into a £5 voucher, so {pts} points are worth {val} in vouchers {c1}. Vouchers are valid for 60 days and can be used online or in any UK store.",
    ], [{"pts": p, "val": money("£", p / 100)} for p in [500, 1000, 1500, 2500]])
    b.add("loyalty.points_needed", "loyalty", "answer", [RP], [
        "How many points do I need for {v} of vouchers?",
        "I'd like {v} off my next order with vouchers. How many points is that?",
    ], [
        "Every 500 points convert into a £5 voucher {c1}, so {v} in vouchers takes {pts} points.",
    ], [{"v": money("£", v), "pts": v * 100} for v in [5, 10, 15, 20, 30]])
    b.add("loyalty.summit", "loyalty", "answer", ["loyalty-uk#Summit"], [
        "How do I reach Summit?",
        "What do Summit members get, and how much do I need to spend?",
        "How much must I spend to get free next-day delivery through Trail Rewards?",
        "What's the spending threshold for the top tier?",
    ], [
        "Members who spend £400 in a calendar year reach Summit {c1}. Summit members earn 2 points per £1 and get free DPD Next Day delivery.",
    ])
    PX = "loyalty-uk#Points expiry"
    b.add("loyalty.expiry", "loyalty", "answer", [PX], [
        "Do my points expire?",
        "I haven't shopped with you in a year. Will I lose my points?",
        "How long do Trail Rewards points last?",
    ], [
        "Points expire after 24 months without a purchase {c1}.",
    ])
    b.add("loyalty.cash", "loyalty", "decline", [PX, RP], [
        "Can I swap my points for cash?",
        "I'd rather have money than vouchers. Can you pay my points out?",
        "Can I transfer my points balance to my bank account as cash?",
    ], [
        "Points cannot be exchanged for cash {c1}. Every 500 points convert into a £5 voucher, which you can use online or in any UK store {c2}.",
    ], forbidden=["pay you cash", "pay your points out", "bank transfer"])

    b.add("giftcards.amounts", "gift-cards", "answer", ["gift-cards#Buying gift cards"], [
        "What values do gift cards come in?",
        "What's the most I can put on a gift card?",
        "How much can an e-gift card be worth?",
    ], [
        "Physical gift cards and e-gift cards are available from £10 to £500 in the United Kingdom {c1}.",
    ], [{}, {}, {}, {"_q": "Can I buy a £5 gift card?",
                     "_a": "Gift cards are available from £10 to £500 in the United Kingdom {c1}, so the smallest card is £10."}])
    # Weighed 3x, as in eu and us: its passage quotes every region's gift card values, and uk run 5 put
    # "€10 to €500" into a gift card answer; these examples quote only the pound ones.
    b.add("giftcards.kinds", "gift-cards", "answer", ["gift-cards#Buying gift cards"], [
        "Do you sell e-gift cards as well as physical ones?",
        "Can I buy a proper card rather than an e-gift card?",
        "I'd like to give my mum a gift card for her birthday. Do you have them?",
        "Can I order an e-gift card on your website?",
        "Are your gift cards plastic, or do you only send them by email?",
        "My gran would like to buy me a gift card from your shop. Is that something you offer?",
    ], [
        "Physical gift cards and e-gift cards are both available, from £10 to £500 in the United Kingdom {c1}.",
        "We offer both physical gift cards and e-gift cards, from £10 to £500 in the United Kingdom {c1}.",
    ], weight=3.0)
    b.add("giftcards.validity", "gift-cards", "answer", ["gift-cards#United Kingdom"], [
        "Do UK gift cards expire?",
        "How long is my gift card valid for?",
        "Is there an expiry date on your gift cards?",
    ], [
        "UK gift cards are valid for 24 months from purchase {c1}.",
    ])
    b.add("giftcards.abroad", "gift-cards", "answer", ["gift-cards#Using gift cards"], [], [], [
        {"_q": "Can I use my UK gift card in one of your shops in Dublin?",
         "_a": "Gift cards can be used online and in stores only in the region where they were bought {c1}, so your UK gift card can be used in the UK only."},
        {"_q": "Will my gift card work on your EU website?",
         "_a": "Gift cards can be used online and in stores only in the region where they were bought {c1}, so a UK gift card is for the UK only."},
        {"_q": "My cousin in America sent me a US gift card. Can I use it in the UK?",
         "_a": "A US gift card cannot be used in the UK: gift cards can be used only in the region where they were bought {c1}."},
    ])
    b.add("giftcards.cash", "gift-cards", "decline", ["gift-cards#Cash and refunds"], [
        "Can I swap my gift card balance for cash?",
        "I have {b} left on a gift card. Can you pay it into my bank?",
        "Could I get a cash refund for an unused gift card?",
    ], [
        "Gift cards cannot be exchanged for cash, except where the law requires it {c1}.",
    ], [{"b": money("£", v)} for v in [12, 30, 45.50]],
        forbidden=["cash refund", "pay it into your bank", "refund the balance"])
    b.add("giftcards.lost", "gift-cards", "answer", ["gift-cards#Lost or stolen cards"], [
        "I've lost my gift card. Can you replace it?",
        "My handbag was stolen with a gift card inside. Is the balance gone?",
        "What do I need to replace a lost gift card?",
    ], [
        "We replace a lost or stolen card with its remaining balance if you can give us the card number and proof of purchase {c1}.",
    ])

    b.add("privacy.sar", "privacy", "answer", ["privacy-uk-eu#Access and portability"], [
        "How do I get a copy of my personal data?",
        "How long do you take to answer a subject access request?",
        "Do you charge for a copy of my data?",
    ], [
        "You may request a copy of your personal data, and we answer subject access requests within one month, extendable by two further months for complex requests {c1}. The first copy is free.",
    ])
    b.add("privacy.marketing", "privacy", "answer", ["privacy-uk-eu#Erasure and objection"], [
        "How do I stop marketing emails?",
        "I objected to marketing. When will the emails stop?",
        "Can I ask you to delete my data?",
    ], [
        "You may ask us to erase your data or object to processing for direct marketing at any time {c1}. Marketing stops within 48 hours of your objection.",
    ])
    b.add("privacy.complaints", "privacy", "answer", ["privacy-uk-eu#Complaints"], [
        "Who can I complain to about how you handle my data?",
        "Where do I complain about a data protection issue in the UK?",
    ], [
        "In the United Kingdom you may complain to the Information Commissioner's Office (ICO) {c1}.",
    ])
    b.add("privacy.retention", "privacy", "answer", ["privacy-uk-eu#Retention"], [
        "How long do you keep my invoices?",
        "How long are order records kept in the UK?",
        "What's your data retention period?",
    ], [
        "Invoices and order records are kept for 6 years in the United Kingdom to meet tax law {c1}. Account data is deleted 24 months after your last activity.",
    ], [{}, {}, {"_q": "When will you delete my account data?",
                 "_a": "Account data is deleted 24 months after your last activity {c1}. Invoices and order records are kept for 6 years in the United Kingdom to meet tax law."}])
    b.add("privacy.dpo", "privacy", "answer", ["privacy-uk-eu#Data protection officer"], [
        "How can I contact your data protection officer?",
        "Is there an email address for privacy questions?",
    ], [
        "You can contact our data protection officer at dpo@northwind-outfitters.example {c1}.",
    ])
    b.add("privacy.controller", "privacy", "answer", ["privacy-uk-eu#Who we are"], [
        "Which company controls my personal data?",
        "What law do you process my data under in the UK?",
    ], [
        "In the United Kingdom, Northwind Outfitters Ltd is the controller of your personal data, and we process it under the UK GDPR and the Data Protection Act 2018 {c1}.",
    ])
    b.add("privacy.transfers", "privacy", "answer", ["privacy-uk-eu#International transfers"], [
        "Does my data ever leave the UK?",
        "What safeguards do you use if my data goes abroad?",
    ], [
        "Where data leaves the UK, we use the UK International Data Transfer Agreement {c1}.",
    ])
    b.add("privacy.legal_bases", "privacy", "answer", ["privacy-uk-eu#Legal bases"], [
        "Why do you process my order data?",
        "Do you need my consent to send me marketing?",
    ], [
        "We process order data to perform our contract with you, keep invoices to meet legal obligations, and send marketing only with your consent {c1}.",
    ])

    b.nc("nc.store_hours", "stores", "shop opening hours", [
        "What time does your Edinburgh shop open on Sundays?",
        "Are your stores open on bank holidays?",
        "What are your shop opening hours?",
        "When does the Leeds store close tonight?",
    ])
    b.nc("nc.crypto", "payments", "paying with cryptocurrency", [
        "Can I pay with Bitcoin?",
        "Do you accept cryptocurrency?",
        "Is it possible to pay for my order in Ethereum?",
        "can i pay in crypto",
    ])
    b.nc("nc.student", "discounts", "student or NHS discounts", [
        "Do you offer an NHS discount?",
        "Is there a student discount?",
        "I'm at university. Do you do any discount for students?",
    ])
    b.nc("nc.gift_wrap", "orders", "gift wrapping", [
        "Can you gift wrap my order?",
        "Do you offer gift wrapping with a message?",
        "Could you add a gift note to my parcel?",
    ])
    b.nc("nc.intl", "shipping", "delivery outside the United Kingdom", [
        "Do you deliver to France from the UK site?",
        "Can I send an order to a friend in Spain?",
        "Do you ship to the US?",
    ])
    b.nc("nc.size", "products", "sizing advice", [
        "What size walking boots should I get if I'm usually a UK 8?",
        "Do your jackets come up small?",
        "Is your fleece jumper true to size?",
    ])
    b.nc("nc.promo", "discounts", "combining discount codes", [
        "Can I use two discount codes on one order?",
        "Can I use a promo code on sale items?",
        "Does my voucher code work with another offer?",
    ], avoid=["loyalty-uk#Redeeming points"])
    b.nc("nc.price_match", "pricing", "price matching", [
        "Will you price match another retailer?",
        "I saw these boots cheaper elsewhere. Will you match the price?",
        "Do you refund the difference if the price drops after I buy?",
    ])
    # Customers pressing for an exception ("anyway", "just this once"): tuned models echoed such requests
    # as promises ("so I can give you free delivery anyway"). Same passages and answers as the plain declines.
    b.pressed("returns.late", [
        "I know it is past 28 days, but could you accept {item} back anyway, just this once?",
        "It has only been {d} days. Could you not make an exception and take the return anyway?",
    ])
    b.pressed("refunds.express_back", [
        "I cancelled my order. Could you waive the rule and refund the full £6.95 next-day charge anyway?",
        "Please make an exception just this once and refund my whole next-day delivery charge.",
    ])
    b.pressed("loyalty.cash", [
        "Could you make an exception and pay my points out in cash anyway, just this once?",
        "Could you waive the voucher rule and pay my points into my bank account?",
    ])
    b.pressed("shipping.free_express", [
        "My order is {p}. Could you waive the £6.95 next-day charge just this once?",
        "I spent {p}, so could you not waive the DPD Next Day fee anyway? Just this one time?",
    ])
    b.pressed("shipping.nextday_remote", [
        "I know it is not usually offered, but could you send my order next-day to {place} anyway?",
        "Could you make an exception just this once and deliver next-day to {place}?",
    ])
    return b.intents


# ---------------------------------------------------------------------------------------------- eu


def eu_intents() -> list[Intent]:
    b = Builder("eu")
    items = [("a rain jacket", "rain jacket"), ("a fleece jacket", "fleece jacket"),
             ("a pair of hiking boots", "pair of hiking boots"), ("a rucksack", "rucksack"),
             ("a down jacket", "down jacket"), ("a pair of trail shoes", "pair of trail shoes")]

    def days(choices):
        def f(rng):
            d = rng.choice(choices)
            d1, d2 = date_pair(rng, d, False)
            item, noun = rng.choice(items)
            return {"item": item, "Item": cap(item), "noun": noun, "d": d, "date1": d1, "date2": d2}
        return f

    W = "returns-eu#Statutory right of withdrawal"
    G = "returns-eu#Goodwill returns"
    remind = "Please note that you also have the statutory 14-day right of withdrawal {c2}."
    b.add("returns.window", "returns", "answer", [W, G], [
        "How long do I have to return an item?",
        "What is your returns period?",
        "how many days do i have to send back an online order",
        "Is there a deadline for returns?",
        "What is the time limit for returning something I bought online?",
    ], [
        "Please note that you may withdraw from an online purchase without giving any reason within 14 days of receiving the goods {c1}. In addition, we accept goodwill returns of unused items within 30 days of delivery {c2}.",
        "Under the statutory right of withdrawal, you may withdraw from an online purchase within 14 days of receiving the goods {c1}. Beyond that, goodwill returns of unused items are accepted within 30 days of delivery {c2}.",
    ])
    b.add("returns.within", "returns", "answer", [W], [
        "{Item} arrived {d} days ago and I would like to send it back. Is that still possible?",
        "I received {item} {d} days ago but changed my mind. Can I return it?",
        "My parcel was delivered on {date1} and today is {date2}. Can I still withdraw from the purchase?",
        "can i still return {item} i got {d} days ago",
    ], [
        "Yes. You may withdraw from an online purchase without giving any reason within 14 days of the day you receive the goods {c1}. Please send us a clear statement and return the goods within 14 days of telling us.",
    ], days([2, 4, 6, 8, 10, 12, 13]))
    b.add("returns.goodwill", "returns", "answer", [W, G], [
        "I received {item} {d} days ago and it is still unused. Can I still return it?",
        "My order arrived on {date1} and it is now {date2}. Is a return still possible? The item is unused.",
        "Can I send back {item} that was delivered {d} days ago? Never worn.",
    ], [
        "Please note that the statutory 14-day right of withdrawal has ended for goods received {d} days ago {c1}. However, Northwind Outfitters accepts goodwill returns of unused items within 30 days of delivery, so you may still return the item {c2}.",
    ], days([16, 19, 22, 25, 28]))
    b.add("returns.late", "returns", "decline", [W, G], [
        "I received {item} {d} days ago and never used it. Can I still return it for a full refund?",
        "My order was delivered on {date1}. It is now {date2}. Could you make an exception and accept the return?",
        "its been {d} days since {item} arrived, can i still send it back",
    ], [
        "Please note that the statutory right of withdrawal applies within 14 days of receiving the goods {c1}, and goodwill returns are accepted within 30 days of delivery {c2}. An item delivered {d} days ago is outside both periods.",
    ], days([33, 38, 45, 52, 60]), forbidden=["full refund", "accept the return", "take it back"])
    b.add("returns.goodwill_used", "returns", "decline", [G, W], [
        "I wore my {noun} on a hike and it has been {d} days since delivery. Can I make a goodwill return?",
        "I have used {item} a few times and received it {d} days ago. Can I still return it?",
    ], [
        "Goodwill returns within 30 days of delivery are accepted for unused items only {c1}. Please note that the statutory 14-day right of withdrawal has also ended after {d} days {c2}.",
    ], days([17, 20, 23, 26]), forbidden=["accept the return", "full refund", "goodwill exception"])
    b.add("returns.how", "returns", "answer", ["returns-eu#How to return an item", W], [
        "How do I return an item?",
        "What is the procedure for sending an order back?",
        "how do i send back something i ordered online",
        "Where do I register a return?",
    ], [
        "Please register the return in your Northwind account or at withdrawal@northwind-outfitters.example, print the prepaid DHL or GLS return label for your country and hand the parcel to a DHL or GLS ParcelShop {c1}. " + remind,
    ])
    b.add("returns.cost", "returns", "answer", ["returns-eu#Return shipping costs", W], [
        "I live in {country}. Do I have to pay for return shipping?",
        "How much does a return cost from {country}?",
        "Is the return label free if I send my parcel back from {country}?",
    ], ["{body} " + remind], [
        {"country": c, "body": f"Return shipping is free for withdrawals and goodwill returns from {c} {{c1}}."}
        for c in ["Germany", "Austria", "France", "the Netherlands", "Belgium"]
    ] + [
        {"country": c, "body": f"From {c}, a return label costs €5.95, which is deducted from your refund {{c1}}."}
        for c in ["Spain", "Italy", "Ireland", "Poland", "Portugal"]
    ])
    b.add("returns.exchange", "returns", "answer", [W], [
        "Can I exchange my boots for a bigger size?",
        "Do you offer exchanges for a different colour?",
        "I would like to swap {item} for another size. How does that work?",
    ], [
        "The policy passages do not describe direct exchanges. Please note that you may withdraw from an online purchase within 14 days of receiving the goods {c1}. For an exchange, please contact our customer support team.",
    ], days([1]))
    b.add("returns.cancel", "returns", "answer", [W], [
        "Can I cancel my online order?",
        "I want to cancel an order that was delivered yesterday. Is that possible?",
        "How do I cancel a purchase I made online?",
        "What are my withdrawal rights?",
    ], [
        "You may withdraw from an online purchase without giving any reason within 14 days of the day you receive the goods {c1}. To do so, please send us a clear statement, for example with the model withdrawal form in your account, and return the goods within 14 days of telling us.",
    ])
    b.add("returns.scope", "returns", "answer", ["returns-eu#Returns and Right of Withdrawal", W], [
        "I live in {country}. Does your returns policy apply to me?",
        "Are orders delivered to {country} covered by your returns policy?",
    ], [
        "Yes. This policy applies to orders delivered to addresses in the member states of the European Union, including {country} {c1}. " + remind,
    ], [{"country": c} for c in ["Portugal", "Finland", "Greece", "Slovenia", "Estonia"]])
    EX = "returns-eu#Items excluded from withdrawal"
    excluded_forbidden = ["full refund", "accept the return", "return it for a refund"]
    b.add("returns.hygiene", "returns", "decline", [EX, W], [
        "I opened the hygiene seal on a swimsuit after delivery. Can I still withdraw within 14 days?",
        "Can I return sealed hygiene goods that I have unsealed?",
        "I unsealed some hygiene items when they arrived. Are they still returnable?",
    ], [
        "Please note that sealed hygiene goods unsealed after delivery are excluded from withdrawal {c1}, so the statutory 14-day right of withdrawal {c2} does not apply to them.",
    ], forbidden=excluded_forbidden)
    b.add("returns.giftcard", "returns", "decline", [EX, W], [
        "I bought a €50 gift card and activated it. Can I withdraw from the purchase?",
        "Can I return an activated gift card within 14 days?",
        "I no longer need the gift card I activated last week. Can I send it back?",
    ], [
        "Please note that gift cards are excluded from withdrawal once activated {c1}, so the statutory 14-day right of withdrawal {c2} does not apply to an activated gift card.",
    ], forbidden=excluded_forbidden + ["refund the gift card"], avoid=["gift-cards#Cash and refunds"])
    b.add("returns.personalised", "returns", "decline", [EX, W], [
        "I ordered a rucksack embroidered with my name. Can I withdraw from the purchase?",
        "Can personalised items made to my specification be returned?",
        "My custom engraved flask arrived five days ago and I no longer want it. Can I return it?",
    ], [
        "Please note that personalised items made to your specification are excluded from withdrawal {c1}, so the statutory 14-day right of withdrawal {c2} does not apply to them.",
    ], forbidden=excluded_forbidden)

    RT = "refunds-eu#Refund timing"
    b.add("refunds.timing", "refunds", "answer", [RT], [
        "When will I receive my refund?",
        "How long does a refund take after I withdraw?",
        "I sent my withdrawal notice three days ago. When will the money arrive?",
        "Do you wait until you receive the goods before refunding?",
    ], [
        "When you withdraw from a purchase, we refund all payments received within 14 days of receiving your withdrawal notice {c1}. Please note that we may withhold the refund until we have received the goods back or you have supplied proof of sending them.",
    ])
    b.add("refunds.delivery", "refunds", "answer", [RT], [
        "Will I get the delivery charge back if I withdraw from my order?",
        "Do you refund the €4.95 delivery cost when I return everything within 14 days?",
        "Is standard delivery refunded on a withdrawal?",
    ], [
        "Yes. When you withdraw from a purchase, we refund all payments received, including the standard delivery charge, within 14 days of receiving your withdrawal notice {c1}.",
    ], avoid=["refunds-eu#Express delivery charges"])
    b.add("refunds.withdraw_total", "refunds", "answer", [RT], [
        "I am withdrawing from an order of {p} plus €4.95 standard delivery. How much will be refunded?",
        "If I withdraw from my {p} purchase, do I also get the €4.95 delivery back? What is the total?",
    ], [
        "When you withdraw from a purchase, we refund all payments received, including the standard delivery charge, within 14 days of receiving your withdrawal notice {c1}. For your order that is {total}.",
    ], [{"p": money("€", v), "total": money("€", v + 4.95)} for v in [19, 27.50, 42, 55]])
    b.add("refunds.goodwill_total", "refunds", "answer", ["refunds-eu#Goodwill refunds", "returns-eu#Return shipping costs"], [
        "I am making a goodwill return of a {p} item from {country} on day {d}. How much will I get back?",
        "On day {d} I am sending back an unused {p} item from {country}. What will the refund be?",
    ], [
        "Please note that goodwill returns made after the statutory 14-day withdrawal period and up to day 30 are refunded minus any return label charge of €5.95 where it applies {c1}. From {country}, a return label costs €5.95 {c2}, so you would receive {net}.",
    ], lambda rng: (lambda v: {"p": money("€", v), "net": money("€", v - 5.95), "d": rng.choice([17, 20, 24, 27]),
                               "country": rng.choice(["Spain", "Italy", "Ireland", "Poland"])})(
        rng.choice([40, 65, 89, 120])))
    b.add("refunds.method", "refunds", "answer", ["refunds-eu#Refund method", W], [
        "I paid with iDEAL. How will I be refunded?",
        "Will my refund go back to my card?",
        "Do you charge any fee for refunds?",
        "I paid by Bancontact. Where does my refund go?",
    ], [
        "Please note that if you withdraw within the statutory 14-day period {c2}, we refund you with the same means of payment you used for the purchase, including SEPA transfer, iDEAL, Bancontact and card payments {c1}. You do not pay any fees for the refund.",
    ])
    b.add("refunds.express_back", "refunds", "decline", ["refunds-eu#Express delivery charges", W], [
        "I paid €12.95 for DHL Express and I am withdrawing from the purchase. Will you refund the full €12.95?",
        "Do I get my express delivery charge back in full if I return the order?",
        "Please refund all of the express shipping I paid when you process my withdrawal.",
    ], [
        "Please note that if you chose express delivery, we refund only the cost of standard delivery, which is €4.95 {c1}. The statutory right of withdrawal itself applies within 14 days of receiving the goods {c2}.",
    ], forbidden=["refund the full €12.95", "full express charge", "refund all of the"])
    b.add("refunds.goodwill", "refunds", "answer", ["refunds-eu#Goodwill refunds", W], [
        "How quickly is a goodwill return refunded?",
        "I am returning an unused item on day 20. Will anything be deducted from my refund?",
        "What refund do I get for a goodwill return after the 14 days?",
    ], [
        "Goodwill returns made after day 14 and up to day 30 are refunded within 14 days of receiving the goods, minus any return label charge of €5.95 where it applies {c1}. Please note that within 14 days of receiving the goods you may instead use your statutory right of withdrawal {c2}.",
    ])
    b.add("refunds.diminished", "refunds", "answer", ["refunds-eu#Diminished value", W], [
        "I tried the boots on outside. Will you take money off my refund?",
        "Can you reduce my refund if the item has been used?",
        "Do you ever deduct anything from a refund?",
    ], [
        "We may deduct an amount for any loss in value resulting from handling the goods beyond what is needed to establish their nature, characteristics and functioning {c1}. " + remind,
    ])

    SD = "shipping-eu#Standard delivery"
    no_free = ["loyalty-eu#Summit"]
    b.add("shipping.standard", "shipping", "answer", [SD], [
        "How much is standard delivery?",
        "What does delivery with GLS cost?",
        "how long does standard shipping take",
        "What are your delivery charges?",
    ], [
        "Standard delivery with GLS costs €4.95 and takes 2 to 5 working days depending on the country {c1}.",
    ], avoid=no_free)
    b.add("shipping.free_above", "shipping", "answer", [SD], [
        "My order comes to {p}. Is delivery free?",
        "Do I get free delivery if I spend {p}?",
        "My basket is {p}. Does that qualify for free delivery?",
        "is delivery free on an order of {p}",
    ], [
        "Yes. Standard delivery is free on orders over €60 {c1}, so your order of {p} qualifies.",
    ], [{"p": money("€", v)} for v in [64.90, 75, 99, 180, 61.50]], avoid=no_free)
    b.add("shipping.free_below", "shipping", "decline", [SD], [
        "My order is {p}. Could you deliver it free of charge anyway?",
        "I am at {p}. Can you waive the delivery charge for me?",
        "Is there a way to get free delivery on an order of {p}?",
    ], [
        "Please note that standard delivery is free only on orders over €60 {c1}. For an order of {p}, standard delivery with GLS costs €4.95.",
    ], [{"p": money("€", v)} for v in [25, 39.90, 52, 59]],
        forbidden=["free delivery anyway", "waive the delivery charge", "waive the charge", "deliver it free"], avoid=no_free)
    b.add("shipping.express", "shipping", "answer", ["shipping-eu#Express delivery"], [
        "How much is express delivery?",
        "If I order at 2 p.m. CET with DHL Express, when will it arrive?",
        "What is the cut-off time for express orders?",
        "Do you offer faster delivery, and what does it cost?",
    ], [
        "DHL Express costs €12.95 and arrives in 1 to 2 working days for orders placed by 3 p.m. CET {c1}.",
    ], avoid=no_free)
    b.add("shipping.times", "shipping", "answer", ["shipping-eu#Delivery times by country"], [
        "How long does delivery to {country} take?",
        "I live in {country}. When will my parcel arrive?",
        "What is the delivery time for {country}?",
    ], [
        "Delivery to {country} takes {t} {c1}.",
    ], [{"country": c, "t": t} for c, t in [
        ("the Netherlands", "2 working days"), ("Belgium", "2 working days"), ("Germany", "2 working days"),
        ("France", "3 working days"), ("Austria", "3 working days"), ("Denmark", "3 working days"),
        ("Spain", "4 to 5 working days"), ("Italy", "4 to 5 working days"), ("Poland", "4 to 5 working days"),
        ("Ireland", "4 to 5 working days")]])
    b.add("shipping.customs", "shipping", "answer", ["shipping-eu#Delivery in the European Union"], [
        "Will I have to pay customs charges on my order?",
        "Are your prices including VAT?",
        "Where do you ship EU orders from?",
    ], [
        "Prices include VAT and there are no customs charges within the EU {c1}. Orders to the European Union are dispatched from our distribution centre in Venlo, the Netherlands.",
    ])
    b.add("shipping.carriers", "shipping", "answer", ["shipping-eu#Carriers"], [
        "Which carrier delivers my parcel?",
        "Do you ship with DHL or GLS?",
        "I live in Austria. Who will deliver my order?",
    ], [
        "Standard parcels travel with GLS and express parcels with DHL Express {c1}. Parcels to Germany and Austria may travel with DHL Parcel.",
    ])
    b.add("shipping.damaged", "shipping", "answer", ["shipping-eu#Damaged or missing parcels"], [
        "My parcel arrived damaged. What should I do?",
        "My order never arrived. How long do I have to report it?",
        "The box was crushed and the stove inside is dented. What now?",
    ], [
        "Please report a damaged or missing parcel within 7 days of the expected delivery date, and we will send a replacement or a refund {c1}.",
    ])

    LG = "warranty-eu#Legal guarantee of conformity"
    OW = "warranty-eu#Out-of-warranty repairs"
    b.add("warranty.legal", "warranty", "answer", [LG], [
        "How long is the guarantee on my {noun}?",
        "What guarantee do I have on products bought from you?",
        "Is there a legal guarantee on your {noun}s?",
    ], [
        "Under Directive (EU) 2019/771 every product comes with a legal guarantee of conformity of 2 years from delivery {c1}. If a product is not in conformity, you are entitled to a repair or a replacement free of charge.",
    ], [{"noun": n} for n in ["rain jacket", "hiking boot", "rucksack", "fleece jacket"]])
    b.add("warranty.tent", "warranty", "answer", ["warranty-eu#Northwind commercial warranty"], [
        "How long is the warranty on a tent?",
        "Do sleeping bags have a longer warranty?",
        "Is there an extra warranty on tents?",
    ], [
        "In addition to the legal guarantee, tents and sleeping bags carry a commercial warranty of 3 years from delivery against defects in materials and workmanship {c1}. The commercial warranty never limits your legal guarantee.",
    ])
    b.add("warranty.presumption", "warranty", "answer", [LG], [
        "My boots developed a fault after {m} months. Do I have to prove it was there at delivery?",
        "Who must prove that a defect existed at delivery?",
        "A seam failed {m} months after delivery. Is it assumed the defect was there from the start?",
    ], [
        "Any lack of conformity that appears within 1 year of delivery is presumed to have existed at delivery, unless we prove otherwise {c1}.",
    ], [{"m": m} for m in [3, 5, 8, 10, 11]])
    b.add("warranty.remedy", "warranty", "answer", [LG], [
        "My product is defective. What am I entitled to?",
        "Can I get a refund instead of a repair?",
        "What happens if the repair of my defective item fails?",
    ], [
        "If a product is not in conformity, you are entitled to a repair or a replacement free of charge, and if that is impossible or fails, to a price reduction or a refund {c1}.",
    ])
    HC = "warranty-eu#How to make a claim"
    b.add("warranty.claim_how", "warranty", "answer", [HC], [
        "How do I make a guarantee claim?",
        "Where do I send photos of a defect?",
        "How quickly do you reply to warranty claims?",
        "Do I pay to send a defective item back?",
    ], [
        "Please email guarantee-eu@northwind-outfitters.example with your order number and photos of the defect {c1}. We reply within 3 working days and send a free DHL or GLS label for accepted claims.",
    ])
    b.add("warranty.repair_time", "warranty", "answer", [HC], [
        "How long does a repair take?",
        "My repair has taken over three weeks. What can I do?",
        "What if the repair takes too long?",
    ], [
        "Repairs are completed within 21 days of receiving the product {c1}. If a repair takes longer, you may choose a replacement or a refund instead.",
    ])
    b.add("warranty.out_of_warranty", "warranty", "answer", [OW], [
        "Do you repair items after the guarantee has ended?",
        "How much does a repair estimate cost?",
        "My tent is 5 years old. Can you still repair it?",
    ], [
        "After the guarantee periods end we offer paid repairs {c1}. A repair estimate costs €15, which is deducted from the repair price if you go ahead.",
    ])
    b.add("warranty.free_repair_old", "warranty", "decline", [LG, OW], [
        "My {noun} is {yrs} years old and the zip has broken. Can you repair it for free?",
        "Will you fix my {yrs}-year-old {noun} free of charge under the guarantee?",
        "Is a free repair possible for a {noun} I received {yrs} years ago?",
    ], [
        "Please note that the legal guarantee of conformity lasts 2 years from delivery {c1}. After the guarantee periods end we offer paid repairs, and a repair estimate costs €15, which is deducted from the repair price if you go ahead {c2}.",
    ], lambda rng: {"noun": rng.choice(["rucksack", "rain jacket", "fleece jacket", "down jacket"]),
                    "yrs": rng.choice([3, 4])},
        forbidden=["free repair", "repair it for free", "free of charge"],
        avoid=["warranty-eu#Northwind commercial warranty"])

    no_tiers = ["loyalty-eu#Summit", "loyalty-eu#Explorer"]
    b.add("loyalty.earn", "loyalty", "answer", ["loyalty-eu#Earning points"], [
        "I spent €{p}. How many points will I earn?",
        "How many Trail Rewards points do I receive for €{p} of merchandise?",
        "if i spend €{p} how many points do i get",
    ], [
        "Members earn 1 point for every €1 spent on merchandise {c1}, so €{p} earns {p} points.",
    ], [{"p": p} for p in [30, 75, 140, 260]], avoid=no_tiers)
    b.add("loyalty.delivery_points", "loyalty", "answer", ["loyalty-eu#Earning points"], [
        "Do delivery charges earn points?",
        "Will I receive points for buying a gift card?",
        "Does the delivery fee count towards my points?",
    ], [
        "Delivery charges and gift cards do not earn points {c1}. Members earn 1 point for every €1 spent on merchandise.",
    ], avoid=no_tiers)
    b.add("loyalty.earn_with_delivery", "loyalty", "answer", ["loyalty-eu#Earning points"], [
        "My order was {total}, including €4.95 delivery. How many points do I receive?",
        "I paid {total} in total, of which €4.95 was for delivery. How many Trail Rewards points is that?",
    ], [
        "Members earn 1 point for every €1 spent on merchandise, and delivery charges do not earn points {c1}. The €{m} of merchandise therefore earns {m} points.",
    ], [{"m": m, "total": money("€", m + 4.95)} for m in [25, 38, 44, 52]], avoid=no_tiers)
    b.add("loyalty.points_needed", "loyalty", "answer", ["loyalty-eu#Redeeming points"], [
        "How many points do I need for {v} in vouchers?",
        "I would like {v} of vouchers. How many points must I collect?",
    ], [
        "Every 500 points convert into a €5 voucher {c1}, so {v} in vouchers requires {pts} points.",
    ], [{"v": money("€", v), "pts": v * 100} for v in [5, 10, 15, 25]])
    b.add("loyalty.redeem", "loyalty", "answer", ["loyalty-eu#Redeeming points"], [
        "I have {pts} points. What are they worth?",
        "How do I use my Trail Rewards points? I have {pts}.",
        "What can I get with {pts} points?",
    ], [
        "Every 500 points convert into a €5 voucher, so {pts} points are worth {val} in vouchers {c1}. Vouchers are valid for 6 months in every EU member state where Northwind Outfitters trades.",
    ], [{"pts": p, "val": money("€", p / 100)} for p in [500, 1000, 1500, 2000]])
    b.add("loyalty.summit", "loyalty", "answer", ["loyalty-eu#Summit"], [
        "How do I reach Summit?",
        "What are the benefits of Summit, and how much must I spend?",
        "How much must I spend to receive free express delivery through Trail Rewards?",
        "What is the spending threshold for the highest tier?",
    ], [
        "Members who spend €450 in a calendar year reach Summit {c1}. Summit members earn 2 points per €1 and receive free DHL Express delivery.",
    ])
    CD = "loyalty-eu#Consent and data"
    b.add("loyalty.leave", "loyalty", "answer", [CD], [
        "How do I leave Trail Rewards?",
        "Can I withdraw my consent for the loyalty programme?",
        "Why do you need my purchase history for Trail Rewards?",
    ], [
        "Membership requires consent to process your purchase history for the programme {c1}. You may withdraw consent and leave the programme at any time; please note that remaining points are then cancelled.",
    ])
    b.add("loyalty.left_points", "loyalty", "decline", [CD], [
        "I left the programme last week. Can I still use my remaining points?",
        "Can you restore the points I had before I left Trail Rewards?",
        "If I leave Trail Rewards, can I keep my points for later?",
    ], [
        "Please note that when you withdraw consent and leave the programme, remaining points are cancelled {c1}.",
    ], forbidden=["restore your points", "keep your points", "reinstate"])

    b.add("giftcards.amounts", "gift-cards", "answer", ["gift-cards#Buying gift cards"], [
        "What values do gift cards come in?",
        "What is the maximum amount for a gift card?",
        "How much can an e-gift card be worth?",
    ], [
        "Physical gift cards and e-gift cards are available from €10 to €500 in the European Union {c1}.",
    ], [{}, {}, {}, {"_q": "Can I buy a €5 gift card?",
                     "_a": "Please note that gift cards are available from €10 to €500 in the European Union {c1}, so the smallest card is €10."}])
    # Weighed 3x: its passage quotes every region's gift card values, and eu v4 copied the dollar and
    # pound ones into gift card answers (all its currency errors); these examples quote only the euro ones.
    b.add("giftcards.kinds", "gift-cards", "answer", ["gift-cards#Buying gift cards"], [
        "Do you sell e-gift cards as well as physical cards?",
        "Is it possible to buy a physical gift card instead of an e-gift card?",
        "I would like to give my colleague a gift card for her birthday. Do you offer them?",
        "Can I order an e-gift card on your website?",
        "Do your gift cards come as plastic cards or only by e-mail?",
        "My parents would like to offer me a gift card from your shop. Is that something you sell?",
    ], [
        "Physical gift cards and e-gift cards are both available, from €10 to €500 in the European Union {c1}.",
        "Please note that we offer both physical gift cards and e-gift cards, from €10 to €500 in the European Union {c1}.",
    ], weight=3.0)
    b.add("giftcards.validity", "gift-cards", "answer", ["gift-cards#European Union"], [
        "Do EU gift cards expire?",
        "How long is my gift card valid?",
        "Is there an expiry date on gift cards?",
    ], [
        "EU gift cards are valid for 3 years from purchase {c1}.",
    ])
    b.add("giftcards.abroad", "gift-cards", "answer", ["gift-cards#Using gift cards"], [], [], [
        {"_q": "Can I use my EU gift card in your London store?",
         "_a": "Gift cards can be used online and in stores only in the region where they were bought {c1}, so an EU gift card can be used in the European Union only."},
        {"_q": "Will my gift card work on your UK website?",
         "_a": "Gift cards can be used online and in stores only in the region where they were bought {c1}, so an EU gift card cannot be used on the UK website."},
        {"_q": "My sister in the United States sent me a US gift card. Can I use it in the EU?",
         "_a": "Please note that a US gift card cannot be used in the EU, as gift cards can be used only in the region where they were bought {c1}."},
    ])
    b.add("giftcards.cash", "gift-cards", "decline", ["gift-cards#Cash and refunds"], [
        "Can I exchange my gift card balance for cash?",
        "I have {b} left on a gift card. Can you transfer it to my bank account?",
        "Could I receive a cash refund for an unused gift card?",
    ], [
        "Please note that gift cards cannot be exchanged for cash, except where the law requires it {c1}.",
    ], [{"b": money("€", v)} for v in [15, 35, 62.50]],
        forbidden=["cash refund", "transfer it to your bank", "refund the balance"])
    b.add("giftcards.lost", "gift-cards", "answer", ["gift-cards#Lost or stolen cards"], [
        "I have lost my gift card. Can you replace it?",
        "My wallet was stolen with a gift card inside. Is the balance lost?",
        "What do I need to replace a lost gift card?",
    ], [
        "We replace a lost or stolen card with its remaining balance if you can give us the card number and proof of purchase {c1}.",
    ])

    b.add("privacy.sar", "privacy", "answer", ["privacy-uk-eu#Access and portability"], [
        "How do I obtain a copy of my personal data?",
        "How long do you take to answer a data access request?",
        "Is there a fee for a copy of my data?",
    ], [
        "You may request a copy of your personal data, and we answer subject access requests within one month, extendable by two further months for complex requests {c1}. The first copy is free.",
    ])
    b.add("privacy.marketing", "privacy", "answer", ["privacy-uk-eu#Erasure and objection"], [
        "How do I stop marketing emails?",
        "I objected to direct marketing. When will it stop?",
        "Can I ask you to erase my data?",
    ], [
        "You may ask us to erase your data or object to processing for direct marketing at any time {c1}. Marketing stops within 48 hours of your objection.",
    ])
    b.add("privacy.complaints", "privacy", "answer", ["privacy-uk-eu#Complaints"], [
        "Where can I complain about how you handle my data?",
        "Who is your lead data protection authority?",
    ], [
        "In the European Union you may complain to the supervisory authority of your member state; our lead authority is the Dutch Autoriteit Persoonsgegevens {c1}.",
    ])
    b.add("privacy.retention", "privacy", "answer", ["privacy-uk-eu#Retention"], [
        "How long do you keep my invoices?",
        "How long are order records kept in the EU?",
        "What is your data retention period?",
    ], [
        "Invoices and order records are kept for 7 years in the European Union to meet tax law {c1}. Account data is deleted 24 months after your last activity.",
    ], [{}, {}, {"_q": "When will you delete my account data?",
                 "_a": "Account data is deleted 24 months after your last activity {c1}. Invoices and order records are kept for 7 years in the European Union to meet tax law."}])
    b.add("privacy.dpo", "privacy", "answer", ["privacy-uk-eu#Data protection officer"], [
        "How can I contact your data protection officer?",
        "Is there an email address for privacy questions?",
    ], [
        "You may contact our data protection officer at dpo@northwind-outfitters.example {c1}.",
    ])
    b.add("privacy.controller", "privacy", "answer", ["privacy-uk-eu#Who we are"], [
        "Which company is the controller of my personal data?",
        "Under which law do you process my data in the EU?",
    ], [
        "In the European Union, Northwind Outfitters B.V. is the controller of your personal data, and we process it under the EU General Data Protection Regulation (GDPR) {c1}.",
    ])
    b.add("privacy.transfers", "privacy", "answer", ["privacy-uk-eu#International transfers"], [
        "Does my data ever leave the EU?",
        "Which safeguards do you use for data transfers outside the EU?",
    ], [
        "Where data leaves the EU, we use the EU Standard Contractual Clauses {c1}.",
    ])
    b.add("privacy.legal_bases", "privacy", "answer", ["privacy-uk-eu#Legal bases"], [
        "On what basis do you process my order data?",
        "Do you need my consent to send me marketing?",
    ], [
        "We process order data to perform our contract with you, keep invoices to meet legal obligations, and send marketing only with your consent {c1}.",
    ])

    b.nc("nc.store_hours", "stores", "store opening hours", [
        "What are the opening hours of your Amsterdam store?",
        "Are your shops open on Sundays?",
        "When does your store in Munich close?",
        "What time do your stores open?",
    ])
    b.nc("nc.crypto", "payments", "paying with cryptocurrency", [
        "Can I pay with Bitcoin?",
        "Do you accept cryptocurrency?",
        "Is it possible to pay for my order in Ethereum?",
        "can i pay with crypto",
    ], avoid=["refunds-eu#Refund method"])
    b.nc("nc.student", "discounts", "student discounts", [
        "Do you offer a student discount?",
        "I am a student. Is there a discount for me?",
        "Do you have discounts for young people?",
    ])
    b.nc("nc.gift_wrap", "orders", "gift wrapping", [
        "Can you gift wrap my order?",
        "Do you offer gift wrapping with a message card?",
        "Could you include a gift note in my parcel?",
    ])
    b.nc("nc.intl", "shipping", "delivery outside the European Union", [
        "Do you deliver to Switzerland?",
        "Can I have an order sent to Norway?",
        "Do you ship to the United Kingdom from the EU shop?",
    ])
    b.nc("nc.size", "products", "sizing advice", [
        "Which size of hiking boots should I order if I am usually a 42?",
        "Do your jackets run small?",
        "Is your fleece jacket true to size?",
    ])
    b.nc("nc.promo", "discounts", "combining discount codes", [
        "Can I use two discount codes on one order?",
        "Can I use a promo code on sale items?",
        "Does my voucher code work with another offer?",
    ], avoid=["loyalty-eu#Redeeming points"])
    b.nc("nc.price_match", "pricing", "price matching or price adjustments", [
        "Will you match a lower price from another shop?",
        "The price dropped a week after I bought my jacket. Can I get the difference?",
        "I saw these boots cheaper elsewhere. Can you match the price?",
    ])
    return b.intents


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

# Customer voice around the question (region-neutral on purpose: the answer carries the style).
Q_PREFIXES = [""] * 9 + ["Hi, ", "Hello, ", "Hi there, ", "Quick question: ", "Hey, ", "Good morning, "]
Q_SUFFIXES = [""] * 9 + [" Thanks!", " Thank you.", " Thanks in advance."]
# First words that keep their capital after a greeting ("Hi, I ...", "Hi, UPS ...").
KEEP_CAPS = {"Royal", "Amazon", "Summit", "California", "Trail", "Northwind", "DHL", "GLS"}

# (text, weight): what an answer may open or close with, per region and kind.
OPENERS = {
    ("us", "answer"): [("", 60), ("Sure! ", 12), ("Great question! ", 8), ("Happy to help! ", 12), ("Thanks for asking! ", 8)],
    ("us", "decline"): [("", 75), ("Thanks for checking. ", 15), ("Thanks for asking. ", 10)],
    ("uk", "answer"): [("", 30), ("Thank you for asking. ", 40), ("Happy to help. ", 18), ("Thank you for your question. ", 12)],
    ("uk", "decline"): [("", 30), ("Thank you for getting in touch. ", 45), ("Thank you for asking. ", 25)],
    ("eu", "answer"): [("", 50), ("Thank you for your question. ", 40), ("Thank you for contacting us. ", 10)],
    ("eu", "decline"): [("", 40), ("Thank you for your enquiry. ", 45), ("Thank you for your question. ", 15)],
}
CLOSERS = {
    "us": [("", 88), (" Hope that helps!", 12)],
    "uk": [("", 82), (" Kind regards.", 8), (" I hope this helps.", 10)],
    "eu": [("", 88), (" Please do not hesitate to contact us if you have further questions.", 12)],
}
NOT_COVERED = {
    ("us", True): [
        "The policy passages here don't cover {what}, so I can't answer that one. Please contact our customer support team and they'll help you out.",
        "I don't see anything about {what} in these policy passages. Our customer support team can help with that.",
    ],
    ("us", False): [
        "I couldn't find a policy passage about {what}, so I can't answer that one. Please contact our customer support team for help.",
        "There's no policy passage on {what} for me to go on. Our customer support team can help with that.",
    ],
    ("uk", True): [
        "Thank you for asking. The policy passages I have do not cover {what}, so I cannot give you an answer on that. Please contact our customer support team, who will be happy to help.",
        "Happy to help where I can, but these policy passages do not mention {what}. Please get in touch with our customer support team for advice.",
    ],
    ("uk", False): [
        "Thank you for your question. I could not find a policy passage about {what}, so please contact our customer support team, who will be happy to help.",
        "Thank you for asking. No policy passage covers {what}, so I cannot answer this one. Please contact our customer support team for advice.",
    ],
    ("eu", True): [
        "Thank you for your question. The policy passages provided do not cover {what}. Please contact our customer support team for further information.",
        "Please note that the available policy passages do not address {what}. Our customer support team will be able to assist you further.",
    ],
    ("eu", False): [
        "Thank you for your question. No policy passage addressing {what} was found. Please contact our customer support team for further information.",
        "Please note that no policy passage on {what} is available. Please contact our customer support team for further information.",
    ],
}


def weighted(rng: random.Random, options: list[tuple[str, int]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


class Keep(dict):
    """format_map that leaves unknown fields ({c1}, ...) for the second pass."""

    def __missing__(self, key):
        return "{" + key + "}"


def typo(rng: random.Random, text: str) -> str:
    """An occasional slip: two letters swapped in one longer lowercase word, or all lowercase with no
    final question mark."""
    roll = rng.random()
    if roll < 0.10:
        words = text.split(" ")
        candidates = [i for i, w in enumerate(words) if w.isalpha() and w.islower() and len(w) >= 5]
        if candidates:
            i = rng.choice(candidates)
            w = words[i]
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            return " ".join(words)
    elif roll < 0.16:
        return text.lower().rstrip("?").rstrip()
    return text


def dress_question(rng: random.Random, question: str) -> str:
    prefix = rng.choice(Q_PREFIXES)
    first = question.split(" ")[0]
    if prefix.endswith(", ") and not (first in KEEP_CAPS or first == "I" or first.startswith("I'")
                                       or (first.isupper() and len(first) > 1)):
        question = question[0].lower() + question[1:]
    suffix = rng.choice(Q_SUFFIXES) if question.endswith(("?", ".", "!")) else ""
    return typo(rng, prefix + question + suffix)


def user_turn(passages: list[Section], question: str) -> str:
    """user_turn in services/generation/src/fusion.rs."""
    if not passages:
        return f"Policy passages: none were found for this question.\n\nQuestion: {question}"
    blocks = [p.block(i + 1) for i, p in enumerate(passages)]
    return "Policy passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


def draw_params(rng: random.Random, intent: Intent) -> dict:
    if intent.params is None:
        return {}
    if callable(intent.params):
        return dict(intent.params(rng))
    return dict(rng.choice(intent.params))


def drop_longest(distractors: list[Section]) -> list[Section]:
    longest = max(range(len(distractors)), key=lambda i: len(distractors[i].text))
    return distractors[:longest] + distractors[longest + 1:]


def quotes_several_currencies(section: Section) -> bool:
    return len(set(re.findall(r"[$£€]", section.text))) > 1


def make_example(rng: random.Random, intent: Intent, q_index: int, by_key: dict[str, Section],
                 pool: list[Section], multi_currency_share: float) -> dict:
    params = draw_params(rng, intent)
    q_template = params.pop("_q", None)
    a_template = params.pop("_a", None)
    if q_template is None:
        q_template = intent.questions[q_index % len(intent.questions)]
    question = dress_question(rng, q_template.format_map(Keep(params)))

    rel = [by_key[k] for k in intent.rel]
    avoid = set(intent.avoid)
    candidates = [s for s in pool if s.key not in intent.rel and s.key not in avoid and s.doc_id not in avoid
                  and len(s.text) <= MAX_DISTRACTOR_CHARS]
    cap_chars = MAX_CHARS
    if intent.kind == "not_covered":
        n = 0 if rng.random() < 0.3 else weighted(rng, [(1, 40), (2, 40), (3, 20)])
    elif len(rel) == 1 and rng.random() < THREE_PASSAGE_SHARE:
        n, cap_chars = 2, THREE_PASSAGE_MAX_CHARS
    elif len(rel) == 1:
        n = weighted(rng, [(0, 25), (1, 45), (2, 30)])
    else:
        n = weighted(rng, [(0, 55), (1, 45)])
    distractors = rng.sample(candidates, n)
    multi_currency = [s for s in candidates if quotes_several_currencies(s) and s not in distractors]
    if distractors and multi_currency and rng.random() < multi_currency_share:
        distractors[0] = rng.choice(multi_currency)

    def assemble(distractors):
        passages = rel + distractors
        order = list(range(len(passages)))
        rng.shuffle(order)
        shown = [passages[i] for i in order]
        cites = {f"c{j + 1}": f"[{order.index(j) + 1}]" for j in range(len(rel))}
        return shown, cites

    if intent.kind == "not_covered":
        template = rng.choice(NOT_COVERED[(intent.region, bool(distractors))])
        answer = template.format(what=intent.what)
        shown, cites = assemble(distractors)
    else:
        template = a_template or rng.choice(intent.answers)
        body = template.format_map(Keep(params))
        opener = weighted(rng, OPENERS[(intent.region, intent.kind)])
        if intent.region == "us" and body.startswith(("Yes", "No", "Good news")):
            opener = ""
        # A cheerful sign-off after a refusal reads as flippant in the US voice.
        closer = "" if (intent.region, intent.kind) == ("us", "decline") else weighted(rng, CLOSERS[intent.region])
        while True:
            shown, cites = assemble(distractors)
            answer = opener + body.format(**cites) + closer
            if len(user_turn(shown, question)) + len(answer) <= cap_chars or not distractors:
                break
            distractors = drop_longest(distractors)
    if intent.kind == "not_covered":
        while distractors and len(user_turn(shown, question)) + len(answer) > MAX_CHARS:
            distractors = drop_longest(distractors)
            shown, cites = assemble(distractors)
            answer = rng.choice(NOT_COVERED[(intent.region, bool(distractors))]).format(what=intent.what)

    doc_ids = []
    for s in rel:
        if s.doc_id not in doc_ids:
            doc_ids.append(s.doc_id)
    return {
        "messages": [
            {"role": "user", "content": user_turn(shown, question)},
            {"role": "assistant", "content": answer},
        ],
        "meta": {
            "topic": intent.topic,
            "kind": intent.kind,
            "doc_ids": doc_ids,
            "forbidden": list(intent.forbidden) if intent.kind == "decline" else [],
            "intent": intent.id,
        },
        # Dropped before writing; used by the checks and by `add_rejected`.
        "_lead": lead_sentence(rel[0].text) if rel else "",
        "_c1": cites.get("c1", ""),
        "_n_passages": len(shown),
        "_question": question,
        "_rel_markers": sorted(cites.values()),
    }


# --------------------------------------------------------------------------------------------------
# Rejected answers (unlikelihood training)
# --------------------------------------------------------------------------------------------------

# Regions whose training declines carry a rejected answer. eu reached every target without them, and
# its data stays byte-identical so its shipped bundle's training data hash still matches.
REJECTED_REGIONS = ("us", "uk")

# A clause making each forbidden promise, worded as the tuned models made them in evaluation
# ("..., so I can give you free delivery anyway [1]."). Each holds its phrase verbatim: the trainer
# pushes down exactly the tokens of the phrase.
PROMISE_CLAUSES = {
    "free express": "I can send it by free express shipping this time",
    "free upgrade": "I can give you a free upgrade to express",
    "upgrade you for free": "we can upgrade you for free",
    "at no charge": "we can send it express at no charge",
    "for free": "we can upgrade the delivery for free",
    "waive the": "we can waive the charge this once",
    "free next-day": "I can give you free next-day delivery",
    "free repair": "we can offer a free repair anyway",
    "repair it for free": "we can repair it for free this time",
    "covered by the lifetime guarantee": "this is covered by the lifetime guarantee",
    "next day air is available": "Next Day Air is available to your address",
    "next-day delivery is available": "next-day delivery is available to your address",
    "next day is possible": "next day is possible for your postcode",
    "arrive tomorrow": "it can arrive tomorrow",
    "overnight it": "we can overnight it for you",
    "full refund": "I can give you a full refund anyway",
    "accept the return": "we can accept the return this once",
    "return it for a refund": "you can still return it for a refund",
    "take it back": "we can take it back this time",
    "reactivate": "I can reactivate your reward",
    "reissue": "I can reissue the reward for you",
    "extend it": "we can extend it for you",
    "refund the difference": "we can refund the difference anyway",
    "adjust the price": "I can adjust the price for you",
    "refund the gift card": "we can refund the gift card",
    "refund the express": "we can refund the express shipping too",
    "refund your express": "we'll refund your express shipping as well",
    "get the $19.95 back": "you'll get the $19.95 back",
    "refund the full £6.95": "we can refund the full £6.95",
    "full delivery charge": "we'll refund the full delivery charge",
    "refund all of the": "we can refund all of the delivery charge",
    "cash out": "we can cash out your card",
    "pay out your balance": "we can pay out your balance",
    "send you the cash": "we can send you the cash instead",
    "refund the balance": "we can refund the balance to you",
    "pay you cash": "we can pay you cash for them",
    "pay your points out": "we can pay your points out",
    "bank transfer": "we can send the value by bank transfer",
    "cash refund": "I can give you a cash refund",
    "pay it into your bank": "we can pay it into your bank",
    "price match": "we can price match it",
    "match the price": "we can match the price",
    "match their price": "we'll match their price",
    "free replacement": "we can send you a free replacement",
    "we will replace": "we will replace it anyway",
    "replace it for free": "we can replace it for free",
    "refund you straight away": "we can refund you straight away",
    "immediate refund": "I can give you an immediate refund",
    "refund you now": "we can refund you now",
    "swap it for you": "we can swap it for you",
    "exchange it for you": "we can exchange it for you",
    "send you the new size": "we can send you the new size straight away",
    "send one out": "we can send one out today",
}
assert all(phrase in clause.lower() for phrase, clause in PROMISE_CLAUSES.items())


def lead_sentence(text: str) -> str:
    """The passage's first sentence (or list item) without its full stop: what a wrong answer restates
    before its promise. A full stop ends a sentence only before a capital or the end ("P.O. boxes")."""
    text = text.strip().split("\n")[0].removeprefix("- ")
    match = re.match(r"(.+?[.!?])(?:\s+(?=[A-Z])|$)", text, re.S)
    return (match.group(1) if match else text.split("\n")[0]).rstrip(".!?")


def add_rejected(region: str, examples: list[dict]) -> None:
    """Gives every training decline one rejected answer: the lead passage restated, then a forbidden
    promise ("..., so we can waive the charge this once [1]."). The trainer pushes down every
    forbidden phrase it finds, so a lead that itself holds one ("for a full refund") is left out.
    A separate RNG, so the examples themselves are the same with or without this pass."""
    rng = random.Random(f"{SEED}:{region}:rejected")
    for e in examples:
        forbidden = e["meta"]["forbidden"]
        if e["meta"]["kind"] != "decline" or not forbidden:
            continue
        missing = [p for p in forbidden if p not in PROMISE_CLAUSES]
        assert not missing, f"{e['meta']['intent']}: no promise clause for {missing}"
        clause = PROMISE_CLAUSES[rng.choice(forbidden)]
        joiner = rng.choice(["so", "but"])
        lead = e["_lead"]
        if any(p in lead.lower() for p in forbidden):
            e["rejected"] = [f"{cap(clause)} {e['_c1']}."]
        else:
            e["rejected"] = [f"{cap(lead)}, {joiner} {clause} {e['_c1']}."]
    scopes = FOREIGN_AMOUNT_SCOPES.get(region, ())
    if "asked" in scopes:
        add_rejected_amounts(region, examples)
    if "shown" in scopes:
        add_rejected_amounts_shown(region, examples)
    if "appended" in scopes:
        add_rejected_amounts_appended(region, examples)


# Which rejected answers quoting other regions' amounts (from the passage that quotes every region's
# gift card values) each region's training data carries:
# - "asked": gift-card answers (`giftcards.kinds`) get one copying those amounts (us from us run 9, uk
#   from uk run 8);
# - "shown": every other example shown that passage gets one (uk from uk run 9: with only "asked", uk
#   run 8 copied "$10 to $500" into 4 of 16 held-out answers that state an amount, one of them to a
#   question about order records);
# - "appended": gift-card answers get a second one, the right answer followed by another region's
#   amounts labelled as that region's (uk from uk run 10: uk run 9's one currency miss read "£10 to
#   £500 in the United Kingdom and €10 to ££500 in the European Union").
# us is left as its run 9 trained it (its held-out currency was 100%).
FOREIGN_AMOUNT_SCOPES = {"us": ("asked",), "uk": ("asked", "shown", "appended")}
REGION_NAMES = {"us": "the United States", "uk": "the United Kingdom", "eu": "the European Union"}


def foreign_amounts(region: str) -> list[str]:
    """Other regions' gift card amounts as they appear in the every-region passage: the phrases a
    rejected answer quoting them pushes down."""
    own = CURRENCY[region]
    return [f"{symbol}{amount}" for symbol in CURRENCY.values() if symbol != own for amount in (10, 500)]


def add_rejected_amounts(region: str, examples: list[dict]) -> None:
    """Gift-card answers get a rejected answer that copies the passage's every-region values, as
    tuned models did in evaluation ("$10 to £500 in the currency of your region"), and the other
    regions' amounts as the phrases to push down (in `meta.forbidden`: phrases the answer must not
    contain). Its own RNG, so the declines' rejected answers stay as they were."""
    rng = random.Random(f"{SEED}:{region}:rejected-amounts")
    own = CURRENCY[region]
    foreign = foreign_amounts(region)
    for e in examples:
        if e["meta"]["intent"] != f"{region}.giftcards.kinds":
            continue
        other = rng.choice([symbol for symbol in CURRENCY.values() if symbol != own])
        e["rejected"] = [rng.choice([
            f"{e['_lead']} {e['_c1']}.",
            f"Gift cards are available from {own}10 to {other}500 in the currency of your region {e['_c1']}.",
            f"You can buy gift cards from {other}10 to {other}500 {e['_c1']}.",
        ])]
        e["meta"]["forbidden"] = foreign


def add_rejected_amounts_shown(region: str, examples: list[dict]) -> None:
    """Every other example whose prompt shows the every-region gift card passage gets a rejected
    answer that quotes other regions' amounts from it, cited by that passage's number, and those
    amounts among its forbidden phrases (beside a decline's promises). Its own RNG, so the answers
    drawn before stay as they were."""
    rng = random.Random(f"{SEED}:{region}:rejected-amounts-shown")
    own = CURRENCY[region]
    foreign = foreign_amounts(region)
    for e in examples:
        if e["meta"]["intent"] == f"{region}.giftcards.kinds":
            continue
        shown = re.search(r"\[(\d+)\][^\n]*\n[^\n]*\$10 to \$500", e["messages"][0]["content"])
        if not shown:
            continue
        cite = f"[{shown.group(1)}]"
        other = rng.choice([symbol for symbol in CURRENCY.values() if symbol != own])
        e.setdefault("rejected", []).append(rng.choice([
            f"Gift cards are available from {own}10 to {other}500 in the currency of your region {cite}.",
            f"You can buy gift cards from {other}10 to {other}500 {cite}.",
            f"Gift cards come in the currency of your region: {other}10 to {other}500 {cite}.",
        ]))
        e["meta"]["forbidden"] = e["meta"]["forbidden"] + foreign


def add_rejected_amounts_appended(region: str, examples: list[dict]) -> None:
    """Gift-card answers get a second rejected answer: the answer itself, then another region's
    amounts labelled as that region's, before its citation ("... from £10 to £500 in the United
    Kingdom and €10 to €500 in the European Union [2]."). The answer and the rejected one agree up
    to the foreign amount, so what is pushed down is exactly the step of going on to quote it.
    Runs after `add_rejected_amounts`, whose forbidden phrases these carry (a region scoped for
    "appended" is scoped for "asked" too); its own RNG."""
    rng = random.Random(f"{SEED}:{region}:rejected-amounts-appended")
    for e in examples:
        if e["meta"]["intent"] != f"{region}.giftcards.kinds":
            continue
        answer = e["messages"][-1]["content"]
        cite = f" {e['_c1']}"
        assert answer.count(cite) == 1, f"{region}.giftcards.kinds: the answer cites {cite} other than once"
        other = rng.choice([r for r in CURRENCY if r != region])
        symbol = CURRENCY[other]
        tail = f" and {symbol}10 to {symbol}500 in {REGION_NAMES[other]}"
        e.setdefault("rejected", []).append(answer.replace(cite, tail + cite))


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------

APOLOGY = re.compile(r"\b(sorry|apolog\w*|unfortunately|regrettably|we regret)\b", re.I)
PROMISES = ["i guarantee", "we guarantee", "i can guarantee", "we can guarantee", "make an exception",
            "i promise", "we promise"]
AMERICAN = ["color", "colored", "favor", "favorite", "behavior", "honor", "labor", "neighbor", "organize",
            "organized", "organization", "realize", "recognize", "analyze", "customize", "customized",
            "personalized", "authorize", "center", "theater", "fiber", "liter", "catalog", "canceled",
            "canceling", "labeled", "traveled", "traveling", "jewelry", "gray", "fulfill", "enrollment",
            "installment", "defense", "aluminum", "program"]
BRITISH = ["colour", "favour", "behaviour", "organise", "personalised", "centre", "cancelled", "programme",
           "cheque", "jewellery", "travelled"]
CURRENCY = {"us": "$", "uk": "£", "eu": "€"}
AMOUNT = re.compile(r"[$£€]\s?\d|\d\s?[$£€]|\b(?:usd|gbp|eur)\b|\d+\s+(?:dollars?|pounds?|euros?)\b", re.I)


def words_in(text: str, words: list[str]) -> list[str]:
    return [w for w in words if re.search(rf"\b{w}s?\b", text, re.I)]


def check(region: str, split: str, examples: list[dict]) -> list[str]:
    problems = []
    other_symbols = {s for r, s in CURRENCY.items() if r != region}
    for i, ex in enumerate(examples, 1):
        where = f"{region}/{split}.jsonl:{i} ({ex['meta']['intent']})"
        answer = ex["messages"][1]["content"]
        kind = ex["meta"]["kind"]
        n = ex["_n_passages"]
        markers = [int(m) for m in re.findall(r"\[(\d+)\]", answer)]
        if kind in ("answer", "decline"):
            if not markers:
                problems.append(f"{where}: no citation")
            if any(not 1 <= m <= n for m in markers):
                problems.append(f"{where}: citation out of range 1..{n}")
            for m in ex["_rel_markers"]:
                if m not in answer:
                    problems.append(f"{where}: relevant passage {m} not cited")
        elif markers:
            problems.append(f"{where}: a not_covered answer cites")
        if any(s in answer for s in other_symbols) or re.search(r"\b(USD|GBP|EUR)\b", answer):
            problems.append(f"{where}: another region's currency in the answer")
        if AMOUNT.search(answer) and CURRENCY[region] not in answer:
            problems.append(f"{where}: an amount without the region's symbol")
        if APOLOGY.search(answer):
            problems.append(f"{where}: apology")
        for phrase in PROMISES + ex["meta"]["forbidden"]:
            if phrase.lower() in answer.lower():
                problems.append(f"{where}: promise / forbidden phrase {phrase!r}")
        if region == "us" and words_in(answer, BRITISH):
            problems.append(f"{where}: British spelling {words_in(answer, BRITISH)}")
        if region in ("uk", "eu") and words_in(answer, AMERICAN):
            problems.append(f"{where}: American spelling {words_in(answer, AMERICAN)}")
        if region == "eu":
            if "'" in answer or "\u2019" in answer:
                problems.append(f"{where}: apostrophe (contraction?) in a formal answer")
            if kind != "not_covered" and ex["meta"]["topic"] in ("returns", "refunds") and not (
                    "14" in answer and "withdraw" in answer):
                problems.append(f"{where}: no mention of the 14-day right of withdrawal")
        if kind == "decline" and not ex["meta"]["forbidden"]:
            problems.append(f"{where}: decline without forbidden phrases")
        if kind != "not_covered" and not ex["meta"]["doc_ids"]:
            problems.append(f"{where}: no doc_ids")
    return problems


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


AMOUNT_WEIGHT = 2.5


def states_amount(intent: Intent) -> bool:
    """Whether the intent's answers quote money in the region's currency."""
    texts = list(intent.answers)
    if isinstance(intent.params, list):
        texts += [str(p.get("_a", "")) + str(p.get("body", "")) for p in intent.params]
    return any(CURRENCY[intent.region] in t for t in texts)


def allot(intents: list[Intent], total: int, rng: random.Random, weighted: bool) -> dict[str, int]:
    """`total` examples spread over `intents` in proportion to their weight (when `weighted`, the intent's
    own weight, times AMOUNT_WEIGHT if its answers state an amount), largest remainders first, ties by lot."""
    if not intents:
        assert total == 0
        return {}
    weights = {i.id: (i.weight * (AMOUNT_WEIGHT if states_amount(i) else 1.0) if weighted else 1.0)
               for i in intents}
    scale = total / sum(weights.values())
    exact = {k: w * scale for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    order = sorted(exact, key=lambda k: (-(exact[k] - counts[k]), rng.random()))
    for k in order[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def main() -> int:
    sections = load_corpus()
    by_key = {s.key: s for s in sections}
    builders = {"us": us_intents, "uk": uk_intents, "eu": eu_intents}
    summary = []
    all_problems = []
    for region in REGIONS:
        intents = builders[region]()
        ids = Counter(i.id for i in intents)
        assert all(n == 1 for n in ids.values()), f"duplicate intents: {[k for k, n in ids.items() if n > 1]}"
        pool = [s for s in sections if region in s.regions]
        for intent in intents:
            for key in intent.rel:
                assert key in by_key, f"{intent.id}: unknown section {key}"
                assert region in by_key[key].regions, f"{intent.id}: {key} is not a {region} passage"
            assert intent.kind in ("answer", "decline", "not_covered"), intent.id
            if intent.kind == "not_covered":
                assert not intent.rel and intent.what, intent.id
            else:
                assert intent.rel and (intent.answers or isinstance(intent.params, list)), intent.id
        out: dict[str, list[dict]] = {}
        for split in ("train", "heldout"):
            # One RNG per region and split: editing the training intents never reshuffles the held-out
            # set, so evaluations before and after a data change compare on the same examples.
            rng = random.Random(f"{SEED}:{region}:{split}")
            examples = []
            seen_turns = set()
            for kind in ("answer", "decline", "not_covered"):
                group = [i for i in intents if i.split == split and i.kind == kind]
                counts = allot(group, TARGETS[(split, kind)], rng, weighted=split == "train")
                for intent in group:
                    start = rng.randrange(len(intent.questions) or 1)
                    made = 0
                    attempt = 0
                    while made < counts[intent.id]:
                        ex = make_example(rng, intent, start + attempt, by_key, pool,
                                          MULTI_CURRENCY_DISTRACTOR_SHARE[split])
                        attempt += 1
                        turn = ex["messages"][0]["content"]
                        if turn in seen_turns and attempt < counts[intent.id] + 40:
                            continue
                        seen_turns.add(turn)
                        examples.append(ex)
                        made += 1
            rng.shuffle(examples)
            if split == "train" and region in REJECTED_REGIONS:
                add_rejected(region, examples)
            out[split] = examples

        train_intents = {e["meta"]["intent"] for e in out["train"]}
        held_intents = {e["meta"]["intent"] for e in out["heldout"]}
        assert not train_intents & held_intents, f"{region}: intents in both splits: {train_intents & held_intents}"
        train_questions = {e["_question"].lower() for e in out["train"]}
        leaked = [e["_question"] for e in out["heldout"] if e["_question"].lower() in train_questions]
        assert not leaked, f"{region}: held-out questions also in train: {leaked}"
        held_topics = {e["meta"]["topic"] for e in out["heldout"]}
        assert len(held_topics) >= 5, f"{region}: held-out covers too few topics: {held_topics}"

        for split, examples in out.items():
            assert len(examples) >= MIN_LINES[split], f"{region}/{split}: only {len(examples)} examples"
            all_problems += check(region, split, examples)
            with_amount = sum(1 for e in examples if AMOUNT.search(e["messages"][1]["content"]))
            share = with_amount / len(examples)
            if share < 0.30:
                all_problems.append(f"{region}/{split}: only {share:.0%} of answers state an amount")
            path = HERE / region / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8", newline="\n") as f:
                for e in examples:
                    line = {"messages": e["messages"], **({"rejected": e["rejected"]} if "rejected" in e else {}),
                            "meta": e["meta"]}
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
            kinds = Counter(e["meta"]["kind"] for e in examples)
            chars = [sum(len(m["content"]) for m in e["messages"]) for e in examples]
            summary.append({
                "file": f"{region}/{split}.jsonl", "lines": len(examples),
                "intents": len({e["meta"]["intent"] for e in examples}),
                "answer": kinds["answer"], "decline": kinds["decline"], "not_covered": kinds["not_covered"],
                "amount": f"{share:.0%}", "mean_chars": round(sum(chars) / len(chars)), "max_chars": max(chars),
                "over_900": sum(1 for c in chars if c > 900),
                "no_passages": sum(1 for e in examples if e["_n_passages"] == 0),
                "distractors": f'{sum(1 for e in examples if e["_n_passages"] > len(e["_rel_markers"])) / len(examples):.0%}',
            })

    cols = ["file", "lines", "intents", "answer", "decline", "not_covered", "amount", "mean_chars", "max_chars",
            "over_900", "no_passages", "distractors"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in summary)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in summary:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    if all_problems:
        print(f"\n{len(all_problems)} problem(s):", file=sys.stderr)
        for p in all_problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
