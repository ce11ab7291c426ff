//! The `MERCURE_EXTRA_DIRECTIVES` tokenizer and parser (`config::directives::parse`).
//!
//! Properties: any text parses or fails without panicking; an accepted tree respects its
//! invariants (a name per directive, line numbers inside the text, nesting at most
//! `MAX_DEPTH`); and a tree — parsed from text, or generated — written back out as text by
//! [`serialize`] parses to the same tree (lines aside), the only change being the lexer's
//! documented CRLF → LF inside quoted values.

use proptest::collection::vec;
use proptest::prelude::*;

use super::{check, re, run};
use crate::config::directives::{Directive, MAX_DEPTH, parse};

/// How a token's text can be written so that the lexer reads it back unchanged.
fn write_token(out: &mut String, text: &str) -> Option<()> {
    let bare_ok = !text.is_empty()
        && !text.contains(char::is_whitespace)
        && !text.starts_with(['#', '"', '`'])
        && text != "{"
        && text != "}";
    if !text.contains('`') {
        // Backticks: no escapes at all.
        out.push('`');
        out.push_str(text);
        out.push('`');
    } else if dq_ok(text) {
        // Double quotes: only `\"` is an escape and `\\` stays two backslashes, so a quote
        // needs a backslash and a run of backslashes must be even before a quote or the end.
        out.push('"');
        out.push_str(&text.replace('"', "\\\""));
        out.push('"');
    } else if bare_ok {
        out.push_str(text);
    } else {
        return None;
    }
    // A space before the next token, so a bare token ending in `\` is never a line
    // continuation (a `#` comment always follows the last token of a line, see below).
    out.push(' ');
    Some(())
}

/// True when every run of backslashes followed by `"` or by the end of `text` is even.
fn dq_ok(text: &str) -> bool {
    let mut run = 0usize;
    for c in text.chars() {
        match c {
            '\\' => run += 1,
            '"' if !run.is_multiple_of(2) => return false,
            _ => run = 0,
        }
    }
    run.is_multiple_of(2)
}

/// Writes a tree back as directive text, `None` if some token has no spelling (never the
/// case for a tree the parser produced).
fn serialize(tree: &[Directive]) -> Option<String> {
    // A leading newline: a first token starting with U+FEFF would otherwise be read as a BOM.
    let mut out = String::from("\n");
    write_level(&mut out, tree)?;
    Some(out)
}

fn write_level(out: &mut String, level: &[Directive]) -> Option<()> {
    for d in level {
        write_token(out, &d.name)?;
        for a in &d.args {
            write_token(out, a)?;
        }
        if d.block.is_empty() {
            // The comment stops a trailing bare `\` from continuing the line.
            out.push_str("#\n");
        } else {
            out.push_str("{ #\n");
            write_level(out, &d.block)?;
            out.push_str("} #\n");
        }
    }
    Some(())
}

/// The tree with every line set to 0 and, if `crlf`, each CRLF in a value turned into LF (what
/// one pass of the lexer does to a quoted value), for comparison.
fn canonical(tree: &[Directive], crlf: bool) -> Vec<Directive> {
    let norm = |s: &str| if crlf { s.replace("\r\n", "\n") } else { s.to_owned() };
    tree.iter()
        .map(|d| Directive {
            name: norm(&d.name),
            args: d.args.iter().map(|a| norm(a)).collect(),
            block: canonical(&d.block, crlf),
            line: 0,
        })
        .collect()
}

fn depth(tree: &[Directive]) -> usize {
    tree.iter().map(|d| if d.block.is_empty() { 1 } else { 1 + depth(&d.block) }).max().unwrap_or(0)
}

fn check_tree(text: &str, tree: &[Directive]) -> Result<(), TestCaseError> {
    let lines = text.chars().filter(|c| *c == '\n').count() + 1;
    fn walk(tree: &[Directive], lines: usize) -> Result<(), TestCaseError> {
        for d in tree {
            check((1..=lines).contains(&d.line), || format!("line {} outside 1..={lines}", d.line))?;
            walk(&d.block, lines)?;
        }
        Ok(())
    }
    walk(tree, lines)?;
    check(depth(tree) <= MAX_DEPTH + 1, || format!("nested {} deep", depth(tree)))?;
    let Some(again_text) = serialize(tree) else {
        return Err(TestCaseError::fail(format!("a parsed token has no spelling: {tree:?}")));
    };
    match parse(&again_text) {
        Ok(again) => {
            prop_assert_eq!(canonical(&again, false), canonical(tree, true), "re-serialized as {:?}", again_text)
        }
        Err(e) => return Err(TestCaseError::fail(format!("re-serialized {again_text:?} fails: {e}"))),
    }
    Ok(())
}

/// Text made mostly of the lexer's special characters.
fn directive_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => re("[a-z0-9_.]{1,6}"),
        2 => Just(" ".to_owned()),
        2 => Just("\n".to_owned()),
        1 => Just("\r\n".to_owned()),
        1 => Just("\r".to_owned()),
        1 => Just("\t".to_owned()),
        2 => Just("{".to_owned()),
        2 => Just("}".to_owned()),
        2 => Just("\"".to_owned()),
        2 => Just("`".to_owned()),
        2 => Just("\\".to_owned()),
        1 => Just("#".to_owned()),
        1 => Just("\u{feff}".to_owned()),
        1 => Just("\u{a0}".to_owned()),
        1 => any::<char>().prop_map(String::from),
    ];
    vec(piece, 0..40).prop_map(|p| p.concat())
}

#[test]
fn fuzz_directives_parse_and_round_trip() {
    let input = prop_oneof![4 => directive_text(), 1 => any::<String>()];
    run("fuzz::directives::fuzz_directives_parse_and_round_trip", 4000, input, |text| match parse(&text) {
        Ok(tree) => check_tree(&text, &tree),
        Err(e) => {
            let lines = text.chars().filter(|c| *c == '\n').count() + 1;
            check((1..=lines).contains(&e.line), || format!("error line {} outside 1..={lines}", e.line))
        }
    });
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => re("[a-z0-9_./:-]{1,8}"),
        2 => re("[ a-z{}\"`\\\\#\r\n\t]{0,6}"),
        1 => any::<String>(),
    ]
}

fn tree() -> impl Strategy<Value = Vec<Directive>> {
    let leaf =
        (token(), vec(token(), 0..4)).prop_map(|(name, args)| Directive { name, args, block: Vec::new(), line: 0 });
    let node = leaf.prop_recursive(3, 24, 4, |inner| {
        (token(), vec(token(), 0..3), vec(inner, 0..4)).prop_map(|(name, args, block)| Directive {
            name,
            args,
            block,
            line: 0,
        })
    });
    vec(node, 0..5)
}

#[test]
fn fuzz_directives_generated_trees_round_trip() {
    run("fuzz::directives::fuzz_directives_generated_trees_round_trip", 2000, tree(), |tree| {
        let Some(text) = serialize(&tree) else {
            // A token no quoting can spell (a backtick, an odd backslash run before a quote,
            // and a blank): no text produces it, so there is nothing to round-trip.
            return Ok(());
        };
        match parse(&text) {
            Ok(parsed) => {
                prop_assert_eq!(canonical(&parsed, false), canonical(&tree, true), "serialized as {:?}", text)
            }
            Err(e) => return Err(TestCaseError::fail(format!("serialized {text:?} fails: {e}"))),
        }
        Ok(())
    });
}
