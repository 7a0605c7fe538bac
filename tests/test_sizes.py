"""Sizes computed from the real architectures, the sets of models each notebook holds at once, the dry-run's
fit check, and the committed measurements covering every registry entry."""
import json

import pytest

from vlsteps import architectures, registry, sizes
from tools import dryrun, notebooks, size_tables


@pytest.mark.parametrize("key", list(registry.CARDS))
def test_weight_bytes_follow_the_parameter_count(key):
    n = sizes.param_count(key)
    assert sizes.weight_bytes(key, "float32") == 4 * n
    assert sizes.weight_bytes(key, "float16") == sizes.weight_bytes(key, "bfloat16") == 2 * n
    int8, nf4 = sizes.weight_bytes(key, "int8"), sizes.weight_bytes(key, "4-bit")
    assert n / 2 < nf4 < int8 < 2 * n   # quantized layers shrink; embeddings, norms and heads stay 16-bit


def test_quantization_leaves_the_output_head_in_16_bit():
    c = sizes.counts("qwen-vl")
    assert c.linear < c.params - 151936 * 2048   # the tied embedding / head is not a quantized Linear
    assert sizes.weight_bytes("qwen-vl", "4-bit") > (c.params - c.linear) * 2


def test_unknown_dtype_is_one_clear_error():
    with pytest.raises(ValueError, match="known: float32"):
        sizes.weight_bytes("vit", "float8")


@pytest.mark.parametrize("nb", [nb.name for nb in notebooks.NOTEBOOKS])
def test_every_model_of_a_notebook_is_in_a_set_it_holds(nb):
    keys = {m.key for m in registry.for_notebook(nb)}
    held = sizes.notebook_sets(nb)
    assert {k for s in held for k in s} == keys
    assert all(set(s) <= keys for s in held)


def test_a_notebook_peak_is_its_largest_set_at_the_notebook_dtypes():
    keys, n_bytes = sizes.notebook_weight_bytes("clip")
    assert keys == ("clip", "sdxl-turbo")
    assert n_bytes == sizes.weight_bytes("clip", "float16") + sizes.weight_bytes("sdxl-turbo", "float16")
    # the optional 4-bit Vicuna counts only when asked for
    assert "instructblip-vicuna" not in sizes.notebook_weight_bytes("instructblip")[0]
    assert sizes.notebook_weight_bytes("instructblip", "float32", optional=True)[0] == ("instructblip-vicuna",)


def test_a_model_that_does_not_fit_is_recorded_never_run(monkeypatch):
    monkeypatch.setattr(dryrun, "_mem_available_gb", lambda: 4.0)
    monkeypatch.setattr(dryrun, "_run_child", lambda *a: pytest.fail("must not start a model that does not fit"))
    result = dryrun.measure("blip2", "float32", "cpu", step_timeout=1)
    assert result["status"] == "does not fit"
    assert result["needs_gb"] > result["available_gb"] == 1.0
    assert result["weights_gb"] == round(sizes.weight_bytes("blip2", "float32") / sizes.GB, 2)


def test_measured_results_cover_every_registry_entry_and_name_the_machine():
    data = json.loads(dryrun.RESULTS.read_text(encoding="utf-8"))
    assert data["machines"], "run `make sizes` and commit vlsteps/architectures/measured.json"
    for name, entry in data["machines"].items():
        assert name == dryrun.machine_name(entry) and entry["date"]
        for key in registry.CARDS:
            for label in dryrun.CPU_DTYPES:
                r = entry["results"].get(key, {}).get(label)
                assert r is not None, f"{name}: {key} {label} missing (not skipped silently: rerun make sizes {key})"
                assert r["status"] == "measured" or r["status"].startswith(
                    ("does not fit", "not measured", "failed")), r
                if r["status"] == "measured":
                    assert r["peak_rss_gb"] >= r["rss_after_build_gb"] > r["rss_baseline_gb"] > 0
                    assert r["step_s"] > 0 and r["workload"] == registry.get(key).workload.text


def test_header_sync_inserts_replaces_and_leaves_model_free_cells_alone():
    legacy = ("# ViT\n\ntext\n\n| model | checkpoint | download | GPU memory |\n|---|---|---|---|\n"
              "| `vit` | x | 1 | 2 |\n\nafter")
    synced = size_tables.sync_header("vit", legacy)
    assert size_tables.header_block(synced) == size_tables.notebook_header("vit")
    assert "GPU memory |" not in synced and synced.startswith("# ViT\n\ntext\n\n") and synced.endswith("after")
    assert size_tables.sync_header("vit", synced) == synced
    appended = size_tables.sync_header("vit", "# ViT\n\nno table here")
    assert appended.startswith("# ViT\n\nno table here\n\n" + size_tables.START)
    assert size_tables.sync_header("no-models-notebook", "# Serve\n\ntext") == "# Serve\n\ntext"


def test_header_shows_the_computed_sizes():
    header = size_tables.notebook_header("blip2")
    assert sizes.format_params(sizes.param_count("blip2")) in header
    assert sizes.format_gb(sizes.weight_bytes("blip2", "float16")) in header and "computed" in header


def test_the_committed_computed_sizes_are_what_the_architectures_give():
    """`download_models.sh --list` reads architectures/computed.json (no torch); stale numbers fail here."""
    assert json.loads(architectures.COMPUTED.read_text()) == size_tables.computed_data(), \
        "vlsteps/architectures/computed.json is stale: run `make readme`"
