//! Tables of columns: each column is data (its header, width, alignment, and how a row becomes
//! its cell), so that a report's table is a list rather than a sequence of format strings.

use std::io::{self, Write};

/// Which side of its width a cell keeps to.
#[derive(Clone, Copy, Debug)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// One column of a table of rows `R`, shown with context `C` (the settings the labels need).
pub struct Column<C: ?Sized, R: ?Sized> {
    /// The header.
    pub header: &'static str,
    /// Spaces between the previous column and this one (none before the first).
    pub gap: usize,
    /// The width the cell is padded to (0: as long as it is, for a last, free-form column).
    pub width: usize,
    /// Where the padding goes.
    pub align: Align,
    /// The cell of a row.
    pub value: fn(&C, &R) -> String,
}

impl<C: ?Sized, R: ?Sized> Column<C, R> {
    /// A column padded on the left (numbers).
    pub const fn right(header: &'static str, gap: usize, width: usize, value: fn(&C, &R) -> String) -> Self {
        Column { header, gap, width, align: Align::Right, value }
    }

    /// A column padded on the right (labels).
    pub const fn left(header: &'static str, gap: usize, width: usize, value: fn(&C, &R) -> String) -> Self {
        Column { header, gap, width, align: Align::Left, value }
    }
}

/// One line of the table: each column's text from `cell`, padded and separated.
fn line<C: ?Sized, R: ?Sized>(columns: &[Column<C, R>], cell: impl Fn(&Column<C, R>) -> String) -> String {
    let mut line = String::new();
    for column in columns {
        let text = cell(column);
        line.push_str(&" ".repeat(column.gap));
        match column.align {
            Align::Left => line.push_str(&format!("{text:<w$}", w = column.width)),
            Align::Right => line.push_str(&format!("{text:>w$}", w = column.width)),
        }
    }
    line
}

/// Writes the header line.
pub fn write_header<C: ?Sized, R: ?Sized>(out: &mut dyn Write, columns: &[Column<C, R>]) -> io::Result<()> {
    writeln!(out, "{}", line(columns, |c| c.header.to_owned()))
}

/// Writes the header, then one line per row, with a blank line wherever `group` changes between
/// two rows (the think time of the benchmarks' tables).
pub fn write_grouped<'r, C: ?Sized, R: 'r, K: PartialEq>(
    out: &mut dyn Write,
    columns: &[Column<C, R>],
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
        writeln!(out, "{}", line(columns, |c| (c.value)(context, row)))?;
        last = Some(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column<str, (u64, &str)>; 3] = [
        Column::right("n", 0, 4, |_, r| r.0.to_string()),
        Column::left("name", 2, 6, |unit, r| format!("{}{unit}", r.1)),
        Column::left("rest", 1, 0, |_, _| "…".to_owned()),
    ];

    #[test]
    fn columns_are_padded_separated_and_grouped() {
        let mut out = Vec::new();
        write_grouped(&mut out, &COLUMNS, "s", &[(1, "a"), (1, "b"), (20, "c")], |r| r.0).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "   n  name   rest\n   1  as     …\n   1  bs     …\n\n  20  cs     …\n"
        );
    }
}
