//! Garage, an S3-compatible store, as a single node on 127.0.0.1 with a config written here
//! (its metadata and data in a temporary folder), a bucket, and a key allowed on it.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::daemon::{Daemon, free_port};
use super::download::run_curl;

/// Garage's default region, which the S3 signatures must name.
pub const REGION: &str = "garage";

pub struct Garage {
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    config: std::path::PathBuf,
    daemon: Daemon,
    _dir: TempDir,
}

impl Garage {
    /// Starts a node, gives it the whole (one-node) layout, and makes the bucket `media` and a
    /// key that may read and write it.
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().expect("a folder for Garage");
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        let secret: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&config, config_text(dir.path(), rpc, s3, admin, &secret)).unwrap();
        let daemon = Daemon::start(
            "garage",
            Command::new("garage").arg("-c").arg(&config).arg("server"),
            &dir.path().join("garage.log"),
            s3,
        );
        let mut garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "media".into(),
            key_id: String::new(),
            secret: String::new(),
            config,
            daemon,
            _dir: dir,
        };
        garage
            .daemon
            .wait_until(|| garage.try_cli(&["status"]).is_ok(), "its RPC to answer");
        let node = garage.cli(&["node", "id", "--quiet"]);
        let node = node.trim().split('@').next().expect("a node id").to_owned();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        let key = garage.cli(&["key", "create", "stream-pack-tests"]);
        garage.key_id = field(&key, "Key ID");
        garage.secret = field(&key, "Secret key");
        garage.cli(&["bucket", "create", "media"]);
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "media",
            "--key",
            "stream-pack-tests",
        ]);
        garage
    }

    /// The environment a stream-pack process needs to reach the bucket.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", REGION.into()),
        ]
    }

    /// `s3://media/PREFIX`
    pub fn s3_url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The path-style HTTP URL of `key` in the bucket.
    pub fn http_url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.endpoint, self.bucket)
    }

    /// curl's options to sign its requests with the key (curl's own SigV4, not stream-pack's).
    /// S3 wants the payload's hash in a header of its own, which this curl does not send.
    pub fn curl_args(&self) -> Vec<String> {
        vec![
            "--aws-sigv4".into(),
            format!("aws:amz:{REGION}:s3"),
            "--user".into(),
            format!("{}:{}", self.key_id, self.secret),
            "--header".into(),
            "x-amz-content-sha256: UNSIGNED-PAYLOAD".into(),
        ]
    }

    /// Uploads `file` as `key`, with curl.
    pub fn put(&self, file: &Path, key: &str) {
        let upload = [OsStr::new("--upload-file"), file.as_os_str()];
        let signing = self.curl_args();
        run_curl(
            upload.into_iter().chain(signing.iter().map(OsStr::new)),
            &self.http_url(key),
        );
    }

    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|error| panic!("garage {}: {error}\n{}", args.join(" "), self.daemon.log_text()))
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new("garage")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

/// The value after `NAME:` on a line of the CLI's output.
fn field(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(name)?.trim_start().strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in:\n{output}"))
        .trim()
        .to_owned()
}

fn config_text(dir: &Path, rpc: u16, s3: u16, admin: u16, secret: &str) -> String {
    let dir = dir.display();
    format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#
    )
}
