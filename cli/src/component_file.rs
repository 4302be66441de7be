//! Reading a component file given with `--wasm` (or written by a build),
//! checked before it is used: a file that is empty, not WebAssembly, or a
//! core module rather than a component is refused here with what to do,
//! instead of after an upload with a parser's error.

use std::path::Path;

use crate::hint::hinted;

/// The magic bytes every WebAssembly binary starts with.
const MAGIC: &[u8; 4] = b"\0asm";

/// The import module of WASI preview 1, which a core module built with
/// wasi-libc names.
const PREVIEW1: &str = "wasi_snapshot_preview1";

/// Reads `path` and checks that it looks like a WebAssembly component.
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| {
        hinted(
            format!("reading {}: {e}", path.display()),
            format!("check the path; {COMPONENT_HINT}"),
        )
    })?;
    check(path, &bytes)?;
    Ok(bytes)
}

/// What to pass instead of a file that is not a component.
const COMPONENT_HINT: &str = "pass the `.wasm` component a module build wrote (`worldline \
                              publish --project-path DIR` builds one), e.g. \
                              target/wasm32-wasip2/release/NAME.wasm";

/// Checks the header of `bytes`, read from `path`: the magic bytes and the
/// layer (a component, not a core module). Whatever else is wrong is for
/// the component's parser to say.
pub fn check(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let file = path.display();
    let component_hint = COMPONENT_HINT;
    if bytes.is_empty() {
        return Err(hinted(format!("{file} is empty"), component_hint));
    }
    if !bytes.starts_with(&MAGIC[..bytes.len().min(4)]) {
        return Err(hinted(
            format!(
                "{file} is not a WebAssembly component: it does not start with the wasm magic \
                 bytes `\\0asm`"
            ),
            component_hint,
        ));
    }
    if bytes.len() < 8 {
        return Err(hinted(
            format!(
                "{file} is truncated: it ends after {} bytes, within the 8-byte WebAssembly \
                 header",
                bytes.len()
            ),
            component_hint,
        ));
    }
    // Bytes 4..6 are the version, 6..8 the layer: 0 for a core module, 1
    // for a component.
    if bytes[6..8] == [0, 0] {
        // A module built with wasi-libc for wasm32-wasi (C, C++) imports
        // WASI preview 1, which only an adapter turns into the component
        // model's WASI.
        let preview1 = bytes
            .windows(PREVIEW1.len())
            .any(|window| window == PREVIEW1.as_bytes());
        let hint = if preview1 {
            "it imports WASI preview 1 (`wasi_snapshot_preview1`, as C and C++ built with \
             wasi-libc do): wrap it as a component with `wasm-tools component new FILE --adapt \
             wasi_snapshot_preview1=ADAPTER -o component.wasm`, where ADAPTER is wasmtime 48's \
             `wasi_snapshot_preview1.reactor.wasm` (README.md, \"A module in C\", says how to \
             get it)"
        } else {
            "build it for the wasm32-wasip2 target (`cargo build --release --target \
             wasm32-wasip2`), or wrap it as a component with `wasm-tools component new FILE \
             -o component.wasm`"
        };
        return Err(hinted(
            format!("{file} is a core WebAssembly module, not a component"),
            hint,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::{hint_for, message_of};

    fn refusal(bytes: &[u8]) -> (String, String) {
        let err = check(Path::new("m.wasm"), bytes).unwrap_err();
        (message_of(&err), hint_for(&err, "publish").unwrap())
    }

    #[test]
    fn a_file_that_is_not_a_component_is_refused_with_what_it_is() {
        assert_eq!(refusal(b"").0, "m.wasm is empty");
        let (text, _) = refusal(b"hello, world\n");
        assert_eq!(
            text,
            "m.wasm is not a WebAssembly component: it does not start with the wasm magic bytes \
             `\\0asm`"
        );
        assert!(!text.contains("expected"));
        assert!(refusal(b"\0as").0.contains("truncated"));
        assert!(refusal(b"\0asm\x0d\0").0.contains("truncated"));
        let (text, hint) = refusal(b"\0asm\x01\0\0\0");
        assert_eq!(text, "m.wasm is a core WebAssembly module, not a component");
        assert!(hint.contains("wasm32-wasip2") && hint.contains("wasm-tools component new"));
        check(Path::new("c.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
        let (_, hint) = refusal(b"\0asm\x01\0\0\0\x02\x1a\x01\x16wasi_snapshot_preview1");
        assert!(
            hint.contains("--adapt wasi_snapshot_preview1=ADAPTER"),
            "{hint}"
        );
    }
}
