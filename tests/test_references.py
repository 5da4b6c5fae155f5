"""Every document the code and docs point a reader to is in this repository.

A comment that sends the reader to a section of a notes file is a dead end when the notes live
elsewhere: the next maintainer has only the repository. Upstream sources are named by repository and path instead
(``dapr/dapr pkg/…``), which this check leaves alone because they end in ``.go`` or ``.py``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MENTION = re.compile(r"(?<![\w/.-])([\w./-]*[\w-]+\.md)\b")
UPSTREAM = ("//",)  # URLs: the page is on the web, not in a notes folder


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.endswith((".py", ".md", ".sh", ".yaml", ".toml", ".txt", "run"))]


def test_every_markdown_file_mentioned_is_in_the_repository() -> None:
    files = tracked()
    names = {Path(f).name for f in files if f.endswith(".md")}
    missing: list[str] = []
    for rel in files:
        text = (ROOT / rel).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for match in MENTION.finditer(line):
                mention = match.group(1)
                if mention.startswith(UPSTREAM) or "://" in line[max(0, match.start() - 60):match.start()]:
                    continue
                if Path(mention).name not in names:
                    missing.append(f"{rel}:{number}: {mention}")
    assert not missing, "documents not in the repository:\n" + "\n".join(missing)


def test_no_path_into_a_notes_folder_outside_the_repository() -> None:
    offenders = [
        f"{rel}:{number}"
        for rel in tracked()
        for number, line in enumerate((ROOT / rel).read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if re.search(r"(?<![\w-])shared/(reference|design)/", line)
    ]
    assert not offenders, offenders
