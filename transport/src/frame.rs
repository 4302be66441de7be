//! Encoding messages and framing them on byte streams.
//!
//! On a QUIC stream each message is a frame: a little-endian u32 length,
//! then that many bytes of postcard. On WebSocket each binary message is one
//! postcard message, without the length.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame a peer accepts unless configured otherwise: 4 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 4 << 20;

/// Bytes of the length prefix.
const LENGTH_PREFIX: usize = 4;

/// Why bytes from a peer are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame announces more bytes than the receiver accepts; the
    /// receiver refuses it before reading or allocating them.
    #[error("a frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The receiver's limit.
        max: u32,
    },
    /// The bytes do not decode as a message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// The postcard bytes of a message (a WebSocket message's payload).
pub fn encode_message<M: Serialize>(message: &M) -> Vec<u8> {
    postcard::to_allocvec(message).expect("encoding to a Vec cannot fail")
}

/// Decodes one whole message; trailing bytes are an error.
pub fn decode_message<M: DeserializeOwned>(bytes: &[u8]) -> Result<M, FrameError> {
    match postcard::take_from_bytes(bytes) {
        Ok((message, [])) => Ok(message),
        Ok((_, rest)) => Err(FrameError::Malformed(format!(
            "{} bytes after the end of the message",
            rest.len()
        ))),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

/// A length-prefixed frame holding one message (for a QUIC stream).
pub fn encode_frame<M: Serialize>(message: &M) -> Vec<u8> {
    let payload = encode_message(message);
    let len = u32::try_from(payload.len()).expect("messages are smaller than 4 GiB");
    let mut frame = Vec::with_capacity(LENGTH_PREFIX + payload.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// Splits a byte stream into frames as bytes arrive, refusing any frame
/// longer than its limit as soon as the length prefix is seen.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    max_frame: u32,
}

impl FrameDecoder {
    /// A decoder that accepts frames of at most `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        Self {
            buffer: Vec::new(),
            max_frame,
        }
    }

    /// Adds bytes received from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame's payload, `None` until one has fully arrived,
    /// or an error for a frame over the limit (after which the stream
    /// should be closed: its framing cannot be trusted).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(prefix) = self.buffer.get(..LENGTH_PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes"));
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len: len.into(),
                max: self.max_frame,
            });
        }
        let end = LENGTH_PREFIX + len as usize;
        if self.buffer.len() < end {
            return Ok(None);
        }
        let payload = self.buffer[LENGTH_PREFIX..end].to_vec();
        self.buffer.drain(..end);
        Ok(Some(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientMessage, PROTOCOL_VERSION, ServerMessage};

    fn hello() -> ClientMessage {
        ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            database: "chat".into(),
            token: None,
        }
    }

    #[test]
    fn frames_reassemble_from_any_split() {
        let messages = vec![
            hello(),
            ClientMessage::CallReducer {
                request_id: 7,
                reducer: "send_message".into(),
                args: serde_bytes::ByteBuf::from(vec![2, b'h', b'i']),
            },
        ];
        let stream: Vec<u8> = messages.iter().flat_map(encode_frame).collect();
        for chunk in 1..stream.len() {
            let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
            let mut received = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.push(piece);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    received.push(decode_message::<ClientMessage>(&frame).unwrap());
                }
            }
            assert_eq!(received, messages, "chunk size {chunk}");
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_prefix_alone() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&u32::MAX.to_le_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge {
                len: u32::MAX.into(),
                max: 1024
            })
        );
    }

    #[test]
    fn malformed_and_trailing_bytes_are_errors() {
        assert!(matches!(
            decode_message::<ClientMessage>(&[200, 1, 2]),
            Err(FrameError::Malformed(_))
        ));
        let mut bytes = encode_message(&hello());
        bytes.push(0);
        assert!(matches!(
            decode_message::<ClientMessage>(&bytes),
            Err(FrameError::Malformed(m)) if m.contains("1 bytes after")
        ));
    }

    #[test]
    fn the_first_bytes_of_messages_are_as_specified() {
        // The worked examples of PROTOCOL.md.
        assert_eq!(
            encode_message(&hello()),
            [0, 1, 4, b'c', b'h', b'a', b't', 0]
        );
        let error = encode_message(&ServerMessage::Error {
            message: "no".into(),
            fatal: true,
        });
        assert_eq!(error, [7, 2, b'n', b'o', 1]);
    }
}
