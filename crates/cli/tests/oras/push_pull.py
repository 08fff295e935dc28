"""Drives oras-py (PyPI `oras`) against a registry: pushes a generic artifact to a scratch
repository, lists its tags, pulls it back, and pulls a released component.

Usage: push_pull.py HOST:PORT CREDENTIAL WORKDIR
Prints one JSON object with what it saw; the Rust test checks it.
"""
import json
import os
import sys

import oras.client

host, credential, work = sys.argv[1], sys.argv[2], sys.argv[3]
client = oras.client.OrasClient(hostname=host, insecure=True)
client.login(username="oras", password=credential, hostname=host)

os.chdir(work)
pushed = client.push(
    target=f"{host}/scratch/oras:v1",
    files=["notes.txt:text/plain", "data.bin:application/vnd.example.data"],
    manifest_config="config.json:application/vnd.example.config.v1+json",
    manifest_annotations={"org.example.purpose": "interop"},
)
tags = client.get_tags(f"{host}/scratch/oras")
manifest = client.get_manifest(f"{host}/scratch/oras:v1")
os.makedirs("pulled", exist_ok=True)
pulled = client.pull(target=f"{host}/scratch/oras:v1", outdir="pulled")
os.makedirs("release", exist_ok=True)
release = client.pull(target=f"{host}/example/fac:1.0.0", outdir="release")
print(
    json.dumps(
        {
            "push_status": pushed.status_code,
            "push_digest": pushed.headers.get("docker-content-digest"),
            "tags": tags,
            "manifest": manifest,
            "pulled": sorted(os.path.relpath(p, work) for p in pulled),
            "release": sorted(os.path.relpath(p, work) for p in release),
        }
    )
)
