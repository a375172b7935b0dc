#!/usr/bin/env python3
"""Checks the built book's links: every relative link in every page of target/book
resolves to a page that exists and, when it names a fragment, to an id on that page.
External links (http, https, mailto) are not followed: the tests run without a network.

    python3 tools/check_book.py target/book
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.links.append((a["href"], self.getpos()[0]))


def main(book: Path) -> int:
    pages = {}
    for f in sorted(book.rglob("*.html")):
        p = Page()
        p.feed(f.read_text(encoding="utf-8"))
        pages[f.resolve()] = p
    if len(pages) < 10:
        print(f"{book}: only {len(pages)} pages; was the book built?")
        return 1
    broken = []
    for f, p in pages.items():
        for href, line in p.links:
            parts = urlsplit(href)
            if parts.scheme or href.startswith("//") or href.startswith("mailto:"):
                continue
            target = f if not parts.path else (f.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            rel = f.relative_to(book.resolve())
            if not target.exists():
                broken.append(f"{rel}:{line}: {href}: no such page")
                continue
            frag = unquote(parts.fragment)
            if frag and target in pages and frag not in pages[target].ids:
                broken.append(f"{rel}:{line}: {href}: no #{frag} on that page")
    for b in broken:
        print(b)
    print(f"{len(pages)} pages, {sum(len(p.links) for p in pages.values())} links, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "target/book")))
