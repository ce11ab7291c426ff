//! A private `redis-server` for a test: a free loopback port, a directory of its own, killed
//! on drop. `scripts/test` installs `redis-server` (apt) when it is missing; without it these
//! tests fail with a message saying so — they never pass untested.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    aof: bool,
}

impl RedisServer {
    /// Starts a server with no persistence.
    pub fn start() -> Self {
        Self::launch(free_port(), super::fresh_work_dir(), false)
    }

    /// Starts a server with `appendonly yes` and `appendfsync always`: every write it
    /// acknowledges is on disk first.
    pub fn start_durable() -> Self {
        Self::launch(free_port(), super::fresh_work_dir(), true)
    }

    fn launch(port: u16, dir: PathBuf, aof: bool) -> Self {
        let child = Self::spawn(port, &dir, aof);
        let server = RedisServer { child: Some(child), port, dir, aof };
        server.wait_ready();
        server
    }

    fn spawn(port: u16, dir: &std::path::Path, aof: bool) -> Child {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--dir", dir.to_str().expect("utf-8 dir")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}): install it (`apt-get install -y redis-server`; scripts/test does)")
        })
    }

    /// `redis://127.0.0.1:PORT/0?stream=NAME` plus `extra` options.
    pub fn url(&self, stream: &str, extra: &str) -> String {
        format!("redis://127.0.0.1:{}/0?stream={stream}{extra}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not answer PING within 10 s", self.port);
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// `kill -9` (nothing flushed beyond what its fsync policy already wrote).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory (an AOF server reloads its data).
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(Self::spawn(self.port, &self.dir, self.aof));
        self.wait_ready();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
