//! Packaging: the binary started with exactly `compose.yaml`'s `command` and `environment`
//! serves, and the compose health check's command passes against it.
//!
//! Docker cannot run on the machines these tests run on, so the image itself is not built
//! here: this checks what the container would run, the way it would run it. Two things are
//! changed, both from outside the file's values: the listeners, through flags (`--listen`,
//! `--admin`, which take precedence over `SERVER_NAME`), because `:80` needs privileges a test
//! does not have and the admin port `2019` may be held by another hub on the machine; and the
//! health check's port number, for the same reason.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

const COMPOSE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../compose.yaml"));

/// What the test needs from the `mercure` service of `compose.yaml`.
#[derive(Debug, Default)]
struct Service {
    command: Vec<String>,
    environment: Vec<(String, String)>,
    healthcheck: Vec<String>,
}

/// Reads the `mercure` service from the subset of YAML `compose.yaml` keeps to (said at its
/// top): `key: value`, flow lists of double-quoted strings (which are JSON), double-quoted
/// scalars, and `|` block scalars. Anything else in those keys fails the test.
fn service(text: &str) -> Service {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = lines.iter().position(|l| l.trim() == "mercure:").expect("a `mercure` service");
    let service_indent = indent(lines[start]);
    let mut out = Service::default();
    let mut i = start + 1;
    let mut section = "";
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let depth = indent(line);
        if depth <= service_indent {
            break;
        }
        let (key, value) = line.trim().split_once(':').map(|(k, v)| (k.trim(), v.trim())).unwrap_or((line.trim(), ""));
        if depth == service_indent + 2 {
            section = key;
            if key == "command" {
                out.command = serde_json::from_str(value).expect("command: a flow list of double-quoted strings");
            }
            continue;
        }
        match section {
            "environment" => {
                let value = if value == "|" {
                    let mut block = String::new();
                    while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > depth) {
                        block.push_str(lines[i].trim());
                        block.push('\n');
                        i += 1;
                    }
                    block
                } else {
                    serde_json::from_str(value).expect("environment: double-quoted values")
                };
                out.environment.push((key.to_owned(), value));
            }
            "healthcheck" if key == "test" => {
                out.healthcheck = serde_json::from_str(value).expect("healthcheck.test: a flow list");
            }
            _ => {}
        }
    }
    out
}

fn admin_addr(hub: &HubProcess) -> SocketAddr {
    assert!(hub.wait_for_log("admin_addr=", Duration::from_secs(10)), "logs:\n{}", hub.logs());
    let logs = hub.logs();
    let rest = logs.split("admin_addr=").nth(1).expect("admin_addr");
    rest.split_whitespace().next().and_then(|a| a.parse().ok()).expect("an address")
}

#[tokio::test]
async fn the_compose_service_serves_and_passes_its_health_check() {
    let svc = service(COMPOSE);
    assert_eq!(svc.command.first().map(String::as_str), Some("mercure-hub"), "{svc:?}");
    let key = svc
        .environment
        .iter()
        .find(|(k, _)| k == "MERCURE_PUBLISHER_JWT_KEY")
        .map(|(_, v)| v.clone())
        .expect("a publisher key in compose.yaml");
    assert!(svc.environment.iter().any(|(k, v)| k == "MERCURE_EXTRA_DIRECTIVES" && v.contains('\n')), "{svc:?}");

    let env: Vec<(&str, &str)> = svc.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut args: Vec<&str> = svc.command[1..].iter().map(String::as_str).collect();
    args.extend(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    let hub = HubProcess::start_with_args(&env, &args);

    // It serves: an anonymous subscriber (the file's `anonymous`) gets what the file's key
    // publishes, with the CORS header for the file's origin.
    let topic = "https://example.com/compose";
    let mut sub =
        SseStream::connect(hub.addr(), &subscribe_path(&[topic], &[]), &[("Origin", "http://localhost:8000")]).await;
    assert_eq!(sub.header("access-control-allow-origin"), Some("http://localhost:8000"));
    let token = hs256(&key, &serde_json::json!({"mercure": {"publish": ["*"]}}));
    let id = publish_ok(hub.addr(), &token, &[("topic", topic), ("data", "from compose")]).await;
    assert_event(&sub.next_event().await, &id, "from compose");

    // The health check's own command, against this hub's admin port.
    assert_eq!(svc.healthcheck.first().map(String::as_str), Some("CMD"), "{svc:?}");
    let admin = admin_addr(&hub);
    let argv: Vec<String> = svc.healthcheck[1..].iter().map(|a| a.replace("2019", &admin.port().to_string())).collect();
    let status = std::process::Command::new(&argv[0]).args(&argv[1..]).status().expect("run the health check");
    assert!(status.success(), "health check failed: {argv:?}; logs:\n{}", hub.logs());
    // And it fails when nothing answers there.
    drop(hub);
    let status = std::process::Command::new(&argv[0]).args(&argv[1..]).status().expect("run the health check");
    assert!(!status.success(), "the health check passed with the hub gone");
}

#[test]
fn the_dockerfile_health_check_probes_readiness_on_the_admin_address() {
    let dockerfile = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile"));
    let check = dockerfile.lines().find(|l| l.trim_start().starts_with("CMD [\"bash\"")).expect("a HEALTHCHECK CMD");
    assert!(check.contains("/dev/tcp/127.0.0.1/2019") && check.contains("/mercure/health/ready"), "{check}");
    let unit = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/mercure-hub.service"));
    assert!(unit.lines().any(|l| l.starts_with("LimitNOFILE=")), "the unit sets LimitNOFILE");
}
