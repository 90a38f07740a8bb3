//! Reading Python literal and call expressions such as
//! `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6))`.
//!
//! The text is split into tokens up front; a [`Reader`] then walks them while the caller says
//! what it expects at each point. Driving the reader (rather than building a value tree first
//! and checking it afterwards) makes the error the first token that does not fit, in the
//! caller's words ("expected a quoted op name like 'sep_conv_3x3', found …"), with its line
//! and column; a tree would report a later, generic syntax error for the same input.

use std::fmt;

/// A token. Names are `[A-Za-z_][A-Za-z0-9_]*`; integers are non-negative (no sign token);
/// strings take either quote and end at the next quote of the same kind. Backslashes stay as
/// written (no escapes): the strings read here are op names, and an error about a mistyped
/// name shows exactly what was typed.
#[derive(Debug, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    Int(usize),
    /// One of `( ) [ ] , =`.
    Punct(char),
    End,
}

/// What went wrong; [`SyntaxError`] adds where.
#[derive(Debug, PartialEq)]
pub(super) enum Problem {
    UnexpectedChar(char),
    /// The opening quote that is never closed.
    UnterminatedString(char),
    NumberTooLarge(String),
    /// `found` is the text at the position (up to 20 characters, quoted) or "end of input".
    Expected {
        expected: String,
        found: String,
    },
    /// A reader's own complaint (unknown or repeated keyword, out-of-range value…).
    Other(String),
}

/// A problem at a byte offset of the source, with its 1-based line and column (columns count
/// characters, not bytes).
#[derive(Debug, PartialEq)]
pub(super) struct SyntaxError {
    pub pos: usize,
    pub line: usize,
    pub column: usize,
    pub problem: Problem,
}

impl SyntaxError {
    fn new(src: &str, pos: usize, problem: Problem) -> SyntaxError {
        let before = &src[..pos.min(src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        SyntaxError {
            pos,
            line,
            column,
            problem,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnexpectedChar(ch) => write!(
                f,
                "unexpected character '{ch}' (expected names, quoted strings, non-negative \
                 integers and ( ) [ ] , =)"
            ),
            Problem::UnterminatedString(q) => {
                write!(f, "unterminated string (no closing {q})")
            }
            Problem::NumberTooLarge(n) => write!(f, "number '{n}' is too large"),
            Problem::Expected { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            Problem::Other(msg) => f.write_str(msg),
        }
    }
}

impl fmt::Display for SyntaxError {
    /// `at line L, column C: <problem>`, for the caller to prefix with what was being read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at line {}, column {}: {}",
            self.line, self.column, self.problem
        )
    }
}

pub(super) type Result<T> = std::result::Result<T, SyntaxError>;

/// A cursor over the tokens of one source string. Reading past the end keeps returning
/// [`Tok::End`], so callers need no bounds checks.
pub(super) struct Reader<'a> {
    src: &'a str,
    /// Each token with its byte offset; always ends with `End`.
    toks: Vec<(Tok, usize)>,
    i: usize,
}

impl<'a> Reader<'a> {
    /// Splits `src` into tokens; fails on the first character no token can start with, an
    /// unterminated string, or an integer beyond `usize`.
    pub fn new(src: &'a str) -> Result<Reader<'a>> {
        let b = src.as_bytes();
        let mut toks = Vec::new();
        let mut p = 0;
        while p < b.len() {
            let c = b[p];
            let start = p;
            if c.is_ascii_whitespace() {
                p += 1;
            } else if c.is_ascii_alphabetic() || c == b'_' {
                while p < b.len() && (b[p].is_ascii_alphanumeric() || b[p] == b'_') {
                    p += 1;
                }
                toks.push((Tok::Ident(src[start..p].to_string()), start));
            } else if c.is_ascii_digit() {
                while p < b.len() && b[p].is_ascii_digit() {
                    p += 1;
                }
                let digits = &src[start..p];
                let n = digits.parse::<usize>().map_err(|_| {
                    SyntaxError::new(src, start, Problem::NumberTooLarge(digits.to_string()))
                })?;
                toks.push((Tok::Int(n), start));
            } else if c == b'\'' || c == b'"' {
                p += 1;
                while p < b.len() && b[p] != c {
                    p += 1;
                }
                if p == b.len() {
                    return Err(SyntaxError::new(
                        src,
                        start,
                        Problem::UnterminatedString(c as char),
                    ));
                }
                toks.push((Tok::Str(src[start + 1..p].to_string()), start));
                p += 1;
            } else if b"()[],=".contains(&c) {
                toks.push((Tok::Punct(c as char), start));
                p += 1;
            } else {
                let ch = src[start..].chars().next().unwrap_or('?');
                return Err(SyntaxError::new(src, start, Problem::UnexpectedChar(ch)));
            }
        }
        toks.push((Tok::End, src.len()));
        Ok(Reader { src, toks, i: 0 })
    }

    /// The next token, not consumed.
    pub fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }

    /// Byte offset of the next token.
    pub fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].1
    }

    /// Consumes the next token; returns it with its byte offset.
    pub fn next(&mut self) -> (&Tok, usize) {
        let k = self.i.min(self.toks.len() - 1);
        self.i += 1;
        (&self.toks[k].0, self.toks[k].1)
    }

    /// Consumes the punctuation `c` if it comes next.
    pub fn eat(&mut self, c: char) -> bool {
        let hit = *self.peek() == Tok::Punct(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    /// Consumes the punctuation `c`, or fails with "expected 'c'".
    pub fn punct(&mut self, c: char) -> Result<()> {
        match self.next() {
            (Tok::Punct(d), _) if *d == c => Ok(()),
            (_, pos) => Err(self.expected(pos, &format!("'{c}'"))),
        }
    }

    /// After a list item: consumes `,` (more may follow: false) or `close` (done: true).
    /// With `while !r.eat(close) { item; if r.list_end(close)? { break } }` this reads
    /// Python's item lists, trailing comma included.
    pub fn list_end(&mut self, close: char) -> Result<bool> {
        match self.next() {
            (Tok::Punct(','), _) => Ok(false),
            (Tok::Punct(c), _) if *c == close => Ok(true),
            (_, pos) => Err(self.expected(pos, &format!("',' or '{close}'"))),
        }
    }

    /// Consumes an integer; `what` describes it in the error.
    pub fn int(&mut self, what: &str) -> Result<usize> {
        match self.next() {
            (Tok::Int(n), _) => Ok(*n),
            (_, pos) => Err(self.expected(pos, what)),
        }
    }

    /// Consumes a quoted string; `what` describes it in the error.
    pub fn string(&mut self, what: &str) -> Result<String> {
        match self.next() {
            (Tok::Str(s), _) => Ok(s.clone()),
            (_, pos) => Err(self.expected(pos, what)),
        }
    }

    /// Consumes a name, returned with its byte offset; `what` describes it in the error.
    pub fn ident(&mut self, what: &str) -> Result<(String, usize)> {
        match self.next() {
            (Tok::Ident(s), pos) => Ok((s.clone(), pos)),
            (_, pos) => Err(self.expected(pos, what)),
        }
    }

    /// Succeeds if every token has been read; `after` names what was read, for the error.
    pub fn finish(&mut self, after: &str) -> Result<()> {
        match self.next() {
            (Tok::End, _) => Ok(()),
            (_, pos) => Err(self.expected(pos, &format!("end of input after {after}"))),
        }
    }

    /// "expected `what`, found <the source text at `pos`>".
    pub fn expected(&self, pos: usize, what: &str) -> SyntaxError {
        let found: String = self.src[pos..].chars().take(20).collect();
        let found = if found.is_empty() {
            "end of input".to_string()
        } else {
            format!("'{found}'")
        };
        let expected = what.to_string();
        SyntaxError::new(self.src, pos, Problem::Expected { expected, found })
    }

    /// The caller's own complaint `msg` about the token at `pos`.
    pub fn error(&self, pos: usize, msg: String) -> SyntaxError {
        SyntaxError::new(self.src, pos, Problem::Other(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(src: &str) -> Vec<(Tok, usize)> {
        let mut r = Reader::new(src).unwrap();
        let mut out = Vec::new();
        loop {
            let (t, pos) = r.next();
            let end = *t == Tok::End;
            out.push((
                match t {
                    Tok::Ident(s) => Tok::Ident(s.clone()),
                    Tok::Str(s) => Tok::Str(s.clone()),
                    Tok::Int(n) => Tok::Int(*n),
                    Tok::Punct(c) => Tok::Punct(*c),
                    Tok::End => Tok::End,
                },
                pos,
            ));
            if end {
                return out;
            }
        }
    }

    fn string(src: &str) -> String {
        match tokens(src).remove(0).0 {
            Tok::Str(s) => s,
            t => panic!("{src}: expected a string, got {t:?}"),
        }
    }

    fn lex_err(src: &str) -> String {
        match Reader::new(src) {
            Ok(_) => panic!("{src}: expected a tokenizer error"),
            Err(e) => e.to_string(),
        }
    }

    /// A value tree, read the way a caller drives the reader: enough of Python's literal
    /// syntax to exercise nesting, calls and keyword arguments.
    #[derive(Debug, PartialEq)]
    enum V {
        Int(usize),
        Str(String),
        Name(String),
        List(Vec<V>),
        Tuple(Vec<V>),
        Call(String, Vec<(Option<String>, V)>),
    }

    fn value(r: &mut Reader) -> Result<V> {
        let (close, tuple) = match r.next() {
            (Tok::Int(n), _) => return Ok(V::Int(*n)),
            (Tok::Str(s), _) => return Ok(V::Str(s.clone())),
            (Tok::Ident(s), _) => {
                let name = s.clone();
                if !r.eat('(') {
                    return Ok(V::Name(name));
                }
                let mut args = Vec::new();
                while !r.eat(')') {
                    // `key=value` needs two tokens of lookahead: a name, then '='.
                    let at = r.i;
                    let key = match r.next() {
                        (Tok::Ident(k), _) => Some(k.clone()),
                        _ => None,
                    };
                    let key = if key.is_some() && r.eat('=') {
                        key
                    } else {
                        r.i = at;
                        None
                    };
                    args.push((key, value(r)?));
                    if r.list_end(')')? {
                        break;
                    }
                }
                return Ok(V::Call(name, args));
            }
            (Tok::Punct('['), _) => (']', false),
            (Tok::Punct('('), _) => (')', true),
            (_, pos) => return Err(r.expected(pos, "a value")),
        };
        let mut items = Vec::new();
        while !r.eat(close) {
            items.push(value(r)?);
            if r.list_end(close)? {
                break;
            }
        }
        Ok(if tuple {
            V::Tuple(items)
        } else {
            V::List(items)
        })
    }

    fn read(src: &str) -> Result<V> {
        let mut r = Reader::new(src)?;
        let v = value(&mut r)?;
        r.finish("the value")?;
        Ok(v)
    }

    fn read_err(src: &str) -> String {
        match read(src) {
            Ok(v) => panic!("{src}: expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn tokens_with_offsets() {
        use Tok::*;
        assert_eq!(
            tokens("Genotype(normal=[('a_1', 0)], n=range(2, 16),)"),
            vec![
                (Ident("Genotype".into()), 0),
                (Punct('('), 8),
                (Ident("normal".into()), 9),
                (Punct('='), 15),
                (Punct('['), 16),
                (Punct('('), 17),
                (Str("a_1".into()), 18),
                (Punct(','), 23),
                (Int(0), 25),
                (Punct(')'), 26),
                (Punct(']'), 27),
                (Punct(','), 28),
                (Ident("n".into()), 30),
                (Punct('='), 31),
                (Ident("range".into()), 32),
                (Punct('('), 37),
                (Int(2), 38),
                (Punct(','), 39),
                (Int(16), 41),
                (Punct(')'), 43),
                (Punct(','), 44),
                (Punct(')'), 45),
                (End, 46),
            ]
        );
        // Whitespace of any kind only separates; names may start with '_' and hold digits.
        assert_eq!(
            tokens(" \t_x9\r\n\n 007 "),
            vec![(Ident("_x9".into()), 2), (Int(7), 9), (End, 13)]
        );
        assert_eq!(tokens(""), vec![(End, 0)]);
    }

    #[test]
    fn reading_past_the_end_stays_at_end() {
        let mut r = Reader::new("x").unwrap();
        assert_eq!(r.next().0, &Tok::Ident("x".into()));
        for _ in 0..3 {
            assert_eq!(r.peek(), &Tok::End);
            assert_eq!(r.pos(), 1);
            assert_eq!(r.next(), (&Tok::End, 1));
        }
        assert!(!r.eat(')'));
        r.finish("x").unwrap();
    }

    #[test]
    fn strings_both_quotes_and_backslashes() {
        assert_eq!(string("'sep_conv_3x3'"), "sep_conv_3x3");
        assert_eq!(string("\"sep_conv_3x3\""), "sep_conv_3x3");
        assert_eq!(string("''"), "");
        // The other quote needs no escape.
        assert_eq!(string("'say \"hi\"'"), "say \"hi\"");
        assert_eq!(string("\"it's\""), "it's");
        assert_eq!(string("'δ-op'"), "δ-op");
        // Backslashes are literal: no escape sequences, and one does not hide the closing
        // quote.
        assert_eq!(string(r"'a\nb\tc'"), r"a\nb\tc");
        assert_eq!(string(r"'a\\b'"), r"a\\b");
        assert_eq!(
            tokens(r"'a\' 1"),
            vec![(Tok::Str(r"a\".into()), 0), (Tok::Int(1), 5), (Tok::End, 6)]
        );
    }

    #[test]
    fn nested_lists_tuples_and_calls() {
        use V::*;
        assert_eq!(
            read("[('a', 0), [\"b\", 1], (), [], ((2,),)]").unwrap(),
            List(vec![
                Tuple(vec![Str("a".into()), Int(0)]),
                List(vec![Str("b".into()), Int(1)]),
                Tuple(vec![]),
                List(vec![]),
                Tuple(vec![Tuple(vec![Int(2)])]),
            ])
        );
        assert_eq!(
            read("range(2, 6)").unwrap(),
            Call("range".into(), vec![(None, Int(2)), (None, Int(6))])
        );
        // Keyword arguments, trailing commas, newlines and indentation anywhere.
        let src = "G(\n  x = [1, 2,],\n  y=range(6),\n  None,\n)\n";
        assert_eq!(
            read(src).unwrap(),
            Call(
                "G".into(),
                vec![
                    (Some("x".into()), List(vec![Int(1), Int(2)])),
                    (Some("y".into()), Call("range".into(), vec![(None, Int(6))])),
                    (None, Name("None".into())),
                ]
            )
        );
    }

    #[test]
    fn tokenizer_errors_name_the_position() {
        assert_eq!(
            lex_err("[1, -2]"),
            "at line 1, column 5: unexpected character '-' (expected names, quoted strings, \
             non-negative integers and ( ) [ ] , =)"
        );
        // Columns count characters, not bytes; the whole character is shown.
        assert!(
            lex_err("('é', 1)\n ('ü', 2) €")
                .starts_with("at line 2, column 11: unexpected character '€'"),
            "{}",
            lex_err("('é', 1)\n ('ü', 2) €")
        );
        assert_eq!(
            lex_err("[1,\n  'abc)]"),
            "at line 2, column 3: unterminated string (no closing ')"
        );
        assert_eq!(
            lex_err("x = \"abc'"),
            "at line 1, column 5: unterminated string (no closing \")"
        );
        // Only the same quote closes a string.
        assert!(lex_err("'abc\"").contains("column 1: unterminated string (no closing ')"));
        assert_eq!(
            lex_err("[99999999999999999999999]"),
            "at line 1, column 2: number '99999999999999999999999' is too large"
        );
        let e = Reader::new("\n\n  ;").err().unwrap();
        assert_eq!((e.pos, e.line, e.column), (4, 3, 3));
        assert_eq!(e.problem, Problem::UnexpectedChar(';'));
    }

    #[test]
    fn expectation_errors_name_the_position_and_what_was_found() {
        let mut r = Reader::new("(1 2").unwrap();
        r.punct('(').unwrap();
        assert_eq!(r.int("a count").unwrap(), 1);
        assert_eq!(
            r.list_end(')').unwrap_err().to_string(),
            "at line 1, column 4: expected ',' or ')', found '2'"
        );
        assert_eq!(
            r.punct(')').unwrap_err().to_string(),
            "at line 1, column 5: expected ')', found end of input"
        );

        let mut r = Reader::new("x 'y' 3 [").unwrap();
        assert_eq!(
            r.int("a count").unwrap_err().to_string(),
            "at line 1, column 1: expected a count, found 'x 'y' 3 ['"
        );
        assert_eq!(
            r.ident("a name").unwrap_err().to_string(),
            "at line 1, column 3: expected a name, found ''y' 3 ['"
        );
        assert_eq!(
            r.string("a quoted name").unwrap_err().to_string(),
            "at line 1, column 7: expected a quoted name, found '3 ['"
        );
        assert_eq!(
            r.finish("'x'").unwrap_err().to_string(),
            "at line 1, column 9: expected end of input after 'x', found '['"
        );

        // "found" shows at most 20 characters.
        let mut r = Reader::new("\n  abcdefghijklmnopqrstuvwxyz").unwrap();
        let e = r.int("an int").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at line 2, column 3: expected an int, found 'abcdefghijklmnopqrst'"
        );
        assert_eq!(
            e.problem,
            Problem::Expected {
                expected: "an int".into(),
                found: "'abcdefghijklmnopqrst'".into()
            }
        );

        let mut r = Reader::new("a\nbb = 1").unwrap();
        r.next();
        let (_, pos) = r.ident("a key").unwrap();
        assert_eq!(
            r.error(pos, "key 'bb' given twice".into()).to_string(),
            "at line 2, column 1: key 'bb' given twice"
        );
    }

    #[test]
    fn value_reader_errors() {
        assert_eq!(
            read_err("[1, 2"),
            "at line 1, column 6: expected ',' or ']', found end of input"
        );
        assert_eq!(
            read_err("[1, 2) "),
            "at line 1, column 6: expected ',' or ']', found ') '"
        );
        assert_eq!(
            read_err("f(x=)"),
            "at line 1, column 5: expected a value, found ')'"
        );
        assert_eq!(
            read_err("(1,) (2,)"),
            "at line 1, column 6: expected end of input after the value, found '(2,)'"
        );
        assert_eq!(
            read_err("[,]"),
            "at line 1, column 2: expected a value, found ',]'"
        );
    }
}
