"""Cost of extracting one model from a project whose index has very many lines.

Builds an index of N batch lines (one model each) over a sparse archive: every batch but
the last is filler that is never read (the index is what is being measured), the last is
a real batch holding the model that is extracted. Then, in a fresh process each time,
times `ModelStore(root).export(key, dest)` and reports the process's peak RSS.

    flock /work/bench.lock python benchmarks/bench_index.py --lines 1000000

Run it with PYTHONPATH pointing at the code to measure (e.g. an old checkout) to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

FILLER_LENGTH = 100  # bytes of archive each filler batch claims

CHILD = """
import resource, sys, time
from pathlib import Path
started = time.perf_counter()
from milo_tui.storage.store import ModelStore
root, key, dest = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
ready = time.perf_counter()
ModelStore(root, workspace_dir=root / "ws").export(key, dest)
done = time.perf_counter()
print(round(done - ready, 3), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def build(root: Path, lines: int) -> str:
    models = root / "models"
    models.mkdir(parents=True)
    payload = os.urandom(4096)
    key = f"std__none__lr__grid__roc_auc__{lines - 1}"
    info = tarfile.TarInfo(f"{key}.joblib")
    info.size = len(payload)
    raw = info.tobuf(format=tarfile.PAX_FORMAT) + payload + b"\0" * (-len(payload) % 512)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    batch = compressor.compress(raw) + compressor.flush()
    trailer_c = zlib.compressobj(6, zlib.DEFLATED, 31)
    trailer = trailer_c.compress(b"\0" * 1024) + trailer_c.flush()
    filler_end = (lines - 1) * FILLER_LENGTH
    with open(models / "main_models.tar.gz", "wb") as archive:
        archive.truncate(filler_end)  # sparse: costs no disk
        archive.seek(filler_end)
        archive.write(batch + trailer)
    sha = hashlib.sha256(payload).hexdigest()
    header_length = len(raw) - len(payload) - (-len(payload) % 512)
    out = io.StringIO()
    out.write('{"format":"milo-archive-index","version":1}\n')
    for i in range(lines - 1):
        out.write(f'{{"batch":{i},"offset":{i * FILLER_LENGTH},"length":{FILLER_LENGTH},"raw_length":4608,'
                  f'"crc32":{i},"members":[["std__none__lr__grid__roc_auc__{i}",0,{header_length},4096,'
                  f'"{sha}"]]}}\n')
    out.write(json.dumps({"batch": lines - 1, "offset": filler_end, "length": len(batch), "raw_length": len(raw),
                          "crc32": zlib.crc32(raw), "members": [[key, 0, header_length, len(payload), sha]]},
                         separators=(",", ":")) + "\n")
    (models / "main_models.index.jsonl").write_text(out.getvalue())
    return key


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="milo-bench-index-") as tmp:
        root = Path(tmp) / "proj"
        key = build(root, args.lines)
        size = (root / "models" / "main_models.index.jsonl").stat().st_size
        print(f"index: {args.lines:,} lines, {size / 1e6:.0f} MB; code: {os.environ.get('PYTHONPATH', '')}")
        for run in range(args.repeat):
            dest = Path(tmp) / f"out{run}.joblib"
            done = subprocess.run([sys.executable, "-c", CHILD, str(root), key, str(dest)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-2000:])
                return 1
            seconds, peak_mb = done.stdout.split()
            print(f"extract one model: {seconds} s, peak RSS {peak_mb} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
