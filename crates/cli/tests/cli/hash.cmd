# The plain SHA-256 and the tree digest, for people and for scripts.
cairn hash r03-wabt-fac.core.wasm b01-fac.component.wasm
cairn hash --json r01-wit-parser-e.component.wasm
