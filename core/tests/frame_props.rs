//! Property tests of the frame codec: round trips at arbitrary split points,
//! and no panic on arbitrary bytes.

use bytes::{BufMut, BytesMut};
use canhazdb_core::frame::{Frame, FrameDecoder, FrameError};
use proptest::prelude::*;

fn arbitrary_frame() -> impl Strategy<Value = Frame> {
    // Payload bytes never contain the 0x01 terminator (true of any JSON text).
    let payload = proptest::collection::vec(any::<u8>().prop_filter("no terminator", |b| *b != 0x01), 0..300);
    (any::<u16>(), 2u8..=255, payload).prop_map(|(id, command, payload)| Frame::new(id, command, payload))
}

proptest! {
    #[test]
    fn frames_round_trip_at_any_split_points(
        frames in proptest::collection::vec(arbitrary_frame(), 0..20),
        splits in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut wire = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut wire);
        }
        let mut cuts: Vec<usize> = splits.iter().map(|index| index.index(wire.len() + 1)).collect();
        cuts.push(0);
        cuts.push(wire.len());
        cuts.sort_unstable();
        let mut decoder = FrameDecoder::default();
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        for pair in cuts.windows(2) {
            buffer.put_slice(&wire[pair[0]..pair[1]]);
            while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
                decoded.push(frame);
            }
        }
        prop_assert_eq!(decoded, frames);
        prop_assert!(buffer.is_empty());
    }

    #[test]
    fn decoder_never_panics_and_never_buffers_past_its_limit(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..32),
        limit in 4usize..128,
    ) {
        let mut decoder = FrameDecoder::new(limit);
        let mut buffer = BytesMut::new();
        'feed: for chunk in chunks {
            buffer.put_slice(&chunk);
            loop {
                match decoder.decode(&mut buffer) {
                    Ok(Some(frame)) => prop_assert!(frame.encoded_len() <= limit),
                    Ok(None) => break,
                    Err(FrameError::TooLarge { .. }) => {
                        prop_assert!(buffer.len() >= limit);
                        break 'feed;
                    }
                    Err(error) => prop_assert!(error.is_recoverable()),
                }
            }
            prop_assert!(buffer.len() < limit + 64);
        }
    }

    #[test]
    fn decode_message_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = FrameDecoder::new(128).decode_message(&bytes);
    }
}
