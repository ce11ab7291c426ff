//! The request-head sniffer of `server::native`: `parse_subscribe` decides, from raw client
//! bytes, whether a connection is a natively served subscription.
//!
//! Properties: it never panics; whatever it accepts is an HTTP/1.x `GET` of the endpoint with
//! no body framing, at most `MAX_HEADERS` headers, whose target, header names and values are
//! all taken from the input; it accepts only a whole head (no strict prefix of an accepted
//! input is accepted, and `head_complete` — what makes `sniff` stop reading — holds for it);
//! and on well-formed heads it agrees with a model of those rules, keeping every header in
//! order.

use proptest::collection::vec;
use proptest::prelude::*;

use super::{Raw, check, re, run};
use crate::server::native::{MAX_HEADERS, head_complete, parse_subscribe};

const EP: &str = "/.well-known/mercure";

/// Invariants of any accepted input, checked on every case.
fn check_accepted(buf: &[u8]) -> Result<(), TestCaseError> {
    let Some(req) = parse_subscribe(buf, EP) else { return Ok(()) };
    let lower = buf.to_ascii_lowercase();
    let contains = |hay: &[u8], needle: &[u8]| needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle);
    check(req.method() == hyper::Method::GET, || format!("accepted method {}", req.method()))?;
    check(req.uri().path() == EP, || format!("accepted path {:?}", req.uri().path()))?;
    let target = req.uri().to_string();
    check(contains(buf, target.as_bytes()), || format!("target {target:?} is not in the input"))?;
    check(matches!(req.version(), hyper::Version::HTTP_10 | hyper::Version::HTTP_11), || {
        format!("accepted version {:?}", req.version())
    })?;
    check(req.headers().len() <= MAX_HEADERS, || format!("{} headers accepted", req.headers().len()))?;
    for (name, value) in req.headers() {
        check(contains(&lower, name.as_str().as_bytes()), || format!("header name {name} is not in the input"))?;
        check(contains(buf, value.as_bytes()), || format!("header value {value:?} is not in the input"))?;
    }
    check(!req.headers().contains_key(hyper::header::CONTENT_LENGTH), || "accepted a content-length".into())?;
    check(!req.headers().contains_key(hyper::header::TRANSFER_ENCODING), || "accepted a transfer-encoding".into())?;
    check(head_complete(buf), || "accepted a head that sniff would not stop reading at".into())?;
    // Every strict prefix near the end, and a spread of shorter ones (all of them would make
    // a case quadratic in the head's length).
    let n = buf.len();
    let prefixes = (n.saturating_sub(8)..n).chain((0..32).map(|i| i * n / 32));
    for k in prefixes {
        check(parse_subscribe(&buf[..k], EP).is_none(), || format!("accepted the strict prefix {:?}", &buf[..k]))?;
    }
    Ok(())
}

/// A request head built from parts near the grammar.
#[derive(Debug, Clone)]
struct Head {
    method: String,
    target: String,
    version: &'static str,
    headers: Vec<(String, String)>,
    eol: &'static str,
}

impl Head {
    fn render(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}{}", self.method, self.target, self.version, self.eol);
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}{}", self.eol));
        }
        out.push_str(self.eol);
        out.into_bytes()
    }

    /// What `parse_subscribe` must do with this head: the model of its rules.
    fn should_accept(&self) -> bool {
        self.method == "GET"
            && self.target.split('?').next() == Some(EP)
            && self.version != "HTTP/2.0"
            && self.headers.len() <= MAX_HEADERS
            && !self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"))
    }
}

fn head() -> impl Strategy<Value = Head> {
    let method = prop_oneof![4 => Just("GET".to_owned()), 1 => re("(POST|HEAD|get|GE|GETT|PRI)")];
    let path = prop_oneof![
        6 => Just(EP.to_owned()),
        1 => Just(format!("{EP}/")),
        1 => Just(format!("{EP}x")),
        1 => Just(format!("{EP}/subscriptions")),
        1 => Just("/".to_owned()),
        1 => Just(format!("http://h{EP}")),
    ];
    let query = proptest::option::of(re("[A-Za-z0-9=&%._~/-]{0,24}"));
    let version = prop_oneof![4 => Just("HTTP/1.1"), 1 => Just("HTTP/1.0"), 1 => Just("HTTP/2.0")];
    let name = prop_oneof![
        3 => re("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"),
        1 => re("(Host|Content-Length|transfer-encoding|Last-Event-ID|Cookie|Authorization)"),
    ];
    // No leading or trailing blanks: the parser trims them, which the model does not.
    let value = re("([!-~]([ \t!-~]{0,16}[!-~])?)?");
    let headers = prop_oneof![8 => vec((name.clone(), value.clone()), 0..8), 1 => vec((name, value), 60..70)];
    (method, path, query, version, headers, prop_oneof![3 => Just("\r\n"), 1 => Just("\n")]).prop_map(
        |(method, path, query, version, headers, eol)| Head {
            method,
            target: match query {
                Some(q) => format!("{path}?{q}"),
                None => path,
            },
            version,
            headers,
            eol,
        },
    )
}

/// A well-formed head is accepted exactly when the model says so, with every part intact.
#[test]
fn fuzz_head_model() {
    run("fuzz::http_head::fuzz_head_model", 2000, head(), |h| {
        let buf = h.render();
        check_accepted(&buf)?;
        let got = parse_subscribe(&buf, EP);
        check(got.is_some() == h.should_accept(), || {
            format!("accepted: {}, model: {}", got.is_some(), h.should_accept())
        })?;
        let Some(req) = got else { return Ok(()) };
        prop_assert_eq!(req.uri().to_string(), h.target.clone());
        let want_version = if h.version == "HTTP/1.0" { hyper::Version::HTTP_10 } else { hyper::Version::HTTP_11 };
        prop_assert_eq!(req.version(), want_version);
        // `HeaderMap` keeps insertion order per name and `iter` walks names in first-seen order,
        // so compare per name.
        for (n, _) in &h.headers {
            let want: Vec<&str> =
                h.headers.iter().filter(|(m, _)| m.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str()).collect();
            let got: Vec<&str> = req.headers().get_all(n.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
            prop_assert_eq!(got, want, "header {}", n);
        }
        Ok(())
    });
}

/// A head that was damaged: cut, a byte changed or inserted, bytes appended.
fn mutated_head() -> impl Strategy<Value = Vec<u8>> {
    (head(), any::<prop::sample::Index>(), any::<u8>(), 0..4u8, vec(any::<u8>(), 0..8)).prop_map(
        |(h, at, byte, how, tail)| {
            let mut buf = h.render();
            let i = at.index(buf.len() + 1);
            match how {
                0 => buf.truncate(i),
                1 if i < buf.len() => buf[i] = byte,
                2 => buf.insert(i, byte),
                _ => buf.extend_from_slice(&tail),
            }
            buf
        },
    )
}

#[test]
fn fuzz_head_mutated_and_raw_bytes() {
    let input = prop_oneof![3 => mutated_head(), 1 => vec(any::<u8>(), 0..256)].prop_map(Raw);
    run("fuzz::http_head::fuzz_head_mutated_and_raw_bytes", 3000, input, |buf| check_accepted(&buf.0));
}

/// Finding: `sniff` waited for `\r\n\r\n` only, so a subscription whose head ends with bare
/// LFs (which the parser accepts, as RFC 9112 allows) hung until the header timeout.
#[test]
fn fuzz_regression_bare_lf_head_is_complete() {
    let buf = b"GET /.well-known/mercure?topic=a HTTP/1.1\nHost: x\n\n";
    assert!(parse_subscribe(buf, EP).is_some());
    assert!(head_complete(buf));
    assert!(head_complete(b"GET /.well-known/mercure HTTP/1.1\n\r\n"));
    assert!(!head_complete(b"GET /.well-known/mercure HTTP/1.1\r\nHost: x\r\n"));
}
