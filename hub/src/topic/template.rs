//! RFC 6570 URI Template (levels 1–4) compiler for *matching* topics
//! against Mercure topic selectors.
//!
//! The Go reference hub (dunglas/mercure) parses a selector with
//! `github.com/yosida95/uritemplate/v3` and matches topics with
//! `Template.Regexp().MatchString(topic)`. This module reproduces that
//! regular expression, so a selector matches exactly the topics the Go hub
//! matches (modulo the documented stricter parsing below).
//!
//! Invariants:
//! - The compiled regex is anchored (`^...$`) and built only from escaped
//!   literals and fixed ASCII character classes, so user input can never
//!   inject regex syntax.
//! - Matching is linear in the topic length: the `regex` crate never
//!   backtracks. The constant factor is bounded too, because a template is
//!   refused (not compiled) past its [`TemplateLimits`]: source length,
//!   expressions and variables. Those limits bound the size of the compiled
//!   program ([`REGEX_SIZE_LIMIT`] is a second fence), and the lazy DFA's
//!   cache is capped at [`DFA_CACHE_LIMIT`] per matching thread, so one
//!   template can pin little memory.
//! - Before the regex runs, a topic must start with the template's literal
//!   prefix, end with its literal suffix and be at least as long as all its
//!   literals: most non-matching topics are refused in a few comparisons.
//! - Nothing here panics on input-derived data.
//!
//! Matching semantics (identical to the Go library's `Regexp()`):
//! - Every expression is optional as a whole and each variable matches zero
//!   or more allowed characters, because an undefined or empty variable
//!   expands to nothing. Hence `/books/{id}` matches `/books/` (empty id) as
//!   well as `/books/1`, and `{/book*}` matches the empty string.
//! - Simple, `.`, `/`, `;`, `?` and `&` variables match unreserved
//!   characters, `%XX` triplets and `,` (the list separator, which the
//!   regex cannot tell apart from a separator between variables). Named
//!   operators (`;`, `?`, `&`) and exploded variables also allow `=`
//!   (`name=value` pairs). `/` is *not* allowed, so `/books/{id}` does not
//!   match `/books/1/2`.
//! - `+` and `#` variables additionally match every reserved character
//!   (`:/?#[]@!$&'()*+,;=`), so `{+path}` matches `a/b/c`.
//! - Variable *names* of named operators are not checked: `{?q,lang}`
//!   matches `?anything=1&else=2`, exactly like the Go regex.
//! - A multi-variable expression accepts up to as many separator-joined
//!   values as it has variables; an exploded variable lifts that bound.
//! - Prefix modifiers (`:N`) are validated but do not bound the length, as
//!   in the Go regex.
//! - Non-ASCII characters in a topic only match template literals, never a
//!   variable (they must be percent-encoded there).
//!
//! Parsing is the Go library's grammar with two deliberate differences:
//! an empty variable name (`{}`, `{a,}`) is rejected (RFC 6570 requires at
//! least one character; Go accepts it), and every malformed form returns an
//! error instead of the Go parser's index-out-of-range panics (`{x:`).
//! Like Go, a `.` inside a variable name is rejected. Callers should treat a
//! selector that fails to compile as a plain string (exact match), which is
//! what the Go hub does.

use regex::{Regex, RegexBuilder};

/// Longest template source ever accepted, whatever [`TemplateLimits`] say.
pub const MAX_TEMPLATE_LEN: usize = 8 * 1024;

/// Compiled-program budget handed to [`RegexBuilder::size_limit`]: a second
/// fence behind [`TemplateLimits`] (a template within the default limits
/// compiles to far less).
pub const REGEX_SIZE_LIMIT: usize = 512 * 1024;

/// Cap on the lazy DFA's cache, per thread matching this template
/// ([`RegexBuilder::dfa_size_limit`]; the crate's default is 2 MiB). When a
/// hostile template thrashes it, the regex crate falls back to its NFA
/// simulation, which is slower but still linear in the topic length and
/// bounded by the template's size.
pub const DFA_CACHE_LIMIT: usize = 64 * 1024;

/// What one template may contain. Every template a client sends (a
/// subscription's `topic`, a token's `publish`/`subscribe` selectors) is
/// checked against these before it is compiled; past them it is refused
/// with [`TemplateError::is_limit`] errors, never matched as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Bytes of template source. Default 1024 (directive `max_template_length`).
    pub max_length: usize,
    /// `{…}` expressions in one template. Default 10 (`max_template_expressions`).
    pub max_expressions: usize,
    /// Variables across all expressions of one template. Default 20
    /// (`max_template_variables`).
    pub max_variables: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        TemplateLimits { max_length: 1024, max_expressions: 10, max_variables: 20 }
    }
}

/// Longest prefix modifier allowed by RFC 6570 (`max-length < 10000`).
const MAX_PREFIX: u32 = 9999;

/// RFC 3986 unreserved characters, as regex class items (same bytes as the
/// Go library's `reUnreserved`).
const UNRESERVED: &str = r"\x2d\x2e\x30-\x39\x41-\x5a\x5f\x61-\x7a\x7e";

/// RFC 3986 reserved characters (gen-delims + sub-delims), as class items.
const RESERVED: &str = r"\x21\x23\x24\x26-\x2c\x2f\x3a\x3b\x3d\x3f\x40\x5b\x5d";

/// Matches one percent-encoded octet.
const PCT_ENCODED: &str = "%[0-9A-Fa-f]{2}";

/// Errors from [`UriTemplate::compile`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{` without a matching `}` (including a nested `{`).
    #[error("unclosed expression brace")]
    UnclosedBrace,
    /// A `}` outside of any expression.
    #[error("unmatched closing brace")]
    UnmatchedBrace,
    /// `{}`: an expression with no content at all.
    #[error("empty expression")]
    EmptyExpression,
    /// One of the RFC 6570 reserved operators `= , ! @ |`.
    #[error("unsupported operator {0:?}")]
    BadOperator(char),
    /// Empty variable name or a character outside `ALPHA / DIGIT / _ / %XX`.
    #[error("invalid variable name")]
    BadVarname,
    /// Prefix modifier not in `1..=9999`, or combined with explode.
    #[error("invalid prefix modifier")]
    BadModifier,
    /// A literal character RFC 6570 does not allow (space, `"`, `<`, ...).
    #[error("invalid literal character {0:?}")]
    BadLiteral(char),
    /// `%` not followed by two hex digits.
    #[error("invalid percent-encoding")]
    BadPercentEncoding,
    /// Source longer than [`TemplateLimits::max_length`].
    #[error("template longer than {0} bytes")]
    TooLong(usize),
    /// More expressions than [`TemplateLimits::max_expressions`].
    #[error("template with more than {0} expressions")]
    TooManyExpressions(usize),
    /// More variables than [`TemplateLimits::max_variables`].
    #[error("template with more than {0} variables")]
    TooManyVariables(usize),
    /// Compiled regex would exceed the size limit.
    #[error("template too large")]
    TooLarge,
    /// Any other regex build failure (not expected: the pattern is generated).
    #[error("regex build failed: {0}")]
    Regex(String),
}

impl TemplateError {
    /// True for a template refused for its size rather than its syntax: the
    /// caller answers 400 instead of matching the selector as a plain string.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            TemplateError::TooLong(_)
                | TemplateError::TooManyExpressions(_)
                | TemplateError::TooManyVariables(_)
                | TemplateError::TooLarge
        )
    }
}

/// A compiled URI template, ready to match topics.
#[derive(Debug, Clone)]
pub struct UriTemplate {
    regex: Regex,
    source: String,
    /// The literal text before the first expression: every match starts with it.
    prefix: Box<str>,
    /// The literal text after the last expression: every match ends with it.
    suffix: Box<str>,
    /// Bytes of literal text in the template: no shorter topic can match.
    min_len: usize,
}

impl UriTemplate {
    /// Compiles within the default [`TemplateLimits`].
    pub fn compile(template: &str) -> Result<Self, TemplateError> {
        Self::compile_within(template, &TemplateLimits::default())
    }

    /// Compiles; rejects malformed templates, templates past `limits`, and
    /// templates whose compiled regex would exceed [`REGEX_SIZE_LIMIT`].
    pub fn compile_within(template: &str, limits: &TemplateLimits) -> Result<Self, TemplateError> {
        compile_with_limit(template, limits, REGEX_SIZE_LIMIT)
    }

    /// True when the whole `uri` matches the template.
    pub fn is_match(&self, uri: &str) -> bool {
        self.prefilter(uri) && self.regex.is_match(uri)
    }

    /// A few comparisons that every match passes: the literal prefix, the
    /// literal suffix, the minimum length. False means no match; true means
    /// the regex must decide.
    pub fn prefilter(&self, uri: &str) -> bool {
        uri.len() >= self.min_len && uri.starts_with(&*self.prefix) && uri.ends_with(&*self.suffix)
    }

    /// The template source this was compiled from.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// True when `selector` should be treated as a template (contains '{').
///
/// Same cheap pre-check as the Go hub: anything without `{` can only be an
/// exact-match selector, so we skip compiling it.
pub fn is_template(selector: &str) -> bool {
    selector.contains('{')
}

/// [`UriTemplate::compile`] with an explicit regex size limit, so tests can
/// exercise the size cap without building multi-megabyte templates.
fn compile_with_limit(
    template: &str,
    limits: &TemplateLimits,
    size_limit: usize,
) -> Result<UriTemplate, TemplateError> {
    let max_length = limits.max_length.min(MAX_TEMPLATE_LEN);
    if template.len() > max_length {
        return Err(TemplateError::TooLong(max_length));
    }
    let parsed = to_regex_pattern(template, limits)?;
    let regex =
        RegexBuilder::new(&parsed.pattern).size_limit(size_limit).dfa_size_limit(DFA_CACHE_LIMIT).build().map_err(
            |e| match e {
                regex::Error::CompiledTooBig(_) => TemplateError::TooLarge,
                other => TemplateError::Regex(other.to_string()),
            },
        )?;
    Ok(UriTemplate {
        regex,
        source: template.to_owned(),
        prefix: parsed.prefix.into(),
        suffix: parsed.suffix.into(),
        min_len: parsed.literal_len,
    })
}

/// A template translated for matching.
struct Parsed<'a> {
    /// The anchored regex.
    pattern: String,
    /// Literal text before the first expression, and after the last one.
    prefix: &'a str,
    suffix: &'a str,
    /// Bytes of literal text in the whole template.
    literal_len: usize,
}

/// Translates the whole template into an anchored regex pattern, refusing
/// it as soon as it passes `limits`.
fn to_regex_pattern<'a>(template: &'a str, limits: &TemplateLimits) -> Result<Parsed<'a>, TemplateError> {
    let mut out = String::with_capacity(template.len() * 4 + 2);
    out.push('^');
    let (mut expressions, mut variables, mut literal_len) = (0, 0, 0);
    let (mut prefix, mut suffix) = ("", "");
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(after_open) = rest.strip_prefix('{') {
            let close = after_open.find('}').ok_or(TemplateError::UnclosedBrace)?;
            let body = &after_open[..close];
            // `{a{b}`: the first brace never closes; report that rather than
            // a confusing "invalid variable name".
            if body.contains('{') {
                return Err(TemplateError::UnclosedBrace);
            }
            let expr = parse_expression(body)?;
            expressions += 1;
            variables += expr.var_count;
            if expressions > limits.max_expressions {
                return Err(TemplateError::TooManyExpressions(limits.max_expressions));
            }
            if variables > limits.max_variables {
                return Err(TemplateError::TooManyVariables(limits.max_variables));
            }
            push_expression_regex(&mut out, &expr);
            suffix = "";
            rest = &after_open[close + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            let literal = &rest[..end];
            validate_literal(literal)?;
            out.push_str("(?:");
            out.push_str(&regex::escape(literal));
            out.push(')');
            if expressions == 0 {
                prefix = literal;
            }
            suffix = literal;
            literal_len += literal.len();
            rest = &rest[end..];
        }
    }
    out.push('$');
    if expressions == 0 {
        // No expression: the "template" is its own only match; prefix and
        // suffix are the same text and must not both be required of it.
        suffix = "";
    }
    Ok(Parsed { pattern: out, prefix, suffix, literal_len })
}

/// Checks a literal run against RFC 6570 `literals` (what the Go parser's
/// `rangeLiterals` accepts), including `%XX` triplets.
fn validate_literal(literal: &str) -> Result<(), TemplateError> {
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => expect_two_hex(&mut chars)?,
            '}' => return Err(TemplateError::UnmatchedBrace),
            c if is_literal_char(c) => {}
            c => return Err(TemplateError::BadLiteral(c)),
        }
    }
    Ok(())
}

/// RFC 6570 section 2.1 `literals`, minus `%` which is handled by callers.
fn is_literal_char(c: char) -> bool {
    matches!(c,
        '!' | '#' | '$' | '&' | '('..=';' | '=' | '?'..='[' | ']' | '_' | 'a'..='z' | '~'
        | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFEF}'
    ) || is_supplementary_literal(c)
}

/// Supplementary-plane `ucschar` / `iprivate`: every plane except the
/// non-characters at the end of each plane, and E0000–E0FFF (tags).
fn is_supplementary_literal(c: char) -> bool {
    let cp = u32::from(c);
    if cp < 0x1_0000 || (cp & 0xFFFF) > 0xFFFD {
        return false;
    }
    !(0xE_0000..0xE_1000).contains(&cp)
}

/// Consumes two hex digits after a `%`.
fn expect_two_hex(chars: &mut std::str::Chars<'_>) -> Result<(), TemplateError> {
    for _ in 0..2 {
        match chars.next() {
            Some(c) if c.is_ascii_hexdigit() => {}
            _ => return Err(TemplateError::BadPercentEncoding),
        }
    }
    Ok(())
}

/// RFC 6570 expression operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Simple,
    Reserved,
    Fragment,
    Label,
    Path,
    PathParam,
    Query,
    QueryCont,
}

impl Operator {
    /// Text written before the first defined variable.
    fn first(self) -> &'static str {
        match self {
            Self::Simple | Self::Reserved => "",
            Self::Fragment => "#",
            Self::Label => ".",
            Self::Path => "/",
            Self::PathParam => ";",
            Self::Query => "?",
            Self::QueryCont => "&",
        }
    }

    /// Separator between variables (and between exploded items).
    fn sep(self) -> &'static str {
        match self {
            Self::Simple | Self::Reserved | Self::Fragment => ",",
            Self::Label => ".",
            Self::Path => "/",
            Self::PathParam => ";",
            Self::Query | Self::QueryCont => "&",
        }
    }

    /// Whether values are `name=value` pairs.
    fn named(self) -> bool {
        matches!(self, Self::PathParam | Self::Query | Self::QueryCont)
    }

    /// Whether reserved characters pass through unencoded.
    fn allows_reserved(self) -> bool {
        matches!(self, Self::Reserved | Self::Fragment)
    }
}

/// One parsed `{...}` expression. Names and prefix lengths are validated
/// but, like the Go regex, only the count and explode flags shape the match.
#[derive(Debug)]
struct Expression {
    op: Operator,
    var_count: usize,
    first_explode: bool,
    any_explode: bool,
}

/// Parses the text between `{` and `}`.
fn parse_expression(body: &str) -> Result<Expression, TemplateError> {
    let mut chars = body.chars();
    let op = match chars.next() {
        None => return Err(TemplateError::EmptyExpression),
        Some('+') => Operator::Reserved,
        Some('#') => Operator::Fragment,
        Some('.') => Operator::Label,
        Some('/') => Operator::Path,
        Some(';') => Operator::PathParam,
        Some('?') => Operator::Query,
        Some('&') => Operator::QueryCont,
        // RFC 6570 `op-reserve`: reserved for future extensions.
        Some(c @ ('=' | ',' | '!' | '@' | '|')) => return Err(TemplateError::BadOperator(c)),
        Some(_) => Operator::Simple,
    };
    let list = if op == Operator::Simple { body } else { chars.as_str() };

    let mut expr = Expression { op, var_count: 0, first_explode: false, any_explode: false };
    for spec in list.split(',') {
        let explode = parse_varspec(spec)?;
        if expr.var_count == 0 {
            expr.first_explode = explode;
        }
        expr.any_explode |= explode;
        expr.var_count += 1;
    }
    Ok(expr)
}

/// Validates one varspec (`name`, `name*` or `name:N`); returns the explode
/// flag.
fn parse_varspec(spec: &str) -> Result<bool, TemplateError> {
    let (name, explode) = match spec.strip_suffix('*') {
        Some(name) => (name, true),
        None => (spec, false),
    };
    let name = match name.split_once(':') {
        Some((name, prefix)) => {
            // `name:N*` is not in the grammar.
            if explode {
                return Err(TemplateError::BadModifier);
            }
            validate_prefix(prefix)?;
            name
        }
        None => name,
    };
    validate_varname(name)?;
    Ok(explode)
}

/// `max-length = %x31-39 0*3DIGIT`, i.e. 1..=9999 without leading zeros.
fn validate_prefix(prefix: &str) -> Result<(), TemplateError> {
    let well_formed = !prefix.is_empty()
        && prefix.len() <= 4
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && !prefix.starts_with('0');
    match prefix.parse::<u32>() {
        Ok(n) if well_formed && n <= MAX_PREFIX => Ok(()),
        _ => Err(TemplateError::BadModifier),
    }
}

/// `varname = varchar *varchar`, `varchar = ALPHA / DIGIT / "_" / pct-encoded`
/// (the Go parser's set: RFC 6570's inner `.` is not accepted).
fn validate_varname(name: &str) -> Result<(), TemplateError> {
    if name.is_empty() {
        return Err(TemplateError::BadVarname);
    }
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => expect_two_hex(&mut chars).map_err(|_| TemplateError::BadVarname)?,
            c if c.is_ascii_alphanumeric() || c == '_' => {}
            _ => return Err(TemplateError::BadVarname),
        }
    }
    Ok(())
}

/// Appends the regex for one expression, mirroring the Go library's
/// `expression.regexp`:
/// `(?:FIRST VALUE (?:SEP VALUE){0,n-1})?`, with `*` instead of `{0,n-1}`
/// when any variable is exploded.
fn push_expression_regex(out: &mut String, expr: &Expression) {
    let op = expr.op;
    out.push_str("(?:");
    out.push_str(&regex::escape(op.first()));
    push_value_class(out, op.allows_reserved(), op.named() || expr.first_explode);
    if expr.var_count > 1 || expr.any_explode {
        out.push_str("(?:");
        out.push_str(&regex::escape(op.sep()));
        push_value_class(out, op.allows_reserved(), op.named() || expr.any_explode);
        out.push(')');
        if expr.any_explode {
            out.push('*');
        } else {
            // Up to one more value per extra variable; each may be empty.
            out.push_str(&format!("{{0,{}}}", expr.var_count - 1));
        }
    }
    out.push_str(")?");
}

/// Appends `(?:[allowed]|%XX)*` for one variable value.
///
/// Without reserved expansion, `,` is allowed (list values) and `=` too for
/// named or exploded variables (`name=value` pairs), as in Go.
fn push_value_class(out: &mut String, reserved: bool, named: bool) {
    out.push_str("(?:[");
    if !reserved {
        out.push_str(r"\x2c");
        if named {
            out.push_str(r"\x3d");
        }
    }
    out.push_str(UNRESERVED);
    if reserved {
        out.push_str(RESERVED);
    }
    out.push_str("]|");
    out.push_str(PCT_ENCODED);
    out.push_str(")*");
}

/// Test builds only: the generated pattern, so the fuzz targets can check the compiled
/// program's size on their own.
#[cfg(test)]
impl UriTemplate {
    pub(crate) fn pattern(&self) -> &str {
        self.regex.as_str()
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
