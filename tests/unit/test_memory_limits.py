"""The limit: cgroup v1/v2 parsing from fixture trees, and the smallest-of-three rule."""

from pathlib import Path

import pytest

from milo_tui.memory.limits import MemoryLimit, read_cgroup_limit, resolve_limit

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup"
GIB = 1024**3


def limit_of(case: str) -> int | None:
    return read_cgroup_limit(FIXTURES / case / "proc_self_cgroup", FIXTURES / case / "sys")


@pytest.mark.parametrize("case, expected", [
    ("v1", 512 * 1024**2),             # limit on the process's own cgroup
    ("v1_unlimited", None),            # 2^63 - 4096 means "no limit"
    ("v1_comounted", 1 * GIB),         # 'cpu,memory' mount; the parent's limit binds the child
    ("v1_container", 768 * 1024**2),   # host path absent under the mount: the mount root is the cgroup
    ("v2", 2 * GIB),                   # service MemoryMax under a looser slice
    ("v2_max", None),                  # "max" all the way up
    ("v2_parent", 1 * GIB),            # parent tighter than child
    ("v2_namespace", 3 * GIB),         # cgroup namespace: "0::/" with memory.max at the root
    ("hybrid", 6 * GIB),               # unified tree without memory; v1 memory hierarchy has the limit
])
def test_cgroup_limit_from_fixture(case, expected):
    assert limit_of(case) == expected


def test_missing_proc_cgroup_means_no_limit(tmp_path):
    assert read_cgroup_limit(tmp_path / "absent", tmp_path) is None


def test_garbage_limit_file_is_ignored(tmp_path):
    (tmp_path / "proc").write_text("0::/a\n")
    sys_root = tmp_path / "sys"
    (sys_root / "a").mkdir(parents=True)
    (sys_root / "cgroup.controllers").write_text("memory\n")
    (sys_root / "a" / "memory.max").write_text("lots\n")
    assert read_cgroup_limit(tmp_path / "proc", sys_root) is None


def test_this_machine_reads_without_error():
    value = read_cgroup_limit()
    assert value is None or value > 0


def test_smallest_of_three_wins():
    limit = resolve_limit(8 * GIB, physical=24 * GIB, cgroup=16 * GIB)
    assert limit == MemoryLimit(bytes=8 * GIB, source="budget", physical=24 * GIB, cgroup=16 * GIB, budget=8 * GIB)
    assert resolve_limit(32 * GIB, physical=24 * GIB, cgroup=4 * GIB).source == "cgroup"
    assert resolve_limit(None, physical=24 * GIB, cgroup=None).source == "physical"
    assert resolve_limit(None, physical=24 * GIB, cgroup=None).bytes == 24 * GIB


def test_tie_names_the_setting_a_user_would_change():
    assert resolve_limit(4 * GIB, physical=24 * GIB, cgroup=4 * GIB).source == "budget"
    assert resolve_limit(None, physical=4 * GIB, cgroup=4 * GIB).source == "cgroup"


def test_auto_reads_physical_and_cgroup():
    limit = resolve_limit(None)
    assert limit.physical > 0
    assert limit.bytes <= limit.physical
    assert limit.bytes == min(x for x in (limit.physical, limit.cgroup) if x is not None)
