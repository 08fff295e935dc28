# Two builds of the WASI adapter share nothing byte for byte.
cairn dedup r05-wasi-p1-adapter.command.wasmtime-50.0.1.core.wasm r06-wasi-p1-adapter.reactor.wasmtime-50.0.1.core.wasm
# The fac component and the composition share nothing either; JSON for scripts.
cairn dedup --json b01-fac.component.wasm b03-rs-calc.wac.component.wasm
