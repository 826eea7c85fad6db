# The two README commands: `make demo` and `make test`. Both set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TSR := $(BIN)/tessera

.PHONY: setup demo tour test lint bench docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Four workers on two cores: many tests spend their time waiting (a serve's rate limit, protocol
# timers, child processes), and four overlap those waits: 483 s against 609 s with two, quiet.
test: lint
	$(BIN)/python -m pytest -n 4 -q

lint: $(STAMP)
	$(BIN)/ruff check --quiet .
	$(BIN)/lint-imports --no-cache

# The dashboard over the bundled demo workspace, in a throwaway data home: the demo notebook
# (plugins/sources/demo_data/dashboard.md, 8 cells in rows of 1, 2, 4 and 1) over the demo recording,
# replayed at 10x and looped so panes change live. Without a terminal `tessera dash` runs the
# notebook once and prints JSON lines instead.
DEMO_SPEED ?= 10
demo: $(STAMP)
	@home=$$(mktemp -d) && trap 'rm -rf "$$home"' EXIT && export TESSERA_HOME=$$home && \
	$(TSR) notebook import plugins/sources/demo_data/dashboard.md --name demo && \
	$(TSR) dash demo --speed $(DEMO_SPEED) --loop

# A tour of single commands over the bundled demo cluster (plugins/sources/demo_data/).
tour: $(STAMP)
	@echo "== Which pods are not running, and why?"
	$(TSR) query -s demo -o table "MATCH (p:Pod) WHERE p.status.phase != \"Running\" OR p.status.containerStatuses[*].restartCount > 3 RETURN p.metadata.namespace AS ns, p.metadata.name AS pod, p.status.phase AS phase ORDER BY ns, pod"
	@echo "== Pods per deployment (Deployment -> ReplicaSet -> Pod)"
	$(TSR) query -s demo -o table "MATCH (d:Deployment)->(:ReplicaSet)->(p:Pod) RETURN d.metadata.namespace AS ns, d.metadata.name AS deployment, COUNT{p} AS pods ORDER BY ns, deployment"
	@echo "== CPU and memory requested per namespace"
	$(TSR) query -s demo -o table "MATCH (p:Pod) RETURN p.metadata.namespace AS ns, SUM{p.spec.containers[*].resources.requests.cpu} AS cpu, SUM{p.spec.containers[*].resources.requests.memory} AS memory ORDER BY ns"
	@echo "== Services with no pods behind them"
	$(TSR) query -s demo -o table "MATCH (s:Service) WHERE NOT (s)->(:Pod) RETURN s.metadata.namespace AS ns, s.metadata.name AS service"
	@echo "== What an ingress routes to, as a tree"
	$(TSR) query -s demo -o tree "MATCH (i:Ingress)->(s:Service)->(p:Pod) RETURN i, s, p"
	@echo "== The same query as JSON lines, for pipelines"
	$(TSR) query -s demo -o jsonl --limit 3 "MATCH (d:Deployment) RETURN d.metadata.name AS name, d.spec.replicas AS replicas ORDER BY replicas DESC, name"
	@echo "== The demo recording: the crash-looping ledger pod at 09:00 and at 09:08"
	$(TSR) query -s replay:demo -o table "AT \"2026-11-01T09:00:00Z\" MATCH (p:Pod) WHERE p.metadata.name STARTS WITH \"ledger\" RETURN p.metadata.name AS pod, p.status.containerStatuses[0].restartCount AS restarts"
	$(TSR) query -s replay:demo -o table "AT \"2026-11-01T09:08:00Z\" MATCH (p:Pod) WHERE p.metadata.name STARTS WITH \"ledger\" RETURN p.metadata.name AS pod, p.status.containerStatuses[0].restartCount AS restarts"
	@echo "== Five seconds of the recording played live at 60x (row changes as JSON lines)"
	-timeout 5 $(TSR) query --watch -s replay:demo --speed 60 "MATCH (d:Deployment) WHERE d.metadata.namespace = \"payments\" RETURN d.metadata.name AS deployment, d.spec.replicas AS replicas" | cat
	@echo "== A notebook of two cells side by side, in a throwaway data home; every change is an event"
	@home=$$(mktemp -d) && export TESSERA_HOME=$$home && \
	$(TSR) notebook new ops --title "Ops" && \
	$(TSR) cell add ops -s demo --title Deployments "MATCH (d:Deployment) RETURN d.metadata.namespace AS ns, count(d) AS deployments" && \
	$(TSR) cell add ops -s demo --title Phases "MATCH (p:Pod) RETURN p.status.phase AS phase, count(p) AS pods" && \
	$(TSR) cell merge ops/1 && \
	$(TSR) notebook run ops -o jsonl && \
	$(TSR) notebook export ops - | head -8 && \
	$(TSR) events tail -o table 'notebook.>' && \
	$(TSR) events verify; rm -rf $$home
	@echo "== Knowledge: the demo runbooks ingested, searched, and joined to the cluster in one query"
	@home=$$(mktemp -d) && export TESSERA_HOME=$$home && \
	$(TSR) ingest plugins/sources/demo_data/runbooks && \
	$(TSR) search -o table -n 3 "my container keeps restarting" && \
	$(TSR) query -s knowledge -s demo -o table "MATCH (c:Chunk)-[:MENTIONS]->(d:Deployment)->(:ReplicaSet)->(p:Pod) WHERE p.status.phase != \"Running\" RETURN DISTINCT c.path AS runbook, c.heading AS section, d.metadata.name AS deployment, p.status.phase AS phase"; \
	rm -rf $$home
	@echo "== A job with an alert, run now: the alert fires once, its notify command gets it as JSON; then doctor and a backup"
	@home=$$(mktemp -d) && export TESSERA_HOME=$$home && \
	$(TSR) job add pending --cron "*/5 * * * *" -s demo --query "MATCH (p:Pod) WHERE p.status.phase = \"Pending\" RETURN p.metadata.name AS pod" \
	  --alert "rows > 0" --notify "cat > $$home/alert.json" && \
	$(TSR) job run pending && $(TSR) job run pending && \
	$(TSR) job history -o table pending && \
	$(TSR) events tail -o table 'alert.>' && head -c 300 $$home/alert.json && echo && \
	$(TSR) backup $$home/home.tsb && \
	$(TSR) doctor -o table; rm -rf $$home
	@echo "== A parse error shows where and what was expected (exit 1 is expected here)"
	-$(TSR) query -s demo "MATCH (d:Deployment RETURN d"
	@echo "== Tour done. Try: $(TSR) query -s demo 'MATCH (x)->(d:Deployment) RETURN x.kind, d.metadata.name'"

bench: $(STAMP)
	$(BIN)/python bench/query_join.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/live.py
	$(BIN)/python bench/completion.py
	$(BIN)/python bench/pane.py
	command -v rg >/dev/null || apt-get install -y ripgrep || echo "ripgrep not installed: bench/ingest.py says so in its JSON"
	$(BIN)/python bench/ingest.py

# Regenerate completions/ and man/ (tests/test_docs_current.py fails when they are stale), and the
# demo cluster's JSON snapshot (plugins/sources/demo_objects.json; tests/test_demo.py checks it).
docs: $(STAMP)
	$(BIN)/python -m tessera.cli.docgen --write
	$(BIN)/python tools/demo/snapshot.py

clean:
	rm -rf $(VENV) build dist *.egg-info
