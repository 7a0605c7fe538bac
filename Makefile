# Two commands do all the set-up: `make run` and `make test`. Both create or refresh .venv from the
# pinned requirements first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Tests never touch real checkpoints: an empty models dir means every model is a stand-in.
TEST_ENV := VLSTEPS_STANDINS=1 VLSTEPS_MODELS_DIR=$(CURDIR)/build/test-models \
            VLSTEPS_OUTPUTS_DIR=$(CURDIR)/build/test-outputs HF_HUB_OFFLINE=1 \
            ANONYMIZED_TELEMETRY=False PYTHONHASHSEED=0

.PHONY: run test venv standins lab readme clean notebooks sync bench lavis-env lavis-smoke browser-deps \
        check-python train-captioner serve sizes index finetune

venv: $(STAMP)

# The checkout goes on the venv's path through a .pth file (tools/checkout_on_path.py says why).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) tools/checkout_on_path.py
	touch $@

run: $(STAMP) lavis-env
	VLSTEPS_STANDINS=1 HF_HUB_OFFLINE=1 ANONYMIZED_TELEMETRY=False $(PY) -m tools.runner --out build

test: $(STAMP) lavis-env browser-deps
	@start=$$(date +%s); \
	$(TEST_ENV) $(PY) -m pytest tests notebooks --ignore=notebooks/blip2_lavis.ipynb --nbval-lax \
	    --nbval-current-env -p no:cacheprovider -q -rs; \
	status=$$?; \
	$(TEST_ENV) tools/lavis/smoke.sh || status=1; \
	echo "make test: total wall time $$(( $$(date +%s) - start )) s"; exit $$status

# The LAVIS route (notebooks/blip2_lavis.ipynb): its own venv (.venv-lavis) and kernel, never in .venv.
# Without a Python 3.11 it is skipped with one line (LAVIS_PYTHON=/path/to/python3.11 turns it on).
lavis-env: $(STAMP)
	tools/lavis/env.sh

# Debian's chromium for the browser test (tests/test_browser.py); says so and goes on where it cannot install.
browser-deps:
	tools/browser_deps.sh

# One Python version end to end in a fresh venv of its own: make check-python V=3.13
check-python:
	tools/check_python.sh $(V)

lavis-smoke: lavis-env
	$(TEST_ENV) tools/lavis/smoke.sh

standins: $(STAMP)
	$(PY) -m vlsteps.standins --dest models/_standins

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

# Indexing throughput: the notebook's batched CLIP code against the one-image-per-call original style.
bench: $(STAMP)
	$(PY) -m tools.bench index

# Embed a photo library into the Chroma index (only what changed since the last run): make index ARGS="~/Pictures"
index: $(STAMP)
	$(PY) -m vlsteps.index build $(ARGS)

# The models as an HTTP vision service on 127.0.0.1:5000 (stand-ins where no checkpoint): ARGS="--port 8080"
serve: $(STAMP)
	VLSTEPS_STANDINS=$${VLSTEPS_STANDINS:-1} HF_HUB_OFFLINE=1 ANONYMIZED_TELEMETRY=False $(PY) -m vlsteps.serve $(ARGS)

# Full-size dry runs with untrained weights (no download): peak RAM and seconds per step per model, merged into
# vlsteps/architectures/measured.json (commit it, then `make readme sync`). KEYS= limits the models.
sizes: $(STAMP)
	nice -n 10 $(PY) -m tools.dryrun $(KEYS)

# Train the captioner of notebooks/captioner.ipynb from the command line; ARGS adds flags (-h lists them).
CAPTIONER_ARGS ?= --n_train 3000 --epochs 4 --batch_size 64 --embed_dim 128 --ff_dim 256 --seq_length 16 --threads 1
train-captioner: $(STAMP)
	$(PY) -m vlsteps.captioner.train --artifact_dir build/outputs/captioner/cli_run --resume $(CAPTIONER_ARGS) $(ARGS)

# The README's generated tables, and vlsteps/architectures/computed.json that `download_models.sh --list` reads.
readme: $(STAMP)
	$(PY) -m tools.readme

clean:
	rm -rf build

# Re-execute notebooks on stand-ins and keep only the outputs of cells tagged nbval-check-output (commit these).
notebooks: $(STAMP) lavis-env
	$(TEST_ENV) $(PY) -m tools.runner --refresh $(NB)

# Rewrite only the generated parts (Colab badge, size table, install cell); nothing is executed.
sync: $(STAMP)
	$(PY) -m tools.runner --sync $(NB)

# Fine-tune a model with a LoRA adapter (notebooks/finetune.ipynb from the shell; resumes): ARGS="--data ~/photos"
finetune: $(STAMP)
	VLSTEPS_STANDINS=$${VLSTEPS_STANDINS:-1} HF_HUB_OFFLINE=1 $(PY) -m vlsteps.finetune $(ARGS)
