//! Unit tests for the URI template matcher. Expected results follow the Go
//! hub (yosida95/uritemplate `Regexp()`), see the parent module docs.

use super::*;

fn tpl(s: &str) -> UriTemplate {
    match UriTemplate::compile(s) {
        Ok(t) => t,
        Err(e) => panic!("template {s:?} failed to compile: {e}"),
    }
}

fn err(s: &str) -> TemplateError {
    match UriTemplate::compile(s) {
        Ok(_) => panic!("template {s:?} unexpectedly compiled"),
        Err(e) => e,
    }
}

fn assert_matches(template: &str, yes: &[&str], no: &[&str]) {
    let t = tpl(template);
    for uri in yes {
        assert!(t.is_match(uri), "{template:?} should match {uri:?}");
    }
    for uri in no {
        assert!(!t.is_match(uri), "{template:?} should not match {uri:?}");
    }
}

#[test]
fn simple_expression() {
    assert_matches(
        "https://example.com/books/{id}",
        &[
            "https://example.com/books/1",
            "https://example.com/books/abc-DEF_1.2~",
            "https://example.com/books/%C3%A9",
            // `,` is the list separator and cannot be told apart.
            "https://example.com/books/1,2",
            // Undefined/empty variable expands to nothing (Go agrees).
            "https://example.com/books/",
        ],
        &[
            "https://example.com/books/1/2",
            "https://example.com/books",
            "https://example.com/books/1?x",
            "https://example.com/books/1#f",
            "https://example.com/books/a=b",
            "https://example.com/books/%zz",
            "https://example.com/books/é",
            "https://example.com/books/a b",
            "xhttps://example.com/books/1",
            "https://example.com/books/1\n",
        ],
    );
}

#[test]
fn reserved_expansion() {
    assert_matches(
        "https://example.com/{+path}",
        &[
            "https://example.com/a/b/c",
            "https://example.com/",
            "https://example.com/a?b=c&d=e#frag",
            "https://example.com/[x]@!$'()*+,;=:",
            "https://example.com/%2F",
        ],
        &["https://example.org/a", "https://example.com/a b", "https://example.com/<", "https://example.com/é"],
    );
}

#[test]
fn mercure_spec_examples() {
    assert_matches(
        "https://example.com/{+anything}",
        &["https://example.com/books/1", "https://example.com/users/dunglas/books/1?x=y"],
        &["https://example.org/books/1", "http://example.com/books/1"],
    );
    assert_matches(
        "{scheme}://{+host}/{+path}",
        &["https://example.com/books/1", "urn://x/y", "http://localhost:3000/a/b"],
        &["https:/example.com", "mailto:someone", "ht+tp://x/y"],
    );
    assert_matches(
        "https://example.com/books/{id}.jsonld",
        &["https://example.com/books/1.jsonld"],
        &["https://example.com/books/1.json", "https://example.com/books/1/x.jsonld"],
    );
}

#[test]
fn path_explode() {
    assert_matches(
        "https://example.com/users/{id}/books{/book*}",
        &[
            "https://example.com/users/1/books",
            "https://example.com/users/1/books/2",
            "https://example.com/users/1/books/2/3/4",
            "https://example.com/users/1/books/a=b",
        ],
        &[
            "https://example.com/users/1/2/books/3",
            "https://example.com/users/1/booksx",
            "https://example.com/users/1/books/2?x",
        ],
    );
}

#[test]
fn path_multiple_vars_bounded() {
    assert_matches("/root{/a,b}", &["/root", "/root/x", "/root/x/y", "/root/", "/root//y"], &["/root/x/y/z", "/rootx"]);
}

#[test]
fn query_forms() {
    assert_matches(
        "https://example.com/search{?q,lang}",
        &[
            "https://example.com/search",
            "https://example.com/search?q=rust",
            "https://example.com/search?q=rust&lang=en",
            "https://example.com/search?q=",
            "https://example.com/search?q",
            // Names are not checked by the Go regex either.
            "https://example.com/search?other=1",
        ],
        &[
            "https://example.com/search?q=1&lang=en&x=2",
            "https://example.com/search?q=a/b",
            "https://example.com/search&q=1",
        ],
    );
    assert_matches(
        "https://example.com/search?fixed=1{&x,y}",
        &[
            "https://example.com/search?fixed=1",
            "https://example.com/search?fixed=1&x=2",
            "https://example.com/search?fixed=1&x=2&y=3",
        ],
        &["https://example.com/search?fixed=1&x=2&y=3&z=4"],
    );
    assert_matches("/s{?list*}", &["/s?a=1&b=2&c=3&d=4", "/s"], &["/s?a=1#x"]);
}

#[test]
fn other_operators() {
    assert_matches("/x{#frag}", &["/x", "/x#a/b?c", "/x#"], &["/x#a b"]);
    assert_matches("www{.dom*}", &["www", "www.example.com"], &["www.a/b"]);
    assert_matches("/m{;x,y}", &["/m;x=1;y=2", "/m;x", "/m"], &["/m;x=1;y=2;z=3"]);
    assert_matches("{x,y}", &["", "1", "1,2", "1,2,3"], &["1;2"]);
    assert_matches("{+x,y}", &["a/b,c/d", ""], &["a b"]);
}

#[test]
fn prefix_modifier_does_not_bound_length() {
    // The Go regex ignores max-length; so do we.
    assert_matches("/{id:3}", &["/1", "/1234567"], &["/1/2"]);
    assert!(UriTemplate::compile("/{id:9999}").is_ok());
    assert!(UriTemplate::compile("/{id:1000}").is_ok());
}

#[test]
fn literal_metacharacters_are_literal() {
    assert_matches(
        "https://example.com/a.b?c=(d)[e]+f*g$h{id}",
        &["https://example.com/a.b?c=(d)[e]+f*g$h1"],
        &[
            "https://example.com/aXb?c=(d)[e]+f*g$h1",
            "https://example.com/a.bc=(d)[e]+f*g$h1",
            "https://example.com/a.b?c=d[e]+f*g$h1",
            "https://example.com/a.b?c=(d)e+f*g$h1",
            "https://example.com/a.b?c=(d)[e]ff*g$h1",
        ],
    );
    assert_matches("/%41{x}", &["/%41y"], &["/Ay"]);
    assert_matches("/é/{x}", &["/é/1"], &["/e/1"]);
}

#[test]
fn template_without_expression() {
    // Not a template per `is_template`, but still compiles to an exact match.
    assert_matches("https://example.com/a", &["https://example.com/a"], &["https://example.com/ab"]);
    assert_matches("", &[""], &["a"]);
}

#[test]
fn as_str_and_is_template() {
    let t = tpl("/books/{id}");
    assert_eq!(t.as_str(), "/books/{id}");
    assert!(is_template("/books/{id}"));
    assert!(is_template("{"));
    assert!(!is_template("/books/1"));
    assert!(!is_template("*"));
}

#[test]
fn malformed_templates() {
    assert_eq!(err("{"), TemplateError::UnclosedBrace);
    assert_eq!(err("/a/{id"), TemplateError::UnclosedBrace);
    assert_eq!(err("{a{b}"), TemplateError::UnclosedBrace);
    assert_eq!(err("{}"), TemplateError::EmptyExpression);
    assert_eq!(err("a}"), TemplateError::UnmatchedBrace);
    assert_eq!(err("{a}}"), TemplateError::UnmatchedBrace);
    assert_eq!(err("{@x}"), TemplateError::BadOperator('@'));
    assert_eq!(err("{=x}"), TemplateError::BadOperator('='));
    assert_eq!(err("{,x}"), TemplateError::BadOperator(','));
    assert_eq!(err("{!x}"), TemplateError::BadOperator('!'));
    assert_eq!(err("{|x}"), TemplateError::BadOperator('|'));
    assert_eq!(err("{+}"), TemplateError::BadVarname);
    assert_eq!(err("{a,}"), TemplateError::BadVarname);
    assert_eq!(err("{a,,b}"), TemplateError::BadVarname);
    assert_eq!(err("{a-b}"), TemplateError::BadVarname);
    assert_eq!(err("{a.b}"), TemplateError::BadVarname);
    assert_eq!(err("{$x}"), TemplateError::BadVarname);
    assert_eq!(err("{a%zz}"), TemplateError::BadVarname);
    assert_eq!(err("{a b}"), TemplateError::BadVarname);
    assert_eq!(err("{*}"), TemplateError::BadVarname);
    assert_eq!(err("{x:0}"), TemplateError::BadModifier);
    assert_eq!(err("{x:01}"), TemplateError::BadModifier);
    assert_eq!(err("{x:10000}"), TemplateError::BadModifier);
    assert_eq!(err("{x:10001}"), TemplateError::BadModifier);
    assert_eq!(err("{x:}"), TemplateError::BadModifier);
    assert_eq!(err("{x:a}"), TemplateError::BadModifier);
    assert_eq!(err("{x:-1}"), TemplateError::BadModifier);
    assert_eq!(err("{x:+1}"), TemplateError::BadModifier);
    assert_eq!(err("{x:3*}"), TemplateError::BadModifier);
    assert_eq!(err("{x:3:4}"), TemplateError::BadModifier);
    assert_eq!(err("/a b/{x}"), TemplateError::BadLiteral(' '));
    assert_eq!(err("/<{x}"), TemplateError::BadLiteral('<'));
    assert_eq!(err("/\"{x}"), TemplateError::BadLiteral('"'));
    assert_eq!(err("/'{x}"), TemplateError::BadLiteral('\''));
    assert_eq!(err("/%g1{x}"), TemplateError::BadPercentEncoding);
    assert_eq!(err("/{x}%4"), TemplateError::BadPercentEncoding);
}

#[test]
fn valid_varnames() {
    for ok in ["{a}", "{A_1}", "{_}", "{%41b}", "{a,b*,c:5}", "{?a*,b}", "{9}"] {
        assert!(UriTemplate::compile(ok).is_ok(), "{ok:?}");
    }
}

#[test]
fn error_messages_are_short_lowercase() {
    for e in [
        TemplateError::UnclosedBrace,
        TemplateError::EmptyExpression,
        TemplateError::BadOperator('@'),
        TemplateError::TooLarge,
        TemplateError::TooLong(1024),
        TemplateError::TooManyExpressions(10),
        TemplateError::TooManyVariables(20),
    ] {
        let msg = e.to_string();
        assert!(msg.len() < 40, "{msg}");
        assert_eq!(msg, msg.to_lowercase());
    }
}

/// No limit but the hard ones ([`MAX_TEMPLATE_LEN`], [`REGEX_SIZE_LIMIT`]).
const UNLIMITED: TemplateLimits =
    TemplateLimits { max_length: MAX_TEMPLATE_LEN, max_expressions: usize::MAX, max_variables: usize::MAX };

#[test]
fn too_long_template_rejected() {
    let long = format!("https://example.com/{}{{id}}", "a".repeat(MAX_TEMPLATE_LEN));
    assert_eq!(UriTemplate::compile_within(&long, &UNLIMITED).unwrap_err(), TemplateError::TooLong(MAX_TEMPLATE_LEN));
    let default = format!("https://example.com/{}{{id}}", "a".repeat(1024));
    assert_eq!(err(&default), TemplateError::TooLong(1024));
    assert!(err(&default).is_limit());
}

#[test]
fn expression_and_variable_limits() {
    let limits = TemplateLimits { max_length: 1024, max_expressions: 3, max_variables: 4 };
    let ok = |t: &str| UriTemplate::compile_within(t, &limits);
    assert!(ok("/{a}/{b}/{c}").is_ok());
    assert_eq!(ok("/{a}/{b}/{c}/{d}").unwrap_err(), TemplateError::TooManyExpressions(3));
    assert!(ok("/{a}{?b,c,d}").is_ok());
    assert_eq!(ok("/{a}{?b,c,d,e}").unwrap_err(), TemplateError::TooManyVariables(4));
    assert!(ok("/{a}{?b,c,d,e}").unwrap_err().is_limit());
    // Syntax errors are not limit errors: such a selector is matched as a string.
    assert!(!ok("/{a").unwrap_err().is_limit());
    // The adversarial shape from issue 9: a long run of `{a}x` is refused by default.
    let hostile = format!("https://e/{}", "{a}x".repeat(500));
    assert_eq!(err(&hostile), TemplateError::TooLong(1024));
    let hostile = format!("https://e/{}", "{a}x".repeat(100));
    assert_eq!(err(&hostile), TemplateError::TooManyExpressions(10));
}

#[test]
fn literal_prefix_suffix_and_length_prefilter_agree_with_the_regex() {
    let t = tpl("https://e.com/a/{x}/b{?q}.json");
    for (topic, want) in [
        ("https://e.com/a/1/b.json", true),
        ("https://e.com/a/1/b?q=2.json", true),
        ("https://e.com/a/1/b", false),
        ("http://e.com/a/1/b.json", false),
        ("https://e.com/a/b.json", false),
        (".json", false),
        ("", false),
    ] {
        assert_eq!(t.is_match(topic), want, "{topic}");
    }
    // Literals at both ends only.
    let t = tpl("{x}");
    assert!(t.is_match("") && t.is_match("abc") && !t.is_match("a/b"));
}

#[test]
fn huge_template_rejected_by_size_cap() {
    // Many expressions, under the length cap but over the regex budget.
    let many = "{a}".repeat(MAX_TEMPLATE_LEN / 3);
    assert!(many.len() <= MAX_TEMPLATE_LEN);
    assert_eq!(UriTemplate::compile_within(&many, &UNLIMITED).unwrap_err(), TemplateError::TooLarge);
    // A large bounded repetition from a long variable list.
    let list = format!("{{?{}}}", vec!["a"; 2000].join(","));
    assert!(list.len() <= MAX_TEMPLATE_LEN);
    assert_eq!(UriTemplate::compile_within(&list, &UNLIMITED).unwrap_err(), TemplateError::TooLarge);
}

#[test]
fn longest_literal_template_fits_size_cap() {
    // Literal-heavy selectors up to the length cap must stay usable.
    let ascii = format!("/{}{{x}}", "a".repeat(MAX_TEMPLATE_LEN - 4));
    assert!(UriTemplate::compile_within(&ascii, &UNLIMITED).is_ok());
    let wide = format!("/{}{{x}}", "é".repeat((MAX_TEMPLATE_LEN - 4) / 2));
    assert!(UriTemplate::compile_within(&wide, &UNLIMITED).is_ok());
}

#[test]
fn size_cap_is_configurable() {
    assert!(matches!(compile_with_limit("/{a}/{b}/{c}", &UNLIMITED, 64), Err(TemplateError::TooLarge)));
    assert!(compile_with_limit("/{a}/{b}/{c}", &UNLIMITED, REGEX_SIZE_LIMIT).is_ok());
}

#[test]
fn pathological_input_completes() {
    let t = tpl("https://example.com/{+a}{b}{+c}/{d}{?q,r}");
    let mut topic = String::from("https://example.com/");
    topic.push_str(&"a,".repeat(50_000));
    assert!(topic.len() >= 100_000);
    // Ends with a char no variable accepts, forcing a full scan.
    topic.push_str("/x ");
    assert!(!t.is_match(&topic));
    topic.pop();
    assert!(t.is_match(&topic));

    let t = tpl("/{x}{y}{z}{w}{v}/end");
    let topic = format!("/{}", "a".repeat(100_000));
    assert!(!t.is_match(&topic));
    assert!(t.is_match(&format!("{topic}/end")));
}

#[test]
fn pattern_mirrors_go_regexp_shape() {
    // Go: ^(/)((?:(?:[\x2c<U>]|%[[:xdigit:]][[:xdigit:]])*))?$
    let u = r"\x2d\x2e\x30-\x39\x41-\x5a\x5f\x61-\x7a\x7e";
    let pattern = |t| to_regex_pattern(t, &TemplateLimits::default()).ok().map(|p| p.pattern);
    assert_eq!(pattern("/{id}"), Some(format!(r"^(?:/)(?:(?:[\x2c{u}]|%[0-9A-Fa-f]{{2}})*)?$")));
    // Go: (?:\?(V(?:&V){0,1}))? with V allowing `=` (named).
    let v = format!(r"(?:[\x2c\x3d{u}]|%[0-9A-Fa-f]{{2}})*");
    assert_eq!(pattern("{?q,lang}"), Some(format!(r"^(?:\?{v}(?:\&{v}){{0,1}})?$")));
}
