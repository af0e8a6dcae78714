//! Where media is read from or a package goes: a file on this machine, or a URL. Every input and
//! output names its place with a [`Location`], parsed by [`Location::parse`] alone.

use std::fmt;
use std::path::{Path, PathBuf};

/// A file, or a URL by what reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file or folder on this machine: any text without a `scheme://`.
    File(PathBuf),
    /// `http://` or `https://`: the whole URL.
    Http(String),
    /// `s3://`, `gs://` or `az://bucket/key`: an object in a bucket (an Azure container), or with
    /// a key that is empty or ends in `/`, a prefix of objects. Either part may be empty; the
    /// user of the location says what it needs.
    Cloud { cloud: Cloud, bucket: String, key: String },
    /// Any other `scheme://` (`rtmp://`, `srt://`, `tcp://`…), which libav may open itself: the
    /// whole URL.
    Other(String),
}

impl Location {
    /// A URL when the text starts with a scheme (`rtmp://…`: letters and digits before `://`), a
    /// file otherwise.
    pub fn parse(text: &str) -> Location {
        let Some((scheme, rest)) = text
            .split_once("://")
            .filter(|(scheme, _)| !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()))
        else {
            return Location::File(PathBuf::from(text));
        };
        if ["http", "https"].iter().any(|http| scheme.eq_ignore_ascii_case(http)) {
            return Location::Http(text.to_owned());
        }
        match Cloud::from_scheme(scheme) {
            Some(cloud) => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                Location::Cloud {
                    cloud,
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                }
            }
            None => Location::Other(text.to_owned()),
        }
    }

    /// [`Location::parse`] of a path as given (a URL given where a path is expected); a path
    /// that is not UTF-8 is a file.
    pub fn of_path(path: &Path) -> Location {
        path.to_str()
            .map_or_else(|| Location::File(path.to_owned()), Location::parse)
    }

    /// The URL's scheme in lower case (`rtmp`); `None` for a file.
    pub fn scheme(&self) -> Option<String> {
        match self {
            Location::File(_) => None,
            Location::Cloud { cloud, .. } => Some(cloud.scheme().to_owned()),
            Location::Http(url) | Location::Other(url) => {
                url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase())
            }
        }
    }

    pub fn is_url(&self) -> bool {
        !matches!(self, Location::File(_))
    }

    /// The location as the path libav opens: the file, or the URL as text.
    pub fn to_path(&self) -> PathBuf {
        match self {
            Location::File(path) => path.clone(),
            url => PathBuf::from(url.to_string()),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Http(url) | Location::Other(url) => f.write_str(url),
            Location::Cloud { cloud, bucket, key } => write!(f, "{cloud}://{bucket}/{key}"),
        }
    }
}

/// The object storage a `scheme://bucket/…` URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// `s3://`: AWS, or an S3-compatible server.
    S3,
    /// `gs://`: Google Cloud Storage.
    Gcs,
    /// `az://`: Azure Blob Storage (the bucket is a container).
    Azure,
}

impl Cloud {
    /// The cloud of a URL's scheme (`s3`, `gs`, `az`, in any case).
    pub fn from_scheme(scheme: &str) -> Option<Cloud> {
        [Cloud::S3, Cloud::Gcs, Cloud::Azure]
            .into_iter()
            .find(|cloud| scheme.eq_ignore_ascii_case(cloud.scheme()))
    }

    pub fn scheme(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Gcs => "gs",
            Cloud::Azure => "az",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parser_for_every_place() {
        assert_eq!(Location::parse("clip.mp4"), Location::File("clip.mp4".into()));
        assert_eq!(Location::parse("a b://x"), Location::File("a b://x".into()));
        assert_eq!(Location::parse("://x"), Location::File("://x".into()));
        assert_eq!(
            Location::parse("HTTPS://h/x.m3u8"),
            Location::Http("HTTPS://h/x.m3u8".into())
        );
        assert_eq!(
            Location::parse("S3://bucket/a/b.mp4"),
            Location::Cloud {
                cloud: Cloud::S3,
                bucket: "bucket".into(),
                key: "a/b.mp4".into()
            }
        );
        assert_eq!(
            Location::parse("gs://bucket"),
            Location::Cloud {
                cloud: Cloud::Gcs,
                bucket: "bucket".into(),
                key: String::new()
            }
        );
        assert_eq!(
            Location::parse("rtmp://h/live/a"),
            Location::Other("rtmp://h/live/a".into())
        );
    }

    #[test]
    fn schemes_in_lower_case() {
        assert_eq!(Location::parse("out").scheme(), None);
        assert_eq!(Location::parse("RTMPS://h/a").scheme().as_deref(), Some("rtmps"));
        assert_eq!(Location::parse("Http://h/a").scheme().as_deref(), Some("http"));
        assert_eq!(Location::parse("AZ://c/k").scheme().as_deref(), Some("az"));
        assert_eq!(Location::parse("AZ://c/k").to_string(), "az://c/k");
    }
}
