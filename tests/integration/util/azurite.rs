//! Azurite, Microsoft's Azure Storage emulator (npm, installed under tests/servers by
//! scripts/test.sh), serving Blob Storage on 127.0.0.1 with its data in a temporary folder, and a
//! container. The tests' own requests are curl's, signed with an account SAS computed here from
//! the emulator's well-known account key: nothing of stream-pack's or object_store's is involved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::daemon::{Daemon, free_port};
use super::download::run_curl;

/// The account every Azurite has, and its documented key.
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    /// `http://127.0.0.1:PORT`, the Blob service.
    pub endpoint: String,
    pub container: String,
    /// An account SAS (query string) allowing everything on blobs.
    sas: String,
    _daemon: Daemon,
    _dir: TempDir,
}

impl Azurite {
    /// Starts the Blob service and makes the container `media`.
    pub fn start() -> Azurite {
        let dir = tempfile::tempdir().expect("a folder for Azurite");
        let port = free_port();
        let daemon = serve(dir.path(), port);
        let azurite = Azurite {
            endpoint: format!("http://127.0.0.1:{port}"),
            container: "media".into(),
            sas: account_sas(),
            _daemon: daemon,
            _dir: dir,
        };
        run_curl(["--request", "PUT"], &azurite.url("?restype=container&"));
        azurite
    }

    /// The environment a stream-pack process needs to reach the emulator: object_store's own
    /// variables for Azurite (its well-known account and key).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone()),
        ]
    }

    /// `az://media/PREFIX`
    pub fn az_url(&self, prefix: &str) -> String {
        format!("az://{}/{prefix}", self.container)
    }

    /// Uploads `file` as the block blob `name`, with curl.
    pub fn put(&self, file: &Path, name: &str) {
        let upload = ["--header", "x-ms-blob-type: BlockBlob", "--upload-file"];
        run_curl(
            upload.iter().map(PathBuf::from).chain([file.to_owned()]),
            &self.url(&format!("/{name}?")),
        );
    }

    /// The blob `name`'s bytes.
    pub fn get(&self, name: &str) -> Vec<u8> {
        run_curl::<&str>([], &self.url(&format!("/{name}?")))
    }

    /// Every blob whose name starts with `prefix`, and its `Content-Type`, from the container's
    /// listing (one page: the tests' packages have far fewer than 5000 files).
    pub fn list(&self, prefix: &str) -> BTreeMap<String, String> {
        let listing = run_curl::<&str>([], &self.url(&format!("?restype=container&comp=list&prefix={prefix}&")));
        let text = String::from_utf8(listing).expect("an XML listing");
        let xml = roxmltree::Document::parse(text.trim_start_matches('\u{feff}')).expect("a blob listing");
        let child = |node: roxmltree::Node, name: &str| {
            node.descendants()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .unwrap_or_default()
                .to_owned()
        };
        xml.descendants()
            .filter(|node| node.has_tag_name("Blob"))
            .map(|blob| (child(blob, "Name"), child(blob, "Content-Type")))
            .collect()
    }

    /// The container's URL with `path_and_query` (which ends in `?` or `&`) and the SAS.
    fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}/{ACCOUNT}/{}{path_and_query}{}",
            self.endpoint, self.container, self.sas
        )
    }
}

fn serve(dir: &Path, port: u16) -> Daemon {
    let azurite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/node_modules/.bin/azurite-blob");
    let mut command = Command::new(azurite);
    command
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
        .arg(dir)
        .args(["--skipApiVersionCheck", "--loose", "--silent"]);
    Daemon::start("azurite", &mut command, &dir.join("azurite.log"), port)
}

/// An account SAS for the Blob service, every permission, until 2099: HMAC-SHA256 of the string
/// Azure defines for SAS version 2019-12-12, keyed with the account key (python3's hmac).
fn account_sas() -> String {
    const FIELDS: &str = "sv=2019-12-12&ss=b&srt=sco&sp=racwdl&se=2099-01-01T00:00:00Z";
    let to_sign = format!("{ACCOUNT}\nracwdl\nb\nsco\n\n2099-01-01T00:00:00Z\n\n\n2019-12-12\n");
    let output = Command::new("python3")
        .args([
            "-c",
            "import base64, hashlib, hmac, sys, urllib.parse\n\
             key = base64.b64decode(sys.argv[1])\n\
             mac = hmac.new(key, sys.argv[2].encode(), hashlib.sha256).digest()\n\
             print(urllib.parse.quote(base64.b64encode(mac).decode(), safe=''))",
            ACCOUNT_KEY,
            &to_sign,
        ])
        .output()
        .expect("run python3");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    format!("{FIELDS}&sig={}", String::from_utf8_lossy(&output.stdout).trim())
}
