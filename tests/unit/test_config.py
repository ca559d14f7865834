from pathlib import Path

import pytest

from milo_tui import config as cfg
from milo_tui.errors import BadInputError
from milo_tui.project import ProjectPaths

ROOT = Path(__file__).resolve().parents[2]


def _validate(raw):
    return cfg.validate(raw, ProjectPaths.of("/tmp"))


BASE = {"data": {"train": "a.csv", "test": "b.csv", "target": "y"}}


def test_defaults_fill_every_setting():
    config = _validate(BASE)
    assert config.search["cv_folds"] == 10 and config.search["top_k"] == 2
    assert config.memory["warning"] == 0.75 and config.memory["critical"] == 0.85
    assert config.memory["memory_budget"] is None
    assert config.search["algorithms"] == list(cfg.ALGORITHMS)


@pytest.mark.parametrize("raw, phrase", [
    ({"search": {"colour": 1}}, "unknown key search.colour"),
    ({"extra": {}}, "unknown section [extra]"),
    ({"search": {"cv_folds": "ten"}}, "search.cv_folds = 'ten': must be a whole number"),
    ({"search": {"cv_folds": 1}}, "must be between 2 and 50"),
    ({"search": {"algorithms": ["xgboost"]}}, "'xgboost' not known"),
    ({"search": {"scorers": []}}, "search.scorers is empty"),
    ({"search": {"reoptimize_ovr": "yes"}}, "must be true or false"),
    ({"memory": {"memory_budget": "lots"}}, "not a size"),
    ({"memory": {"warning": 0.9, "critical": 0.8}}, "memory.warning must be below memory.critical"),
    ({"memory": {"ovr_policy": "pray"}}, "must be one of 'skip', 'stop'"),
])
def test_bad_settings_are_refused_by_name(raw, phrase):
    merged = {**BASE, **raw}
    with pytest.raises(BadInputError) as info:
        _validate(merged)
    assert phrase in str(info.value)


def test_required_keys():
    with pytest.raises(BadInputError, match="data.target is required"):
        _validate({"data": {"train": "a", "test": "b"}})


@pytest.mark.parametrize("text, expected", [
    ("8GB", 8_000_000_000), ("512MiB", 512 * 1024**2), ("1.5G", 1_500_000_000), (1024, 1024), ("100", 100),
])
def test_parse_size(text, expected):
    assert cfg.parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "-1GB", "eight", "8 parsecs", 0, True])
def test_parse_size_refuses(bad):
    with pytest.raises(ValueError):
        cfg.parse_size(bad)


def test_rendered_defaults_load_back(tmp_path):
    values = cfg.defaults()
    values["data"].update(train="t.csv", test="u.csv", target="y")
    values["memory"]["memory_budget"] = 8_000_000_000
    (tmp_path / "milo.toml").write_text(cfg.render_toml(values))
    config = cfg.load(tmp_path)
    assert config.as_dict() == values


def test_config_doc_is_in_sync_with_settings():
    assert (ROOT / "docs" / "CONFIG.md").read_text() == cfg.render_markdown()


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(BadInputError, match="no milo.toml"):
        cfg.load(tmp_path)
    (tmp_path / "milo.toml").write_text("[data\n")
    with pytest.raises(BadInputError, match="not valid TOML"):
        cfg.load(tmp_path)


@pytest.mark.parametrize("sample", ["breast_cancer", "wine", "milo_ml_full"])
def test_sample_configs_load(sample):
    config = cfg.load(ROOT / "sample_projects" / sample)
    assert config.train_path.exists() and config.test_path.exists()


def test_full_sample_reproduces_milo_ml_space():
    from milo_tui.engine.grids import SearchSpace
    from milo_tui.engine.space import enumerate_pipelines, models_per_pipeline

    config = cfg.load(ROOT / "sample_projects" / "milo_ml_full")
    pipelines = enumerate_pipelines(config)
    assert len(pipelines) == 7 * 3 * 9 * 3 == 567
    s, space = config.search, SearchSpace.from_config(config)
    # naive Bayes searches one (empty) parameter set, so it refits one model per scorer
    models = sum(models_per_pipeline(p, s["scorers"], s["top_k"], space, 170) for p in pipelines)
    assert models == 81 * 3 + 486 * 6 == 3159
