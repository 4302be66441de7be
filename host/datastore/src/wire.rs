//! Byte-level postcard primitives: taking bytes, LEB128 varints and zigzag.
//! Readers return a short problem description; the codec adds the context.

/// Takes the first byte of `input`.
pub(crate) fn take_byte(input: &mut &[u8]) -> Result<u8, &'static str> {
    let (&first, rest) = input.split_first().ok_or("input ended")?;
    *input = rest;
    Ok(first)
}

/// Takes the first `len` bytes of `input`.
pub(crate) fn take<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], &'static str> {
    if input.len() < len {
        return Err("input ended");
    }
    let (taken, rest) = input.split_at(len);
    *input = rest;
    Ok(taken)
}

/// Takes the first `N` bytes of `input` as an array.
pub(crate) fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], &'static str> {
    let (taken, rest) = input.split_first_chunk::<N>().ok_or("input ended")?;
    *input = rest;
    Ok(*taken)
}

/// Reads a LEB128 varint of an unsigned integer `bits` wide. Rejects
/// encodings longer than the width needs and bits beyond the width.
pub(crate) fn varint(input: &mut &[u8], bits: u32) -> Result<u128, &'static str> {
    let max_bytes = bits.div_ceil(7);
    let mut value: u128 = 0;
    for i in 0..max_bytes {
        let byte = take_byte(input).map_err(|_| "input ended inside a varint")?;
        let shift = 7 * i;
        let chunk = u128::from(byte & 0x7f);
        if shift + 7 > bits && chunk >> (bits - shift) != 0 {
            return Err("varint overflows the type");
        }
        value |= chunk << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint is longer than the type allows")
}

/// Reads a length prefix: a `usize` varint (postcard encodes lengths as u64 on 64-bit hosts).
pub(crate) fn length(input: &mut &[u8]) -> Result<usize, &'static str> {
    usize::try_from(varint(input, 64)?).map_err(|_| "length does not fit in memory")
}

/// Undoes zigzag encoding: 0, 1, 2, 3 -> 0, -1, 1, -2.
pub(crate) fn unzigzag(n: u128) -> i128 {
    ((n >> 1) as i128) ^ -((n & 1) as i128)
}

/// Zigzag-encodes a signed integer so small magnitudes make short varints.
pub(crate) fn zigzag(n: i128) -> u128 {
    ((n << 1) ^ (n >> 127)) as u128
}

/// Appends `n` as a LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u128) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_limits_follow_the_width() {
        // u16 takes at most 3 bytes and 16 bits.
        assert_eq!(varint(&mut &[0xff, 0xff, 0x03][..], 16), Ok(0xffff));
        assert!(varint(&mut &[0xff, 0xff, 0x04][..], 16).is_err());
        assert!(varint(&mut &[0x80, 0x80, 0x80, 0x00][..], 16).is_err());
        // A non-minimal encoding within the length limit is accepted, like postcard.
        assert_eq!(varint(&mut &[0x80, 0x00][..], 16), Ok(0));
        assert_eq!(
            varint(&mut &[0x80][..], 32),
            Err("input ended inside a varint")
        );
        let mut out = Vec::new();
        put_varint(&mut out, u128::MAX);
        assert_eq!(out.len(), 19);
        assert_eq!(varint(&mut &out[..], 128), Ok(u128::MAX));
    }

    #[test]
    fn zigzag_interleaves_signs() {
        let pairs = [(0, 0), (-1, 1), (1, 2), (-2, 3), (i128::MIN, u128::MAX)];
        for (signed, unsigned) in pairs {
            assert_eq!(zigzag(signed), unsigned);
            assert_eq!(unzigzag(unsigned), signed);
        }
        assert_eq!(zigzag(i128::MAX), u128::MAX - 1);
    }
}
