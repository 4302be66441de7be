//! Record framing for the commit log and snapshots (format 2). A frame is
//!
//! ```text
//! length u32 LE | payload CRC-32C u32 LE | header CRC-32C u32 LE | payload | end mark 0xA5
//! ```
//!
//! The header checksum covers the first 8 bytes, so a damaged length is
//! caught before it is believed; the end mark makes the last byte of every
//! whole frame non-zero. Pure functions over byte slices; no IO.
//!
//! Telling an interrupted write from damage: a write cut short by a crash or
//! power cut leaves a prefix of what was written, possibly followed by zeros
//! (a file whose size was recorded but whose data never reached the disk).
//! So a frame that does not check out is a torn tail only if everything from
//! some point inside it to the end of the file is zero (or missing): its
//! header does not fit before that point, or its header checks out and
//! declares a frame that reaches past it. Anything else is damage.

/// Bytes before each payload: length, payload checksum, header checksum.
pub(crate) const FRAME_HEADER: usize = 12;

/// The byte after each payload.
const END_MARK: u8 = 0xA5;

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
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start..start + 8]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    out.push(END_MARK);
    Ok(())
}

/// How reading a sequence of frames ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameEnd {
    /// Every byte belonged to a whole, valid frame.
    Clean,
    /// What follows the last valid frame is an interrupted write: a prefix
    /// of a frame, then nothing or zeros.
    Torn {
        /// Where the incomplete frame starts.
        at: usize,
        /// Whether nothing but zeros follows `at`: no byte of the
        /// incomplete frame reached the file (or it is space written ahead).
        zeros: bool,
    },
    /// A frame is damaged: it fails a check, and written bytes follow
    /// where a torn write would have left only zeros or nothing.
    Corrupt {
        /// Where the bad frame starts.
        at: usize,
        /// What is wrong with it.
        reason: String,
    },
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The valid frames at the start of `bytes` (as offset and payload) and how reading ended.
pub(crate) fn read_frames(bytes: &[u8]) -> (Vec<(usize, &[u8])>, FrameEnd) {
    // Everything from `written` on is zero: a torn write may end there.
    let written = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = FrameEnd::Torn {
            at,
            zeros: at >= written,
        };
        if at + FRAME_HEADER > written {
            return (frames, torn);
        }
        if crc32c::crc32c(&rest[..8]) != le_u32(&rest[8..12]) {
            let reason = "the record header's checksum does not match (its length is damaged)";
            return (frames, corrupt(at, reason));
        }
        let len = le_u32(&rest[0..4]) as usize;
        let end = FRAME_HEADER + len + 1;
        if at + end > written {
            return (frames, torn);
        }
        let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
        if crc32c::crc32c(payload) != le_u32(&rest[4..8]) {
            return (frames, corrupt(at, "the record's checksum does not match"));
        }
        if rest[end - 1] != END_MARK {
            return (frames, corrupt(at, "the record's end mark is missing"));
        }
        frames.push((at, payload));
        at += end;
    }
    (frames, FrameEnd::Clean)
}

fn corrupt(at: usize, reason: &str) -> FrameEnd {
    FrameEnd::Corrupt {
        at,
        reason: reason.into(),
    }
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

    const ONE: usize = FRAME_HEADER + 3 + 1;

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
        for cut in 1..ONE {
            let (frames, end) = read_frames(&bytes[..bytes.len() - cut]);
            assert_eq!(frames.len(), 1, "cut {cut}");
            assert_eq!(
                end,
                FrameEnd::Torn {
                    at: ONE,
                    zeros: false
                }
            );
        }
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_corruption() {
        let mut bytes = framed(&[b"one", b"two", b"three"]);
        bytes[ONE + FRAME_HEADER] ^= 0x40;
        let (frames, end) = read_frames(&bytes);
        assert_eq!(frames.len(), 1);
        assert!(matches!(end, FrameEnd::Corrupt { at, .. } if at == ONE));
    }

    // #9 item 2: a length that runs past the end of the file is a damaged
    // header, not a torn tail, when whole records follow it.
    #[test]
    fn a_flipped_length_bit_is_corruption_not_a_torn_tail() {
        let clean = framed(&[b"one", b"two", b"three"]);
        for bit in 0..32 {
            let mut bytes = clean.clone();
            bytes[ONE + bit / 8] ^= 1 << (bit % 8);
            let (frames, end) = read_frames(&bytes);
            assert_eq!(frames.len(), 1, "bit {bit}");
            assert!(
                matches!(&end, FrameEnd::Corrupt { at, reason } if *at == ONE && reason.contains("header")),
                "bit {bit}: {end:?}"
            );
        }
    }

    // #9 item 2: a zero header is never a valid (empty) frame, and a
    // zero-filled tail is an interrupted write.
    #[test]
    fn a_zero_filled_tail_is_torn() {
        let mut bytes = framed(&[b"one"]);
        for zeros in 1..40 {
            bytes.push(0);
            let (frames, end) = read_frames(&bytes);
            assert_eq!(frames.len(), 1, "{zeros} zeros");
            assert_eq!(
                end,
                FrameEnd::Torn {
                    at: ONE,
                    zeros: true
                }
            );
        }
        let mut torn = framed(&[b"one", b"a longer record"]);
        let len = torn.len();
        torn[len - 6..].fill(0);
        assert_eq!(
            read_frames(&torn).1,
            FrameEnd::Torn {
                at: ONE,
                zeros: false
            }
        );
    }

    #[test]
    fn a_damaged_final_record_is_corruption_not_a_torn_tail() {
        let clean = framed(&[b"one", b"two\0\0"]);
        for at in ONE..clean.len() {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x01;
            let (frames, end) = read_frames(&bytes);
            assert_eq!(frames.len(), 1, "byte {at}");
            assert!(
                matches!(end, FrameEnd::Corrupt { .. }),
                "byte {at}: {end:?}"
            );
        }
    }
}
