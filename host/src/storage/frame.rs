//! Record framing for the commit log and snapshots: a little-endian u32
//! length, a little-endian u32 CRC-32C of the payload, then the payload.
//! Pure functions over byte slices; no IO.

/// Bytes before each payload: length and checksum.
pub(crate) const FRAME_HEADER: usize = 8;

/// The largest payload a frame may carry: its length must fit the u32 header.
pub(crate) const MAX_PAYLOAD: usize = u32::MAX as usize;

/// Appends one framed payload to `out`, or refuses one too large to frame.
pub(crate) fn put_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), super::StorageError> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        super::StorageError::TooLarge(format!(
            "a record of {} bytes exceeds the largest the log can hold ({MAX_PAYLOAD} bytes)",
            payload.len()
        ))
    })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// How reading a sequence of frames ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameEnd {
    /// Every byte belonged to a whole, valid frame.
    Clean,
    /// The last frame is incomplete or fails its checksum and nothing
    /// follows it: the tail of an interrupted write.
    Torn {
        /// Where the incomplete frame starts.
        at: usize,
    },
    /// A frame fails its checksum or length check and more bytes follow it.
    Corrupt {
        /// Where the bad frame starts.
        at: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The valid frames at the start of `bytes` (as offset and payload) and how reading ended.
pub(crate) fn read_frames(bytes: &[u8]) -> (Vec<(usize, &[u8])>, FrameEnd) {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < FRAME_HEADER {
            return (frames, FrameEnd::Torn { at });
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
            return (frames, FrameEnd::Torn { at });
        };
        if crc32c::crc32c(payload) != crc {
            let end = if rest.len() == FRAME_HEADER + len {
                FrameEnd::Torn { at }
            } else {
                FrameEnd::Corrupt {
                    at,
                    reason: "checksum mismatch".into(),
                }
            };
            return (frames, end);
        }
        frames.push((at, payload));
        at += FRAME_HEADER + len;
    }
    (frames, FrameEnd::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            put_frame(payload, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn reads_back_what_was_framed() {
        let bytes = framed(&[b"one", b"", b"three"]);
        let (frames, end) = read_frames(&bytes);
        assert_eq!(end, FrameEnd::Clean);
        let payloads: Vec<&[u8]> = frames.iter().map(|(_, p)| *p).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", b"three"]);
    }

    #[test]
    fn a_cut_tail_is_torn_at_the_last_frame() {
        let bytes = framed(&[b"one", b"two"]);
        for cut in 1..(FRAME_HEADER + 3) {
            let (frames, end) = read_frames(&bytes[..bytes.len() - cut]);
            assert_eq!(frames.len(), 1, "cut {cut}");
            assert_eq!(
                end,
                FrameEnd::Torn {
                    at: FRAME_HEADER + 3
                }
            );
        }
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_corruption() {
        let mut bytes = framed(&[b"one", b"two", b"three"]);
        bytes[FRAME_HEADER + 3 + FRAME_HEADER] ^= 0x40;
        let (frames, end) = read_frames(&bytes);
        assert_eq!(frames.len(), 1);
        assert!(matches!(end, FrameEnd::Corrupt { at, .. } if at == FRAME_HEADER + 3));
    }
}
