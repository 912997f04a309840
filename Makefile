# The two commands (README): `make demo` and `make test`. Both install what is missing first.
.PHONY: demo test bench package setup ui lint

demo: setup
	scripts/demo.sh

test: setup
	scripts/test.sh

bench: setup
	scripts/bench.sh

# The .deb and .rpm (target/dist/bundle/), with the Tauri bundler: scripts/package.sh.
package: setup
	scripts/package.sh

setup:
	scripts/setup.sh

ui:
	cd ui && npm run build

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cd ui && npm run check
