//! Which database a log segment or snapshot belongs to.
//!
//! Every database has a random 16-byte id, created with it and kept in
//! `database-id` in its directory. Each segment and snapshot written in
//! format 3 names it in its header:
//!
//! ```text
//! magic (8 bytes: WLSEG003, WLSNP003) | database id (16 bytes) | CRC-32C of those 24 bytes u32 LE
//! ```
//!
//! A file naming another database was copied (or restored from a backup)
//! into the wrong directory: recovery refuses it before it reads or changes
//! anything, and the database does not start until it is moved away.
//! Publishing a new module (a hot swap) keeps the id; deleting a database
//! and publishing one under the same name (or `--delete-data`) makes a new
//! one, so the old database's files are refused.
//!
//! Format-2 files (`WLSEG002`, `WLSNP002`) name no database. A database
//! created by a version that wrote them gets its id at its first start by
//! this one, and `database-id` records the offset that start continued
//! from: format-2 files up to it are still read (the newest segment is
//! even continued, until it fills up); every segment and snapshot after it
//! is format 3. A database created with its id accepts no format-2 file.

use serde::{Deserialize, Serialize};

use crate::identity::hex;

use super::StorageError;
use super::fs::Directory;

/// The file, in the database's directory, that holds its id.
pub(crate) const ID_FILE: &str = "database-id";

/// The bytes of a format-3 header: magic, database id, checksum.
pub(crate) const HEADER_BYTES: usize = 8 + 16 + 4;

/// The largest `database-id` read back; Worldline writes well under 100 bytes.
const MAX_FILE_BYTES: usize = 4096;

/// A database's random identity, named by each of its segments and snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DatabaseId([u8; 16]);

impl DatabaseId {
    /// A new, random id.
    fn random() -> Self {
        Self(rand::random())
    }

    /// The id as 32 lowercase hex digits.
    pub(crate) fn to_hex(self) -> String {
        hex(&self.0)
    }

    /// The id written as 32 hex digits, if `text` is one.
    fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 32 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

/// The header of a format-3 file of database `id`, whose magic is `magic`.
pub(crate) fn header(magic: &[u8; 8], id: DatabaseId) -> [u8; HEADER_BYTES] {
    let mut header = [0; HEADER_BYTES];
    header[..8].copy_from_slice(magic);
    header[8..24].copy_from_slice(&id.0);
    let crc = crc32c::crc32c(&header[..24]);
    header[24..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The two formats a segment or snapshot can be read in.
pub(crate) struct Magics {
    /// The magic of format 3, whose header names the database.
    pub(crate) identified: &'static [u8; 8],
    /// The magic of format 2, which names none.
    pub(crate) unidentified: &'static [u8; 8],
}

/// Whom a file's header says it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileOwner {
    /// A format-2 file, which names no database.
    Unnamed,
    /// A format-3 file of this database.
    Database(DatabaseId),
}

/// What the start of a segment or snapshot file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Header {
    /// A header of either format: whom the file belongs to and how many
    /// bytes the header takes (its frames follow).
    Valid(FileOwner, usize),
    /// Neither magic: not a file of either format.
    Unknown,
    /// A format-3 header that is cut short or fails its checksum.
    Damaged(&'static str),
}

/// Reads the header at the start of `bytes` (which may hold more, or just
/// the header).
pub(crate) fn read_header(bytes: &[u8], magics: &Magics) -> Header {
    if bytes.starts_with(magics.unidentified) {
        // A format-3 header whose magic lost a bit reads as format 2: its
        // checksum, which covers the format-3 magic, tells them apart.
        if let Some(header) = bytes.get(..HEADER_BYTES) {
            let mut repaired = [0; 24];
            repaired[..8].copy_from_slice(magics.identified);
            repaired[8..].copy_from_slice(&header[8..24]);
            if crc32c::crc32c(&repaired).to_le_bytes() == header[24..] {
                return Header::Damaged("the header's magic is damaged");
            }
        }
        return Header::Valid(FileOwner::Unnamed, magics.unidentified.len());
    }
    if !bytes.starts_with(magics.identified) {
        return Header::Unknown;
    }
    let Some(header) = bytes.get(..HEADER_BYTES) else {
        return Header::Damaged("the file ends inside its header");
    };
    let crc = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if crc32c::crc32c(&header[..24]) != crc {
        return Header::Damaged(
            "the header's checksum does not match (its database id or the checksum is damaged)",
        );
    }
    let mut id = [0; 16];
    id.copy_from_slice(&header[8..24]);
    Header::Valid(FileOwner::Database(DatabaseId(id)), HEADER_BYTES)
}

/// Which format-2 files (naming no database) a database still reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unnamed {
    /// None: the database was created with its id.
    Refused,
    /// Those of offsets up to this one (a segment's first record, a
    /// snapshot's next offset): the database was created by an earlier
    /// version and got its id when it had reached this offset.
    Through(u64),
    /// All of them: the database has no `database-id` yet (its first start
    /// by this version, or its creation); it gets one once recovered.
    Unrecorded,
}

/// The database a segment or snapshot must belong to, and which format-2
/// files the database still reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ownership {
    id: DatabaseId,
    unnamed: Unnamed,
}

/// `database-id`, as written and read back.
#[derive(Serialize, Deserialize)]
struct StoredId {
    /// The id, 32 hex digits.
    database_id: String,
    /// Format-2 files up to this offset are the database's own (`None`:
    /// it has none).
    #[serde(default)]
    unidentified_through: Option<u64>,
}

impl Ownership {
    /// The ownership recorded in `dir`'s `database-id`, or, if there is none
    /// yet, a new id that [`record`](Self::record) stores once recovery
    /// passed.
    pub(crate) fn load(dir: &dyn Directory) -> Result<Self, StorageError> {
        let bytes = match dir.read_head(ID_FILE, MAX_FILE_BYTES + 1) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    id: DatabaseId::random(),
                    unnamed: Unnamed::Unrecorded,
                });
            }
            Err(e) => return Err(StorageError::io(format!("reading {ID_FILE}"), e)),
        };
        let corrupt = |reason: String| StorageError::Corrupt {
            file: ID_FILE.into(),
            offset: 0,
            reason: format!(
                "{reason}; it names the database its log segments and snapshots belong to \
                 (format-3 files name it in bytes 8 to 23 of their header, in hex here): restore \
                 it from a backup of this database"
            ),
        };
        if bytes.len() > MAX_FILE_BYTES {
            return Err(corrupt(format!(
                "it holds more than the {MAX_FILE_BYTES} bytes Worldline writes"
            )));
        }
        let stored: StoredId = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("it is not a database id ({e})")))?;
        let id = DatabaseId::from_hex(&stored.database_id)
            .ok_or_else(|| corrupt("its database_id is not 32 hex digits".into()))?;
        let unnamed = stored
            .unidentified_through
            .map_or(Unnamed::Refused, Unnamed::Through);
        Ok(Self { id, unnamed })
    }

    /// The id every file this database writes names.
    pub(crate) fn id(&self) -> DatabaseId {
        self.id
    }

    /// Whether the database has no `database-id`: a new database, one an
    /// earlier version created, or one whose file was lost.
    pub(crate) fn is_unrecorded(&self) -> bool {
        self.unnamed == Unnamed::Unrecorded
    }

    /// The ownership of a database whose `database-id` was lost, and whose
    /// files all name `id` (see [`sole_owner`]): [`record`](Self::record)
    /// writes it back, accepting no format-2 file.
    pub(crate) fn adopting(id: DatabaseId) -> Self {
        Self {
            id,
            unnamed: Unnamed::Unrecorded,
        }
    }

    /// Stores the id in `dir` if it is not stored yet: once recovery has
    /// accepted every file, and before any file names it. `next_offset` is
    /// where the log continues; format-2 files up to it stay readable if
    /// there were any (`saw_unnamed`).
    pub(crate) fn record(
        &mut self,
        dir: &dyn Directory,
        next_offset: u64,
        saw_unnamed: bool,
    ) -> Result<(), StorageError> {
        if self.unnamed != Unnamed::Unrecorded {
            return Ok(());
        }
        let unnamed = if saw_unnamed {
            Unnamed::Through(next_offset)
        } else {
            Unnamed::Refused
        };
        let stored = StoredId {
            database_id: self.id.to_hex(),
            unidentified_through: match unnamed {
                Unnamed::Through(offset) => Some(offset),
                _ => None,
            },
        };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| StorageError::TooLarge(format!("{ID_FILE}: {e}")))?;
        super::write_durably(dir, "", ID_FILE, &bytes)?;
        self.unnamed = unnamed;
        Ok(())
    }

    /// Refuses file `name` of `dir` (`file` in errors: `log/…`,
    /// `snapshots/…`; at `offset`, as for [`check`](Self::check)) if its
    /// header names another database; reads only the header. A header that
    /// is damaged or of neither of `magics` is left for the file's reader to
    /// refuse where the file is needed.
    pub(crate) fn check_file(
        &self,
        dir: &dyn Directory,
        name: &str,
        file: &str,
        offset: u64,
        magics: &Magics,
    ) -> Result<(), StorageError> {
        let head = dir
            .read_head(name, HEADER_BYTES)
            .map_err(|e| StorageError::io(format!("reading {file}"), e))?;
        match read_header(&head, magics) {
            Header::Valid(owner, _) => self.check(file, offset, owner),
            Header::Unknown | Header::Damaged(_) => Ok(()),
        }
    }

    /// Checks that `owner`, whom the header of `file` (at `offset`: a
    /// segment's first record, a snapshot's next offset) names, is this
    /// database; refuses a file of another database.
    pub(crate) fn check(
        &self,
        file: &str,
        offset: u64,
        owner: FileOwner,
    ) -> Result<(), StorageError> {
        let reason = match (owner, self.unnamed) {
            (FileOwner::Database(id), _) if id == self.id => return Ok(()),
            (FileOwner::Database(id), Unnamed::Unrecorded) => {
                return Err(StorageError::IdMissing {
                    file: file.to_owned(),
                    id: id.to_hex(),
                });
            }
            (FileOwner::Database(id), _) => format!(
                "it names database {}, and this database is {} (its {ID_FILE} file)",
                id.to_hex(),
                self.id.to_hex()
            ),
            (FileOwner::Unnamed, Unnamed::Unrecorded) => return Ok(()),
            (FileOwner::Unnamed, Unnamed::Through(through)) if offset <= through => return Ok(()),
            (FileOwner::Unnamed, Unnamed::Through(through)) => format!(
                "it is in format 2, which names no database, at transaction {offset}, and this \
                 database has written only format-3 files, which name it, since transaction \
                 {through}"
            ),
            (FileOwner::Unnamed, Unnamed::Refused) => {
                "it is in format 2, which names no database, and this database was created \
                 with an id, so every one of its files is in format 3 and names it"
                    .to_owned()
            }
        };
        Err(StorageError::Foreign {
            file: file.to_owned(),
            reason,
        })
    }
}

/// The one database every header in `headers` names, if they are all
/// format 3 and name the same one: whose files they are when its
/// `database-id` was lost. `None` if any is format 2 (which names none),
/// or they name several, or none reads as a header (damaged or unknown
/// headers are passed over).
pub(crate) fn sole_owner(headers: impl IntoIterator<Item = Header>) -> Option<DatabaseId> {
    let mut owner = None;
    for header in headers {
        match header {
            Header::Valid(FileOwner::Database(id), _) if owner.is_none_or(|o| o == id) => {
                owner = Some(id);
            }
            Header::Valid(..) => return None,
            Header::Unknown | Header::Damaged(_) => {}
        }
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGICS: Magics = Magics {
        identified: b"WLTST003",
        unidentified: b"WLTST002",
    };

    #[test]
    fn a_header_reads_back_and_damage_is_caught() {
        let id = DatabaseId::random();
        let written = header(MAGICS.identified, id);
        assert_eq!(
            read_header(&written, &MAGICS),
            Header::Valid(FileOwner::Database(id), HEADER_BYTES)
        );
        for byte in 8..HEADER_BYTES {
            let mut damaged = written;
            damaged[byte] ^= 0x10;
            assert!(
                matches!(read_header(&damaged, &MAGICS), Header::Damaged(_)),
                "byte {byte}"
            );
        }
        assert!(matches!(
            read_header(&written[..20], &MAGICS),
            Header::Damaged(_)
        ));
        assert_eq!(
            read_header(b"WLTST002 and frames", &MAGICS),
            Header::Valid(FileOwner::Unnamed, 8)
        );
        assert_eq!(read_header(b"WLSEG003", &MAGICS), Header::Unknown);
    }

    #[test]
    fn ids_read_back_from_hex() {
        let id = DatabaseId::random();
        assert_eq!(DatabaseId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(DatabaseId::from_hex("zz"), None);
        assert_eq!(DatabaseId::from_hex(&"é".repeat(16)), None);
    }
}
