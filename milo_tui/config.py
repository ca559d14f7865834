"""milo.toml: what to train, and how to treat memory and storage.

Every setting is declared once in SETTINGS, with its type, default and a line
of documentation; parsing, validation, `milo init` and docs/CONFIG.md all read
that table. Unknown keys and wrong types are refused by name.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from milo_tui.errors import BadInputError
from milo_tui.project import ProjectPaths, require_project

ALGORITHMS = ("gb", "knn", "lr", "mlp", "nb", "rf", "svm")
SCALERS = ("none", "minmax", "std")
SELECTORS = ("none", "pca-80", "pca-90", "rf-25", "rf-50", "rf-75", "select-25", "select-50", "select-75")
SEARCHERS = ("grid", "random", "random2")
GRID_PRESETS = ("compact", "milo-ml")
SCORERS = ("accuracy", "roc_auc", "f1_macro")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "M": 1000**2, "MB": 1000**2, "G": 1000**3,
          "GB": 1000**3, "T": 1000**4, "TB": 1000**4, "KIB": 1024, "MIB": 1024**2,
          "GIB": 1024**3, "TIB": 1024**4}


def parse_size(value: str | int) -> int:
    """'8GB' -> 8_000_000_000, '512MiB' -> 536_870_912, 1024 -> 1024."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("a size must be positive")
        return value
    if not isinstance(value, str):
        raise ValueError("a size is a string like \"8GB\" or a number of bytes")
    match = _SIZE.match(value)
    unit = (match.group(2) or "").upper() if match else None
    if not match or unit not in _UNITS:
        raise ValueError(f"{value!r} is not a size like \"8GB\", \"512MiB\" or a number of bytes")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


def format_size(n: float | None) -> str:
    """Bytes in binary units as `free -h` and htop count them: 512 B, 3.4 KiB, 210.5 MiB, 7.6 GiB.

    The one size formatter of the package: CLI, TUI, alerts and estimates all use it.
    """
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    default: Any
    doc: str
    check: Callable[[Any], Any]  # returns the normalised value or raises ValueError


def _int(lo: int, hi: int | None = None):
    def check(v):
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError("must be a whole number")
        if v < lo or (hi is not None and v > hi):
            raise ValueError(f"must be between {lo} and {hi}" if hi is not None else f"must be at least {lo}")
        return v
    return check


def _float(lo: float, hi: float):
    def check(v):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ValueError("must be a number")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return float(v)
    return check


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _str(v):
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v


def _choice(*allowed):
    def check(v):
        if v not in allowed:
            raise ValueError(f"must be one of {', '.join(map(repr, allowed))}")
        return v
    return check


def _subset(allowed):
    def check(v):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ValueError(f"must be a list of names from {', '.join(allowed)}")
        bad = [x for x in v if x not in allowed]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} not known; allowed: {', '.join(allowed)}")
        return list(dict.fromkeys(v))
    return check


def _optional(check):
    def wrapped(v):
        return None if v in (None, "", "none") else check(v)
    return wrapped


def _size(v):
    return parse_size(v)


def _scheduler(v):
    """A Dask scheduler: "local" (a cluster on this machine), an address, or a scheduler JSON file."""
    v = _str(v).strip()
    if v == "local" or "://" in v or v.endswith(".json"):
        return v
    raise ValueError('must be "local", an address like "tcp://host:8786", or a path to a scheduler .json file')


def check_scheduler(value: str) -> str:
    """`milo run --scheduler VALUE`, checked like [cluster] scheduler."""
    try:
        return _scheduler(value)
    except ValueError as exc:
        raise BadInputError(f"--scheduler {value!r} {exc}. Nothing was started.") from None


SETTINGS: tuple[Setting, ...] = (
    Setting("data", "train", None, "training CSV, relative to the project folder (split 80/20: fitting / internal test)", _str),
    Setting("data", "test", None, "generalization CSV: never trained on; the headline metrics come from it", _str),
    Setting("data", "target", None, "name of the class column, present in both CSVs", _str),
    Setting("search", "algorithms", list(ALGORITHMS), "algorithms to train", _subset(ALGORITHMS)),
    Setting("search", "scalers", list(SCALERS), "scalers", _subset(SCALERS)),
    Setting("search", "selectors", list(SELECTORS), "feature selectors", _subset(SELECTORS)),
    Setting("search", "grids", "compact", "parameter grids and random distributions: \"milo-ml\" (MILO-ML's own, 567 pipelines) or \"compact\" (small, quick); override one algorithm's values with a [grids.ALG] table", _choice(*GRID_PRESETS)),
    Setting("search", "searchers", None, "hyper-parameter searches (random2 is a second random search with its own seed); default: the preset's, grid + random (compact) or grid + random + random2 (milo-ml)", _optional(_subset(SEARCHERS))),
    Setting("search", "scorers", list(SCORERS), "scorers of the multi-metric search; the top models of each are refit", _subset(SCORERS)),
    Setting("search", "cv_folds", 10, "stratified k-fold CV folds", _int(2, 50)),
    Setting("search", "random_iterations", None, "parameter sets a random search draws at most (fewer when its space is smaller); default: the preset's, 10 (compact) or 100 (milo-ml)", _optional(_int(2, 1000))),
    Setting("search", "top_k", 2, "parameter sets refit per scorer", _int(1, 10)),
    Setting("search", "reoptimize_ovr", False, "multi-class only: refit a binary one-vs-rest model per class and main model", _bool),
    Setting("search", "n_jobs", 1, "parallel jobs inside one search (dropped to 1 when memory is critical)", _int(1, 256)),
    Setting("search", "test_size", 0.2, "share of train.csv held out as the internal test set", _float(0.05, 0.5)),
    # numpy's RandomState, used by scikit-learn, takes seeds below 2**32 only.
    Setting("search", "seed", 42, "random seed of the split, the CV folds and the random searches", _int(0, 2**32 - 1)),
    Setting("run", "workers", 1, "pipelines trained at once, each in its own worker process", _int(1, 64)),
    Setting("memory", "memory_budget", None, "cap for this run, e.g. \"8GB\"; the limit is the smallest of RAM, cgroup limit and this", _optional(_size)),
    Setting("memory", "sample_interval", 0.5, "seconds between memory samples", _float(0.05, 60)),
    Setting("memory", "warning", 0.75, "share of the limit where status turns yellow and cleanup runs", _float(0.05, 0.99)),
    Setting("memory", "critical", 0.85, "share of the limit where status turns red and emergency protocols start", _float(0.05, 0.99)),
    Setting("memory", "forecast_horizon", 120.0, "alert when the trend reaches critical or the limit within this many seconds", _float(1, 86400)),
    Setting("memory", "critical_grace", 30.0, "seconds memory may stay critical with nothing training before the run stops safely", _float(0.5, 3600)),
    Setting("memory", "ovr_policy", "skip", "if the OvR phase does not fit in memory: \"skip\" it or \"stop\" the run", _choice("skip", "stop")),
    Setting("cluster", "scheduler", None, "train on a Dask cluster: \"local\", \"tcp://host:8786\" or a scheduler .json file (`milo node` starts a node); none trains on this machine", _optional(_scheduler)),
    Setting("storage", "batch_models", 50, "models per archive batch (one gzip member)", _int(1, 100000)),
    Setting("storage", "batch_bytes", 4_000_000, "uncompressed bytes that also close a batch, e.g. \"4MB\" (extraction decompresses one batch)", _size),
    Setting("storage", "compression_level", 6, "gzip level of the archives (1 fastest, 9 smallest)", _int(1, 9)),
    Setting("storage", "cache_models", 8, "loaded models kept in memory by the model browser", _int(0, 1000)),
    Setting("storage", "cache_bytes", 256_000_000, "bytes of loaded models kept in memory", _size),
    Setting("storage", "cache_ttl", 60.0, "seconds a loaded model stays cached", _float(0, 86400)),
)

REQUIRED = {("data", "train"), ("data", "test"), ("data", "target")}


@dataclass(frozen=True)
class Preset:
    """A starting search space for `milo init --preset NAME`."""

    name: str
    summary: str
    search: dict[str, Any]


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("quick", "a first run in a couple of minutes on a small data set: 3 fast algorithms, 5 folds",
           {"algorithms": ["lr", "nb", "knn"], "scalers": ["std"], "selectors": ["none", "select-50"],
            "searchers": ["grid"], "scorers": ["accuracy", "roc_auc"], "cv_folds": 5}),
    Preset("standard", "a sensible default: 6 algorithms, 2 scalers, 3 selectors, grid search, 10 folds",
           {"algorithms": ["lr", "rf", "knn", "gb", "nb", "svm"], "scalers": ["none", "std"],
            "selectors": ["none", "select-50", "pca-90"], "searchers": ["grid"],
            "scorers": ["accuracy", "roc_auc", "f1_macro"], "cv_folds": 10}),
    Preset("milo-ml", "MILO-ML's whole search space and grids (thousands of models; hours on a small server)",
           {"algorithms": list(ALGORITHMS), "scalers": list(SCALERS), "selectors": list(SELECTORS),
            "searchers": list(SEARCHERS), "scorers": list(SCORERS), "cv_folds": 10, "grids": "milo-ml"}),
)}
DEFAULT_PRESET = "standard"


def preset_values(name: str) -> dict[str, dict[str, Any]]:
    """Defaults with a preset's search space applied; settings this version lacks are left out."""
    values = defaults()
    known = {s.key for s in SETTINGS if s.section == "search"}
    values["search"].update({k: v for k, v in PRESETS[name].search.items() if k in known})
    return values


@dataclass
class Config:
    """A validated milo.toml. `values[section][key]`, plus typed shortcuts."""

    project: ProjectPaths
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    @property
    def train_path(self) -> Path:
        return (self.project.root / self.get("data", "train")).resolve()

    @property
    def test_path(self) -> Path:
        return (self.project.root / self.get("data", "test")).resolve()

    @property
    def target(self) -> str:
        return self.get("data", "target")

    @property
    def search(self) -> dict[str, Any]:
        return self.values["search"]

    @property
    def memory(self) -> dict[str, Any]:
        return self.values["memory"]

    @property
    def storage(self) -> dict[str, Any]:
        return self.values["storage"]

    @property
    def run(self) -> dict[str, Any]:
        return self.values["run"]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dict(v) for s, v in self.values.items()}


def defaults() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in SETTINGS:
        out.setdefault(s.section, {})[s.key] = list(s.default) if isinstance(s.default, list) else s.default
    return out


def validate(raw: dict[str, Any], project: ProjectPaths, source: str = "milo.toml") -> Config:
    known = {(s.section, s.key): s for s in SETTINGS}
    sections = {s.section for s in SETTINGS}
    problems: list[str] = []
    values = defaults()
    for section, table in raw.items():
        if section == "grids":
            values["grids"], grid_problems = _grid_overrides(table)
            problems += grid_problems
            continue
        if section not in sections:
            allowed_sections = ", ".join([f"[{s}]" for s in sorted(sections)] + ["[grids.ALGORITHM]"])
            problems.append(f"unknown section [{section}]{_did_you_mean(section, sections, '[{}]')} "
                            f"(allowed: {allowed_sections})")
            continue
        if not isinstance(table, dict):
            problems.append(f"[{section}] must be a table")
            continue
        for key, value in table.items():
            setting = known.get((section, key))
            if setting is None:
                problems.append(_unknown_key(section, key))
                continue
            try:
                values[section][key] = setting.check(value)
            except ValueError as exc:
                problems.append(f"{section}.{key} = {value!r}: {exc}")
    for section, key in sorted(REQUIRED):
        if values[section][key] is None:
            problems.append(f"{section}.{key} is required")
    search = values["search"]
    for name in ("algorithms", "scalers", "selectors", "searchers", "scorers"):
        if search[name] == []:
            problems.append(f"search.{name} is empty, so there is nothing to train; name at least one")
    if values["memory"]["warning"] >= values["memory"]["critical"]:
        problems.append("memory.warning must be below memory.critical")
    if problems:
        raise BadInputError(
            f"{source} cannot be used: " + "; ".join(problems) + ". "
            "Fix these settings (`milo settings` lists every one with its default) and run again."
        )
    return Config(project=project, values=values)


def _did_you_mean(word: str, candidates, template: str = "{}") -> str:
    close = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f", did you mean {template.format(close[0])}?" if close else ""


def _unknown_key(section: str, key: str) -> str:
    """Name the key and suggest what was meant: the same key in its real section first,
    then a close spelling in this section, then a close spelling anywhere."""
    here = [s.key for s in SETTINGS if s.section == section]
    elsewhere = [f"{s.section}.{s.key}" for s in SETTINGS if s.key == key]
    if not elsewhere and not _did_you_mean(key, here):
        close = difflib.get_close_matches(str(key), [s.key for s in SETTINGS], n=1, cutoff=0.6)
        elsewhere = [f"{s.section}.{s.key}" for s in SETTINGS if close and s.key == close[0]]
    if elsewhere:
        hint = f", did you mean {elsewhere[0]}?"
    else:
        hint = _did_you_mean(key, here, f"{section}.{{}}")
    return f"unknown key {section}.{key}{hint} (allowed in [{section}]: {', '.join(here)})"


def _grid_overrides(table: Any) -> tuple[dict, list[str]]:
    from milo_tui.engine.grids import check_overrides  # imports scikit-learn: only when [grids] is used

    return check_overrides(table, ALGORITHMS)


def load(project_dir: str | Path) -> Config:
    paths = require_project(project_dir)
    try:
        text = paths.config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{paths.config} cannot be read ({exc}). Check its permissions and encoding.") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{paths.config} is not valid TOML ({exc}). Fix the line it names and run again.") from None
    return validate(raw, paths, source=str(paths.config))


def render_toml(values: dict[str, dict[str, Any]], comments: bool = True) -> str:
    """A milo.toml with every setting, each documented. Used by `milo init`."""
    lines = ["# milo project. `milo settings` lists every setting with its default.", ""]
    for section in dict.fromkeys(s.section for s in SETTINGS):
        lines.append(f"[{section}]")
        for s in (s for s in SETTINGS if s.section == section):
            value = values.get(section, {}).get(s.key, s.default)
            if comments:
                lines.append(f"# {s.doc}")
            if value is None:
                lines.append(f"# {s.key} = \"8GB\"" if s.key == "memory_budget" else f"# {s.key} = ")
            else:
                lines.append(f"{s.key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def render_markdown() -> str:
    """docs/CONFIG.md, generated from SETTINGS (a test keeps the file in sync)."""
    lines = [
        "# milo.toml settings",
        "",
        "Generated from `milo_tui/config.py` (`SETTINGS`). Unknown sections, unknown keys and wrong types",
        "are refused, naming the key and what is allowed. Sizes are strings like `\"8GB\"`, `\"512MiB\"`",
        "or a number of bytes.",
        "",
    ]
    for section in dict.fromkeys(s.section for s in SETTINGS):
        lines += [f"## [{section}]", "", "| key | default | meaning |", "| --- | --- | --- |"]
        for s in (s for s in SETTINGS if s.section == section):
            default = "required" if (section, s.key) in REQUIRED else (
                "none" if s.default is None else f"`{_toml_value(s.default)}`")
            lines.append(f"| `{s.key}` | {default} | {s.doc} |")
        lines.append("")
    from milo_tui.engine.grids import grids_markdown

    return "\n".join(lines + grids_markdown())
