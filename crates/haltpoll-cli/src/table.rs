//! Tables of columns: each column is data (the space before it, its header, width, alignment,
//! and how a row becomes its cell), so that a report's table is a list rather than a sequence
//! of format strings, a column is added or moved in one place, and the header and the rows
//! cannot disagree.

use std::io::{self, Write};

/// Which side of its width a cell keeps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// One column of a table of rows `R`, shown with context `C` (the settings some labels need;
/// `()` for a table whose cells need only their row).
pub struct Column<R: ?Sized, C: ?Sized = ()> {
    /// The header.
    pub header: &'static str,
    /// Spaces before the cell (the first column's is the table's indent).
    pub gap: usize,
    /// The width the cell is padded to (0: as long as it is, for a last, free-form column).
    pub width: usize,
    /// Where the padding goes.
    pub align: Align,
    /// The cell of a row.
    pub cell: fn(&C, &R) -> String,
}

impl<R: ?Sized, C: ?Sized> Column<R, C> {
    /// A column padded on the left (numbers).
    pub const fn right(header: &'static str, gap: usize, width: usize, cell: fn(&C, &R) -> String) -> Self {
        Column { header, gap, width, align: Align::Right, cell }
    }

    /// A column padded on the right (labels).
    pub const fn left(header: &'static str, gap: usize, width: usize, cell: fn(&C, &R) -> String) -> Self {
        Column { header, gap, width, align: Align::Left, cell }
    }
}

/// One line of the table: each column's text from `text`, padded and separated.
fn line<R: ?Sized, C: ?Sized>(columns: &[Column<R, C>], text: impl Fn(&Column<R, C>) -> String) -> String {
    let mut line = String::new();
    for column in columns {
        let text = text(column);
        line.push_str(&" ".repeat(column.gap));
        match column.align {
            Align::Left => line.push_str(&format!("{text:<w$}", w = column.width)),
            Align::Right => line.push_str(&format!("{text:>w$}", w = column.width)),
        }
    }
    line
}

/// Writes the header line.
pub fn write_header<R: ?Sized, C: ?Sized>(out: &mut dyn Write, columns: &[Column<R, C>]) -> io::Result<()> {
    writeln!(out, "{}", line(columns, |c| c.header.to_owned()))
}

/// Writes `row` as a line of `columns`.
pub fn write_row<R: ?Sized>(out: &mut dyn Write, columns: &[Column<R>], row: &R) -> io::Result<()> {
    writeln!(out, "{}", line(columns, |c| (c.cell)(&(), row)))
}

/// Writes the header, then one line per row, with a blank line wherever `group` changes between
/// two rows (the think time of the benchmarks' tables).
#[cfg(feature = "bench")]
pub fn write_grouped<'r, R: 'r, C: ?Sized, K: PartialEq>(
    out: &mut dyn Write,
    columns: &[Column<R, C>],
    context: &C,
    rows: impl IntoIterator<Item = &'r R>,
    group: impl Fn(&R) -> K,
) -> io::Result<()> {
    write_header(out, columns)?;
    let mut last = None;
    for row in rows {
        let key = group(row);
        if last.as_ref().is_some_and(|k| *k != key) {
            writeln!(out)?;
        }
        writeln!(out, "{}", line(columns, |c| (c.cell)(context, row)))?;
        last = Some(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "bench")]
    const COLUMNS: [Column<(u64, &str), str>; 3] = [
        Column::right("n", 0, 4, |_, r| r.0.to_string()),
        Column::left("name", 2, 6, |unit, r| format!("{}{unit}", r.1)),
        Column::left("rest", 1, 0, |_, _| "…".to_owned()),
    ];

    #[cfg(feature = "bench")]
    #[test]
    fn columns_are_padded_separated_and_grouped() {
        let mut out = Vec::new();
        write_grouped(&mut out, &COLUMNS, "s", &[(1, "a"), (1, "b"), (20, "c")], |r| r.0).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "   n  name   rest\n   1  as     …\n   1  bs     …\n\n  20  cs     …\n"
        );
    }

    #[test]
    fn a_table_lines_up_its_header_and_rows() {
        let columns: [Column<(u32, &str)>; 2] =
            [Column::left("name", 2, 6, |_, r| r.1.to_owned()), Column::right("n", 1, 4, |_, r| r.0.to_string())];
        let mut out = Vec::new();
        write_header(&mut out, &columns).unwrap();
        write_row(&mut out, &columns, &(12, "busy")).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "  name      n\n  busy     12\n");
    }
}
