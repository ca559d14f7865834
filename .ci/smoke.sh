#!/usr/bin/env bash
# Smoke test of an INSTALLED milo (a wheel in a fresh venv, outside the checkout):
#   .ci/smoke.sh VENV SAMPLE_DIR SOURCE_PACKAGE
# VENV is the virtual environment milo was installed into; SAMPLE_DIR holds train.csv and test.csv
# (the checkout's sample_projects/breast_cancer: data, not code); SOURCE_PACKAGE is the checkout's
# milo_tui folder, whose data files (themes, schema, stylesheets, grids) the install must all hold. It checks what a new user meets
# first: the version, the shipped themes and event schema, the settings table, a tiny project
# trained headless, a model extracted and used by plain scikit-learn, estimate/stats as JSON, and
# shell completion. Any failure exits non-zero with the step that failed.
set -euo pipefail
VENV=$(cd "$1" && pwd)
SAMPLE=$(cd "$2" && pwd)
SOURCE=$(cd "$3" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"                      # nothing of the checkout is importable from here
unset PYTHONPATH
PY="$VENV/bin/python"
MILO="$VENV/bin/milo"
step() { echo "smoke: $*"; }

step "the package is the installed one"
"$PY" - <<'PY'
import milo_tui, sys
assert "site-packages" in milo_tui.__file__, f"milo_tui imported from {milo_tui.__file__}, not the install"
PY

step "version"
"$MILO" --version | grep -E '^milo [0-9]+\.[0-9]+'

step "themes, schema and stylesheets are shipped"
"$PY" - <<'PY'
import json
from importlib.resources import files
from milo_tui.tui.themes import SHIPPED_THEMES_DIR, load_themes

themes, problems = load_themes([SHIPPED_THEMES_DIR])
names = {t.name for t in themes}
assert {"milo-dark", "milo-light", "milo-high-contrast"} <= names, names
assert not problems, problems
schema = json.loads((files("milo_tui") / "schema" / "events.schema.json").read_text())
assert schema.get("$schema") or schema.get("type"), "the event schema is empty"
print("themes:", ", ".join(sorted(names)))
PY

step "every data file of the source package is installed"
"$PY" - "$SOURCE" <<'PY'
import sys
from pathlib import Path
import milo_tui
source, installed = Path(sys.argv[1]), Path(milo_tui.__file__).parent
wanted = {p.relative_to(source) for p in source.rglob("*") if p.is_file()
          and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
missing = sorted(str(p) for p in wanted if not (installed / p).is_file())
assert not missing, f"not in the wheel: {missing}"
print(f"{len(wanted)} data files installed")
PY

step "the TUI starts and renders (stylesheets parse with this Textual)"
"$PY" - "$SAMPLE" <<'PY'
import asyncio, shutil, sys, tempfile
from pathlib import Path
from milo_tui.tui.app import MiloApp

async def main() -> None:
    project = Path(tempfile.mkdtemp()) / "p"
    project.mkdir()
    (project / "events.jsonl").write_text("")
    app = MiloApp(project, "watch")
    for size in ((80, 24), (160, 48)):
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
        app = MiloApp(project, "watch")
    shutil.rmtree(project.parent)
    print("TUI rendered at 80x24 and 160x48")

asyncio.run(main())
PY

step "the settings table that error messages point to"
"$MILO" settings | grep -q "memory_budget"

step "a usage error is 64, a bad project 2, never a traceback"
set +e
"$MILO" models --no-such-option > out.txt 2>&1; usage=$?
"$MILO" models "$WORK/not-a-project" > bad.txt 2>&1; bad=$?
set -e
[ "$usage" -eq 64 ] && [ "$bad" -eq 2 ] && ! grep -q Traceback out.txt bad.txt

step "init --preset quick, checked target, classes named"
"$MILO" init project --train "$SAMPLE/train.csv" --test "$SAMPLE/test.csv" --target target --preset quick | tee init.txt
grep -q "2 classes" init.txt
# Tinier than the quick preset: one algorithm, 3 folds, so the smoke test takes seconds.
"$PY" - <<'PY'
import re
from pathlib import Path
toml = Path("project/milo.toml")
text = toml.read_text()
text = re.sub(r'(?m)^algorithms = .*$', 'algorithms = ["lr", "nb"]', text)
text = re.sub(r'(?m)^cv_folds = .*$', 'cv_folds = 3', text)
toml.write_text(text)
PY

step "estimate --json"
"$MILO" estimate project --json > estimate.json
"$PY" -c "import json; e = json.load(open('estimate.json')); assert e['models'] > 0 and e['fits'], e"

step "a headless run"
"$MILO" run project --headless > run.txt
grep -q "run completed" run.txt

step "models, extract into a new folder, predict with plain scikit-learn (milo not importable)"
KEY=$("$MILO" models project --json --limit 1 | "$PY" -c "import json, sys; print(json.load(sys.stdin)[0]['key'])")
"$MILO" extract project "$KEY" -o exported/ --json > extract.json
"$PY" - "$SAMPLE/test.csv" <<'PY'
import json, sys
sys.modules["milo_tui"] = None  # DESIGN.md 7: an exported model works without milo
import joblib, pandas as pd
path = json.load(open("extract.json"))["path"]
model = joblib.load(path)
test = pd.read_csv(sys.argv[1])
predicted = model.predict(test.drop(columns=["target"]))
assert len(predicted) == len(test), (len(predicted), len(test))
labels = set(map(str, predicted))
assert labels <= set(map(str, test["target"])), f"predicts {labels}, not the user's own labels"
print(f"predicted {len(predicted)} rows with {type(model).__name__}, labels {sorted(labels)}")
PY

step "stats --json"
"$MILO" stats project --json | "$PY" -c "import json, sys; s = json.load(sys.stdin); assert s['models_saved'] > 0, s"

step "shell completion"
"$MILO" completion bash > milo.bash
bash -c "source milo.bash && complete -p milo" > /dev/null
"$MILO" completion zsh | grep -q "#compdef milo"

echo "smoke: all passed"
