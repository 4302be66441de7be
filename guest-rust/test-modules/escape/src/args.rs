//! Postcard by hand: the few argument shapes this module takes (strings and
//! u32s, as varints) and the string it returns from procedures.

/// A cursor over a postcard argument list.
pub struct Args<'a> {
    bytes: &'a [u8],
}

impl<'a> Args<'a> {
    /// Reads the arguments in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next argument, a varint-encoded u32.
    pub fn u32(&mut self) -> Result<u32, String> {
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let (&byte, rest) = self
                .bytes
                .split_first()
                .ok_or("arguments end inside a varint")?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| "a varint past u32".to_owned());
            }
        }
        Err("a varint longer than five bytes".to_owned())
    }

    /// The next argument, a length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        if len > self.bytes.len() {
            return Err("arguments end inside a string".to_owned());
        }
        let (text, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|e| e.to_string())
    }
}

/// Appends `value` as a varint.
pub fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The postcard bytes of a string.
pub fn encode_string(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 5);
    push_varint(&mut out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
    out
}
