//! The schema a database's module described when it was published or
//! swapped in, kept beside it in `schema.json`, so that a later start can
//! tell whether `describe` still returns it.
//!
//! The commit log and snapshots hold rows encoded for that schema, and
//! recovery trusts them to fit it (their checksums prove the bytes, not the
//! schema). A module whose `describe` is not deterministic (it reads the
//! clock or `wasi:random`, say) could otherwise come up with other column
//! types or indexes than its rows were written for.
//!
//! The file is compact JSON, `{"module_sha256": "<hex>", "schema": {...}}`,
//! with the schema as `GET /v1/database/NAME/schema` shows it. It names the
//! module it belongs to: a file written for another module (a swap that a
//! crash interrupted around its commit point, or a database from a version
//! that kept no such file) is replaced by the current module's description.

use worldline_datastore::{ModuleSchema, describe_changes};

use crate::identity::hex;

use super::StorageError;
use super::fs::Directory;
use super::recovery::SchemaTrust;

/// The file's name in the database's directory.
pub(crate) const SCHEMA_FILE: &str = "schema.json";

/// The largest `schema.json` read back. A description within the import
/// limits (100,000 type nodes, 4,096 tables and functions of names up to
/// 255 bytes) takes a few megabytes of JSON; a larger file was not written
/// by Worldline.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// The file's content, written.
#[derive(serde::Serialize)]
struct StoredSchemaRef<'a> {
    module_sha256: String,
    schema: &'a ModuleSchema,
}

/// The file's content, read back.
#[derive(serde::Deserialize)]
struct StoredSchema {
    module_sha256: String,
    schema: ModuleSchema,
}

/// The file's bytes for the module hashed `module_hash` describing `schema`.
fn encode(module_hash: [u8; 32], schema: &ModuleSchema) -> Result<Vec<u8>, StorageError> {
    let stored = StoredSchemaRef {
        module_sha256: hex(&module_hash),
        schema,
    };
    let bytes = serde_json::to_vec(&stored)
        .map_err(|e| StorageError::TooLarge(format!("{SCHEMA_FILE}: {e}")))?;
    // The import limits keep a description far below this; were one to
    // pass it, the file would be refused when read back at the next start.
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(StorageError::TooLarge(format!(
            "{SCHEMA_FILE}: the module description takes {} bytes, more than the \
             {MAX_FILE_BYTES} one may",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Records `schema` as the description of the module hashed `module_hash`,
/// replacing the file durably.
pub(crate) fn record(
    dir: &dyn Directory,
    module_hash: [u8; 32],
    schema: &ModuleSchema,
) -> Result<(), StorageError> {
    super::write_durably(dir, "", SCHEMA_FILE, &encode(module_hash, schema)?)
}

/// What [`check`] found: how far the stored rows can be trusted, and the
/// description to record once the database is recovered, if the file does
/// not hold it already.
pub(crate) struct SchemaCheck {
    /// How far the stored rows can be trusted.
    pub(crate) trust: SchemaTrust,
    /// The file's new content, to write with [`record_checked`] once
    /// recovery succeeds (a recovery that fails changes nothing).
    to_record: Option<Vec<u8>>,
}

/// Checks that `schema`, what the module hashed `module_hash` describes
/// now, is what it described when it became the database's module
/// ([`SchemaTrust::Recorded`]). If the file is missing or belongs to
/// another module, the rows are [`SchemaTrust::Unproven`] (validated
/// against `schema` as they are read), and `schema` is to be recorded.
pub(crate) fn check(
    dir: &dyn Directory,
    module_hash: [u8; 32],
    schema: &ModuleSchema,
) -> Result<SchemaCheck, StorageError> {
    let expected = encode(module_hash, schema)?;
    let checked = |trust, to_record| SchemaCheck { trust, to_record };
    if let Some(stored) = read(dir)? {
        if stored == expected {
            return Ok(checked(SchemaTrust::Recorded, None));
        }
        let stored: StoredSchema =
            serde_json::from_slice(&stored).map_err(|e| StorageError::Corrupt {
                file: SCHEMA_FILE.into(),
                offset: byte_offset(&stored, e.line(), e.column()),
                reason: format!(
                    "it is not a module description ({e}), and not the one the module gives \
                     now; remove it to record the current module's schema again"
                ),
            })?;
        if stored.module_sha256 == hex(&module_hash) {
            if stored.schema == *schema {
                // The same description, written differently.
                return Ok(checked(SchemaTrust::Recorded, None));
            }
            if stored.schema.tables != schema.tables {
                return Err(StorageError::DescribeChanged(differences(
                    &stored.schema,
                    schema,
                )));
            }
            // The same tables: the stored rows fit them; only reducers,
            // procedures or schedules differ, which a swap would change freely.
            tracing::warn!(
                "{}; the tables are the same, so the database starts with the new description",
                differences(&stored.schema, schema)
            );
            return Ok(checked(SchemaTrust::Recorded, Some(expected)));
        }
        tracing::warn!(
            "{SCHEMA_FILE} describes another module than module.wasm (a swap cut short, or an \
             edited file); validating every stored row against this module's schema, which is \
             recorded once the database is recovered"
        );
    }
    Ok(checked(SchemaTrust::Unproven, Some(expected)))
}

/// Records what [`check`] found to record, if anything; a failure (a full
/// disk) is only logged, as the database can serve without the record and
/// the next start tries again.
pub(crate) fn record_checked(dir: &dyn Directory, checked: &SchemaCheck) {
    let Some(bytes) = &checked.to_record else {
        return;
    };
    if let Err(e) = super::write_durably(dir, "", SCHEMA_FILE, bytes) {
        tracing::warn!("could not record the module's schema in {SCHEMA_FILE}: {e}");
    }
}

/// The SHA-256, in hex, of the module `schema.json` was written for, if
/// the file exists and reads back.
pub(crate) fn recorded_module(dir: &dyn Directory) -> Result<Option<String>, StorageError> {
    Ok(read(dir)?
        .and_then(|bytes| serde_json::from_slice::<StoredSchema>(&bytes).ok())
        .map(|stored| stored.module_sha256))
}

/// The file's bytes, if it exists; refuses one too large to be Worldline's.
fn read(dir: &dyn Directory) -> Result<Option<Vec<u8>>, StorageError> {
    let io = |e| StorageError::io(format!("reading {SCHEMA_FILE}"), e);
    let too_large = |len: u64| StorageError::Corrupt {
        file: SCHEMA_FILE.into(),
        offset: 0,
        reason: format!(
            "it holds {len} bytes, more than the {MAX_FILE_BYTES} a module description \
             can take; remove it to record the current module's schema again"
        ),
    };
    let len = match dir.size(SCHEMA_FILE) {
        Ok(len) => len,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if len > MAX_FILE_BYTES {
        return Err(too_large(len));
    }
    // Read no more than the limit allows, should the file grow meanwhile.
    let bytes = dir
        .read_head(SCHEMA_FILE, MAX_FILE_BYTES as usize + 1)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

/// What differs between `published`, the stored description, and `now`,
/// in the words of a hot swap's plan, or a general remark when the
/// difference is one a swap does not list (an order, a procedure, a
/// schedule).
fn differences(published: &ModuleSchema, now: &ModuleSchema) -> String {
    let changes = describe_changes(published, now)
        .unwrap_or_else(|| crate::database::UNLISTED_DIFFERENCE.to_owned());
    format!(
        "the module's `describe` now returns another schema than it did when the module was \
         published or swapped in (kept in {SCHEMA_FILE}); `describe` must be deterministic, as \
         the stored rows were written for the schema it returned then. What changed:\n{}",
        changes.trim_end()
    )
}

/// The byte offset of 1-based `line` and `column` in `text` (0 if past it).
fn byte_offset(text: &[u8], line: usize, column: usize) -> u64 {
    let line_start = match line {
        0 | 1 => Some(0),
        _ => text
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .nth(line - 2)
            .map(|(at, _)| at + 1),
    };
    line_start.map_or(0, |start| (start + column.saturating_sub(1)) as u64)
}
