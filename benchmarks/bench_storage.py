"""Storage benchmark: our indexed multi-member tar.gz against tarfile and `tar -czf`.

Generates N model files (default 10,000) of pickled scikit-learn models with
per-model random arrays (a few KB to a few tens of KB each), then, side by side
in one run:

* archive size: ours (batches of gzip members) vs `tar -czf` at the same level;
* build time: ours vs `tar -czf`;
* extracting one model: ours (index lookup, one seek, one partial
  decompression, sha256 check) vs `tarfile.open(...).extractfile(...)`, which
  must decompress the archive up to the member; plus a full ModelStore.open_model
  (private workspace, verify, joblib.load);
* the batch-size trade-off (size vs extraction time) on a subset.

Usage: python benchmarks/bench_storage.py [--models 10000] [--tarfile-samples 8] [--keep DIR]
Runs in about 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from milo_tui.storage import ArchiveWriter, ModelStore
from milo_tui.storage.extract import read_model_bytes
from milo_tui.storage.index import IndexReader

LEVEL = 6


def prototypes(seed: int = 0) -> list:
    """A few dozen fitted pipelines of the kinds MILO trains."""
    X, y = make_classification(n_samples=150, n_features=20, random_state=seed)
    makers = [
        lambda s: LogisticRegression(C=0.1 + s, max_iter=200),
        lambda s: RandomForestClassifier(n_estimators=5, max_depth=3, random_state=s),
        lambda s: KNeighborsClassifier(n_neighbors=3 + s % 5),
        lambda s: GaussianNB(),
    ]
    out = []
    for s in range(8):
        for make in makers:
            steps = [("scaler", StandardScaler()), ("select", SelectKBest(k=10 + s)), ("model", make(s))]
            rows = np.random.default_rng(s).choice(len(X), 120, replace=False)
            out.append(Pipeline(steps).fit(X[rows], y[rows]))
    return out


def generate(directory: Path, count: int) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    models = prototypes()
    rng = np.random.default_rng(42)
    keys = []
    for i in range(count):
        key = f"std__select-50__m{i % len(models)}__grid__roc_auc__{i:05d}"
        # the pipeline (shared structure, compressible) plus per-model arrays (like fitted
        # coefficients or stored training rows: mostly incompressible), 1-30 KB in all
        extra = rng.normal(size=int(rng.integers(50, 3500))).astype(np.float64)
        joblib.dump({"model": models[i % len(models)], "fitted": extra, "key": key}, directory / f"{key}.joblib", compress=0)
        keys.append(key)
    return keys


def build_ours(source: Path, archive: Path, keys: list[str], **kwargs) -> float:
    """As a resumed run would: recover() queues every model file found, flush() archives them.
    Sources are kept (the other archives are built from them too)."""
    started = time.perf_counter()
    with ArchiveWriter(archive, source, level=LEVEL, keep_sources=True, **kwargs) as writer:
        writer.recover()
        assert set(writer.pending_keys()) == set(keys)
        writer.flush()
    return time.perf_counter() - started


def linked_subset(source: Path, target: Path, keys: list[str]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for key in keys:
        (target / f"{key}.joblib").hardlink_to(source / f"{key}.joblib")
    return target


def build_tar(source: Path, archive: Path, keys: list[str]) -> float:
    listing = archive.with_suffix(".list")
    listing.write_text("".join(f"{k}.joblib\n" for k in keys))
    started = time.perf_counter()
    subprocess.run(["tar", "-C", str(source), "-I", f"gzip -{LEVEL}", "-cf", str(archive), "-T", str(listing)], check=True)
    return time.perf_counter() - started


def time_ours(archive: Path, keys: list[str]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    entries = IndexReader(archive).refresh()
    index_seconds = time.perf_counter() - started
    times = []
    for key in keys:
        started = time.perf_counter()
        read_model_bytes(archive, entries[key])
        times.append(time.perf_counter() - started)
    return index_seconds, times


def time_tarfile(archive: Path, keys: list[str]) -> list[float]:
    times = []
    for key in keys:
        started = time.perf_counter()
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractfile(f"{key}.joblib").read()
        times.append(time.perf_counter() - started)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=40, help="models extracted with our archive")
    parser.add_argument("--tarfile-samples", type=int, default=6, help="models extracted with tarfile (slow)")
    parser.add_argument("--subset", type=int, default=1000, help="models in the batch-size trade-off runs")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="milo-bench-storage-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args) -> None:
    source = work / "models" / "main_models"
    print(f"generating {args.models} model files in {source} ...", flush=True)
    started = time.perf_counter()
    keys = generate(source, args.models)
    raw = sum((source / f"{k}.joblib").stat().st_size for k in keys)
    sizes = sorted((source / f"{k}.joblib").stat().st_size for k in keys)
    print(f"  {time.perf_counter() - started:.1f} s; {raw / 1e6:.1f} MB, file sizes {sizes[0] / 1e3:.1f}-{sizes[-1] / 1e3:.1f} KB "
          f"(median {sizes[len(sizes) // 2] / 1e3:.1f} KB)")

    ours = work / "models" / "main_models.tar.gz"
    ref = work / "reference.tar.gz"
    tar_seconds = build_tar(source, ref, keys)
    our_seconds = build_ours(source, ours, keys)
    our_size, ref_size = ours.stat().st_size, ref.stat().st_size
    print(f"\nArchive of {len(keys)} models at gzip level {LEVEL} (batch_models=50, batch_bytes=64MB)")
    print(f"  tar -czf      : {ref_size / 1e6:9.2f} MB   built in {tar_seconds:6.2f} s")
    print(f"  ours          : {our_size / 1e6:9.2f} MB   built in {our_seconds:6.2f} s   "
          f"({(our_size / ref_size - 1) * 100:+.2f} % size vs tar -czf; {(1 - our_size / raw) * 100:.1f} % smaller than the files)")
    names = subprocess.run(["tar", "-tzf", str(ours)], capture_output=True, text=True, check=True).stdout.split()
    print(f"  tar -tzf lists {len(names)} members of ours")

    rng = random.Random(7)
    sample = rng.sample(keys, args.samples)
    index_seconds, our_times = time_ours(ours, sample)
    tar_sample = sample[: args.tarfile_samples]
    tarfile_times = time_tarfile(ref, tar_sample)
    store = ModelStore(work, cache_models=0, workspace_dir=work / "ws")
    open_times = []
    for key in sample:
        started = time.perf_counter()
        store.open_model(key)
        open_times.append(time.perf_counter() - started)
    ours_median, tar_median = statistics.median(our_times), statistics.median(tarfile_times)
    paired = statistics.median(t / o for t, o in zip(tarfile_times, our_times))
    print(f"\nExtracting one model ({args.samples} random keys; tarfile on {len(tar_sample)} of them)")
    print(f"  index load (once)              : {ms(index_seconds)}")
    print(f"  ours, extract + verify  median : {ms(ours_median)}   max {ms(max(our_times))}")
    print(f"  ours, open_model (ws+load)     : {ms(statistics.median(open_times))}   max {ms(max(open_times))}")
    print(f"  tarfile.extractfile     median : {ms(tar_median)}   max {ms(max(tarfile_times))}")
    print(f"  speed-up (median of per-key ratios): {paired:,.0f}x; ratio of medians {tar_median / ours_median:,.0f}x")

    print(f"\nBatch-size trade-off on the first {args.subset} models (tar -czf of the same files = 100 %)")
    subset = keys[: args.subset]
    subset_source = linked_subset(source, work / "subset" / "main_models", subset)
    ref_subset = work / "reference-subset.tar.gz"
    build_tar(subset_source, ref_subset, subset)
    ref_subset_size = ref_subset.stat().st_size
    sub_sample = rng.sample(subset, min(args.samples, len(subset)))
    print(f"  {'setting':<30}{'batches':>8}{'size vs tar':>13}{'extract median':>16}{'max':>12}{'build':>9}")
    settings = [dict(batch_models=m) for m in (1, 10, 25, 50, 100, 200)]
    settings += [dict(batch_models=100_000, batch_bytes=b) for b in (1_000_000, 4_000_000, 16_000_000)]
    for setting in settings:
        archive = work / "subset" / "main_models.tar.gz"
        for stale in (archive, archive.with_name("main_models.index.jsonl")):
            stale.unlink(missing_ok=True)
        build = build_ours(subset_source, archive, subset, **setting)
        _, times = time_ours(archive, sub_sample)
        reader = IndexReader(archive)
        reader.refresh()
        batches = len(reader.batches)
        label = ", ".join(f"{k}={v:,}" for k, v in setting.items()).replace("batch_models=100,000, ", "")
        print(f"  {label:<30}{batches:>8}{archive.stat().st_size / ref_subset_size * 100:>12.2f}%"
              f"{ms(statistics.median(times)):>16}{ms(max(times)):>12}{build:>8.2f}s")


if __name__ == "__main__":
    sys.exit(main())
