//! A real Redis server for the shared-tier tests: started on a free loopback port with no
//! persistence, stopped (by its PID) when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_addr, tools_required};

/// A `redis-server` this test started.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one, or `None` (with a note) when `redis-server` is not installed and tools are
    /// not required; under `FRUGAL_REQUIRE_TOOLS=1` or in CI a missing server fails the test.
    pub fn start() -> Option<Self> {
        let port = free_addr().port();
        let mut server = Self { child: None, port };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(e) => {
                assert!(
                    !tools_required(),
                    "redis-server cannot start ({e}), and CI or FRUGAL_REQUIRE_TOOLS=1 requires \
                     it: install the apt package `redis-server` (scripts/setup.sh does)"
                );
                eprintln!("redis-server not available ({e}): skipping this shared-tier test");
                None
            }
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(std::io::Error::other(
                    "redis-server did not listen within 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Pauses every client for `pause` (CLIENT PAUSE): commands queue in the server and run
    /// when it ends, as on a Redis that stalls (a fork, a slow disk, a long script).
    pub fn pause(&self, pause: Duration) {
        let millis = pause.as_millis().to_string();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        let command = format!(
            "*3\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n${}\r\n{millis}\r\n",
            millis.len()
        );
        stream
            .write_all(command.as_bytes())
            .expect("send CLIENT PAUSE");
        let mut reply = [0u8; 5];
        stream.read_exact(&mut reply).expect("CLIENT PAUSE reply");
        assert_eq!(&reply, b"+OK\r\n", "CLIENT PAUSE refused");
    }

    /// Kills the server (SIGKILL: no goodbye to clients), as an outage would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh, empty server on the same port, as a restarted Redis would be.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server restarts");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
