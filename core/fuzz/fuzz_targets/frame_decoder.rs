//! Feeds arbitrary bytes, in arbitrary chunks, to the stream decoder and the
//! message decoder; neither may panic, and every decoded frame re-encodes to
//! the bytes it came from.
#![no_main]

use bytes::{BufMut, BytesMut};
use canhazdb_core::frame::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_size, rest)) = data.split_first() else { return };
    let chunk_size = usize::from(chunk_size).max(1);
    let mut decoder = FrameDecoder::new(512);
    let mut buffer = BytesMut::new();
    for chunk in rest.chunks(chunk_size) {
        buffer.put_slice(chunk);
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    let bytes = frame.to_bytes();
                    assert!(bytes.len() <= 512);
                    assert_eq!(FrameDecoder::new(512).decode_message(&bytes), Ok(frame));
                }
                Ok(None) => break,
                Err(error) if error.is_recoverable() => continue,
                Err(_) => return,
            }
        }
    }
    let _ = decoder.decode_message(rest);
});
