//! Reading the columns a table needs (index keys and auto-increment
//! columns) out of row bytes, while validating the other columns without
//! building their values.

use std::ops::Range;

use crate::codec::{DecodeError, decode_value, encode_value, skip_value};
use crate::schema::ProductType;
use crate::value::Value;

/// A kept column of a decoded row: its value and where its bytes are.
#[derive(Debug)]
pub(crate) struct Column {
    /// The decoded value.
    pub(crate) value: Value,
    /// The byte range of the value in the row.
    pub(crate) span: Range<usize>,
}

/// Which columns of a table's rows are kept when decoding. Kept columns are
/// addressed by *slot*: their position among the kept columns.
#[derive(Debug)]
pub(crate) struct RowShape {
    columns: ProductType,
    kept: Vec<bool>,
    slots: usize,
}

impl RowShape {
    /// A shape keeping the columns at positions `kept` (out-of-range positions are ignored).
    pub(crate) fn new(columns: ProductType, kept: impl IntoIterator<Item = usize>) -> Self {
        let mut flags = vec![false; columns.fields.len()];
        for column in kept {
            if let Some(flag) = flags.get_mut(column) {
                *flag = true;
            }
        }
        let slots = flags.iter().filter(|&&k| k).count();
        Self {
            columns,
            kept: flags,
            slots,
        }
    }

    /// The slot of column `column`, which must be kept.
    pub(crate) fn slot(&self, column: usize) -> usize {
        self.kept[..column].iter().filter(|&&k| k).count()
    }

    /// Validates a whole row and returns its kept columns, by slot.
    #[cfg(test)]
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Vec<Column>, DecodeError> {
        let mut columns = Vec::with_capacity(self.slots);
        self.decode_into(bytes, &mut columns)?;
        Ok(columns)
    }

    /// Like [`RowShape::decode`], into `columns` (which must be empty), so
    /// that a buffer can be reused.
    pub(crate) fn decode_into(
        &self,
        bytes: &[u8],
        columns: &mut Vec<Column>,
    ) -> Result<(), DecodeError> {
        self.decode_columns(bytes, columns, false)
    }

    /// The kept columns of a row that was validated before (a stored row,
    /// or one from a checksummed log record or snapshot), into `columns`
    /// (appended to it): the columns after the last kept one are not
    /// read at all, nor checked.
    pub(crate) fn decode_validated(
        &self,
        bytes: &[u8],
        columns: &mut Vec<Column>,
    ) -> Result<(), DecodeError> {
        self.decode_columns(bytes, columns, true)
    }

    fn decode_columns(
        &self,
        bytes: &[u8],
        columns: &mut Vec<Column>,
        validated: bool,
    ) -> Result<(), DecodeError> {
        let mut input = bytes;
        let done = columns.len() + self.slots;
        for (position, (field, &kept)) in self.columns.fields.iter().zip(&self.kept).enumerate() {
            if validated && columns.len() == done {
                return Ok(());
            }
            let start = bytes.len() - input.len();
            let in_column =
                |e: DecodeError| e.in_field(field.name.as_deref(), position).in_columns();
            if kept {
                let value = decode_value(&field.ty, &mut input).map_err(in_column)?;
                let span = start..bytes.len() - input.len();
                columns.push(Column { value, span });
            } else {
                skip_value(&field.ty, &mut input).map_err(in_column)?;
            }
        }
        if !validated && !input.is_empty() {
            return Err(DecodeError::trailing(input.len(), "column"));
        }
        Ok(())
    }

    /// `bytes` (the row `columns` was decoded from) with the columns at
    /// `slots` (ascending) re-encoded from their current values.
    pub(crate) fn splice(bytes: &[u8], columns: &[Column], slots: &[usize]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 8 * slots.len());
        let mut copied = 0;
        for column in slots.iter().filter_map(|&slot| columns.get(slot)) {
            out.extend_from_slice(&bytes[copied..column.span.start]);
            encode_value(&column.value, &mut out);
            copied = column.span.end;
        }
        out.extend_from_slice(&bytes[copied..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{AlgebraicType, Field};

    fn shape() -> RowShape {
        let column = |name: &str, ty| Field {
            name: Some(name.into()),
            ty,
        };
        let columns = ProductType {
            fields: vec![
                column("name", AlgebraicType::String),
                column("id", AlgebraicType::U64),
                column("note", AlgebraicType::String),
                column("n", AlgebraicType::I32),
            ],
        };
        RowShape::new(columns, [3, 1])
    }

    #[test]
    fn keeps_only_the_asked_columns_and_splices_them() {
        let shape = shape();
        assert_eq!((shape.slot(1), shape.slot(3)), (0, 1));
        let row = [2, b'a', b'b', 0, 1, b'x', 4];
        let mut columns = shape.decode(&row).unwrap();
        let values: Vec<&Value> = columns.iter().map(|c| &c.value).collect();
        assert_eq!(values, [&Value::U64(0), &Value::I32(2)]);
        assert_eq!(columns[0].span, 3..4);
        columns[0].value = Value::U64(300);
        assert_eq!(
            RowShape::splice(&row, &columns, &[0, 1]),
            [2, b'a', b'b', 0xAC, 0x02, 1, b'x', 4]
        );
    }

    #[test]
    fn validates_the_columns_it_skips() {
        let shape = shape();
        let err = shape.decode(&[2, b'a', 0xff, 0, 1, b'x', 4]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("column \"name\": expected string, invalid UTF-8"),
            "{err}"
        );
        let err = shape.decode(&[0, 0, 0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"n\": expected i32, input ended inside a varint"
        );
        let err = shape.decode(&[0, 0, 0, 0, 7, 7]).unwrap_err();
        assert_eq!(err.to_string(), "trailing 2 bytes after the last column");
    }

    #[test]
    fn a_validated_row_is_read_only_up_to_its_last_kept_column() {
        let shape = RowShape::new(shape().columns.clone(), [1]);
        // "note" holds invalid UTF-8 and "n" is missing: never read.
        let row = [2, b'a', b'b', 5, 1, 0xff];
        let mut columns = Vec::new();
        shape.decode_validated(&row, &mut columns).unwrap();
        assert_eq!(columns[0].value, Value::U64(5));
        assert_eq!(columns[0].span, 3..4);
        columns.clear();
        assert!(shape.decode_into(&row, &mut columns).is_err());
    }
}
