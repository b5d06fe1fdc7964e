"""The README and docs/: every relative link and anchor resolves, and the README stays a front
door (at most 15 KB)."""

import glob
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
PAGES = [os.path.join(ROOT, "README.md"),
         *sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
  """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to
  hyphens."""
  text = heading.strip().lower()
  text = re.sub(r"[^\w\- ]", "", text)
  return text.replace(" ", "-")


def _anchors(path: str) -> set[str]:
  with open(path) as f:
    text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
  return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_resolves(page):
  with open(page) as f:
    text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
  broken = []
  for target in LINK.findall(text):
    if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
      continue
    path, _, anchor = target.partition("#")
    resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
    if not os.path.exists(resolved):
      broken.append(f"{target}: no {os.path.relpath(resolved, ROOT)}")
    elif anchor and (os.path.isdir(resolved) or anchor not in _anchors(resolved)):
      broken.append(f"{target}: no heading #{anchor} in {os.path.relpath(resolved, ROOT)}")
  assert not broken, "\n".join(broken)


def test_the_readme_is_a_front_door():
  assert os.path.getsize(os.path.join(ROOT, "README.md")) <= 15 * 1024
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  assert not re.search(r"\bissue \d+", text), "issue numbers belong in the history, not here"
