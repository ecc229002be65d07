//! The byte framing of spec section 1.
//!
//! ```text
//! +--------+--------+---------+----------------------+------+
//! | id lo  | id hi  | command | payload (0..n bytes) | 0x01 |
//! +--------+--------+---------+----------------------+------+
//! ```
//!
//! JSON text never contains a raw 0x01 byte, so 0x01 ends a frame. The id
//! bytes may be 0x01, so the terminator is searched from offset 2.
//! [`FrameDecoder`] is incremental: feed it bytes as they arrive, split
//! anywhere, several frames per read, and it yields whole frames. It
//! remembers how far it already scanned so a slowly arriving large frame costs
//! O(n), not O(n²), and it refuses to buffer more than its maximum frame size.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The byte that ends every frame.
pub const TERMINATOR: u8 = 0x01;
/// Bytes of a frame besides its payload: two id bytes, the command, the terminator.
pub const FRAME_OVERHEAD: usize = 4;
/// The server's default maximum frame size (16 MiB, `--max-frame-bytes`).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// One protocol frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Correlation id (little-endian on the wire).
    pub id: u16,
    /// Command or status byte; see [`crate::protocol::Code`].
    pub command: u8,
    /// UTF-8 JSON object, or empty.
    pub payload: Bytes,
}

impl Frame {
    pub fn new(id: u16, command: u8, payload: impl Into<Bytes>) -> Self {
        Frame {
            id,
            command,
            payload: payload.into(),
        }
    }

    /// A frame without payload.
    pub fn empty(id: u16, command: u8) -> Self {
        Frame::new(id, command, Bytes::new())
    }

    /// Size of the frame on the wire.
    pub fn encoded_len(&self) -> usize {
        self.payload.len() + FRAME_OVERHEAD
    }

    /// Appends the frame's wire bytes to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_u16_le(self.id);
        dst.put_u8(self.command);
        dst.put_slice(&self.payload);
        dst.put_u8(TERMINATOR);
    }

    /// The frame's wire bytes (one WebSocket message).
    pub fn to_bytes(&self) -> Bytes {
        let mut buffer = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buffer);
        buffer.freeze()
    }
}

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More than `limit` bytes arrived without a terminator. The stream
    /// cannot be resynchronised: the connection must be closed.
    #[error("frame exceeds the maximum of {limit} bytes")]
    TooLarge { limit: usize },
    /// A terminator arrived right after the two id bytes, so the frame has no
    /// command byte. The bytes were consumed; the stream can go on.
    #[error("frame with id {id} has no command byte")]
    MissingCommand { id: u16 },
    /// The payload contains a 0x01 byte: impossible for JSON. Only returned
    /// by [`FrameDecoder::decode_message`] (one frame per message).
    #[error("message holds more than one frame or bytes after its terminator")]
    TrailingBytes,
    /// A WebSocket message that ended without the 0x01 terminator.
    #[error("message does not end with the 0x01 terminator")]
    Unterminated,
}

impl FrameError {
    /// Whether the connection can keep going after this error.
    pub fn is_recoverable(&self) -> bool {
        !matches!(self, FrameError::TooLarge { .. })
    }
}

/// Incremental frame decoder for a byte stream.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    /// How many bytes at the front of the buffer are known to hold no terminator.
    scanned: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame_bytes` (including
    /// id, command and terminator). Values below the 4-byte minimum are raised to it.
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            max_frame_bytes: max_frame_bytes.max(FRAME_OVERHEAD),
            scanned: 0,
        }
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Takes the next whole frame off the front of `buffer`, if there is one.
    ///
    /// `Ok(None)` means more bytes are needed. The caller must pass the same
    /// buffer (with new bytes appended) on the next call.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let search_from = self.scanned.max(2);
        let search_end = buffer.len().min(self.max_frame_bytes);
        let found = if search_from < search_end {
            memchr::memchr(TERMINATOR, &buffer[search_from..search_end]).map(|at| search_from + at)
        } else {
            None
        };
        let Some(terminator_at) = found else {
            if buffer.len() >= self.max_frame_bytes {
                return Err(FrameError::TooLarge {
                    limit: self.max_frame_bytes,
                });
            }
            self.scanned = buffer.len();
            return Ok(None);
        };
        self.scanned = 0;
        let mut frame_bytes = buffer.split_to(terminator_at + 1);
        let id = frame_bytes.get_u16_le();
        if frame_bytes.len() == 1 {
            return Err(FrameError::MissingCommand { id });
        }
        let command = frame_bytes.get_u8();
        frame_bytes.truncate(frame_bytes.len() - 1);
        Ok(Some(Frame {
            id,
            command,
            payload: frame_bytes.freeze(),
        }))
    }

    /// Decodes a message that must hold exactly one frame (a WebSocket
    /// binary message).
    pub fn decode_message(&self, message: &[u8]) -> Result<Frame, FrameError> {
        if message.len() > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                limit: self.max_frame_bytes,
            });
        }
        if message.len() < 3 || message[message.len() - 1] != TERMINATOR {
            return Err(FrameError::Unterminated);
        }
        let id = u16::from_le_bytes([message[0], message[1]]);
        if message.len() == 3 {
            return Err(FrameError::MissingCommand { id });
        }
        let payload = &message[3..message.len() - 1];
        if memchr::memchr(TERMINATOR, payload).is_some() {
            return Err(FrameError::TrailingBytes);
        }
        Ok(Frame {
            id,
            command: message[2],
            payload: Bytes::copy_from_slice(payload),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_all(frames: &[Frame]) -> BytesMut {
        let mut buffer = BytesMut::new();
        for frame in frames {
            frame.encode(&mut buffer);
        }
        buffer
    }

    fn decode_all(decoder: &mut FrameDecoder, buffer: &mut BytesMut) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(buffer).unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn encodes_the_spec_layout() {
        let frame = Frame::new(0x0103, 33, &b"{\"10\":\"tests\"}"[..]);
        let bytes = frame.to_bytes();
        assert_eq!(&bytes[..3], &[0x03, 0x01, 33]);
        assert_eq!(&bytes[3..bytes.len() - 1], b"{\"10\":\"tests\"}");
        assert_eq!(bytes[bytes.len() - 1], TERMINATOR);
        assert_eq!(bytes.len(), frame.encoded_len());
    }

    #[test]
    fn decodes_several_frames_from_one_read() {
        let frames = vec![
            Frame::new(3, 32, &b"{}"[..]),
            Frame::empty(2, 160),
            Frame::new(0x0101, 121, &b"{\"100\":\"x\"}"[..]),
        ];
        let mut buffer = encode_all(&frames);
        let mut decoder = FrameDecoder::default();
        assert_eq!(decode_all(&mut decoder, &mut buffer), frames);
        assert!(buffer.is_empty());
    }

    #[test]
    fn id_bytes_equal_to_the_terminator_are_not_mistaken_for_it() {
        let frame = Frame::new(0x0101, 120, &b"{}"[..]);
        let mut buffer = encode_all(std::slice::from_ref(&frame));
        assert_eq!(FrameDecoder::default().decode(&mut buffer), Ok(Some(frame)));
    }

    #[test]
    fn decodes_byte_by_byte() {
        let frames = vec![Frame::new(7, 31, &b"{\"10\":\"a\"}"[..]), Frame::empty(8, 30)];
        let wire = encode_all(&frames);
        let mut decoder = FrameDecoder::default();
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in wire.iter() {
            buffer.put_u8(*byte);
            decoded.extend(decode_all(&mut decoder, &mut buffer));
        }
        assert_eq!(decoded, frames);
    }

    #[test]
    fn refuses_to_buffer_past_the_maximum() {
        let mut decoder = FrameDecoder::new(16);
        let mut buffer = BytesMut::from(&[b'x'; 15][..]);
        assert_eq!(decoder.decode(&mut buffer), Ok(None));
        buffer.put_u8(b'x');
        let error = decoder.decode(&mut buffer).unwrap_err();
        assert_eq!(error, FrameError::TooLarge { limit: 16 });
        assert!(!error.is_recoverable());
    }

    #[test]
    fn a_frame_of_exactly_the_maximum_is_accepted() {
        let frame = Frame::new(3, 33, vec![b'a'; 12]);
        let mut buffer = encode_all(std::slice::from_ref(&frame));
        assert_eq!(FrameDecoder::new(16).decode(&mut buffer), Ok(Some(frame)));
    }

    #[test]
    fn a_terminator_beyond_the_maximum_is_too_large() {
        let frame = Frame::new(3, 33, vec![b'a'; 13]);
        let mut buffer = encode_all(&[frame]);
        assert!(matches!(
            FrameDecoder::new(16).decode(&mut buffer),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn missing_command_is_recoverable() {
        let mut buffer = BytesMut::from(&[5, 0, TERMINATOR, 5, 0, 30, TERMINATOR][..]);
        let mut decoder = FrameDecoder::default();
        let error = decoder.decode(&mut buffer).unwrap_err();
        assert_eq!(error, FrameError::MissingCommand { id: 5 });
        assert!(error.is_recoverable());
        assert_eq!(decoder.decode(&mut buffer), Ok(Some(Frame::empty(5, 30))));
    }

    #[test]
    fn decode_message_takes_exactly_one_frame() {
        let decoder = FrameDecoder::new(64);
        let frame = Frame::new(9, 32, &b"{}"[..]);
        assert_eq!(decoder.decode_message(&frame.to_bytes()), Ok(frame));
        assert_eq!(
            decoder.decode_message(b"\x09\x00\x20{}"),
            Err(FrameError::Unterminated)
        );
        assert_eq!(
            decoder.decode_message(b"\x09\x00\x20{\x01}\x01"),
            Err(FrameError::TrailingBytes)
        );
        assert_eq!(
            decoder.decode_message(b"\x09\x00\x01"),
            Err(FrameError::MissingCommand { id: 9 })
        );
        assert_eq!(
            decoder.decode_message(&[b'a'; 65]),
            Err(FrameError::TooLarge { limit: 64 })
        );
        assert_eq!(decoder.decode_message(b""), Err(FrameError::Unterminated));
    }
}
