//! Servers the tests start on 127.0.0.1 (nginx, Garage): a free port, a process whose output goes
//! to a log file, ready once its port accepts connections, and killed when stopped or dropped;
//! and nginx with a configuration of the test's own.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A port nothing listens on now (the OS's choice, released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// Whether something accepts connections on `port`.
pub fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

pub struct Daemon {
    name: String,
    child: Mutex<Option<Child>>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` with its output in `log`, and waits until `port` accepts connections.
    pub fn start(name: &str, command: &mut Command, log: &Path, port: u16) -> Daemon {
        Daemon::start_until(name, command, log, || accepts(port))
    }

    /// Starts `command` with its output in `log`, and waits until it is `ready`.
    pub fn start_until(name: &str, command: &mut Command, log: &Path, ready: impl FnMut() -> bool) -> Daemon {
        let output = std::fs::File::create(log).expect("create a server log");
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("share the server log"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let daemon = Daemon {
            name: name.to_owned(),
            child: Mutex::new(Some(child)),
            log: log.to_owned(),
        };
        daemon.wait_until(ready, "it to be ready");
        daemon
    }

    /// Waits up to 20 s for `ready`, failing the test if the server exits first.
    pub fn wait_until(&self, mut ready: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready() {
            if let Some(status) = self.child.lock().unwrap().as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "{} exited ({status}) before {what}; its log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} took too long for {what}; its log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server (a crash, as far as its clients can tell) and waits until it is gone.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// nginx in the foreground, one process, with its configuration, pid file and logs in `dir`:
/// `main` holds the lines the main context needs first (`load_module`), `blocks` the `http` or
/// `rtmp` block that listens on `port`. `error.log` in `dir` is nginx's own log.
pub fn nginx(name: &str, dir: &Path, main: &str, blocks: &str, port: u16) -> Daemon {
    let root = dir.display();
    let config = format!(
        "{main}daemon off;\n\
         master_process off;\n\
         worker_processes 1;\n\
         pid {root}/nginx.pid;\n\
         error_log {root}/error.log info;\n\
         events {{ worker_connections 128; }}\n\
         {blocks}"
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).expect("write nginx.conf");
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf);
    Daemon::start(name, &mut command, &dir.join("nginx.out"), port)
}
