//! Tokenizer and parser for `MERCURE_EXTRA_DIRECTIVES`: the Caddyfile
//! directives of the dunglas/mercure Caddy module, one per line, e.g.
//!
//! ```text
//! cors_origins https://example.com "https://other.example"
//! transport bolt {
//!     path /data/mercure.db
//!     size 1000
//! }
//! ```
//!
//! Lexing follows Caddy's `caddyconfig/caddyfile/lexer.go`:
//! - tokens are separated by whitespace; `\r` is ignored like any space, so
//!   `\r\n` input works, and a leading byte-order mark is skipped;
//! - a token starting with `"` runs to the next unescaped `"`; inside it
//!   only `\"` is an escape (every other backslash is kept verbatim) and
//!   newlines are kept; a token starting with `` ` `` runs to the next
//!   backtick with no escapes at all; a quote inside a bare token is literal;
//! - `#` at the start of a token starts a comment running to end of line;
//! - a `\` before the end of the line (trailing spaces allowed) continues the
//!   directive on the next line; any other backslash is a literal character.
//!
//! Structure follows Caddy's parser: a line whose last token is a bare `{`
//! opens a block of nested directives closed by a line holding a lone bare
//! `}`. Quoted `"{"` / `"}"` are ordinary arguments, as are tokens such as
//! `{env.X}` that merely contain braces.
//!
//! Deliberate differences from Caddy (kept simple, all stricter): an
//! unterminated quote is an error (Caddy silently ends the token at EOF),
//! a bare `{` or `}` anywhere else on a line is an error, heredocs
//! (`<<EOF`) and `{$ENV}` substitution are not supported, and blocks nest
//! at most [`MAX_DEPTH`] deep.
//!
//! Invariants: every [`Directive`] comes from a logical line with at least
//! one token; its `name` is that first token (empty only if written `""`),
//! `line` is the 1-based physical line of that token, `block` is non-empty
//! only if the directive opened a `{` block; parsing never panics and never
//! recurses on input.

/// Deepest block nesting accepted. Real Mercure directives nest one level;
/// the cap keeps recursive `Drop`/`Debug` of the tree bounded on hostile
/// input.
pub const MAX_DEPTH: usize = 32;

/// One directive: `name args... [{ block }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Vec<Directive>,
    /// 1-based line of the directive name.
    pub line: usize,
}

/// A syntax error, located by 1-based line.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct DirectiveError {
    pub line: usize,
    pub message: String,
}

impl DirectiveError {
    fn new(line: usize, message: &str) -> Self {
        Self { line, message: message.to_owned() }
    }
}

/// Parses directive text into a tree of directives.
pub fn parse(text: &str) -> Result<Vec<Directive>, DirectiveError> {
    let lines = tokenize(text)?;
    build_tree(lines)
}

/// A lexed token. `quoted` tokens are never structural braces.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

impl Token {
    fn is_bare(&self, text: &str) -> bool {
        !self.quoted && self.text == text
    }
}

/// Splits the input into logical lines of tokens (continuations joined,
/// empty and comment-only lines dropped).
fn tokenize(text: &str) -> Result<Vec<Vec<Token>>, DirectiveError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let chars: Vec<char> = text.chars().collect();
    let mut lexer = Lexer { chars: &chars, pos: 0, line: 1, lines: Vec::new(), current_line: Vec::new(), bare: None };
    lexer.run()?;
    Ok(lexer.lines)
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    /// 1-based physical line of `chars[pos]`.
    line: usize,
    lines: Vec<Vec<Token>>,
    current_line: Vec<Token>,
    /// Bare (unquoted) token being accumulated.
    bare: Option<Token>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn run(&mut self) -> Result<(), DirectiveError> {
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\n' => {
                    self.end_token();
                    self.end_line();
                    self.line += 1;
                }
                c if c.is_whitespace() => self.end_token(),
                '#' if self.bare.is_none() => self.skip_comment(),
                '"' if self.bare.is_none() => self.quoted('"')?,
                '`' if self.bare.is_none() => self.quoted('`')?,
                '\\' if self.at_line_continuation() => {
                    self.end_token();
                    self.skip_continuation();
                }
                c => self.push_bare(c),
            }
        }
        self.end_token();
        self.end_line();
        Ok(())
    }

    fn push_bare(&mut self, c: char) {
        let line = self.line;
        self.bare.get_or_insert_with(|| Token { text: String::new(), quoted: false, line }).text.push(c);
    }

    fn end_token(&mut self) {
        if let Some(token) = self.bare.take() {
            self.current_line.push(token);
        }
    }

    fn end_line(&mut self) {
        if !self.current_line.is_empty() {
            self.lines.push(std::mem::take(&mut self.current_line));
        }
    }

    /// Comments stop before the newline so it still ends the line.
    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.pos += 1;
        }
    }

    /// After a `\`: only spaces/tabs/CR remain before a newline or EOF.
    fn at_line_continuation(&self) -> bool {
        self.chars[self.pos..].iter().find(|c| !matches!(c, ' ' | '\t' | '\r')).is_none_or(|c| *c == '\n')
    }

    /// Consumes the rest of the continued line including its newline, without
    /// ending the logical line.
    fn skip_continuation(&mut self) {
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == '\n' {
                self.line += 1;
                break;
            }
        }
    }

    /// Reads a quoted token whose opening `quote` was just consumed.
    fn quoted(&mut self, quote: char) -> Result<(), DirectiveError> {
        let start_line = self.line;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(DirectiveError::new(start_line, "unterminated quoted string"));
            };
            self.pos += 1;
            match c {
                c if c == quote => break,
                // Only `\"` is an escape, and only in double quotes. Like
                // Caddy, a backslash pairs with the next character, so `\\`
                // stays `\\` and cannot escape a following quote.
                '\\' if quote == '"' && self.peek() == Some('"') => {
                    self.pos += 1;
                    text.push('"');
                }
                '\\' if quote == '"' && self.peek() == Some('\\') => {
                    self.pos += 1;
                    text.push_str("\\\\");
                }
                // Normalize CRLF inside multi-line quoted values.
                '\r' if self.peek() == Some('\n') => {}
                '\n' => {
                    self.line += 1;
                    text.push('\n');
                }
                c => text.push(c),
            }
        }
        self.current_line.push(Token { text, quoted: true, line: start_line });
        Ok(())
    }
}

/// Assembles logical lines into the directive tree with an explicit stack
/// of open blocks (no recursion on input).
fn build_tree(lines: Vec<Vec<Token>>) -> Result<Vec<Directive>, DirectiveError> {
    let mut top: Vec<Directive> = Vec::new();
    let mut open: Vec<Directive> = Vec::new();

    for tokens in lines {
        let Some(first) = tokens.first() else {
            continue;
        };
        let line = first.line;

        if first.is_bare("}") {
            if let Some(extra) = tokens.get(1) {
                return Err(DirectiveError::new(extra.line, "unexpected token after '}'"));
            }
            let closed = open.pop().ok_or_else(|| DirectiveError::new(line, "unexpected '}'"))?;
            match open.last_mut() {
                Some(parent) => parent.block.push(closed),
                None => top.push(closed),
            }
            continue;
        }

        let opens_block = tokens.last().is_some_and(|t| t.is_bare("{"));
        let arg_end = tokens.len() - usize::from(opens_block);
        if opens_block && arg_end == 0 {
            return Err(DirectiveError::new(line, "'{' without a directive name"));
        }
        for token in &tokens[..arg_end] {
            if token.is_bare("{") {
                return Err(DirectiveError::new(token.line, "unexpected '{' (a block must open at end of line)"));
            }
            if token.is_bare("}") {
                return Err(DirectiveError::new(token.line, "unexpected '}' (a block must close on its own line)"));
            }
        }

        let mut iter = tokens.into_iter().take(arg_end);
        let name = iter.next().map(|t| t.text).unwrap_or_default();
        let directive = Directive { name, args: iter.map(|t| t.text).collect(), block: Vec::new(), line };

        if opens_block {
            if open.len() >= MAX_DEPTH {
                return Err(DirectiveError::new(line, "blocks nested too deeply"));
            }
            open.push(directive);
        } else {
            match open.last_mut() {
                Some(parent) => parent.block.push(directive),
                None => top.push(directive),
            }
        }
    }

    if let Some(unclosed) = open.last() {
        return Err(DirectiveError::new(unclosed.line, "unclosed block"));
    }
    Ok(top)
}

#[cfg(test)]
#[path = "directives_tests.rs"]
mod tests;
