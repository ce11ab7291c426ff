//! Test certificates made with the `openssl` command line: a CA and leaves for
//! `localhost`/`127.0.0.1`, in a fresh directory (nothing is committed). A missing `openssl`
//! fails the test (`scripts/test` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::fresh_work_dir;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A leaf for localhost and 127.0.0.1 signed by `ca.pem` (`NAME.pem`, `NAME.key`).
pub fn make_leaf(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("write san.ext");
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let pem = format!("{name}.pem");
    let subj = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    (dir.join(pem), dir.join(key))
}

/// A fresh directory with a CA and one leaf (`leaf1`).
pub fn certs() -> PathBuf {
    let dir = fresh_work_dir();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mercure-hub test CA",
        ],
    );
    make_leaf(&dir, "leaf1");
    dir
}
