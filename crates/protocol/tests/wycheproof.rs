//! Every Wycheproof ECDSA P-256/SHA-256 vector (DER signatures) is accepted or rejected as
//! it says, by the verifier cairn uses.

use cairn_protocol::{PublicKey, Signature};
use serde_json::Value;

#[test]
fn wycheproof_ecdsa_p256_sha256_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/wycheproof/ecdsa_secp256r1_sha256_test.json"
    );
    let suite: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut valid, mut invalid) = (0, 0);
    for group in suite["testGroups"].as_array().unwrap() {
        let key_bytes = hex::decode(group["publicKey"]["uncompressed"].as_str().unwrap()).unwrap();
        let key =
            PublicKey::from_sec1_bytes(&key_bytes).expect("every group's key is a valid point");
        for test in group["tests"].as_array().unwrap() {
            let id = test["tcId"].as_u64().unwrap();
            let message = hex::decode(test["msg"].as_str().unwrap()).unwrap();
            let der = hex::decode(test["sig"].as_str().unwrap()).unwrap();
            let accepted = Signature::from_der(&der)
                .map(|signature| key.verify_message(&message, &signature).is_ok())
                .unwrap_or(false);
            match test["result"].as_str().unwrap() {
                "valid" => {
                    assert!(accepted, "vector {id} ({}) must verify", test["comment"]);
                    valid += 1;
                }
                "invalid" => {
                    assert!(
                        !accepted,
                        "vector {id} ({}) must not verify",
                        test["comment"]
                    );
                    invalid += 1;
                }
                other => panic!("vector {id}: unexpected result {other}"),
            }
        }
    }
    assert_eq!((valid, invalid), (174, 310));
}
