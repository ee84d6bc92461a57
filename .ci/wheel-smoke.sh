#!/usr/bin/env bash
# The package as a user installs it (a wheel, not the editable checkout): built-in recipes, device
# profiles, calibration lists and the demo subset travel inside it, and `edgecnn demo` runs from it
# in an empty folder without writing into the installed package.
# The venv sees the already-installed dependencies (--system-site-packages); only edgecnn comes
# from the wheel, so this takes the demo's time (~3 min), not a second TensorFlow download.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Built from a copy of the working tree's files (tracked and new, not ignored): an in-tree build/
# folder left by an earlier build would otherwise add files the package no longer has.
src="$work/src"
mkdir -p "$src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do if [ -e "$f" ]; then cp --parents -- "$f" "$src"; fi; done)
python3 -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w "$work/dist" "$src"
python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$work"/dist/edgecnn-*.whl
# the wheel's declared requirements are met by what is installed (names and pinned versions)
"$work/venv/bin/python" -m pip check --disable-pip-version-check
cd "$work"
pkg="$("$work/venv/bin/python" -c 'import edgecnn, os; print(os.path.dirname(edgecnn.__file__))')"
case "$pkg" in "$work/venv/"*) ;; *) echo "wheel smoke: edgecnn imported from $pkg, not the wheel" >&2; exit 1;; esac
# the built-in recipes and calibration lists (top-level folders of the repository) are read from inside
# the installed package through importlib.resources
"$work/venv/bin/python" - "$pkg" <<'PY'
import sys
from importlib import resources
from edgecnn.paths import builtin
for folder, ext in (("recipes", ".yaml"), ("calibration", ".txt")):
    found = builtin(folder)
    assert str(found) == str(resources.files(f"edgecnn.{folder}")), found
    assert str(found).startswith(sys.argv[1] + "/") and len(list(found.glob("*" + ext))) == 3, found
PY
recipes="$("$work/venv/bin/edgecnn" recipes)"
echo "$recipes"
for r in crop_disease products traffic_signs; do
  grep -q "$r" <<<"$recipes" || { echo "wheel smoke: recipe $r missing from the wheel" >&2; exit 1; }
done
before="$(cd "$pkg" && find . -type f -not -name '*.pyc' | sort | sha256sum)"
# The demo as a user without the shared datasets runs it: the embedded subset; only the ImageNet
# weights come from beside the repository when they are there (Keras' own download otherwise).
shared="$work/shared"
mkdir -p "$shared"
[ -d "$repo/../shared/data/weights" ] && ln -s "$repo/../shared/data/weights" "$shared/weights"
set +e
EDGECNN_SHARED_DATA="$shared" "$work/venv/bin/edgecnn" demo > demo.log 2>&1
status=$?
set -e
tail -n 6 demo.log
case "$status" in 0|1|3) ;; *) echo "wheel smoke: demo exited $status" >&2; exit 1;; esac
tail -n 1 demo.log | grep -q '^report:  runs/demo/report.html$' || { echo "wheel smoke: no report line" >&2; exit 1; }
[ -f runs/demo/export/model_int8.tflite ] && [ -f runs/demo/export/calibration.txt ] \
  || { echo "wheel smoke: the demo run is incomplete" >&2; exit 1; }
after="$(cd "$pkg" && find . -type f -not -name '*.pyc' | sort | sha256sum)"
[ "$before" = "$after" ] || { echo "wheel smoke: the demo wrote into the installed package" >&2; exit 1; }
echo "wheel smoke: OK (demo exit $status)"
