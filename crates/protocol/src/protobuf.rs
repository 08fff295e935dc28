//! The protobuf wire format, as far as warg's messages need it.
//!
//! The writer emits what prost emits for warg's proto3 schema: fields in field-number order,
//! proto3 defaults (0, empty strings, empty repeated fields) omitted, fields with explicit
//! presence emitted when set, repeated enums packed. The reader accepts any valid encoding
//! of the same messages (unpacked repeated enums too) and skips unknown fields, as protobuf
//! parsers must; it never panics and never allocates more than its input.

/// Why protobuf bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end inside a field.
    #[error("truncated protobuf at byte {0}")]
    Truncated(usize),
    /// A varint is longer than 10 bytes.
    #[error("malformed varint at byte {0}")]
    BadVarint(usize),
    /// Wire types 3, 4 (groups), 6 and 7 are not used by warg.
    #[error("unsupported wire type {wire_type} at byte {offset}")]
    BadWireType {
        /// The wire type found.
        wire_type: u8,
        /// Where.
        offset: usize,
    },
    /// Field number 0 is invalid.
    #[error("field number 0 at byte {0}")]
    FieldZero(usize),
    /// A string is not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    NotUtf8(u32),
    /// A field has the wrong wire type for its declared type.
    #[error("field {0} has the wrong wire type")]
    WrongWireType(u32),
    /// A varint field is out of its type's range.
    #[error("field {0} is out of range")]
    OutOfRange(u32),
}

/// One field's value on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, messages, packed repeated fields.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The value as a varint.
    pub fn varint(self, field: u32) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(WireError::WrongWireType(field)),
        }
    }

    /// The value as a `uint32`.
    pub fn uint32(self, field: u32) -> Result<u32, WireError> {
        // prost truncates to 32 bits; warg never sends larger values. Refuse them instead.
        u32::try_from(self.varint(field)?).map_err(|_| WireError::OutOfRange(field))
    }

    /// The value as an `int64` (two's complement in a varint).
    pub fn int64(self, field: u32) -> Result<i64, WireError> {
        Ok(self.varint(field)? as i64)
    }

    /// The value as an `int32` (sign-extended to 64 bits on the wire).
    pub fn int32(self, field: u32) -> Result<i32, WireError> {
        let wide = self.varint(field)? as i64;
        i32::try_from(wide).map_err(|_| WireError::OutOfRange(field))
    }

    /// The value as length-delimited bytes.
    pub fn bytes(self, field: u32) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(WireError::WrongWireType(field)),
        }
    }

    /// The value as a UTF-8 string.
    pub fn string(self, field: u32) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| WireError::NotUtf8(field))
    }

    /// A repeated `uint32` or enum field's values: packed (one length-delimited run) or one varint.
    pub fn repeated_u32(self, field: u32, out: &mut Vec<u32>) -> Result<(), WireError> {
        match self {
            Value::Varint(v) => {
                out.push(u32::try_from(v).map_err(|_| WireError::OutOfRange(field))?)
            }
            Value::Bytes(mut packed) => {
                while !packed.is_empty() {
                    let (v, len) = read_varint(packed, 0)?;
                    out.push(u32::try_from(v).map_err(|_| WireError::OutOfRange(field))?);
                    packed = &packed[len..];
                }
            }
            _ => return Err(WireError::WrongWireType(field)),
        }
        Ok(())
    }
}

fn read_varint(bytes: &[u8], offset: usize) -> Result<(u64, usize), WireError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let byte = *bytes.get(i).ok_or(WireError::Truncated(offset + i))?;
        if i == 9 && byte > 1 {
            return Err(WireError::BadVarint(offset));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(WireError::BadVarint(offset))
}

/// Reads the fields of one message in order.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over one message's bytes.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// The next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let start = self.pos;
        let (key, len) = read_varint(&self.bytes[self.pos..], self.pos)?;
        self.pos += len;
        let field = u32::try_from(key >> 3).map_err(|_| WireError::BadVarint(start))?;
        if field == 0 {
            return Err(WireError::FieldZero(start));
        }
        let value = match (key & 7) as u8 {
            0 => {
                let (v, len) = read_varint(&self.bytes[self.pos..], self.pos)?;
                self.pos += len;
                Value::Varint(v)
            }
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let (len, leb) = read_varint(&self.bytes[self.pos..], self.pos)?;
                self.pos += leb;
                let len =
                    usize::try_from(len).map_err(|_| WireError::Truncated(self.bytes.len()))?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            wire_type => {
                return Err(WireError::BadWireType {
                    wire_type,
                    offset: start,
                })
            }
        };
        Ok(Some((field, value)))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(WireError::Truncated(self.bytes.len()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
}

/// Writes one message's fields.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty message.
    pub fn new() -> Self {
        Writer::default()
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    /// A varint field, omitted when zero (proto3 default).
    pub fn varint_field(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.key(field, 0);
            self.varint(value);
        }
    }

    /// An `int32` field, omitted when zero; negative values take 10 bytes.
    pub fn int32_field(&mut self, field: u32, value: i32) {
        self.varint_field(field, i64::from(value) as u64);
    }

    /// An `int64` field, omitted when zero.
    pub fn int64_field(&mut self, field: u32, value: i64) {
        self.varint_field(field, value as u64);
    }

    /// A string or bytes field, omitted when empty (proto3 default).
    pub fn bytes_field(&mut self, field: u32, value: &[u8]) {
        if !value.is_empty() {
            self.present_bytes_field(field, value);
        }
    }

    /// A string or bytes field with explicit presence: emitted even when empty.
    pub fn present_bytes_field(&mut self, field: u32, value: &[u8]) {
        self.key(field, 2);
        self.varint(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    /// A packed repeated `uint32` or enum field, omitted when empty.
    pub fn packed_u32_field(&mut self, field: u32, values: &[u32]) {
        if values.is_empty() {
            return;
        }
        let mut packed = Writer::new();
        for &value in values {
            packed.varint(u64::from(value));
        }
        self.present_bytes_field(field, &packed.finish());
    }

    /// A message field (always emitted, as message fields and oneof members have presence).
    pub fn message_field(&mut self, field: u32, write: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::new();
        write(&mut inner);
        self.present_bytes_field(field, &inner.finish());
    }
}
