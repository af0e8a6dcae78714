//! Pieces of the input that `convert` reads itself (a master playlist, subtitle playlists and
//! their segments, an MPD): each read whole, up to a limit in size, and over HTTP under the
//! input's timeouts, so a hostile or broken server cannot hold the conversion or fill memory.

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use url::Url;

use crate::error::{Error, Result};
use crate::input::watchdog::InputOptions;
use crate::location::Location;
use crate::progress::Cancel;

/// Where a piece is: a file, or a URL on the web.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    File(PathBuf),
    Web(Url),
}

impl Place {
    /// The place of the input itself, if it is a file or an http(s) URL.
    pub fn of_input(input: &Location) -> Option<Place> {
        match input {
            Location::File(path) => std::path::absolute(path).ok().map(Place::File),
            Location::Http(url) => Url::parse(url).ok().map(Place::Web),
            _ => None,
        }
    }

    /// Whether its name ends in `.mpd`: a DASH manifest, which `convert` reads before libav does.
    pub fn is_mpd(&self) -> bool {
        let name = match self {
            Place::File(path) => path.to_string_lossy().into_owned(),
            Place::Web(url) => url.path().to_owned(),
        };
        name.to_ascii_lowercase().ends_with(".mpd")
    }

    /// `reference`, a URI a manifest at this place names, resolved against it. A manifest on
    /// the web names only pieces on the web; one on disk names files beside it or web URLs.
    pub fn join(&self, reference: &str) -> std::result::Result<Place, String> {
        let web = |url: Url| matches!(url.scheme(), "http" | "https").then_some(Place::Web(url));
        let refused = || format!("{reference:?} is neither a relative URI nor an http(s) URL");
        match self {
            Place::Web(base) => base.join(reference).ok().and_then(web).ok_or_else(refused),
            Place::File(path) => match Url::parse(reference) {
                Ok(url) => web(url).ok_or_else(refused),
                Err(_) => {
                    let relative = reference.split(['?', '#']).next().unwrap_or_default();
                    let decoded = percent_decode_str(relative).decode_utf8().map_err(|_| refused())?;
                    let folder = path.parent().unwrap_or(Path::new("/"));
                    Ok(Place::File(folder.join(decoded.as_ref())))
                }
            },
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File(path) => write!(f, "{}", path.display()),
            Place::Web(url) => write!(f, "{url}"),
        }
    }
}

/// Reads pieces of one input, an HTTP client shared between them.
pub struct Reader {
    /// The input, which errors name.
    input: PathBuf,
    agent: ureq::Agent,
    cancel: Cancel,
}

impl Reader {
    pub fn new(input: &Path, options: &InputOptions) -> Reader {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.open_timeout))
            .timeout_global(Some(options.open_timeout + options.stall_timeout))
            .build()
            .into();
        Reader {
            input: input.to_owned(),
            agent,
            cancel: options.cancel.clone(),
        }
    }

    /// The bytes of the piece at `place`, at most `limit` of them; a piece that cannot be read
    /// (missing, too large, a server's error, too slow) makes the input incomplete.
    pub fn read(&self, place: &Place, limit: u64) -> Result<Vec<u8>> {
        self.cancel.check()?;
        let read = match place {
            Place::File(path) => crate::input::sidefile::read(path, limit).map_err(|e| e.to_string()),
            Place::Web(url) => self.download(url, limit),
        };
        read.map_err(|reason| Error::InputIncomplete {
            path: self.input.clone(),
            piece: place.to_string(),
            reason,
        })
    }

    fn download(&self, url: &Url, limit: u64) -> std::result::Result<Vec<u8>, String> {
        let mut response = self.agent.get(url.as_str()).call().map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| e.to_string())
    }

    /// The input, which errors and notes name.
    pub fn input(&self) -> &Path {
        &self.input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_beside_their_manifest_and_the_web_reaches_no_file() {
        let file = Place::File("/media/show/master.m3u8".into());
        assert_eq!(
            file.join("subs/en%20gb.m3u8?x=1").unwrap(),
            Place::File("/media/show/subs/en gb.m3u8".into())
        );
        assert!(matches!(file.join("https://cdn.example/a.vtt"), Ok(Place::Web(_))));
        assert!(file.join("ftp://host/a.vtt").is_err());
        let web = Place::Web(Url::parse("https://cdn.example/show/master.m3u8").unwrap());
        assert_eq!(
            web.join("../en/a.vtt").unwrap().to_string(),
            "https://cdn.example/en/a.vtt"
        );
        assert!(web.join("file:///etc/passwd").is_err());
    }
}
