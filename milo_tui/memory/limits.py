"""The memory limit a run must live within: the smallest of RAM, cgroup limit and budget.

A container or a systemd slice can give a process far less memory than the
machine has; exceeding it gets the whole run OOM-killed even though `free`
shows plenty. So the limit is read from the cgroup the process lives in (v1 or
v2, walking up the hierarchy, because a parent's limit binds the children too)
and capped by the user's `memory_budget`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

# cgroup v1 reports "no limit" as a huge page-aligned number (2**63 - 4096 on x86-64).
# Anything at or above this is treated as unlimited.
V1_UNLIMITED_FLOOR = 1 << 62

@dataclass(frozen=True)
class MemoryLimit:
    bytes: int
    source: str  # "physical" | "cgroup" | "budget": which of the three is the smallest
    physical: int
    cgroup: int | None
    budget: int | None

    def fraction(self, used: int) -> float:
        return used / self.bytes if self.bytes > 0 else 1.0

    def as_dict(self) -> dict:
        return {"bytes": self.bytes, "source": self.source, "physical": self.physical,
                "cgroup": self.cgroup, "budget": self.budget}


def physical_memory() -> int:
    return int(psutil.virtual_memory().total)


@dataclass(frozen=True)
class _CgroupLine:
    hierarchy: str
    controllers: tuple[str, ...]
    path: str


def _parse_proc_cgroup(text: str) -> list[_CgroupLine]:
    """Lines of /proc/self/cgroup: 'hierarchy-id:controller,list:/path'."""
    lines = []
    for raw in text.splitlines():
        parts = raw.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        lines.append(_CgroupLine(hierarchy, tuple(c for c in controllers.split(",") if c), path))
    return lines


def _ancestors(mount: Path, cgroup_path: str) -> list[Path]:
    """The process's cgroup directory and every parent up to the mount root.

    In a container with its own cgroup namespace the path may not exist under
    the mount (the container sees its own cgroup as "/"); the mount root is
    then the process's cgroup, so it is always included.
    """
    relative = [p for p in cgroup_path.strip("/").split("/") if p and p != ".."]
    dirs = [mount.joinpath(*relative[:depth]) for depth in range(len(relative), 0, -1)]
    dirs.append(mount)
    return [d for d in dirs if d.is_dir()]


def _read_limit_file(path: Path, unlimited_floor: int | None) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    if value <= 0 or (unlimited_floor is not None and value >= unlimited_floor):
        return None
    return value


def _smallest(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _v2_mount(cgroup_root: Path) -> Path | None:
    """Pure v2 mounts the unified tree at the root; hybrid systems under 'unified'."""
    for candidate in (cgroup_root, cgroup_root / "unified"):
        if (candidate / "cgroup.controllers").exists():
            return candidate
    return None


def _v1_memory_mount(cgroup_root: Path) -> Path | None:
    """The v1 memory hierarchy: 'memory', or a co-mounted dir such as 'memory,cpu'."""
    direct = cgroup_root / "memory"
    if direct.is_dir():
        return direct
    try:
        for child in cgroup_root.iterdir():
            if child.is_dir() and "memory" in child.name.split(","):
                return child
    except OSError:
        pass
    return None


def _v2_limit(lines: list[_CgroupLine], cgroup_root: Path) -> int | None:
    unified = next((line for line in lines if line.hierarchy == "0" and not line.controllers), None)
    mount = _v2_mount(cgroup_root)
    if unified is None or mount is None:
        return None
    return _smallest([_read_limit_file(d / "memory.max", None) for d in _ancestors(mount, unified.path)])


def _v1_limit(lines: list[_CgroupLine], cgroup_root: Path) -> int | None:
    memory = next((line for line in lines if "memory" in line.controllers), None)
    mount = _v1_memory_mount(cgroup_root)
    if memory is None or mount is None:
        return None
    return _smallest([_read_limit_file(d / "memory.limit_in_bytes", V1_UNLIMITED_FLOOR)
                      for d in _ancestors(mount, memory.path)])


def read_cgroup_limit(proc_self_cgroup: Path = Path("/proc/self/cgroup"),
                      cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The tightest cgroup memory limit on this process, or None if there is none.

    v2: memory.max ("max" means none) of the process's cgroup and its parents.
    v1: memory.limit_in_bytes of the memory controller's cgroup and its parents.
    On a hybrid system both are read and the smaller wins.
    """
    try:
        lines = _parse_proc_cgroup(Path(proc_self_cgroup).read_text())
    except (OSError, UnicodeDecodeError):
        return None
    root = Path(cgroup_root)
    return _smallest([_v2_limit(lines, root), _v1_limit(lines, root)])


def resolve_limit(budget: int | None, *, physical: int | None = None,
                  cgroup: int | None | str = "auto") -> MemoryLimit:
    """The limit usage percentages are relative to.

    `physical` defaults to this machine's RAM, `cgroup="auto"` reads the
    process's cgroup. On a tie the more specific source is named (budget, then
    cgroup), since that is the setting a user would change.
    """
    physical_bytes = physical if physical is not None else physical_memory()
    cgroup_bytes = read_cgroup_limit() if cgroup == "auto" else cgroup
    if cgroup_bytes is not None and not isinstance(cgroup_bytes, int):
        raise TypeError(f"cgroup must be an int, None or 'auto', not {cgroup_bytes!r}")
    candidates: list[tuple[int, str]] = [(physical_bytes, "physical")]
    if cgroup_bytes is not None:
        candidates.append((cgroup_bytes, "cgroup"))
    if budget is not None:
        candidates.append((budget, "budget"))
    specificity = {"budget": 0, "cgroup": 1, "physical": 2}
    chosen_bytes, chosen_source = min(candidates, key=lambda c: (c[0], specificity[c[1]]))
    return MemoryLimit(bytes=chosen_bytes, source=chosen_source, physical=physical_bytes,
                       cgroup=cgroup_bytes, budget=budget)
