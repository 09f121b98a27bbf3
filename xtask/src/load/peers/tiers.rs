//! The caches `load peers` compares, each started on a free port of 127.0.0.1 in front of
//! the origin and stopped on drop (even when the run fails): the example cache proxy and
//! nginx here, Varnish through `towerkit_test_support::servers::Varnish`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::services::free_port;
use crate::{Result, cargo, run_command, target_dir};

use super::super::http_get;

/// Builds the example cache proxy's release binary.
pub(crate) fn build_proxy() -> Result {
    run_command(cargo().args([
        "build",
        "--release",
        "--locked",
        "--package",
        "example-cache-proxy",
    ]))
}

/// The example cache proxy (memory store only, its default 256 MB), killed on drop.
pub(crate) struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    /// Starts it in front of the origin on `origin_port` and waits for its
    /// `listening on ADDR` line.
    pub(crate) fn start(origin_port: u16) -> Result<Proxy> {
        let binary = target_dir().join("release").join("example-cache-proxy");
        let mut child = Command::new(&binary)
            .args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(format!("http://127.0.0.1:{origin_port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|address| address.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok());
        let mut proxy = Proxy { child, port: 0 };
        match port {
            Some(port) => {
                proxy.port = port;
                Ok(proxy)
            }
            None => Err(format!(
                "the example cache proxy did not say where it listens (it printed {line:?})"
            )),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx in a prefix directory of its own: a caching reverse proxy in front of the origin
/// on one port and, for reference, the object served as a static file on another. Stopped
/// (its workers too) and its directory removed on drop.
pub(crate) struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
    /// The `proxy_cache` server's port.
    pub(crate) cache_port: u16,
    /// The static-file server's port.
    pub(crate) static_port: u16,
}

impl Nginx {
    /// Writes the configuration and `object` (as the static file) under a fresh directory
    /// and starts `nginx`, waiting (up to 10 s) until both servers answer.
    pub(crate) fn start(nginx: &Path, origin_port: u16, object: &[u8]) -> Result<Nginx> {
        let dir = std::env::temp_dir().join(format!(
            "xtask-load-peers-nginx-{}-{origin_port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("static")).map_err(|e| e.to_string())?;
        let mut server = Nginx {
            child: None,
            dir,
            cache_port: free_port()?,
            static_port: free_port()?,
        };
        while server.static_port == server.cache_port {
            server.static_port = free_port()?;
        }
        std::fs::write(server.dir.join("static").join("object.json"), object)
            .map_err(|e| e.to_string())?;
        let conf = server.dir.join("nginx.conf");
        std::fs::write(
            &conf,
            config(
                &server.dir,
                server.cache_port,
                server.static_port,
                origin_port,
            ),
        )
        .map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(server.dir.join("stderr.log")).map_err(|e| e.to_string())?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&server.dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(server.dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", nginx.display()))?;
        server.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answers = |port| http_get(port, "/object.json").is_ok_and(|(s, _)| s == 200);
            if answers(server.cache_port) && answers(server.static_port) {
                return Ok(server);
            }
            let exited = server
                .child
                .as_mut()
                .is_some_and(|child| child.try_wait().ok().flatten().is_some());
            if exited || Instant::now() > deadline {
                let log = |name| std::fs::read_to_string(server.dir.join(name)).unwrap_or_default();
                return Err(format!(
                    "nginx did not start: {}{}",
                    log("stderr.log"),
                    log("error.log")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Nginx {
    /// The master's process id (its workers are its children).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the master stops its workers, which a SIGKILL would orphan.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The nginx configuration: every path under `dir` (so it runs as root or not, beside a
/// system nginx), `worker_processes auto` (one per core), no access log (Varnish logs to
/// shared memory and the proxy not at all), keep-alive with the client and with the
/// origin, and `keepalive_requests` high enough that wrk's connections are never closed
/// in a run (the default, 1000, would make nginx alone pay for reconnections).
pub(crate) fn config(dir: &Path, cache_port: u16, static_port: u16, origin_port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"daemon off;
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    default_type application/json;
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=peers:10m max_size=256m inactive=60m use_temp_path=off;

    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{cache_port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache peers;
        }}
    }}

    server {{
        listen 127.0.0.1:{static_port};
        root {dir}/static;
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nginx_config_keeps_every_path_in_its_directory_and_uses_every_core() {
        let text = config(Path::new("/tmp/peers-x"), 8001, 8002, 8003);
        for line in [
            "daemon off;",
            "worker_processes auto;",
            "pid /tmp/peers-x/nginx.pid;",
            "error_log /tmp/peers-x/error.log warn;",
            "proxy_cache_path /tmp/peers-x/cache ",
            "listen 127.0.0.1:8001;",
            "listen 127.0.0.1:8002;",
            "server 127.0.0.1:8003;",
            "proxy_cache peers;",
            "root /tmp/peers-x/static;",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // Every path nginx would otherwise take from its build (under /var) is set.
        for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            assert!(
                text.contains(&format!("{temp}_temp_path /tmp/peers-x/{temp}_temp;")),
                "{temp}"
            );
        }
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }
}
