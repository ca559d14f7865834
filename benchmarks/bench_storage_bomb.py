"""Peak memory of reading an archive whose one member inflates far beyond its size (no index).

Builds a ~1 MB archive holding one tar member of --gib GiB of zeros, no index, then in a
fresh process each: lists the models (ModelStore.list_models), computes `milo stats`
(project_storage_stats) and runs the resume recovery (ArchiveWriter.recover), printing the
time and peak RSS of each.

    flock /work/bench.lock python benchmarks/bench_storage_bomb.py --gib 1

Run it with PYTHONPATH pointing at the code to measure (e.g. an old checkout) to compare.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

STEPS = {
    "list models": "ModelStore(root, workspace_dir=root / 'ws').list_models()",
    "milo stats": "project_storage_stats(root)",
    "resume recovery": "ArchiveWriter(root / 'models' / 'main_models.tar.gz', root / 'models' / 'main_models').recover()",
}
CHILD = """
import resource, sys, time
from pathlib import Path
from milo_tui.storage import ArchiveWriter, ModelStore, project_storage_stats
root = Path(sys.argv[1])
started = time.perf_counter()
{step}
print(round(time.perf_counter() - started, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def build(root: Path, size: int) -> int:
    (root / "models" / "main_models").mkdir(parents=True)
    info = tarfile.TarInfo("m_0.joblib")
    info.size = size
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 22)
    with open(root / "models" / "main_models.tar.gz", "wb") as archive:
        archive.write(compressor.compress(info.tobuf(format=tarfile.PAX_FORMAT)))
        for _ in range(size // len(zeros)):
            archive.write(compressor.compress(zeros))
        archive.write(compressor.flush())
        trailer = zlib.compressobj(6, zlib.DEFLATED, 31)
        archive.write(trailer.compress(b"\0" * 1024) + trailer.flush())
    return (root / "models" / "main_models.tar.gz").stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="milo-bench-bomb-") as tmp:
        root = Path(tmp) / "proj"
        compressed = build(root, int(args.gib * (1 << 30)))
        print(f"archive {compressed / 1e6:.1f} MB holding a {args.gib:g} GiB member, no index; "
              f"code: {os.environ.get('PYTHONPATH', '')}")
        for name, step in STEPS.items():
            done = subprocess.run([sys.executable, "-c", CHILD.format(step=step), str(root)],
                                  capture_output=True, text=True)
            result = done.stdout.split() if done.returncode == 0 else ["failed", done.stderr.strip()[-200:]]
            print(f"{name}: {result[0]} s, peak RSS {result[1]} MB")
            if name == "resume recovery":
                (root / "models" / "main_models.index.jsonl").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
