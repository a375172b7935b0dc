#!/usr/bin/env python3
"""Checks the book: every relative link in every page of target/book resolves to a page that
exists and, when it names a fragment, to an id on that page (external links are not
followed: the tests run without a network); and every YAML example of docs/ is what its
marker says (the JSON ones are checked by the Rust suite, documented_examples.rs):

* `<!-- example: cloudformation -->`: a template cfn-lint finds no error in;
* `<!-- example: appspec -->`: a CodeDeploy AppSpec whose hooks are lifecycle events that
  CodeDeploy has, each pointing at the Greenlight function that serves it.

    python3 tools/check_book.py target/book
"""

import re
import subprocess
import sys
import tempfile
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


# CodeDeploy lifecycle events and the function serving each (shared/src/role.rs).
SERVES = {
    "BeforeInstall": "before-install",
    "AfterInstall": "after-install",
    "AfterAllowTestTraffic": "before-allow-traffic",
    "BeforeAllowTraffic": "before-allow-traffic",
    "AfterAllowTraffic": "after-allow-traffic",
}


def yaml_examples(docs: Path):
    """(file:line, marker, text) of every ```yaml block under docs/."""
    for f in sorted(docs.rglob("*.md")):
        lines = f.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "```yaml":
                continue
            m = re.match(r"<!-- example: (.+?) -->", lines[i - 1].strip()) if i else None
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            yield f"{f}:{i + 1}", m.group(1) if m else None, "\n".join(lines[i + 1:end]) + "\n"


def check_yaml(docs: Path) -> list:
    import yaml  # PyYAML, in the tools' venv (cfn-lint's dependency)

    problems, templates = [], []
    for at, marker, text in yaml_examples(docs):
        if marker == "cloudformation":
            templates.append((at, text))
        elif marker == "appspec":
            doc = yaml.safe_load(text)
            hooks = doc.get("Hooks") if isinstance(doc, dict) else None
            if not isinstance(hooks, list) or not hooks:
                problems.append(f"{at}: an AppSpec needs a Hooks list")
                continue
            for h in hooks:
                (event, target), = h.items()
                if event not in SERVES:
                    problems.append(f"{at}: {event} is not a CodeDeploy lifecycle event Greenlight serves")
                elif not str(target).endswith(SERVES[event]):
                    problems.append(f"{at}: {event} goes to {target}, not the {SERVES[event]} function")
        else:
            problems.append(f"{at}: a ```yaml block needs a marker: <!-- example: cloudformation --> or <!-- example: appspec -->")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n, (at, text) in enumerate(templates):
            p = Path(tmp) / f"template{n}.yaml"
            p.write_text(text)
            paths.append((at, p))
        for at, p in paths:
            run = subprocess.run(["cfn-lint", "--non-zero-exit-code", "error", "--", str(p)], capture_output=True, text=True)
            if run.returncode != 0:
                problems.append(f"{at}: cfn-lint: {run.stdout.strip() or run.stderr.strip()}")
    print(f"{len(templates)} CloudFormation and {sum(1 for _, m, _ in yaml_examples(docs) if m == 'appspec')} AppSpec examples checked")
    return problems


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
    broken += check_yaml(Path(__file__).resolve().parent.parent / "docs")
    for b in broken:
        print(b)
    print(f"{len(pages)} pages, {sum(len(p.links) for p in pages.values())} links, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "target/book")))
