# Errors a person can act on, against a running registry (`{registry}`, hosting `example`).
# `NAME$ cairn ...` runs as that user (own keys and trusted state); plain lines run as alice.
cairn key new
bob$ cairn key new
cairn publish init example:calc
# A namespace the registry does not host: said before anything is signed, with the hosted ones.
cairn publish init nope:calc
# The same, for a script.
cairn publish init nope:calc --json
# A key without the permission: names the grant to run.
bob$ cairn publish release example:calc --version 1.0.0 {fixtures}/b01-fac.component.wasm
# A file that is not WebAssembly: refused before anything is signed or sent.
write {tmp}/notes.wasm these are not wasm bytes
cairn publish release example:calc --version 1.0.0 {tmp}/notes.wasm
cairn publish release example:calc --version 1.0.0 {fixtures}/b01-fac.component.wasm
# A release of a package that does not exist.
cairn publish release example:other --version 1.0.0 {fixtures}/b01-fac.component.wasm
# A yanked version: it exists, and `--allow-yanked` takes it.
cairn publish yank example:calc --version 1.0.0
bob$ cairn fetch example:calc@1 -o {tmp}/calc.wasm
bob$ cairn fetch example:calc@1 -o {tmp}/calc.wasm --allow-yanked
bob$ cairn fetch example:calc@2 -o {tmp}/calc.wasm
bob$ cairn fetch example:missing -o {tmp}/calc.wasm
# A key given as a public key, a key id or the name of a local key, wherever one is wanted.
cairn publish grant example:calc {key:bob} --permission release
cairn publish revoke example:calc {key:bob} --permission release
cairn publish grant example:calc {key-id:bob}
cairn key new --name ci
cairn publish grant example:calc ci --permission yank
cairn publish revoke example:calc ci --permission yank
cairn publish revoke example:calc somebody
# A registry that is down, and a web server that is not a registry.
cairn update --registry {down}
cairn update --registry {web}
cairn update --registry {web} --json
cairn update --registry ftp://example.com
