//! A record reported `published` survives `kill -9`: concurrent publishers run against the
//! registry, the process is killed mid-stream, and after a restart every acknowledged record
//! is there at its index, `cairn audit` passes, and a consistency proof from the checkpoint a
//! client held before the crash verifies.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_log::TreeHead;
use cairn_protocol::api::{ConsistencyResponse, RecordState};
use cairn_protocol::proofs::decode_log_bundle;
use cairn_protocol::{PackageName, RecordId};
use serde_json::json;
use support::*;

#[test]
fn acknowledged_records_survive_kill_9() {
    let data = temp_dir("durability");
    let server = TestServer::start(&data, &["--namespace", "crash"]);
    let url = server.url.clone();
    let content = fixture("r03-wabt-fac.core.wasm");

    // Acknowledged records: (package, record id, registry index).
    let acked: Arc<Mutex<Vec<(PackageName, RecordId, u64)>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (acked, url, content) = (acked.clone(), url.clone(), content.clone());
        workers.push(std::thread::spawn(move || {
            let client = Client {
                url,
                http: reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap(),
            };
            let mut publisher = Publisher::new(&format!("crash:package-n{worker}"));
            let mut records = vec![publisher.init()];
            let mut version = 0;
            // Publish until the server dies under us.
            loop {
                let record = records.pop().unwrap();
                let request = cairn_protocol::api::PublishRecordRequest {
                    package_name: publisher.name.clone(),
                    record: (&record).into(),
                    content_sources: Default::default(),
                };
                let Ok(response) = client
                    .http
                    .post(format!(
                        "{}/v1/package/{}/record",
                        client.url,
                        publisher.name.log_id()
                    ))
                    .json(&request)
                    .send()
                else {
                    return;
                };
                let Ok(body) = response.json::<serde_json::Value>() else {
                    return;
                };
                if body["state"] == "sourcing"
                    && client
                        .http
                        .post(format!(
                            "{}/v1/package/{}/record/{}/content/{}",
                            client.url,
                            publisher.name.log_id(),
                            record.record_id(),
                            cairn_protocol::Digest::of(&content)
                        ))
                        .body(content.clone())
                        .send()
                        .is_err()
                {
                    return;
                }
                loop {
                    let Ok(response) = client
                        .http
                        .get(format!(
                            "{}/v1/package/{}/record/{}",
                            client.url,
                            publisher.name.log_id(),
                            record.record_id()
                        ))
                        .send()
                    else {
                        return;
                    };
                    let Ok(state) = response.json::<cairn_protocol::api::PackageRecordResponse>()
                    else {
                        return;
                    };
                    match state.state {
                        RecordState::Published { registry_index } => {
                            acked.lock().unwrap().push((
                                publisher.name.clone(),
                                *record.record_id(),
                                registry_index,
                            ));
                            break;
                        }
                        RecordState::Rejected { reason } => panic!("record rejected: {reason}"),
                        _ => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                version += 1;
                records.push(publisher.release(&format!("1.0.{version}"), &content));
            }
        }));
    }
    // A client's view before the crash.
    let mut before = server.client().checkpoint().unwrap();
    while Instant::now() < stop_at {
        std::thread::sleep(Duration::from_millis(50));
        before = server.client().checkpoint().unwrap();
    }
    let log = server.stderr.lock().unwrap().clone();
    server.crash();
    for worker in workers {
        worker.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "too few records were published before the crash ({}):\n{log}",
        acked.len()
    );
    eprintln!(
        "{} records acknowledged before kill -9; pre-crash checkpoint length {}",
        acked.len(),
        before.contents.log_length
    );

    let server = TestServer::start(&data, &[]);
    let client = server.client();
    for (name, record_id, index) in &acked {
        match client.record_state(name, record_id).state {
            RecordState::Published { registry_index } => assert_eq!(registry_index, *index),
            other => panic!("acknowledged record {record_id} is {other:?} after the crash"),
        }
    }
    let after = client.checkpoint().unwrap();
    assert!(after.contents.log_length >= before.contents.log_length);
    if after.contents.log_length > before.contents.log_length {
        let proof: ConsistencyResponse = client
            .post_json(
                "v1/proof/consistency",
                &json!({"from": before.contents.log_length, "to": after.contents.log_length}),
            )
            .json()
            .unwrap();
        let old = TreeHead {
            length: before.contents.log_length,
            root: before.contents.log_root.to_hash(),
        };
        let new = TreeHead {
            length: after.contents.log_length,
            root: after.contents.log_root.to_hash(),
        };
        decode_log_bundle(&proof.proof)
            .unwrap()
            .verify_consistency(&old, &new)
            .unwrap();
    } else {
        assert_eq!(after.contents.log_root, before.contents.log_root);
    }
    assert!(server.stop().success());
    let (ok, stdout, stderr) = cairn(&["audit", "--data", data.to_str().unwrap()]);
    assert!(ok, "audit failed after the crash: {stderr}");
    eprintln!("{}", stdout.trim());
}
