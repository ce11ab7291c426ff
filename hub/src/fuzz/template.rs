//! URI-template selectors: `UriTemplate::compile` and `is_match`, and `SelectorCompiler`.
//!
//! Properties:
//! - any string (template-shaped or not, up to past `MAX_TEMPLATE_LEN`) compiles or is
//!   refused without panicking, and a compiled template matches arbitrary topics without
//!   panicking and always matches its own literals (every expression undefined);
//! - a template generated from the RFC 6570 grammar compiles, and matches every topic made
//!   by expanding it (with a reference expander written from RFC 6570 section 3.2) with
//!   generated values: strings, lists, exploded lists, prefixes, undefined variables;
//!   the same topic with a character no template can match inserted anywhere does not match;
//! - the compiled program of any accepted template stays under `REGEX_SIZE_LIMIT` and its
//!   state count grows at most linearly with the template's length (matching costs
//!   O(states × topic length) in the `regex` crate, so this bounds the matcher's work without
//!   timing anything on a noisy machine);
//! - `SelectorCompiler` gives the same answers as a direct compile.

use proptest::collection::vec;
use proptest::prelude::*;
use regex_automata::nfa::thompson;

use super::{check, re, run};
use crate::topic::template::{MAX_TEMPLATE_LEN, REGEX_SIZE_LIMIT};
use crate::topic::{Selector, SelectorCompiler, UriTemplate};

/// Characters no template can match: not RFC 6570 literals, not in any variable's class.
const NEVER_MATCHED: &[char] = &[' ', '"', '<', '>', '\\', '^', '`', '{', '|', '}'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    None,
    Explode,
    Prefix(usize),
}

#[derive(Debug, Clone)]
struct VarSpec {
    name: String,
    modifier: Modifier,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Expression { op: Option<char>, vars: Vec<VarSpec> },
}

#[derive(Debug, Clone)]
enum Value {
    Undefined,
    Str(String),
    List(Vec<String>),
}

fn render(parts: &[Part]) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Literal(l) => out.push_str(l),
            Part::Expression { op, vars } => {
                out.push('{');
                out.extend(op);
                let specs: Vec<String> = vars
                    .iter()
                    .map(|v| match v.modifier {
                        Modifier::None => v.name.clone(),
                        Modifier::Explode => format!("{}*", v.name),
                        Modifier::Prefix(n) => format!("{}:{n}", v.name),
                    })
                    .collect();
                out.push_str(&specs.join(","));
                out.push('}');
            }
        }
    }
    out
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

fn is_reserved(c: char) -> bool {
    ":/?#[]@!$&'()*+,;=".contains(c)
}

/// RFC 6570 section 3.2.1: unreserved characters stay; with `allow_reserved`, reserved
/// characters and existing `%XX` triplets stay too; everything else is percent-encoded.
fn encode(value: &str, allow_reserved: bool) -> String {
    let mut out = String::new();
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let triplet = c == '%' && chars.get(i + 1..i + 3).is_some_and(|h| h.iter().all(char::is_ascii_hexdigit));
        if allow_reserved && triplet {
            out.extend(&chars[i..i + 3]);
            i += 3;
            continue;
        }
        if is_unreserved(c) || (allow_reserved && is_reserved(c)) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        i += 1;
    }
    out
}

/// RFC 6570 section 3.2 (the appendix A algorithm). Literals are copied as written: like
/// the Go hub, the matcher compares a template's literals byte for byte.
fn expand(parts: &[Part], values: &[Value]) -> String {
    let mut out = String::new();
    let mut next_value = values.iter().cycle();
    for p in parts {
        let (op, vars) = match p {
            Part::Literal(l) => {
                out.push_str(l);
                continue;
            }
            Part::Expression { op, vars } => (*op, vars),
        };
        let (first, sep, named, ifemp, reserved) = match op {
            None => ("", ",", false, "", false),
            Some('+') => ("", ",", false, "", true),
            Some('.') => (".", ".", false, "", false),
            Some('/') => ("/", "/", false, "", false),
            Some(';') => (";", ";", true, "", false),
            Some('?') => ("?", "&", true, "=", false),
            Some('&') => ("&", "&", true, "=", false),
            Some('#') => ("#", ",", false, "", true),
            Some(other) => unreachable!("generator made operator {other:?}"),
        };
        let mut items: Vec<String> = Vec::new();
        for v in vars {
            let value = next_value.next().cloned().unwrap_or(Value::Undefined);
            let name = &v.name;
            let pair = |val: &str| {
                let enc = encode(val, reserved);
                if !named {
                    enc
                } else if val.is_empty() {
                    format!("{name}{ifemp}")
                } else {
                    format!("{name}={enc}")
                }
            };
            match value {
                Value::Undefined => {}
                Value::List(l) if l.is_empty() => {}
                Value::Str(s) => {
                    let s: String = match v.modifier {
                        Modifier::Prefix(n) => s.chars().take(n).collect(),
                        _ => s,
                    };
                    items.push(pair(&s));
                }
                Value::List(l) if v.modifier == Modifier::Explode => {
                    items.push(l.iter().map(|x| pair(x)).collect::<Vec<_>>().join(sep));
                }
                Value::List(l) => {
                    let joined = l.iter().map(|x| encode(x, reserved)).collect::<Vec<_>>().join(",");
                    items.push(if named { format!("{name}={joined}") } else { joined });
                }
            }
        }
        if !items.is_empty() {
            out.push_str(first);
            out.push_str(&items.join(sep));
        }
    }
    out
}

fn literal() -> impl Strategy<Value = String> {
    re("([a-zA-Z0-9/:._~!$&()*+,;=@?#\\[\\]-]|%[0-9A-Fa-f]{2}|é|\u{1F600}){1,8}")
}

fn varspec() -> impl Strategy<Value = VarSpec> {
    let name = re("([a-zA-Z0-9_]|%[0-9a-f]{2}){1,4}");
    let modifier = prop_oneof![3 => Just(Modifier::None), 2 => Just(Modifier::Explode), 1 => (1usize..12).prop_map(Modifier::Prefix)];
    (name, modifier).prop_map(|(name, modifier)| VarSpec { name, modifier })
}

fn template_parts() -> impl Strategy<Value = Vec<Part>> {
    let op = prop_oneof![
        3 => Just(None),
        1 => prop::sample::select(vec!['+', '#', '.', '/', ';', '?', '&']).prop_map(Some),
    ];
    let part = prop_oneof![
        2 => literal().prop_map(Part::Literal),
        3 => (op, vec(varspec(), 1..4)).prop_map(|(op, vars)| Part::Expression { op, vars }),
    ];
    vec(part, 1..6)
}

fn values() -> impl Strategy<Value = Vec<Value>> {
    let s = prop_oneof![3 => re("[a-z0-9]{0,6}"), 2 => re("[-a-zA-Z0-9 ,=/%?&#.:;é!*'()\\[\\]]{0,8}"), 1 => any::<String>()];
    let value = prop_oneof![
        1 => Just(Value::Undefined),
        4 => s.clone().prop_map(Value::Str),
        2 => vec(s, 0..4).prop_map(Value::List),
    ];
    vec(value, 1..8)
}

#[test]
fn fuzz_template_expansions_match() {
    let input = (template_parts(), values(), any::<prop::sample::Index>(), prop::sample::select(NEVER_MATCHED));
    run("fuzz::template::fuzz_template_expansions_match", 1500, input, |(parts, values, at, bad)| {
        let source = render(&parts);
        let t = match UriTemplate::compile(&source) {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("valid template {source:?} refused: {e}"))),
        };
        let topic = expand(&parts, &values);
        check(t.is_match(&topic), || format!("{source:?} does not match its expansion {topic:?}"))?;
        let mut spoiled = topic.clone();
        let i = at.index(topic.chars().count() + 1);
        let byte = spoiled.char_indices().nth(i).map_or(spoiled.len(), |(b, _)| b);
        spoiled.insert(byte, bad);
        check(!t.is_match(&spoiled), || format!("{source:?} matches {spoiled:?}"))?;
        if source == "*" {
            // Not a template: the selector matching everything.
            return Ok(());
        }
        let compiler = SelectorCompiler::new(crate::topic::TemplateLimits::default());
        let sel = compiler.compile(&source).map_err(|e| TestCaseError::fail(format!("compiler refused: {e}")))?;
        let is_template = matches!(sel, Selector::Template(_));
        check(is_template == source.contains('{'), || format!("{source:?} compiled as {sel:?}"))?;
        check(sel.matches(&topic) && !sel.matches(&spoiled), || "the selector disagrees with the template".into())?;
        Ok(())
    });
}

/// Template-shaped noise: the grammar's characters in any order, sometimes very long.
fn template_noise() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => prop::sample::select(vec![
            "{", "}", "{", "}", "+", "#", ".", "/", ";", "?", "&", ",", "*", ":", "1", "0", "9999", "10000",
            "%", "%4", "%41", "a", "x", "_", "=", "!", "@", "|", " ", "é", "'", "https://e/",
        ]).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    let short = vec(piece, 0..40).prop_map(|p| p.concat());
    // The adversarial shapes: many expressions, many variables, near the size limit.
    let long = (
        prop::sample::select(vec!["{a}x", "{a,b,c,d,e,f,g,h}", "{/a*}", "{?a,b}", "{+a}/", "x", "{a}", "é"]),
        1usize..2200,
    )
        .prop_map(|(unit, n)| format!("https://e/{}", unit.repeat(n)));
    prop_oneof![8 => short, 1 => long, 1 => any::<String>()]
}

fn topic() -> impl Strategy<Value = String> {
    prop_oneof![3 => re("[a-z0-9/.:,=%?&#-]{0,40}"), 1 => any::<String>()]
}

/// The template with every `{…}` expression removed: what it expands to with every variable
/// undefined.
fn literals_only(source: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => rest = &rest[open + close + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn fuzz_template_noise_compiles_or_is_refused() {
    run(
        "fuzz::template::fuzz_template_noise_compiles_or_is_refused",
        400,
        (template_noise(), vec(topic(), 0..4)),
        |(source, topics)| {
            let Ok(t) = UriTemplate::compile(&source) else {
                return Ok(());
            };
            check(source.len() <= MAX_TEMPLATE_LEN, || format!("accepted {} bytes", source.len()))?;
            for topic in &topics {
                let _ = t.is_match(topic);
            }
            let lits = literals_only(&source);
            check(t.is_match(&lits), || format!("{source:?} does not match its literals {lits:?}"))?;
            check_program_size(&source, &t)
        },
    );
}

/// Most NFA states per byte of template source. Measured on repeated shapes: literals and
/// `%XX` take 1 state per byte, `{a}` 2.3, `{a*}` 3.7, and a long `{a,b,c,…}` list 3.8 (each
/// extra variable adds one more copy of the value class), the densest; the bound leaves room.
const STATES_PER_BYTE: usize = 6;

/// The compiled program of an accepted template, rebuilt from its pattern with the `regex`
/// crate's own Thompson compiler: under the size limit, and linear in the source length.
fn check_program_size(source: &str, t: &UriTemplate) -> Result<(), TestCaseError> {
    let config = thompson::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT));
    let nfa = match thompson::Compiler::new().configure(config).build(t.pattern()) {
        Ok(nfa) => nfa,
        Err(e) => return Err(TestCaseError::fail(format!("{source:?} accepted but its program is too big: {e}"))),
    };
    check(nfa.memory_usage() <= REGEX_SIZE_LIMIT, || format!("{source:?}: program of {} bytes", nfa.memory_usage()))?;
    let bound = STATES_PER_BYTE * source.len() + 64;
    check(nfa.states().len() <= bound, || {
        format!("{source:?}: {} states for {} bytes (bound {bound})", nfa.states().len(), source.len())
    })
}

#[test]
fn fuzz_template_program_size_is_bounded() {
    let input = prop_oneof![1 => template_parts().prop_map(|p| render(&p)), 1 => template_noise()];
    run("fuzz::template::fuzz_template_program_size_is_bounded", 600, input, |source| {
        match UriTemplate::compile(&source) {
            Ok(t) => check_program_size(&source, &t),
            Err(_) => Ok(()),
        }
    });
}
