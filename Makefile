# prep-node. `make demo` and `make test` install what is missing (apt, npm), build, and run.
SHELL := /bin/bash
.DELETE_ON_ERROR:
NODE_TEST := node --test --test-reporter=spec --test-concurrency=1

.PHONY: all deps build sea image lint typecheck test test-unit test-kernel test-vagrant demo bench clean cloud-init

all: build

deps: node_modules/.installed
	@scripts/install-deps.sh

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: node_modules/.installed
	npx tsc -p tsconfig.json
	$(MAKE) -C bpf

# The agent as one executable for nodes without Node.js (dist/sea/: prep-node, koffi.node and the
# loader beside it; about 30 s). Not part of `build`: the VM test that installs it builds it.
sea: build
	scripts/build-sea.sh

# The agent's OCI image from dist/sea/ on a debootstrap'd Debian base, with umoci (root): an OCI
# archive, dist/image/prep-node-agent-<version>.oci.tar, tagged <version> (deploy/daemonset.yaml's
# localhost/prep-node-agent:<version>). The base is cached: 14 s after the first build (~3 min).
image: sea
	scripts/build-image.sh

typecheck: node_modules/.installed
	npx tsc -p tsconfig.json --noEmit

lint: node_modules/.installed
	npx eslint .
	shellcheck -x test/vagrant/*.sh test/kernels/*.sh scripts/*.sh .ci/run

# Node 20's runner takes files, not globs: list each tier's compiled tests.
tests = $$(find $(addprefix dist/test/,$(1)) -name '*.test.js' | sort)

# Every tier in one run of node's test runner, so its closing summary counts them all.
test: deps build lint
	$(NODE_TEST) $(call tests,unit kernel vagrant)

test-unit: build
	$(NODE_TEST) $(call tests,unit)

test-kernel: deps build
	$(NODE_TEST) $(call tests,kernel)

test-vagrant: deps build
	$(NODE_TEST) $(call tests,vagrant)

# Boot the test VM, check it over SSH as a user would, tear it down (also on failure or Ctrl-C).
demo: deps build
	test/vagrant/demo.sh

# Regenerate cloud-init/<profile>.yaml from the built-in profiles (a unit test fails when one is stale).
cloud-init: build
	node dist/src/cloudinit/gen.js

# The datapath against kube-proxy-style iptables and nftables on this machine (root; about 5 minutes
# on 2 cores): the table on stdout, the report with plots in docs/bench/ (the README shows it); then
# the agent against the fake API server (10k services; a few minutes): docs/bench/agent.{json,txt}.
bench: deps build
	$(MAKE) -C bpf -j1 all
	node dist/src/cli.js bench --report docs/bench
	node dist/src/cli.js bench --agent --report docs/bench

clean:
	rm -rf dist node_modules
	$(MAKE) -C bpf clean
