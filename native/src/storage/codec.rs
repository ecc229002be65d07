//! The compact binary form of a stored document, and of the small lists the
//! store keeps beside documents.
//!
//! A document is stored as a *record*: `varint(replica set id) ++ body`,
//! where the body is the document object **without its `id`** (the id is
//! already in the table key, so storing it twice would only cost space).
//! The replica list itself is interned elsewhere ([`super::replicas`]), so
//! bookkeeping never appears inside the document.
//!
//! Why not JSON text: numbers must round-trip *exactly*. Index entries are
//! computed from the in-memory value at write time and recomputed from the
//! stored bytes when the document is later updated or deleted; if a float
//! came back one ulp off, the old index entry would never be found and
//! removed. Here `u64`, negative `i64` and `f64` each keep their own tag and
//! their exact bits. It is also smaller (no quotes, no escapes, varint
//! lengths) and needs no text parsing.
//!
//! Body grammar (every value starts with a tag byte):
//! `NULL | FALSE | TRUE | UINT varint | NEG_INT varint(!n) | FLOAT f64-le |
//!  STRING varint(len) bytes | ARRAY varint(n) value* |
//!  OBJECT varint(n) (varint(len) key-bytes value)*`

use serde_json::{Map, Number, Value};

use super::error::StorageError;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const NEG_INT: u8 = 4;
const FLOAT: u8 = 5;
const STRING: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;

/// How deeply arrays/objects may nest in a stored document. Encoding and
/// decoding recurse, so this bounds stack use; serde_json's own parser stops
/// at 128 levels, so documents that came off the wire never hit it.
pub const MAX_NESTING: usize = 128;

/// The top-level key the store keeps in the table key rather than the body.
pub const ID_FIELD: &str = "id";

/// Encode `document` (minus its top-level `id`) as a record body.
pub fn encode_body(document: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), StorageError> {
    let fields = document.iter().filter(|(key, _)| key.as_str() != ID_FIELD);
    write_varint(out, fields.clone().count() as u64);
    for (key, value) in fields {
        write_str(out, key);
        encode_value(value, 1, out)?;
    }
    Ok(())
}

/// Build a full record from a replica set id and an encoded body.
pub fn record(replica_set: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    write_varint(&mut out, u64::from(replica_set));
    out.extend_from_slice(body);
    out
}

/// The replica set id of a record, without decoding the document.
pub fn record_replica_set(record: &[u8]) -> Result<u32, StorageError> {
    let mut reader = Reader::new(record);
    reader.replica_set()
}

/// Decode a record into its replica set id and the document, `id` restored.
pub fn decode_record(id: &str, record: &[u8]) -> Result<(u32, Value), StorageError> {
    let mut reader = Reader::new(record);
    let replica_set = reader.replica_set()?;
    let mut document = reader.object_fields(0)?;
    document.insert(ID_FIELD.to_owned(), Value::String(id.to_owned()));
    reader.finish()?;
    Ok((replica_set, Value::Object(document)))
}

/// Decode a record body (see [`encode_body`]) into the document's fields,
/// without its `id`.
pub fn decode_body(body: &[u8]) -> Result<Map<String, Value>, StorageError> {
    let mut reader = Reader::new(body);
    let fields = reader.object_fields(0)?;
    reader.finish()?;
    Ok(fields)
}

fn encode_value(value: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), StorageError> {
    if depth > MAX_NESTING {
        return Err(StorageError::InvalidDocument(format!(
            "nested deeper than {MAX_NESTING} levels"
        )));
    }
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(number) => encode_number(number, out),
        Value::String(text) => {
            out.push(STRING);
            write_str(out, text);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            write_varint(out, items.len() as u64);
            for item in items {
                encode_value(item, depth + 1, out)?;
            }
        }
        Value::Object(fields) => {
            out.push(OBJECT);
            write_varint(out, fields.len() as u64);
            for (key, value) in fields {
                write_str(out, key);
                encode_value(value, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

fn encode_number(number: &Number, out: &mut Vec<u8>) {
    if let Some(unsigned) = number.as_u64() {
        out.push(UINT);
        write_varint(out, unsigned);
    } else if let Some(signed) = number.as_i64() {
        // as_u64 failed, so this is negative: !signed is its magnitude - 1.
        out.push(NEG_INT);
        write_varint(out, !signed as u64);
    } else {
        out.push(FLOAT);
        // Every serde_json number converts (no arbitrary_precision here);
        // NaN would be refused by Number::from_f64 on the way back.
        let float = number.as_f64().unwrap_or(f64::NAN);
        out.extend_from_slice(&float.to_le_bytes());
    }
}

pub fn write_str(out: &mut Vec<u8>, text: &str) {
    write_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// LEB128: 7 bits a byte, high bit set on all but the last.
pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A cursor over stored bytes; every read is bounds-checked and reports
/// damage as [`StorageError::Corrupt`] instead of panicking.
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, position: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.position == self.bytes.len()
    }

    /// Fail unless every byte was consumed.
    pub fn finish(&self) -> Result<(), StorageError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes after a stored value"))
        }
    }

    pub fn byte(&mut self) -> Result<u8, StorageError> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or_else(|| corrupt("stored value ends early"))?;
        self.position += 1;
        Ok(byte)
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], StorageError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| corrupt("stored value ends early"))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    pub fn varint(&mut self) -> Result<u64, StorageError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint longer than 64 bits"))
    }

    /// A length that must fit in what is left (so a damaged length cannot
    /// make us allocate gigabytes).
    pub fn length(&mut self) -> Result<usize, StorageError> {
        let len = self.varint()?;
        usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.bytes.len() - self.position)
            .ok_or_else(|| corrupt("stored length exceeds the stored value"))
    }

    pub fn string(&mut self) -> Result<String, StorageError> {
        let len = self.length()?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("stored string is not UTF-8"))
    }

    fn replica_set(&mut self) -> Result<u32, StorageError> {
        u32::try_from(self.varint()?).map_err(|_| corrupt("replica set id out of range"))
    }

    fn object_fields(&mut self, depth: usize) -> Result<Map<String, Value>, StorageError> {
        let count = self.length()?;
        let mut fields = Map::new();
        for _ in 0..count {
            let key = self.string()?;
            let value = self.value(depth + 1)?;
            fields.insert(key, value);
        }
        Ok(fields)
    }

    fn value(&mut self, depth: usize) -> Result<Value, StorageError> {
        if depth > MAX_NESTING {
            return Err(corrupt("stored value nests too deeply"));
        }
        Ok(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UINT => Value::Number(self.varint()?.into()),
            NEG_INT => {
                let magnitude = self.varint()?;
                let signed =
                    i64::try_from(magnitude).map_err(|_| corrupt("negative integer out of range"))?;
                Value::Number((!signed).into())
            }
            FLOAT => {
                let bytes: [u8; 8] = self.take(8)?.try_into().expect("took 8 bytes");
                Number::from_f64(f64::from_le_bytes(bytes))
                    .map(Value::Number)
                    .ok_or_else(|| corrupt("stored float is not finite"))?
            }
            STRING => Value::String(self.string()?),
            ARRAY => {
                let count = self.length()?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => Value::Object(self.object_fields(depth)?),
            tag => return Err(corrupt(&format!("unknown value tag {tag}"))),
        })
    }
}

fn corrupt(message: &str) -> StorageError {
    StorageError::Corrupt(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(document: Value) -> Value {
        let mut body = Vec::new();
        encode_body(document.as_object().unwrap(), &mut body).unwrap();
        let (set, decoded) = decode_record("the-id", &record(300, &body)).unwrap();
        assert_eq!(set, 300);
        decoded
    }

    #[test]
    fn documents_round_trip_exactly_with_the_id_restored() {
        let document = json!({
            "id": "ignored", "n": null, "t": true, "f": false,
            "u": u64::MAX, "i": i64::MIN, "m": -1, "z": 0, "x": 0.1, "big": 1e300, "neg": -2.5,
            "s": "héllo", "e": "", "a": [1, [2, {"b": []}], {}], "o": {"p": {"q": "r"}}
        });
        let decoded = round_trip(document.clone());
        let mut expected = document;
        expected["id"] = json!("the-id");
        assert_eq!(decoded, expected);
        // Same representation, not merely equal value: 1.0 stays a float.
        assert!(round_trip(json!({"f": 1.0}))["f"].is_f64());
        assert!(round_trip(json!({"f": 1}))["f"].is_u64());
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let mut body = Vec::new();
        encode_body(
            json!({"a": [1, "two", {"b": 3.5}]}).as_object().unwrap(),
            &mut body,
        )
        .unwrap();
        let full = record(7, &body);
        for len in 0..full.len() {
            assert!(decode_record("x", &full[..len]).is_err(), "prefix {len}");
        }
        let mut garbage = full.clone();
        garbage.push(0);
        assert!(decode_record("x", &garbage).is_err());
        assert!(decode_record(
            "x",
            &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        )
        .is_err());
        assert!(decode_record("x", &[0, 1, 1, b'k', 99]).is_err());
    }

    #[test]
    fn too_deep_documents_are_refused() {
        let mut value = json!(1);
        for _ in 0..MAX_NESTING + 1 {
            value = json!([value]);
        }
        let mut body = Vec::new();
        let result = encode_body(json!({"deep": value}).as_object().unwrap(), &mut body);
        assert!(matches!(result, Err(StorageError::InvalidDocument(_))));
    }
}
