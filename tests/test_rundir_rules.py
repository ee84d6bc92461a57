"""A run's provenance rules on a hand-made run (no training): the hashes cover every byte of model.keras
and recipe.json, an artifact or reference of another model is refused naming both hashes, budgets come
from the run's recipe each overridden by the command line, and the run marker says what may be replaced.
The same through train, export and bench: tests/test_verdict.py (slow)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edgecnn import recipe as R
from edgecnn import rundir as RD
from edgecnn.core.contract import Contract, Provenance, save
from edgecnn.core.errors import InputError
from edgecnn.core.io import sha256_file

LABELS = ("a", "b")


def _run(root: Path, model: bytes = b"model bytes " * 1000, recipe: R.Recipe | None = None) -> Path:
    """A run as train leaves it, around model bytes that are never loaded here."""
    run = root / "run"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(model)
    (run / "recipe.json").write_text(RD.recipe_json(recipe or R.load("products")))
    prov = Provenance(sha256_file(run / "model.keras"), sha256_file(run / "recipe.json"))
    save(Contract(input_size=(32, 32), labels=LABELS, provenance=prov), run / "contract.json")
    (run / "metrics.json").write_text(json.dumps({"data": {"root": str(root)}}))
    return run


def test_a_file_hash_reads_every_byte_past_its_read_size(tmp_path):
    f = tmp_path / "big.bin"
    data = bytes(range(256)) * (3 * 4096 + 7)                  # > 3 reads of 1 MiB
    f.write_bytes(data)
    assert sha256_file(f) == hashlib.sha256(data).hexdigest()
    for at in (0, 1 << 20, len(data) - 1):                      # a change in the first, a middle or last read
        changed = bytearray(data)
        changed[at] ^= 1
        f.write_bytes(bytes(changed))
        assert sha256_file(f) != hashlib.sha256(data).hexdigest(), at
    f.write_bytes(b"")
    assert sha256_file(f) == hashlib.sha256(b"").hexdigest()


def test_a_run_loads_when_its_files_are_the_ones_its_contract_names(tmp_path):
    run = RD.load_run(_run(tmp_path))
    assert run.contract.provenance == Provenance(sha256_file(run.model_path), sha256_file(run.dir / "recipe.json"))
    assert run.recipe == R.load("products") and run.data_root == tmp_path
    assert (run.export_dir, run.model_path) == (run.dir / "export", run.dir / "model.keras")


@pytest.mark.parametrize("name,edit", [
    ("model.keras", lambda b: bytes([b[0] ^ 1]) + b[1:]),                  # its first byte
    ("model.keras", lambda b: b[:-1] + bytes([b[-1] ^ 1])),                # its last byte
    ("recipe.json", lambda b: b[:1] + b" " + b[1:]),                       # still the same JSON
    ("recipe.json", lambda b: b + b"\n"),
])
def test_one_byte_changed_in_a_run_file_is_refused(tmp_path, name, edit):
    run = _run(tmp_path)
    (run / name).write_bytes(edit((run / name).read_bytes()))
    with pytest.raises(RD.ProvenanceError) as e:
        RD.load_run(run)
    says = {"model.keras": f"{run / 'model.keras'} is not the model its contract.json was written for (sha256 "
                           f"differs): was it replaced after training? retrain the run",
            "recipe.json": f"{run}/recipe.json is not the recipe the run was trained with (sha256 differs from "
                           f"contract.json's provenance)"}[name]
    assert str(e.value) == says
    assert isinstance(e.value, InputError) and e.value.exit_code == 2


def test_what_a_run_lacks_is_named(tmp_path):
    with pytest.raises(InputError, match=r"^run directory not found: .*nope$"):
        RD.load_run(tmp_path / "nope")
    run = _run(tmp_path)
    (run / "metrics.json").write_text("[1]")
    with pytest.raises(InputError, match=r"metrics.json: expected a JSON object$"):
        RD.load_run(run)
    (run / "metrics.json").unlink()
    assert RD.load_run(run).metrics == {} and RD.load_run(run).data_root is None
    save(Contract(input_size=(32, 32), labels=LABELS), run / "contract.json")
    with pytest.raises(RD.ProvenanceError, match=r"contract.json records no provenance \(trained by an older "
                                                 r"edgecnn\): retrain it"):
        RD.load_run(run)
    (run / "recipe.json").unlink()
    with pytest.raises(InputError, match=r"records no recipe \(recipe.json; trained by an older edgecnn\)"):
        RD.load_run(run)
    (run / "model.keras").unlink()
    with pytest.raises(InputError, match=r"has no model.keras \(train it with 'edgecnn train'\)$"):
        RD.load_run(run)


def _contract(model_sha: str, recipe_sha: str = "r" * 64) -> Contract:
    return Contract(input_size=(32, 32), labels=LABELS, provenance=Provenance(model_sha, recipe_sha))


def test_an_artifact_of_another_model_is_refused_naming_both_hashes(tmp_path):
    run = RD.load_run(_run(tmp_path))
    mine = run.contract.provenance
    art = run.export_dir / "model_int8.tflite"
    RD.check_same_model(art, _contract(mine.model_sha256, mine.recipe_sha256), run)
    other = "f" * 12 + "0" * 52
    with pytest.raises(RD.ProvenanceError) as e:
        RD.check_same_model(art, _contract(other, mine.recipe_sha256), run)
    assert str(e.value) == (f"{art} was made from another model (model sha256 ffffffffffff, the run's is "
                            f"{mine.model_sha256[:12]}): a stale file; re-export with 'edgecnn export {run.dir}' or "
                            f"remove it")
    with pytest.raises(RD.ProvenanceError, match="was made from another model"):     # same model, other recipe
        RD.check_same_model(art, _contract(mine.model_sha256, "0" * 64), run)
    for contract in (None, Contract(input_size=(32, 32), labels=LABELS)):
        with pytest.raises(RD.ProvenanceError) as e:
            RD.check_same_model(art, contract, run)
        assert str(e.value) == (f"{art} records no provenance (exported by an older edgecnn or copied in): "
                                f"re-export the run with 'edgecnn export {run.dir}' or remove the file")


def test_a_reference_of_another_provenance_is_never_compared():
    a, b = _contract("a" * 64), _contract("b" * 64)
    assert RD.check_comparable("m.tflite", a, "f.tflite", _contract("a" * 64), False) is None
    with pytest.raises(RD.ProvenanceError) as e:
        RD.check_comparable("m.tflite", a, "f.tflite", b, True)
    assert str(e.value) == ("m.tflite and the reference f.tflite were made from different models (model sha256 "
                            "aaaaaaaaaaaa vs bbbbbbbbbbbb): the accuracy drop between them means nothing; pass the "
                            "matching --reference")
    with pytest.raises(RD.ProvenanceError, match="different models"):
        RD.check_comparable("m.tflite", a, "f.tflite", _contract("a" * 64, "x" * 64), True)
    bare = Contract(input_size=(32, 32), labels=LABELS)
    for x, y in ((a, bare), (bare, a), (None, a), (a, None), (None, None)):
        with pytest.raises(RD.ProvenanceError) as e:
            RD.check_comparable("m.tflite", x, "f.tflite", y, False)
        assert str(e.value) == "m.tflite or its reference f.tflite records no provenance: re-export the run"
        assert RD.check_comparable("m.tflite", x, "f.tflite", y, True) == (
            "m.tflite vs f.tflite: provenance not recorded on both, so not checked (the reference was chosen with "
            "--reference)")


def test_an_artifact_in_a_runs_export_folder_belongs_to_that_run(tmp_path):
    run = _run(tmp_path)
    (run / "export").mkdir()
    assert RD.run_of_artifact(run / "export" / "m.tflite").dir == run
    assert RD.run_of_artifact(run / "m.tflite") is None
    assert RD.run_of_artifact(tmp_path / "export" / "m.tflite") is None      # no contract.json above it


def test_budgets_come_from_the_runs_recipe_each_overridden_by_the_command_line(tmp_path):
    recipe = R.load("products")
    recipe = recipe.model_copy(update={"budgets": recipe.budgets.model_copy(update={
        "size_mb": 5.0, "max_int8_drop_pp": 2.5, "max_p90_ms": 40.0, "min_agreement_pct": 97.0})})
    run = RD.load_run(_run(tmp_path, recipe=recipe))
    b = RD.Budgets.resolve(run)
    assert (b.size_mb, b.max_drop_pp, b.max_p90_ms, b.min_agreement_pct) == (5.0, 2.5, 40.0, 97.0)
    assert b.source == f"recipe {recipe.name} of {run.dir}"
    for option, field, value in (("size_mb", "size_mb", 1.0), ("max_drop_pp", "max_drop_pp", 0.0),
                                 ("max_p90_ms", "max_p90_ms", 3.0), ("min_agreement_pct", "min_agreement_pct", 99.5)):
        o = RD.Budgets.resolve(run, **{option: value})
        got = (o.size_mb, o.max_drop_pp, o.max_p90_ms, o.min_agreement_pct)
        expected = {"size_mb": 5.0, "max_drop_pp": 2.5, "max_p90_ms": 40.0, "min_agreement_pct": 97.0, field: value}
        assert got == (expected["size_mb"], expected["max_drop_pp"], expected["max_p90_ms"],
                       expected["min_agreement_pct"]), option
    both = RD.Budgets.resolve(run, size_mb=1.0, min_agreement_pct=90.0)
    assert both.source == f"recipe {recipe.name} of {run.dir}, command line (size, agreement)"
    assert RD.Budgets.resolve(run, max_drop_pp=1, max_p90_ms=2).source.endswith(", command line (drop, p90)")
    none = RD.Budgets.resolve(None)
    assert (none.size_mb, none.max_drop_pp, none.max_p90_ms, none.min_agreement_pct, none.source) == (
        RD.DEFAULT_SIZE_MB, None, None, None, "defaults (no run)")
    assert RD.DEFAULT_SIZE_MB == 20.0
    assert RD.Budgets.resolve(None, max_drop_pp=0.5).source == "defaults (no run), command line (drop)"
    assert RD.budgets_for(run.dir) == b
    assert RD.budgets_for(run.dir / "export" / "m.tflite", size_mb=2.0).size_mb == 2.0
    assert RD.budgets_for(tmp_path / "loose.tflite").source == "defaults (no run)"


def test_only_a_marked_run_or_an_older_runs_files_may_be_replaced(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    assert RD.RunMarker.read(d) is None
    for command in RD.RUN_COMMANDS:
        RD.write_marker(d, command)
        assert RD.RunMarker.read(d) == RD.RunMarker(command)
        assert json.loads((d / RD.MARKER_FILE).read_text()) == {"schema": "edgecnn.run/1", "command": command}
    for text in ('{"schema": "edgecnn.run/2", "command": "train"}', '{"schema": "edgecnn.run/1", "command": "x"}',
                 "[]", "not json"):
        (d / RD.MARKER_FILE).write_text(text)
        assert RD.RunMarker.read(d) is None, text
