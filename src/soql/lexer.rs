//! Splits SOQL text into tokens with their byte positions. Keywords are recognised later, by the
//! parser, because SOQL keywords are case-insensitive and many are valid field names elsewhere.

use super::ast::Span;
use super::error::{ErrorCode, SoqlError};

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A name: keyword, object, field or relationship segment (dots are separate tokens).
    Word(String),
    /// A quoted string with escapes resolved.
    String(String),
    Number(String),
    Date(String),
    DateTime(String),
    LParen,
    RParen,
    Comma,
    Dot,
    Colon,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

impl Token {
    /// The token as Salesforce quotes it in `unexpected token: '…'`.
    pub fn text<'a>(&self, query: &'a str) -> &'a str {
        &query[self.span.start..self.span.end]
    }

    /// True when the token is the given keyword, ignoring case.
    pub fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.kind, TokenKind::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

pub fn tokenize(query: &str) -> Result<Vec<Token>, SoqlError> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let kind = match c {
            b'(' => single(&mut i, TokenKind::LParen),
            b')' => single(&mut i, TokenKind::RParen),
            b',' => single(&mut i, TokenKind::Comma),
            b'.' => single(&mut i, TokenKind::Dot),
            b':' => single(&mut i, TokenKind::Colon),
            b'=' => single(&mut i, TokenKind::Eq),
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                TokenKind::NotEq
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    TokenKind::LtEq
                }
                Some(b'>') => {
                    i += 2;
                    TokenKind::NotEq
                }
                _ => single(&mut i, TokenKind::Lt),
            },
            b'>' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    TokenKind::GtEq
                }
                _ => single(&mut i, TokenKind::Gt),
            },
            b'\'' => string_literal(query, &mut i)?,
            b'0'..=b'9' => number_or_date(query, &mut i),
            b'-' | b'+' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                match number_or_date(query, &mut i) {
                    TokenKind::Number(n) => TokenKind::Number(format!("{}{n}", c as char)),
                    _ => return Err(unexpected(query, start, i)),
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                TokenKind::Word(query[start..i].to_string())
            }
            _ => {
                let width = query[i..].chars().next().map_or(1, char::len_utf8);
                return Err(unexpected(query, start, start + width));
            }
        };
        tokens.push(Token {
            kind,
            span: Span { start, end: i },
        });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span {
            start: query.len(),
            end: query.len(),
        },
    });
    Ok(tokens)
}

fn single(i: &mut usize, kind: TokenKind) -> TokenKind {
    *i += 1;
    kind
}

fn unexpected(query: &str, start: usize, end: usize) -> SoqlError {
    SoqlError::new(
        ErrorCode::MalformedQuery,
        format!("unexpected token: '{}'", &query[start..end]),
        start,
    )
}

fn string_literal(query: &str, i: &mut usize) -> Result<TokenKind, SoqlError> {
    let start = *i;
    let mut out = String::new();
    let mut chars = query[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\'' => {
                *i = start + 1 + offset + 1;
                return Ok(TokenKind::String(out));
            }
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'b')) => out.push('\u{8}'),
                Some((_, 'f')) => out.push('\u{c}'),
                // LIKE wildcards stay escaped so the pattern matcher can tell them apart.
                Some((_, c @ ('%' | '_'))) => {
                    out.push('\\');
                    out.push(c);
                }
                Some((_, c @ ('\'' | '"' | '\\'))) => out.push(c),
                Some((pos, other)) => {
                    return Err(SoqlError::new(
                        ErrorCode::MalformedQuery,
                        format!("Invalid string literal '\\{other}'. Illegal character sequence '\\{other}' in string literal."),
                        start + 1 + pos,
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(SoqlError::new(
        ErrorCode::MalformedQuery,
        "unexpected token: <EOF>".to_string(),
        query.len(),
    )
    .with_hint("close the string with a single quote '"))
}

/// Numbers, dates (`2024-01-31`) and datetimes (`2024-01-31T10:00:00.000Z`, `…+01:00`).
fn number_or_date(query: &str, i: &mut usize) -> TokenKind {
    let bytes = query.as_bytes();
    let start = *i;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let whole = digits(i);
    let looks_like_date = whole == 4
        && bytes.get(*i) == Some(&b'-')
        && query.get(start..start + 10).is_some_and(|date| {
            date.bytes().enumerate().all(|(k, b)| {
                if k == 4 || k == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
        });
    if looks_like_date {
        *i = start + 10;
        let rest = &query[*i..];
        let time_len = datetime_suffix_len(rest);
        if time_len > 0 {
            *i += time_len;
            return TokenKind::DateTime(query[start..*i].to_string());
        }
        return TokenKind::Date(query[start..*i].to_string());
    }
    if bytes.get(*i) == Some(&b'.') && bytes.get(*i + 1).is_some_and(u8::is_ascii_digit) {
        *i += 1;
        digits(i);
    }
    TokenKind::Number(query[start..*i].to_string())
}

/// Length of `Thh:mm:ss[.fff](Z|±hh:mm|±hhmm)` at the start of `rest`, or 0.
fn datetime_suffix_len(rest: &str) -> usize {
    let b = rest.as_bytes();
    let is_digit = |k: usize| b.get(k).is_some_and(u8::is_ascii_digit);
    if b.first() != Some(&b'T')
        || !(is_digit(1) && is_digit(2) && b.get(3) == Some(&b':'))
        || !(is_digit(4) && is_digit(5) && b.get(6) == Some(&b':'))
        || !(is_digit(7) && is_digit(8))
    {
        return 0;
    }
    let mut k = 9;
    if b.get(k) == Some(&b'.') {
        k += 1;
        while is_digit(k) {
            k += 1;
        }
    }
    match b.get(k) {
        Some(b'Z') => k + 1,
        Some(b'+' | b'-') if is_digit(k + 1) && is_digit(k + 2) => {
            if b.get(k + 3) == Some(&b':') && is_digit(k + 4) && is_digit(k + 5) {
                k + 6
            } else if is_digit(k + 3) && is_digit(k + 4) {
                k + 5
            } else {
                0
            }
        }
        _ => 0,
    }
}
