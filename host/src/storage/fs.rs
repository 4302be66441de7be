//! The storage interface: a directory of files, as much of one as the
//! commit log and snapshots need. Production uses [`cap_std::fs::Dir`];
//! tests use an in-memory twin that models what `fsync` promises, so that
//! they can inject damage and power cuts.
//!
//! The contract both implementations keep: file data written through a
//! [`FileHandle`] survives a power cut only once [`FileHandle::sync`]
//! returned; a created, renamed or removed directory entry only once
//! [`Directory::sync`] returned.

use std::io::{self, Read};
use std::sync::Arc;

use cap_std::fs::{Dir, File, FileExt, MetadataExt, OpenOptions};

/// A directory holding files (and subdirectories) by name.
pub(crate) trait Directory: Send + Sync {
    /// The names of the entries, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole content of file `name`.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// The first `len` bytes of file `name` (all of it if it is shorter).
    fn read_head(&self, name: &str, len: usize) -> io::Result<Vec<u8>>;
    /// The size in bytes of file `name`, without opening it.
    fn size(&self, name: &str) -> io::Result<u64>;
    /// Creates file `name`, or empties it if it exists, for writing.
    fn create(&self, name: &str) -> io::Result<Box<dyn FileHandle>>;
    /// Opens the existing file `name` for writing at chosen positions.
    fn open_existing(&self, name: &str) -> io::Result<Box<dyn FileHandle>>;
    /// Renames file `from` to `to`, replacing any file named `to`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes file `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries durable.
    fn sync(&self) -> io::Result<()>;
    /// Opens subdirectory `name`, creating it (durably) if it is missing.
    fn subdir(&self, name: &str) -> io::Result<Arc<dyn Directory>>;
}

/// A file open for writing.
pub(crate) trait FileHandle: Send {
    /// Writes all of `bytes` at byte `offset`, extending the file (with
    /// zeros before `offset` if it lies past the end) as needed.
    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes (or extends it with zeros).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The file's size in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file still has a name and how long it is now: someone
    /// else may have removed or cut it while it was open.
    fn status(&self) -> io::Result<FileStatus>;
}

/// What [`FileHandle::status`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStatus {
    /// The file has no name left in any directory (it was removed, or its
    /// directory was, while it was open): what is written to it then is
    /// gone once it is closed.
    pub(crate) removed: bool,
    /// The file's size in bytes.
    pub(crate) len: u64,
}

impl Directory for Dir {
    fn list(&self) -> io::Result<Vec<String>> {
        self.entries()?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        crate::regular_file::open_read(self, name)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn read_head(&self, name: &str, len: usize) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        crate::regular_file::open_read(self, name)?
            .take(len as u64)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        let metadata = self.metadata(name)?;
        if metadata.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{name} is a directory"),
            ));
        }
        Ok(metadata.len())
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn FileHandle>> {
        let file = crate::regular_file::open(
            self,
            name,
            OpenOptions::new().create(true).truncate(true).write(true),
        )?;
        Ok(Box::new(file))
    }

    fn open_existing(&self, name: &str) -> io::Result<Box<dyn FileHandle>> {
        // Not `append`: on Linux, a positional write to a file opened for
        // appending goes to its end whatever the position.
        Ok(Box::new(crate::regular_file::open(
            self,
            name,
            OpenOptions::new().write(true),
        )?))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Dir::rename(self, from, self, to)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.remove_file(name)
    }

    fn sync(&self) -> io::Result<()> {
        self.open(".")?.sync_all()
    }

    fn subdir(&self, name: &str) -> io::Result<Arc<dyn Directory>> {
        match self.create_dir(name) {
            Ok(()) => Directory::sync(self)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Ok(Arc::new(self.open_dir(name)?))
    }
}

impl FileHandle for File {
    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(self, bytes, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn status(&self) -> io::Result<FileStatus> {
        let metadata = self.metadata()?;
        Ok(FileStatus {
            removed: metadata.nlink() == 0,
            len: metadata.len(),
        })
    }
}
