"""Print pip constraints pinning every runtime dependency of pyproject.toml to its declared lower bound.

    python .ci/lower_bounds.py > constraints.txt
    pip install --constraint constraints.txt dist/milo_tui-*.whl

.ci/run installs the wheel that way and runs the smoke test, so the `>=` bounds
we declare are ones that were really tried. A dependency without a lower bound
is an error: an untested floor is a claim nobody checked.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*[^;]*?>=\s*([0-9][^,;\s]*)")


def lower_bounds(dependencies: list[str]) -> list[str]:
    pins = []
    for requirement in dependencies:
        if ";" in requirement and "python_version" in requirement:
            continue  # markers for other Pythons do not apply here
        match = FLOOR.match(requirement)
        if not match:
            sys.exit(f"{requirement!r} has no lower bound (>=); declare the oldest version that was tested")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


if __name__ == "__main__":
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    print("\n".join(lower_bounds(project["dependencies"])))
