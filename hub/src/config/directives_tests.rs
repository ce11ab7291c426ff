//! Unit tests for the Caddyfile-style directive parser.

use super::*;

fn d(name: &str, args: &[&str], line: usize) -> Directive {
    Directive { name: name.to_owned(), args: args.iter().map(|a| (*a).to_owned()).collect(), block: Vec::new(), line }
}

fn with_block(mut dir: Directive, block: Vec<Directive>) -> Directive {
    dir.block = block;
    dir
}

fn ok(text: &str) -> Vec<Directive> {
    match parse(text) {
        Ok(v) => v,
        Err(e) => panic!("{text:?} failed: {e}"),
    }
}

fn err(text: &str) -> DirectiveError {
    match parse(text) {
        Ok(v) => panic!("{text:?} unexpectedly parsed: {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_inputs() {
    assert!(ok("").is_empty());
    assert!(ok("\n\n   \n\t\n").is_empty());
    assert!(ok("# only a comment\n  # another\n").is_empty());
    assert!(ok("\u{feff}").is_empty());
}

#[test]
fn simple_directives() {
    let got = ok("anonymous\ncors_origins https://a.example https://b.example\n\nheartbeat 15s");
    assert_eq!(
        got,
        vec![
            d("anonymous", &[], 1),
            d("cors_origins", &["https://a.example", "https://b.example"], 2),
            d("heartbeat", &["15s"], 4),
        ]
    );
}

#[test]
fn whitespace_and_crlf() {
    let got = ok("  publish_origins\t a   b \r\nsubscriptions\r\n\r\n");
    assert_eq!(got, vec![d("publish_origins", &["a", "b"], 1), d("subscriptions", &[], 2)]);
}

#[test]
fn double_quoted_tokens() {
    let got = ok(r#"ui "hello world" "say \"hi\"" "back\slash" "" a"b"#);
    assert_eq!(got, vec![d("ui", &["hello world", "say \"hi\"", r"back\slash", "", "a\"b"], 1)]);
    // A closing quote ends the token; what follows starts a new one.
    assert_eq!(ok(r#"x "a"b"#), vec![d("x", &["a", "b"], 1)]);
    // `\\` is not an escape in Caddy: both backslashes are kept.
    assert_eq!(ok(r#"x "a\\""#), vec![d("x", &[r"a\\"], 1)]);
    assert_eq!(ok(r#"x "a\\\"b""#), vec![d("x", &[r#"a\\"b"#], 1)]);
}

#[test]
fn backtick_tokens() {
    let got = ok(r#"x `a "quoted" \n {thing}` `` y"#);
    assert_eq!(got, vec![d("x", &[r#"a "quoted" \n {thing}"#, "", "y"], 1)]);
}

#[test]
fn quoted_tokens_span_lines() {
    let got = ok("x \"line1\r\nline2\" after\nnext");
    assert_eq!(got, vec![d("x", &["line1\nline2", "after"], 1), d("next", &[], 3)]);
    let got = ok("x `a\nb`\ny");
    assert_eq!(got, vec![d("x", &["a\nb"], 1), d("y", &[], 3)]);
}

#[test]
fn comments() {
    let got = ok("a 1 # trailing comment\n# full line\nb x#y \"#not\" # c \"unterminated");
    assert_eq!(got, vec![d("a", &["1"], 1), d("b", &["x#y", "#not"], 3)]);
}

#[test]
fn line_continuation() {
    let got = ok("cors_origins a \\\n   b \\  \r\n c\nnext");
    assert_eq!(got, vec![d("cors_origins", &["a", "b", "c"], 1), d("next", &[], 4)]);
    // A backslash elsewhere is literal.
    assert_eq!(ok(r"x a\b \c"), vec![d("x", &[r"a\b", r"\c"], 1)]);
    // Trailing backslash at EOF is harmless.
    assert_eq!(ok("x a \\"), vec![d("x", &["a"], 1)]);
    // Continuation glued to a token ends it.
    assert_eq!(ok("x a\\\nb"), vec![d("x", &["a", "b"], 1)]);
}

#[test]
fn blocks() {
    let got = ok("transport bolt {\n path /data/m.db\n size 1000\n}\nanonymous");
    assert_eq!(
        got,
        vec![
            with_block(d("transport", &["bolt"], 1), vec![d("path", &["/data/m.db"], 2), d("size", &["1000"], 3)]),
            d("anonymous", &[], 5),
        ]
    );
}

#[test]
fn nested_and_empty_blocks() {
    let got = ok("a {\n  b x {\n    c\n  }\n  e {\n  }\n}\n");
    assert_eq!(
        got,
        vec![with_block(d("a", &[], 1), vec![with_block(d("b", &["x"], 2), vec![d("c", &[], 3)]), d("e", &[], 5),])]
    );
}

#[test]
fn brace_lookalikes_are_arguments() {
    let got = ok("x \"{\" \"}\" {env.FOO} {} `{`\n\"}\"");
    assert_eq!(got, vec![d("x", &["{", "}", "{env.FOO}", "{}", "{"], 1), d("}", &[], 2)]);
    // A quoted `{` at end of line does not open a block.
    assert_eq!(ok("x \"{\"\ny"), vec![d("x", &["{"], 1), d("y", &[], 2)]);
}

#[test]
fn block_opened_through_continuation() {
    let got = ok("transport \\\n bolt {\n path p\n}");
    assert_eq!(got, vec![with_block(d("transport", &["bolt"], 1), vec![d("path", &["p"], 3)])]);
}

#[test]
fn unterminated_quotes() {
    let e = err("a\nb \"never closed\nc");
    assert_eq!(e, DirectiveError::new(2, "unterminated quoted string"));
    assert_eq!(e.to_string(), "line 2: unterminated quoted string");
    assert_eq!(err("x `open").line, 1);
    // An escaped quote does not close the string.
    assert_eq!(err(r#"x "a\""#).line, 1);
}

#[test]
fn unbalanced_braces() {
    assert_eq!(err("}"), DirectiveError::new(1, "unexpected '}'"));
    assert_eq!(err("a\n\nb {\n c\n").line, 3);
    assert_eq!(err("a {\n b {\n }\n").line, 1);
    assert_eq!(err("a {\n}\n}").line, 3);
    assert_eq!(err("{\n}").line, 1);
    assert_eq!(err("a\n  } x").line, 2);
    assert_eq!(err("a { b\n}").line, 1);
    assert_eq!(err("a {\n b }\n}").line, 2);
    assert_eq!(err("a {\n c\n}\nd { e }\n").line, 4);
    assert_eq!(err("a {}\n}").line, 2);
}

#[test]
fn depth_is_capped() {
    let ok_depth = "a {\n".repeat(MAX_DEPTH) + &"}\n".repeat(MAX_DEPTH);
    assert!(parse(&ok_depth).is_ok());
    let too_deep = "a {\n".repeat(MAX_DEPTH + 1) + &"}\n".repeat(MAX_DEPTH + 1);
    assert_eq!(err(&too_deep).line, MAX_DEPTH + 1);
    // Hostile input fails fast instead of building a deep tree.
    let hostile = "a {\n".repeat(100_000);
    assert_eq!(err(&hostile).message, "blocks nested too deeply");
}

#[test]
fn mercure_module_example() {
    let text = "\
# Extra Mercure directives
anonymous
subscriptions
cors_origins *
publish_origins https://example.com
heartbeat 30s
write_timeout 0s
transport bolt {
\tpath /data/mercure.db
\tsize 1000
\tcleanup_frequency 0.3
}
ui
demo
";
    let got = ok(text);
    let names: Vec<&str> = got.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "anonymous",
            "subscriptions",
            "cors_origins",
            "publish_origins",
            "heartbeat",
            "write_timeout",
            "transport",
            "ui",
            "demo"
        ]
    );
    let transport = &got[6];
    assert_eq!(transport.line, 8);
    assert_eq!(transport.args, ["bolt"]);
    assert_eq!(transport.block.len(), 3);
    assert_eq!(transport.block[2], d("cleanup_frequency", &["0.3"], 11));
}

#[test]
fn unicode_tokens() {
    assert_eq!(ok("x héllo \"wörld\""), vec![d("x", &["héllo", "wörld"], 1)]);
}
