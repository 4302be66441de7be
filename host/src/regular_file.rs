//! Opening the files of the data directory, each of which must be a
//! regular file. Anything else found under such a name is refused with an
//! error naming it: opening a named pipe blocks until another process
//! opens its other end (a server would hang at start, every database with
//! it), and a device may be read without end.

use std::io;

use cap_std::fs::{Dir, File, FileTypeExt, OpenOptions, OpenOptionsExt};

/// Opens `name` in `dir` with `options` (to which it adds `O_NONBLOCK`,
/// which a regular file ignores and with which a named pipe opens at
/// once), refusing anything but a regular file.
pub(crate) fn open(dir: &Dir, name: &str, options: &OpenOptions) -> io::Result<File> {
    let mut options = options.clone();
    options.custom_flags(libc::O_NONBLOCK);
    let file = match dir.open_with(name, &options) {
        Ok(file) => file,
        Err(error) => {
            // A pipe opened for writing with no reader fails (ENXIO):
            // say what is there rather than "no such device".
            return Err(match dir.metadata(name) {
                Ok(metadata) if !metadata.is_file() => not_regular(name, metadata.file_type()),
                _ => error,
            });
        }
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(not_regular(name, metadata.file_type()));
    }
    Ok(file)
}

/// Opens `name` in `dir` for reading (see [`open`]).
pub(crate) fn open_read(dir: &Dir, name: &str) -> io::Result<File> {
    open(dir, name, OpenOptions::new().read(true))
}

fn not_regular(name: &str, kind: cap_std::fs::FileType) -> io::Error {
    let what = describe(
        kind.is_dir(),
        kind.is_fifo(),
        kind.is_char_device() || kind.is_block_device(),
        kind.is_socket(),
    );
    refusal(&format!("{name} is {what}"))
}

/// The content of the regular file at `path` (outside a data directory's
/// capability: the QUIC certificate and key, which the server reads by
/// path); anything else there is refused at once, as [`open`] refuses it.
pub fn read_regular_file(path: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = describe(
            kind.is_dir(),
            kind.is_fifo(),
            kind.is_char_device() || kind.is_block_device(),
            kind.is_socket(),
        );
        return Err(refusal(&format!("it is {what}")));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// What a file that is not a regular one is, in words.
fn describe(dir: bool, fifo: bool, device: bool, socket: bool) -> &'static str {
    if dir {
        "a directory"
    } else if fifo {
        "a named pipe"
    } else if device {
        "a device"
    } else if socket {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn refusal(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, where a regular file belongs"),
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
