"""Drives oras-py (PyPI `oras`) to publish to a package repository of cairn: a Wasm artifact
(the CNCF layout: config application/vnd.wasm.config.v0+json, one application/wasm layer)
under a version tag, then an SBOM that refers to it (a `subject`), which oras-py pushes under
the tag `sbom`.

Usage: publish.py HOST:PORT TOKEN WORKDIR
Prints one JSON object with what it saw; the Rust test checks it.
"""
import json
import os
import sys

import oras.client
import oras.oci
import requests

host, token, work = sys.argv[1], sys.argv[2], sys.argv[3]
client = oras.client.OrasClient(hostname=host, insecure=True)
client.login(username="publisher", password=token, hostname=host)

os.chdir(work)
release = client.push(
    target=f"{host}/example/oras-fac:1.0.0",
    files=["fac.wasm:application/wasm"],
    manifest_config="config.json:application/vnd.wasm.config.v0+json",
)
subject_digest = release.headers.get("docker-content-digest")
# Pulls are anonymous: the manifest as served, byte for byte.
served = requests.get(f"http://{host}/v2/example/oras-fac/manifests/1.0.0", timeout=30)
manifest = served.json()
subject = oras.oci.Subject(
    mediaType="application/vnd.oci.image.manifest.v1+json",
    digest=subject_digest,
    size=len(served.content),
)
sbom = client.push(
    target=f"{host}/example/oras-fac:sbom",
    files=["sbom.json:application/spdx+json"],
    subject=subject,
)
print(
    json.dumps(
        {
            "release_status": release.status_code,
            "release_digest": subject_digest,
            "sbom_status": sbom.status_code,
            "sbom_digest": sbom.headers.get("docker-content-digest"),
            "manifest": manifest,
        }
    )
)
