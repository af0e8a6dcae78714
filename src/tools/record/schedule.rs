//! `record --schedule jobs.toml`: many recordings in one process, each on its own thread, each
//! independent of the others' failures.
//!
//! ```toml
//! [[job]]
//! url = "rtmp://127.0.0.1:1935/live/a"
//! output = "a.mp4"
//! at = "2026-12-01T20:00:00+09:00"   # or "20:00" or "+5m"; absent = now
//! for = "1h30m"                      # absent = until the source ends
//! split = "30m"                      # optional
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::Zoned;
use serde::Deserialize;

use super::time::{Start, StartAt, parse_duration};
use super::{RecordOptions, RecordProgress, RecordReport, record};
use crate::error::{Error, Result};
use crate::input::live::LiveSource;
use crate::progress::Cancel;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    job: Vec<JobEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobEntry {
    url: String,
    output: PathBuf,
    at: Option<String>,
    #[serde(rename = "for")]
    duration: Option<String>,
    split: Option<String>,
}

/// One recording of a schedule.
#[derive(Debug, Clone)]
pub struct Job {
    /// 1-based, in file order.
    pub number: usize,
    pub options: RecordOptions,
    /// When it starts, as said to the user; `None`: at once.
    pub start: Option<Start>,
}

/// The most a schedule file may hold: thousands of jobs.
const SCHEDULE_LIMIT: u64 = 1 << 20;

/// Reads and checks a whole schedule before anything starts: unknown keys, bad times and
/// durations, outputs named twice or (without `force`) already there are all refused with the
/// job's number. `configure` fills in what the command line sets for every job (timeouts).
pub fn load(path: &Path, now: &Zoned, force: bool, configure: impl Fn(&mut RecordOptions)) -> Result<Vec<Job>> {
    let error = |reason: String| Error::Schedule {
        path: path.to_owned(),
        reason,
    };
    let text = crate::input::sidefile::read_text(path, SCHEDULE_LIMIT).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::InputMissing { path: path.to_owned() },
        std::io::ErrorKind::FileTooLarge => error(e.to_string()),
        _ => Error::io(path)(e),
    })?;
    let file: ScheduleFile = toml::from_str(&text).map_err(|e| error(one_line(&e.to_string())))?;
    if file.job.is_empty() {
        return Err(error("no [[job]] in it".into()));
    }
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    let mut jobs = Vec::new();
    for (index, entry) in file.job.into_iter().enumerate() {
        let number = index + 1;
        let job =
            job(number, entry, now, force, &configure).map_err(|reason| error(format!("job {number}: {reason}")))?;
        let key = std::path::absolute(&job.options.output).map_err(Error::io(&job.options.output))?;
        if let Some(first) = seen.insert(key, number) {
            return Err(error(format!(
                "job {number}: output {} is also job {first}'s",
                job.options.output.display()
            )));
        }
        jobs.push(job);
    }
    Ok(jobs)
}

fn job(
    number: usize,
    entry: JobEntry,
    now: &Zoned,
    force: bool,
    configure: &impl Fn(&mut RecordOptions),
) -> Result<Job, String> {
    let mut options = RecordOptions::new(LiveSource::parse(&entry.url), entry.output);
    configure(&mut options);
    options.force = force;
    let start = entry
        .at
        .map(|at| at.parse::<StartAt>().and_then(|at| at.resolve(now)))
        .transpose()
        .map_err(|e| format!("at: {e}"))?;
    options.start = start.as_ref().map(|s| s.at);
    options.duration = entry
        .duration
        .map(|d| parse_duration(&d))
        .transpose()
        .map_err(|e| format!("for: {e}"))?;
    options.split = entry
        .split
        .map(|d| parse_duration(&d))
        .transpose()
        .map_err(|e| format!("split: {e}"))?;
    super::check_outputs(&options).map_err(|e| e.to_string())?;
    Ok(Job { number, options, start })
}

/// The first line of a TOML error, with the line and column it names.
fn one_line(message: &str) -> String {
    message
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|'))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Runs every job at once, each on its own thread; one's failure leaves the others running.
/// `progress` hears from each job by its index in `jobs`.
pub fn run(
    jobs: &[Job],
    cancel: &Cancel,
    progress: &(dyn Fn(usize, &RecordProgress) + Sync),
) -> Vec<Result<RecordReport>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .enumerate()
            .map(|(index, job)| {
                scope.spawn(move || record(&job.options, cancel, &mut |p: &RecordProgress| progress(index, p)))
            })
            .collect();
        handles
            .into_iter()
            .zip(jobs)
            .map(|(h, job)| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Panicked {
                        what: format!("the recording to {}", job.options.output.display()),
                    })
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Zoned {
        "2026-11-21T19:30:00+00:00[UTC]".parse().unwrap()
    }

    fn load_text(text: &str) -> Result<Vec<Job>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.toml");
        std::fs::write(&path, text.replace("DIR", &dir.path().display().to_string())).unwrap();
        load(&path, &now(), false, |_| {})
    }

    fn reason(text: &str) -> String {
        match load_text(text) {
            Err(Error::Schedule { reason, .. }) => reason,
            other => panic!("expected a schedule error, got {other:?}"),
        }
    }

    #[test]
    fn a_schedule_gives_each_job_its_options() {
        let jobs = load_text(
            r#"
            [[job]]
            url = "rtmp://127.0.0.1:1935/live/a"
            output = "DIR/a.mp4"
            at = "20:00"
            for = "1h30m"
            [[job]]
            url = "srt://127.0.0.1:9000"
            output = "DIR/b.ts"
            split = "10m"
            "#,
        )
        .unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            jobs[0].start.as_ref().unwrap().description,
            "20:00 today (2026-11-21 20:00:00 UTC)"
        );
        assert_eq!(jobs[0].options.duration, Some(std::time::Duration::from_secs(5400)));
        assert_eq!(jobs[1].number, 2);
        assert!(jobs[1].start.is_none());
        assert_eq!(jobs[1].options.split, Some(std::time::Duration::from_secs(600)));
    }

    #[test]
    fn every_mistake_names_its_job() {
        let job = |extra: &str| {
            format!(
                "[[job]]\nurl = \"rtmp://h/a\"\noutput = \"DIR/a.mp4\"\n[[job]]\nurl = \"rtmp://h/b\"\noutput = \"DIR/b.mp4\"\n{extra}\n"
            )
        };
        assert!(reason(&job("at = \"tonight\"")).starts_with("job 2: at: `tonight`: expected"));
        assert!(reason(&job("for = \"forever\"")).starts_with("job 2: for: `forever`"));
        assert!(reason(&job("colour = \"red\"")).contains("unknown field `colour`"));
        let twice = reason(&job("").replace("b.mp4", "a.mp4"));
        assert!(
            twice.starts_with("job 2: output /") && twice.ends_with("/a.mp4 is also job 1's"),
            "{twice}"
        );
        assert!(reason("").contains("missing field `job`"));
        assert!(reason("job = []").contains("no [[job]]"));
    }
}
