//! A real RTMP server for live tests: nginx with Debian's libnginx-mod-rtmp on a free loopback
//! port, with its own configuration and logs in a temporary folder, stopped when dropped; and an
//! `ffmpeg` test-pattern publisher that can be stopped and started again.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::daemon::{Daemon, free_port, nginx};

const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

pub struct RtmpServer {
    daemon: Daemon,
    port: u16,
    /// Holds the configuration, pid file and logs.
    dir: TempDir,
}

impl RtmpServer {
    /// Starts nginx with one `live` application and waits until its port accepts connections.
    pub fn start() -> RtmpServer {
        let port = free_port();
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let daemon = nginx(
            "nginx-rtmp",
            dir.path(),
            &format!("load_module {RTMP_MODULE};\nuser root;\n"),
            &format!("rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n"),
            port,
        );
        RtmpServer { daemon, port, dir }
    }

    /// `rtmp://127.0.0.1:PORT/live/KEY`
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// nginx's error log and output, for a failing test's message.
    pub fn log(&self) -> String {
        let errors = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        format!("{errors}{}", self.daemon.log_text())
    }
}

/// `ffmpeg -re` publishing a 320x240 25 fps H.264 test pattern (a keyframe every second) and a
/// 440 Hz AAC tone to an RTMP URL, as a broadcaster would.
pub struct Publisher {
    url: String,
    child: Option<Child>,
}

impl Publisher {
    /// Starts publishing until stopped.
    pub fn start(url: &str) -> Publisher {
        let mut publisher = Publisher {
            url: url.to_owned(),
            child: None,
        };
        publisher.restart();
        publisher
    }

    /// Publishes again after [`Publisher::stop`], with the clock starting from 0, as a
    /// broadcaster's restarted encoder does.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-pix_fmt", "yuv420p",
            ])
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
            .arg(&self.url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the ffmpeg publisher");
        self.child = Some(child);
    }

    /// Waits until the stream can be played: ffprobe, an independent client, sees its video.
    /// A loaded machine can take seconds to start the publisher's encoder.
    pub fn wait_live(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let probe = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-rw_timeout",
                    "3000000",
                    "-show_entries",
                    "stream=codec_type",
                ])
                .args(["-of", "csv=p=0", &self.url])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .expect("run ffprobe");
            if String::from_utf8_lossy(&probe.stdout).contains("video") {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{} was not live within 20 s", self.url);
    }

    /// Stops publishing at once (the connection is dropped, as when a broadcaster's link fails).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}
