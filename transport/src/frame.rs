//! Encoding messages and framing them on byte streams.
//!
//! On a QUIC stream each message is a frame: a little-endian u32 length,
//! then that many bytes of postcard. On WebSocket each binary message is one
//! postcard message, without the length.

use std::borrow::Cow;

use serde::Serialize;

use crate::messages::{Message, ServerMessage};

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
    // Most messages are small: one allocation instead of a few growing ones.
    let buffer = Vec::with_capacity(ENCODE_CAPACITY);
    postcard::to_extend(message, buffer).expect("encoding to a Vec cannot fail")
}

/// The buffer a message is first encoded into, in bytes; larger messages grow it.
const ENCODE_CAPACITY: usize = 256;

/// Decodes one whole message; trailing bytes are an error. The error names
/// the message type (when its index was read), the byte offset where
/// decoding stopped and what was expected there.
pub fn decode_message<M: Message>(bytes: &[u8]) -> Result<M, FrameError> {
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let decoded = M::deserialize(&mut deserializer);
    let rest = deserializer.finalize().map_or(0, |rest| rest.len());
    match decoded {
        Ok(message) if rest == 0 => Ok(message),
        Ok(_) => Err(FrameError::Malformed(format!(
            "{rest} bytes after the end of the message"
        ))),
        Err(e) => Err(FrameError::Malformed(describe::<M>(
            bytes,
            bytes.len() - rest,
            &e,
        ))),
    }
}

/// A readable account of why `bytes` are not an `M`, decoding having
/// stopped at byte `offset` with `error`.
fn describe<M: Message>(bytes: &[u8], offset: usize, error: &postcard::Error) -> String {
    use postcard::Error as E;
    if bytes.is_empty() {
        return format!("an empty {}: expected at least its type byte", M::KIND);
    }
    let Some(index) = leading_varint(bytes) else {
        return format!(
            "{}: its type (the leading varint) is not a valid u32 varint",
            M::KIND
        );
    };
    let Some(variant) = usize::try_from(index)
        .ok()
        .and_then(|index| M::VARIANTS.get(index))
    else {
        return format!(
            "unknown {} type {index} (expected 0 to {})",
            M::KIND,
            M::VARIANTS.len() - 1
        );
    };
    let expected = match error {
        E::DeserializeUnexpectedEnd => "the message ended early: expected more bytes",
        E::DeserializeBadVarint => "a varint too long or too large for its type",
        E::DeserializeBadBool => "a bool must be the byte 0 or 1",
        E::DeserializeBadChar => "an invalid char",
        E::DeserializeBadUtf8 => "a string that is not valid UTF-8",
        E::DeserializeBadOption => "an option tag must be the byte 0 (None) or 1 (Some)",
        E::DeserializeBadEnum | E::SerdeDeCustom => "an enum variant index out of range",
        _ => "bytes that do not encode the expected value",
    };
    format!(
        "{}::{variant}: {expected} (at byte {offset} of {})",
        M::KIND,
        bytes.len()
    )
}

/// The u32 varint a message starts with (its type), as postcard reads
/// it; `None` if the bytes end first or it does not fit a u32.
pub fn leading_varint(bytes: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for (position, &byte) in bytes.iter().take(5).enumerate() {
        let bits = u32::from(byte & 0x7f);
        if position == 4 && bits > 0x0f {
            return None;
        }
        value |= bits << (7 * position);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
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

/// Bytes a [`ServerMessage::Fragment`] adds around its piece: the type
/// byte, the `last` flag and at most 5 bytes of varint length.
const FRAGMENT_OVERHEAD: usize = 7;

/// The smallest frame limit a peer may use: room for a fragment's header
/// and some of its bytes.
pub const MIN_MAX_FRAME: u32 = 64;

/// The largest whole server message (before splitting into fragments) a
/// server sends unless configured otherwise: 64 MiB. It is advertised in
/// [`ServerMessage::Welcome`].
pub const DEFAULT_MAX_MESSAGE: u32 = 64 << 20;

/// The encoded server message `message`, as messages of at most
/// `max_frame` bytes each: the message itself when it fits, otherwise
/// [`ServerMessage::Fragment`]s carrying consecutive pieces of its bytes,
/// the final one marked `last`. `max_frame` is raised to [`MIN_MAX_FRAME`].
pub fn split_message(message: &[u8], max_frame: u32) -> impl Iterator<Item = Cow<'_, [u8]>> {
    let max_frame = max_frame.max(MIN_MAX_FRAME) as usize;
    let whole = (message.len() <= max_frame).then_some(Cow::Borrowed(message));
    let pieces = (message.len() > max_frame).then(|| {
        let chunks = message.chunks(max_frame - FRAGMENT_OVERHEAD);
        let count = chunks.len();
        chunks.enumerate().map(move |(index, piece)| {
            Cow::Owned(encode_message(&ServerMessage::Fragment {
                last: index + 1 == count,
                bytes: serde_bytes::ByteBuf::from(piece),
            }))
        })
    });
    whole.into_iter().chain(pieces.into_iter().flatten())
}

/// Puts messages split by [`split_message`] back together: feed it every
/// [`ServerMessage`] as it is decoded, and it returns each whole message.
#[derive(Debug)]
pub struct Reassembler {
    pending: Vec<u8>,
    max_message: u32,
}

impl Reassembler {
    /// A reassembler refusing messages of more than `max_message` bytes
    /// (the server advertises its limit in `Welcome`).
    pub fn new(max_message: u32) -> Self {
        Self {
            pending: Vec::new(),
            max_message,
        }
    }

    /// Takes the next decoded message: `Some` whole message (the message
    /// itself unless it is a fragment), `None` while a split message is
    /// incomplete, or an error for a split message over the limit or out
    /// of order (after which the connection cannot be trusted).
    pub fn accept(&mut self, message: ServerMessage) -> Result<Option<ServerMessage>, FrameError> {
        let ServerMessage::Fragment { last, bytes } = message else {
            if !self.pending.is_empty() {
                return Err(FrameError::Malformed(
                    "a message arrived between the fragments of another".into(),
                ));
            }
            return Ok(Some(message));
        };
        let len = self.pending.len() as u64 + bytes.len() as u64;
        if len > u64::from(self.max_message) {
            self.pending = Vec::new();
            return Err(FrameError::TooLarge {
                len,
                max: self.max_message,
            });
        }
        self.pending.extend_from_slice(&bytes);
        if !last {
            return Ok(None);
        }
        let whole = std::mem::take(&mut self.pending);
        match decode_message::<ServerMessage>(&whole)? {
            ServerMessage::Fragment { .. } => Err(FrameError::Malformed(
                "a split message holds another fragment".into(),
            )),
            message => Ok(Some(message)),
        }
    }
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

    /// How many bytes wait for the rest of their frame (0 between frames).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The size, length prefix included, of the frame being received, once
    /// its prefix has arrived (at most the limit's: a longer one is refused
    /// by [`next_frame`](Self::next_frame)).
    pub fn frame_in_progress(&self) -> Option<usize> {
        let prefix = self.buffer.get(..LENGTH_PREFIX)?;
        let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes"));
        Some(LENGTH_PREFIX + len.min(self.max_frame) as usize)
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

    // #9 item 14: decode errors say what was wrong, not "Serde Deserialization Error".
    #[test]
    fn decode_errors_name_the_message_offset_and_expectation() {
        let error = |bytes: &[u8]| match decode_message::<ClientMessage>(bytes) {
            Err(FrameError::Malformed(message)) => message,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(
            error(&[42]),
            "unknown ClientMessage type 42 (expected 0 to 6)"
        );
        // The type is a varint: a padded one names the variant it encodes.
        assert_eq!(
            error(&[0x80, 0x01]),
            "unknown ClientMessage type 128 (expected 0 to 6)"
        );
        assert_eq!(
            error(&[0x80, 0x00, 0x04, b'n', b'o']),
            "ClientMessage::Hello: the message ended early: expected more bytes (at byte 4 of 5)"
        );
        assert_eq!(
            error(&[0xff, 0xff]),
            "ClientMessage: its type (the leading varint) is not a valid u32 varint"
        );
        // A u32 varint too large for its type, though five bytes long.
        assert_eq!(
            error(&[3, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            "ClientMessage::Unsubscribe: a varint too long or too large for its type (at byte 6 \
             of 6)"
        );
        assert_eq!(
            error(&[0, 2, 9, b'c']),
            "ClientMessage::Hello: the message ended early: expected more bytes (at byte 3 of 4)"
        );
        assert_eq!(
            error(&[0, 2, 1, b'c', 7]),
            "ClientMessage::Hello: an option tag must be the byte 0 (None) or 1 (Some) (at byte 5 of 5)"
        );
        assert_eq!(
            error(&[0, 2, 1, 0xff, 0]),
            "ClientMessage::Hello: a string that is not valid UTF-8 (at byte 4 of 5)"
        );
        assert!(error(&[]).contains("empty ClientMessage"));
    }

    // #9 item 14: server messages larger than a frame travel as fragments.
    #[test]
    fn split_messages_fit_the_frame_limit_and_reassemble() {
        let big = ServerMessage::SubscribeApplied {
            query_set_id: 3,
            tables: vec![crate::TableRows {
                table: "t".into(),
                rows: (0..50u8)
                    .map(|i| serde_bytes::ByteBuf::from(vec![i; 100]))
                    .collect(),
            }],
        };
        let bytes = encode_message(&big);
        let pieces: Vec<_> = split_message(&bytes, 1000).collect();
        assert!(pieces.len() > 1);
        let mut reassembler = Reassembler::new(1 << 20);
        let mut whole = Vec::new();
        for piece in &pieces {
            assert!(piece.len() <= 1000, "a piece of {} bytes", piece.len());
            let message = decode_message::<ServerMessage>(piece).unwrap();
            whole.extend(reassembler.accept(message).unwrap());
        }
        assert_eq!(whole, [big]);
        // A message that fits is sent as it is.
        let small: Vec<_> = split_message(&bytes, bytes.len() as u32).collect();
        assert_eq!(small, [std::borrow::Cow::Borrowed(&bytes[..])]);
        // A reassembled message over the limit is refused.
        let mut small_limit = Reassembler::new(500);
        let refused = pieces
            .iter()
            .map(|piece| small_limit.accept(decode_message(piece).unwrap()))
            .find_map(Result::err);
        assert!(matches!(
            refused,
            Some(FrameError::TooLarge { max: 500, .. })
        ));
    }

    #[test]
    fn the_first_bytes_of_messages_are_as_specified() {
        // The worked examples of PROTOCOL.md.
        assert_eq!(
            encode_message(&hello()),
            [0, 3, 4, b'c', b'h', b'a', b't', 0]
        );
        let error = encode_message(&ServerMessage::Error {
            message: "no".into(),
            fatal: true,
        });
        assert_eq!(error, [7, 2, b'n', b'o', 1]);
    }
}
