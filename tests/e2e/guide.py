"""The command blocks of a guide in docs/, read so that a test runs exactly what the guide says.

A block is a fenced code block right after a `<!-- e2e: NAME -->` comment; NAME is unique in
the guide. Shell blocks run with bash in strict mode (`set -euo pipefail`), after the guide's
`env` block, so that each starts from the variables the guide tells the reader to export.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_BLOCK = re.compile(r"<!-- e2e: (\S+) -->\n```(\w+)\n(.*?)\n```", re.S)


@dataclass(frozen=True)
class Block:
    name: str
    lang: str
    text: str


class Guide:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.blocks: dict[str, Block] = {}
        for name, lang, text in _BLOCK.findall(path.read_text()):
            if name in self.blocks:
                raise ValueError(f"{path}: two blocks named {name!r}")
            self.blocks[name] = Block(name, lang, text + "\n")

    def text(self, name: str) -> str:
        try:
            return self.blocks[name].text
        except KeyError:
            raise KeyError(f"{self.path} has no block marked <!-- e2e: {name} -->") from None

    def run(
        self,
        name: str,
        cwd: Path,
        env: dict[str, str],
        check: bool = True,
        env_block: str = "env",
    ) -> subprocess.CompletedProcess[str]:
        """Run block `name` (after block `env_block`) in `cwd`; on failure, fail with its
        output."""
        block = self.blocks.get(name)
        if block is None or block.lang != "sh":
            raise KeyError(f"{self.path} has no shell block marked <!-- e2e: {name} -->")
        script = "set -euo pipefail\n" + self.text(env_block) + block.text
        result = subprocess.run(
            ["bash", "-c", script], cwd=cwd, env=env, text=True, capture_output=True
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"step {name!r} of {self.path.name} exited {result.returncode}:\n"
                f"{block.text}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result
