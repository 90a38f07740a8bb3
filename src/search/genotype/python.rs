//! The upstream Python form of a genotype, the namedtuple repr the PyTorch repositories print
//! and read: writing it, and reading it back (what they print, or what people write by hand:
//! keyword arguments in any order, lists or tuples, `range(a, b)`, trailing commas).

use super::pyliteral::{self, Problem, Reader, Tok};
use super::Genotype;
use crate::error::{Error, Result};

impl Genotype {
    /// The upstream namedtuple repr, e.g.
    /// `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`.
    pub fn to_python(&self) -> String {
        fn genes(g: &[(String, usize)]) -> String {
            let items: Vec<String> = g.iter().map(|(op, j)| format!("('{op}', {j})")).collect();
            format!("[{}]", items.join(", "))
        }
        fn ints(v: &[usize]) -> String {
            let items: Vec<String> = v.iter().map(|i| i.to_string()).collect();
            format!("[{}]", items.join(", "))
        }
        format!(
            "Genotype(normal={}, normal_concat={}, reduce={}, reduce_concat={})",
            genes(&self.normal),
            ints(&self.normal_concat),
            genes(&self.reduce),
            ints(&self.reduce_concat)
        )
    }
}

/// Reads `Genotype(...)` (not yet validated).
pub(super) fn read(src: &str) -> Result<Genotype> {
    let f = fields(src).map_err(|e| {
        let msg = match e.problem {
            // A genotype's strings are op names; say so.
            Problem::UnexpectedChar(ch) => format!(
                "unexpected character '{ch}' (expected names, quoted op names, non-negative \
                 integers and ( ) [ ] , =)"
            ),
            ref p => p.to_string(),
        };
        Error::Invalid(format!(
            "genotype string at line {}, column {}: {msg}",
            e.line, e.column
        ))
    })?;
    Ok(Genotype {
        normal: required(f.normal, "normal")?,
        normal_concat: required(f.normal_concat, "normal_concat")?,
        reduce: required(f.reduce, "reduce")?,
        reduce_concat: required(f.reduce_concat, "reduce_concat")?,
    })
}

/// The keyword arguments given, each at most once.
#[derive(Default)]
struct Fields {
    normal: Option<Vec<(String, usize)>>,
    normal_concat: Option<Vec<usize>>,
    reduce: Option<Vec<(String, usize)>>,
    reduce_concat: Option<Vec<usize>>,
}

fn fields(src: &str) -> pyliteral::Result<Fields> {
    let mut r = Reader::new(src)?;
    match r.next() {
        (Tok::Ident(s), _) if s == "Genotype" => {}
        (_, pos) => return Err(r.expected(pos, "'Genotype('")),
    }
    r.punct('(')?;
    let mut f = Fields::default();
    while !r.eat(')') {
        let (name, pos) = r.ident(
            "a keyword argument (normal=, normal_concat=, reduce=, reduce_concat=) or ')'",
        )?;
        r.punct('=')?;
        let dup = match name.as_str() {
            "normal" => f.normal.replace(genes(&mut r)?).is_some(),
            "reduce" => f.reduce.replace(genes(&mut r)?).is_some(),
            "normal_concat" => f.normal_concat.replace(concat(&mut r)?).is_some(),
            "reduce_concat" => f.reduce_concat.replace(concat(&mut r)?).is_some(),
            _ => {
                return Err(r.error(
                    pos,
                    format!(
                        "unknown field '{name}'; the fields are normal, normal_concat, reduce, \
                         reduce_concat"
                    ),
                ))
            }
        };
        if dup {
            return Err(r.error(pos, format!("field '{name}' given twice")));
        }
        if r.list_end(')')? {
            break;
        }
    }
    r.finish("'Genotype(...)'")?;
    Ok(f)
}

/// `[('op', j), ...]`; pairs may also be written as lists.
fn genes(r: &mut Reader) -> pyliteral::Result<Vec<(String, usize)>> {
    r.punct('[')?;
    let mut out = Vec::new();
    while !r.eat(']') {
        let close = match r.next() {
            (Tok::Punct('('), _) => ')',
            (Tok::Punct('['), _) => ']',
            (_, pos) => return Err(r.expected(pos, "an (op, input) pair like ('sep_conv_3x3', 0)")),
        };
        let op = r.string("a quoted op name like 'sep_conv_3x3'")?;
        r.punct(',')?;
        let j = r.int("an input index (non-negative integer)")?;
        r.eat(',');
        r.punct(close)?;
        out.push((op, j));
        if r.list_end(']')? {
            break;
        }
    }
    Ok(out)
}

/// `[2, 3, 4, 5]`, `(2, 3, 4, 5)` or `range(2, 6)` / `range(6)`.
fn concat(r: &mut Reader) -> pyliteral::Result<Vec<usize>> {
    let close = match r.next() {
        (Tok::Punct('['), _) => ']',
        (Tok::Punct('('), _) => ')',
        (Tok::Ident(s), _) if s == "range" => return range(r),
        (_, pos) => return Err(r.expected(pos, "a list like [2, 3, 4, 5] or range(2, 6)")),
    };
    let mut out = Vec::new();
    while !r.eat(close) {
        out.push(r.int("a state index (non-negative integer)")?);
        if r.list_end(close)? {
            break;
        }
    }
    Ok(out)
}

/// The `(a, b)` or `(b)` after `range`.
fn range(r: &mut Reader) -> pyliteral::Result<Vec<usize>> {
    let pos = r.pos();
    r.punct('(')?;
    let a = r.int("range bounds (non-negative integers)")?;
    let (start, end) = if r.eat(',') {
        (a, r.int("range bounds (non-negative integers)")?)
    } else {
        (0, a)
    };
    r.eat(',');
    r.punct(')')?;
    // Cells have a handful of nodes; refuse absurd ranges instead of allocating them.
    if end.saturating_sub(start) > 1024 {
        return Err(r.error(
            pos,
            format!("range({start}, {end}) is far longer than any cell"),
        ));
    }
    Ok((start..end).collect())
}

fn required<T>(v: Option<T>, name: &str) -> Result<T> {
    v.ok_or_else(|| {
        Error::Invalid(format!(
            "genotype string: field '{name}' is missing (need normal, normal_concat, reduce, \
             reduce_concat)"
        ))
    })
}
