//! Opening the files of the data directory, each of which must be a
//! regular file. Anything else found under such a name is refused with an
//! error naming it: opening a named pipe blocks until another process
//! opens its other end (a server would hang at start, every database with
//! it), and a device may be read without end.

use std::io;

use cap_std::fs::{Dir, File, FileTypeExt, OpenOptions, OpenOptionsExt};

/// Opens `name` in `dir` with `options` (whose custom flags become
/// `O_NONBLOCK`, which a regular file ignores and with which a named pipe
/// opens at once; no caller sets others), refusing anything but a
/// regular file.
pub(crate) fn open(dir: &Dir, name: &str, options: &OpenOptions) -> io::Result<File> {
    let mut options = options.clone();
    options.custom_flags(libc::O_NONBLOCK);
    match dir.open_with(name, &options) {
        Ok(file) => regular(name, file),
        // A pipe opened for writing with no reader fails (ENXIO): say
        // what is there rather than "no such device".
        Err(error) => Err(match dir.metadata(name) {
            Ok(metadata) if !metadata.is_file() => not_regular(name, metadata.file_type()),
            _ => error,
        }),
    }
}

/// Opens `name` in `dir` for reading (see [`open`]).
pub(crate) fn open_read(dir: &Dir, name: &str) -> io::Result<File> {
    open(dir, name, OpenOptions::new().read(true))
}

/// The content of the regular file at `path` (outside a data directory's
/// capability: the QUIC certificate and key, which the server reads by
/// path); anything else there is refused at once, as [`open`] refuses it.
pub fn read_regular_file(path: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mut bytes = Vec::new();
    regular("it", File::from_std(file))?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `file`, opened as `name`, if it is a regular file.
fn regular(name: &str, file: File) -> io::Result<File> {
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        Ok(file)
    } else {
        Err(not_regular(name, kind))
    }
}

/// Why `name`, of type `kind`, is refused.
fn not_regular(name: &str, kind: cap_std::fs::FileType) -> io::Error {
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{name} is {what}, where a regular file belongs"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(dir: &std::path::Path, name: &str) {
        let path = std::ffi::CString::new(dir.join(name).into_os_string().into_encoded_bytes())
            .expect("a path");
        // SAFETY: `path` is a valid NUL-terminated string for the call.
        let made = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
        assert_eq!(made, 0, "mkfifo");
    }

    #[test]
    fn a_named_pipe_is_refused_at_once_for_reading_and_writing() {
        let tmp = std::env::temp_dir().join(format!("worldline-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("a directory");
        fifo(&tmp, "pipe");
        std::fs::write(tmp.join("plain"), b"bytes").expect("a file");
        let dir = Dir::open_ambient_dir(&tmp, cap_std::ambient_authority()).expect("open");
        for options in [
            OpenOptions::new().read(true).clone(),
            OpenOptions::new().write(true).clone(),
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .clone(),
        ] {
            let error = open(&dir, "pipe", &options).expect_err("a pipe");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
            assert!(
                error.to_string().contains("pipe is a named pipe"),
                "{error}"
            );
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut open_read(&dir, "plain").expect("a file"), &mut text)
            .expect("read");
        assert_eq!(text, "bytes");
        let error = open_read(&dir, ".").expect_err("a directory");
        assert!(error.to_string().contains("is a directory"), "{error}");
        std::fs::remove_dir_all(&tmp).expect("clean up");
    }
}
