#!/usr/bin/env python3
"""Every reference in the repository's code comments and docs resolves inside the repository.

Checked, in every tracked text file (sources, scripts, docs):
  * Markdown links [text](path) and [text](path#anchor) with a relative path: the file exists, and
    the anchor is one of its headings (GitHub's slugs);
  * mentions of a Markdown file (`docs/trainer.md`, `policies.md#rewards`, `docs/math.md §2.1`): the
    file exists (relative to the citing file, the repository root or docs/), the anchor is a heading,
    and a section number (§N or §N.M) is a numbered heading of that file.
Exits 1 listing every dangling reference (file:line: reference: why).

Usage: scripts/check_references.py [repository root]
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
TEXT = re.compile(r"\.(hpp|h|cpp|cu|cuh|md|py|sh|cmake|txt|json)$|CMakeLists\.txt$|^\.ci/run$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MENTION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)(#[\w-]+)?(?:\s*§\s*(\d+(?:\.\d+)*))?")
# Files the programs write into their output folders (in any folder): named in the code, not references.
WRITTEN = {"report.md", "probe.md"}
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    return [f for f in out if f and TEXT.search(f) and os.path.isfile(os.path.join(ROOT, f))]


def slug(heading):
    text = re.sub(r"`|\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    text = text.strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


_headings = {}


def headings(path):
    """(anchors, section numbers) of a Markdown file."""
    if path not in _headings:
        anchors, sections, seen = set(), set(), {}
        in_code = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("```"):
                    in_code = not in_code
                    continue
                m = None if in_code else HEADING.match(line)
                if not m:
                    continue
                s = slug(m.group(2))
                n = seen.get(s, 0)
                seen[s] = n + 1
                anchors.add(s if n == 0 else f"{s}-{n}")
                num = re.match(r"(\d+(?:\.\d+)*)\.?\s", m.group(2))
                if num:
                    sections.add(num.group(1))
        _headings[path] = (anchors, sections)
    return _headings[path]


def resolve(citing, target):
    here = os.path.dirname(os.path.join(ROOT, citing))
    for base in (here, ROOT, os.path.join(ROOT, "docs")):
        p = os.path.normpath(os.path.join(base, target))
        if os.path.exists(p):
            return p
    return None


def check(citing, target, anchor, section, problems, lineno, text):
    path = resolve(citing, target)
    if path is None:
        problems.append(f"{citing}:{lineno}: {text}: no file {target} in the repository")
        return
    if (anchor or section) and not path.endswith(".md"):
        return
    if anchor or section:
        anchors, sections = headings(path)
        if anchor and anchor not in anchors:
            problems.append(f"{citing}:{lineno}: {text}: {os.path.relpath(path, ROOT)} has no heading #{anchor}")
        if section and section not in sections:
            problems.append(f"{citing}:{lineno}: {text}: {os.path.relpath(path, ROOT)} has no section {section}")


def main():
    problems = []
    for f in tracked_files():
        with open(os.path.join(ROOT, f), encoding="utf-8", errors="replace") as fh:
            lines = fh.read().split("\n")
        for i, line in enumerate(lines, 1):
            for m in LINK.finditer(line) if f.endswith(".md") else ():
                target = m.group(1)
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    if target.startswith("#") and f.endswith(".md"):
                        check(f, os.path.basename(f), target[1:], None, problems, i, m.group(0))
                    continue
                path, _, anchor = target.partition("#")
                check(f, path, anchor or None, None, problems, i, m.group(0))
            for m in MENTION.finditer(line):
                if os.path.basename(m.group(1)) in WRITTEN:  # in any output folder (OUT/report.md)
                    continue
                check(f, m.group(1), (m.group(2) or "")[1:] or None, m.group(3), problems, i, m.group(0))
    for p in problems:
        print(p)
    print(f"check_references: {len(problems)} dangling reference(s)" if problems else "check_references: every reference resolves")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
