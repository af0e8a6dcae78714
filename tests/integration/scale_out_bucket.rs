//! Issue 17, a plan folder in a bucket: `plan`, every `encode-chunk` and `assemble` with PLAN an
//! `s3://` prefix on Garage (a real S3-compatible server, reached through `AWS_ENDPOINT`) make
//! the package a one-process run of the same options makes, judged by the checks of
//! `scale_out`; `plan.json` is an object read back with curl's own SigV4 and is not replaced
//! without `--force`, and a chunk whose sidecar object is gone is refused by its URL.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use super::scale_out::{
    RUNGS, Runs, assert_same_audio, assert_same_video, ladder_options, read, source, without_bitrates,
};
use crate::util::cli::{assert_failure, assert_success, run, run_with_env};
use crate::util::download::run_curl;
use crate::util::garage::Garage;

const PREFIX: &str = "plans/title/";

struct BucketPlan {
    garage: Garage,
    env: Vec<(&'static str, String)>,
}

impl BucketPlan {
    fn start() -> BucketPlan {
        let garage = Garage::start();
        let mut env = garage.env();
        env.push(("AWS_ENDPOINT", garage.endpoint.clone()));
        BucketPlan { garage, env }
    }

    fn url(&self) -> String {
        self.garage.s3_url(PREFIX)
    }

    fn run(&self, args: &[&str]) -> Output {
        run_with_env(args, &self.env)
    }

    fn plan(&self, out: &Path, options: &[String]) -> Output {
        let (url, source, out) = (self.url(), source().display().to_string(), out.display().to_string());
        let mut args = vec!["plan", "hls", &source, "--plan", &url, "-o", &out];
        args.extend(options.iter().map(String::as_str));
        args.extend(["--chunk-duration", "2s"]);
        self.run(&args)
    }

    fn encode_chunk(&self, index: u64) {
        let index = index.to_string();
        assert_success(&self.run(&["encode-chunk", &self.url(), "--index", &index]));
    }

    fn assemble(&self) -> Output {
        self.run(&["assemble", &self.url()])
    }

    /// An object of the plan, with curl.
    fn object(&self, key: &str, extra: &[&str]) -> Vec<u8> {
        let args = self
            .garage
            .curl_args()
            .into_iter()
            .chain(extra.iter().map(|a| a.to_string()));
        run_curl(args, &self.garage.http_url(&format!("{PREFIX}{key}")))
    }
}

#[test]
fn a_plan_in_a_bucket_makes_the_one_process_package() {
    let bucket = BucketPlan::start();
    let dir = tempfile::tempdir().expect("temporary folder");
    let (chunked, single) = (dir.path().join("chunked"), dir.path().join("single"));
    let options = ladder_options(&[]);
    assert_success(&bucket.plan(&chunked, &options));
    let plan: Value = serde_json::from_slice(&bucket.object("plan.json", &[])).expect("plan.json is JSON");
    assert_eq!(plan["tasks"], 5, "4 chunks of 2 s and the audio");
    let line = assert_failure(&bucket.plan(&chunked, &options), 4);
    assert!(
        line.contains(&format!("{}plan.json", bucket.url())),
        "a plan is not replaced: {line}"
    );

    // Shuffled, task 2 twice: the rerun replaces the chunk's objects.
    for index in [4, 0, 2, 1, 3, 2] {
        bucket.encode_chunk(index);
    }
    bucket.object("chunks/1/chunk.json", &["--request", "DELETE"]);
    let line = assert_failure(&bucket.assemble(), 3);
    let chunk_url = format!("{}chunks/1", bucket.url());
    assert!(line.contains(&chunk_url) && line.contains("missing"), "{line}");
    assert!(!chunked.exists(), "nothing published by a refused assemble");
    bucket.encode_chunk(1);
    assert_success(&bucket.assemble());

    let mut args = vec!["hls".to_string(), source().display().to_string(), "-o".into()];
    args.push(single.display().to_string());
    args.extend(options);
    assert_success(&run(&args));
    let runs = Runs {
        _dir: dir,
        chunked,
        single,
        plan,
    };
    let bitrates = ["BANDWIDTH=", "AVERAGE-BANDWIDTH="];
    let masters = [&runs.chunked, &runs.single].map(|p| read(&p.join("master.m3u8")));
    assert_eq!(
        without_bitrates(&masters[0], &bitrates),
        without_bitrates(&masters[1], &bitrates)
    );
    for rendition in RUNGS.iter().chain(&["audio"]) {
        let [chunked, single] = [&runs.chunked, &runs.single].map(|p| read(&p.join(rendition).join("index.m3u8")));
        assert_eq!(chunked, single, "{rendition}: the media playlists");
    }
    assert_same_video(&runs, "ts", None);
    assert_same_audio(&runs, "ts");
}
