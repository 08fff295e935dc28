//! warg's "prefix encoding", used for log leaves, map leaves, checkpoints and package ids:
//! unsigned integers as LEB128, strings as LEB128 length then UTF-8 bytes, tags raw.

/// Appends `value` as unsigned LEB128.
pub fn write_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `text` as its LEB128 byte length followed by its bytes.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    write_uleb(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// The value of a registry-log leaf: `"WARG-LOG-LEAF-V0" ‖ str(log id) ‖ str(record id)`.
pub fn log_leaf(log_id: &crate::LogId, record_id: &crate::RecordId) -> Vec<u8> {
    let mut out = b"WARG-LOG-LEAF-V0".to_vec();
    write_str(&mut out, &log_id.to_string());
    write_str(&mut out, &record_id.to_string());
    out
}

/// The value of a map leaf: `"WARG-MAP-LEAF-V0" ‖ str(record id)`.
pub fn map_leaf(record_id: &crate::RecordId) -> Vec<u8> {
    let mut out = b"WARG-MAP-LEAF-V0".to_vec();
    write_str(&mut out, &record_id.to_string());
    out
}
