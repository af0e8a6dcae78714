//! Segment encryption. AES-128 for HLS (RFC 8216 §4.3.2.4): whole segments in AES-128-CBC with
//! PKCS#7 padding, CBC restarted per segment, keys rotated every N segments at the same segment
//! index in every rendition. Common encryption (`cenc`, `cbcs`) for CMAF: one key and key ID for
//! every track, the samples encrypted by `stream_pack_formats::cenc` (see [`CommonKey`]). Keys never
//! appear in logs, errors or progress: `Key` has no Display and a redacted Debug.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes::Aes128;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit, array::Array};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::output::publish::{PublishOptions, Publisher, Remote};
use crate::package::manifest::attr;

const BLOCK: usize = 16;
/// Plaintext encrypted per call to the cipher: large enough for AES-NI's parallel blocks, small
/// enough to keep memory bounded whatever the segment size.
const CHUNK: usize = 64 * 1024;
/// The most a key file may hold: 32 hex digits with a little whitespace around them.
const KEY_FILE_LIMIT: u64 = 64;
/// The most a key-info file may hold: a URI, a path and an IV.
const KEY_INFO_LIMIT: u64 = 64 * 1024;

/// A 128-bit AES key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; BLOCK]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    pub fn generate() -> Key {
        Key(random_block())
    }

    /// A key file: 16 raw bytes, or 32 hex digits with optional surrounding whitespace.
    pub fn from_file(path: &Path) -> Result<Key> {
        Key::read(path).map(|(key, _)| key)
    }

    /// The key in a key file, and whether the file holds the raw bytes players can fetch.
    fn read(path: &Path) -> Result<(Key, bool)> {
        let data = crate::input::sidefile::read(path, KEY_FILE_LIMIT).map_err(key_file_error(path))?;
        if let Ok(raw) = <[u8; BLOCK]>::try_from(data.as_slice()) {
            return Ok((Key(raw), true));
        }
        let text = String::from_utf8_lossy(&data);
        parse_hex(text.trim())
            .map(|bytes| (Key(bytes), false))
            .ok_or_else(|| Error::KeyFile {
                path: path.to_owned(),
                reason: format!("holds {} bytes; a key is 16 raw bytes or 32 hex digits", data.len()),
            })
    }

    /// 32 hex digits, as `--key` gives them.
    pub fn from_hex(text: &str) -> Option<Key> {
        parse_hex(text).map(Key)
    }

    fn bytes(&self) -> &[u8; BLOCK] {
        &self.0
    }
}

/// A key ID (ISO/IEC 23001-7 `KID`), 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(pub [u8; BLOCK]);

impl KeyId {
    pub fn generate() -> KeyId {
        KeyId(random_block())
    }

    /// 32 hex digits, as `--key-id` gives them.
    pub fn from_hex(text: &str) -> Option<KeyId> {
        parse_hex(text).map(KeyId)
    }

    /// 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The UUID form DASH's `cenc:default_KID` takes: 8-4-4-4-12 lowercase hex digits.
    pub fn uuid(&self) -> String {
        let hex = self.hex();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

/// How segments are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// Whole segments in AES-128-CBC (HLS).
    #[default]
    Aes128,
    /// Apple's SAMPLE-AES of H.264 slices and AAC frames in MPEG-TS (HLS).
    SampleAes,
    /// Common encryption of CMAF samples: `cenc` (AES-CTR) or `cbcs` (AES-CBC, 1:9 pattern).
    Common(CommonScheme),
}

pub use stream_pack_formats::cenc::Scheme as CommonScheme;

impl Scheme {
    /// `aes-128`, `sample-aes`, `cenc` or `cbcs`.
    pub fn parse(text: &str) -> std::result::Result<Scheme, String> {
        match text {
            "aes-128" => Ok(Scheme::Aes128),
            "sample-aes" => Ok(Scheme::SampleAes),
            "cenc" => Ok(Scheme::Common(CommonScheme::Cenc)),
            "cbcs" => Ok(Scheme::Common(CommonScheme::Cbcs)),
            other => Err(format!("{other}: the schemes are aes-128, sample-aes, cenc and cbcs")),
        }
    }
}

/// A DRM system whose signalling a common-encrypted package carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrmSystem {
    /// W3C Clear Key, which browsers play without a licence server.
    ClearKey,
    Widevine,
    PlayReady,
    /// Apple's FairPlay Streaming: HLS key tags naming the operator's key server by an `skd://`
    /// URI, no `pssh` box (FairPlay has none registered with DASH-IF).
    FairPlay,
}

impl DrmSystem {
    /// `clearkey`, `widevine`, `playready` or `fairplay`.
    pub fn parse(text: &str) -> std::result::Result<DrmSystem, String> {
        match text {
            "clearkey" => Ok(DrmSystem::ClearKey),
            "widevine" => Ok(DrmSystem::Widevine),
            "playready" => Ok(DrmSystem::PlayReady),
            "fairplay" => Ok(DrmSystem::FairPlay),
            other => Err(format!(
                "{other}: the DRM systems are clearkey, widevine, playready and fairplay"
            )),
        }
    }
}

/// A key and its ID, for common encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub kid: KeyId,
    key: Key,
}

impl KeyPair {
    pub fn new(kid: KeyId, key: Key) -> KeyPair {
        KeyPair { kid, key }
    }
}

/// The keys of a common-encrypted package: that of its video tracks and that of its audio tracks
/// (the same key unless given apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackKeys {
    pub video: KeyPair,
    pub audio: KeyPair,
}

/// How a common-encrypted package is signalled and how much of it stays clear.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonOptions {
    /// The DRM systems signalled besides the common scheme.
    pub systems: Vec<DrmSystem>,
    /// Seconds: the segments that start before this stay clear.
    pub clear_lead: f64,
    /// The licence URL the PlayReady header names (`LA_URL`).
    pub playready_la_url: Option<String>,
    /// The licence URL of ClearKey's ContentProtection in the MPD (`dashif:Laurl`).
    pub clearkey_la_url: Option<String>,
    /// The `skd://` URI FairPlay's HLS key tags give the operator's key server.
    pub fairplay_uri: Option<String>,
    /// The `pssh` boxes go to the manifests only, not into the init segments.
    pub pssh_in_manifest_only: bool,
}

impl Default for CommonOptions {
    fn default() -> CommonOptions {
        CommonOptions {
            systems: vec![DrmSystem::ClearKey],
            clear_lead: 0.0,
            playready_la_url: None,
            clearkey_la_url: None,
            fairplay_uri: None,
            pssh_in_manifest_only: false,
        }
    }
}

impl CommonOptions {
    /// Whether `system` is among the signalled ones.
    pub fn signals(&self, system: DrmSystem) -> bool {
        self.systems.contains(&system)
    }
}

/// What a common-encrypted package's segmenters and manifests share: the scheme, the keys of
/// its tracks, and how it is signalled.
#[derive(Debug, Clone)]
pub struct CommonKey {
    pub scheme: CommonScheme,
    keys: TrackKeys,
    pub options: CommonOptions,
}

impl CommonKey {
    /// The key of the audio tracks, or of the video tracks.
    fn pair(&self, audio: bool) -> &KeyPair {
        if audio { &self.keys.audio } else { &self.keys.video }
    }

    /// The key ID of the audio tracks, or of the video tracks.
    pub fn kid(&self, audio: bool) -> KeyId {
        self.pair(audio).kid
    }

    /// A track's protection, with a fresh random IV: for `cenc` the first sample's (8 bytes, one
    /// more for each sample after it), for `cbcs` the constant one (16 bytes).
    pub fn protection(&self, audio: bool) -> stream_pack_formats::cenc::Protection {
        let mut iv = vec![0; if self.scheme == CommonScheme::Cenc { 8 } else { BLOCK }];
        rand::fill(iv.as_mut_slice());
        let pair = self.pair(audio);
        stream_pack_formats::cenc::Protection {
            scheme: self.scheme,
            kid: pair.kid.0,
            key: *pair.key.bytes(),
            iv,
        }
    }

    /// The `pssh` box of each signalled system that has one (ClearKey reads the W3C common one,
    /// FairPlay has none), for the audio tracks or the video tracks.
    pub fn psshs(&self, audio: bool) -> Vec<(DrmSystem, Vec<u8>)> {
        use stream_pack_formats::cenc::pssh;
        let kids = [self.kid(audio).0];
        self.options
            .systems
            .iter()
            .filter_map(|&system| {
                let pssh = match system {
                    DrmSystem::ClearKey => pssh::clearkey(&kids),
                    DrmSystem::Widevine => pssh::widevine(&kids, self.scheme),
                    DrmSystem::PlayReady => {
                        pssh::playready(&kids, self.scheme, self.options.playready_la_url.as_deref())
                    }
                    DrmSystem::FairPlay => return None,
                };
                Some((system, pssh))
            })
            .collect()
    }

    /// The `pssh` boxes of an init segment: none with `pssh_in_manifest_only`.
    pub fn init_psshs(&self, audio: bool) -> Vec<Vec<u8>> {
        if self.options.pssh_in_manifest_only {
            return Vec::new();
        }
        self.psshs(audio).into_iter().map(|(_, pssh)| pssh).collect()
    }
}

/// A CBC initialisation vector, written in playlists as `0x` and 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iv(pub [u8; BLOCK]);

impl Iv {
    pub fn generate() -> Iv {
        Iv(random_block())
    }

    /// `0x…` or bare, 32 hex digits.
    pub fn parse(text: &str) -> Option<Iv> {
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        parse_hex(digits).map(Iv)
    }
}

impl fmt::Display for Iv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// 16 bytes from the operating system's random generator.
fn random_block() -> [u8; BLOCK] {
    let mut bytes = [0; BLOCK];
    rand::fill(&mut bytes);
    bytes
}

fn parse_hex(text: &str) -> Option<[u8; BLOCK]> {
    if text.len() != 2 * BLOCK || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0; BLOCK];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

/// Encrypts everything written to it with AES-128-CBC into `inner`, holding back at most one
/// partial block; `finish` adds the PKCS#7 padding.
pub struct Aes128CbcWriter<W: Write> {
    inner: W,
    cipher: cbc::Encryptor<Aes128>,
    pending: Vec<u8>,
}

impl<W: Write> Aes128CbcWriter<W> {
    pub fn new(inner: W, key: &Key, iv: &Iv) -> Self {
        Aes128CbcWriter {
            inner,
            cipher: cbc::Encryptor::<Aes128>::new(&Array(*key.bytes()), &Array(iv.0)),
            pending: Vec::with_capacity(CHUNK + BLOCK),
        }
    }

    /// Encrypts and writes the whole blocks of `pending`, keeping the partial one.
    fn encrypt_whole_blocks(&mut self) -> io::Result<()> {
        let whole = self.pending.len() / BLOCK * BLOCK;
        let (blocks, _) = Array::<u8, cbc::cipher::consts::U16>::slice_as_chunks_mut(&mut self.pending[..whole]);
        self.cipher.encrypt_blocks(blocks);
        self.inner.write_all(&self.pending[..whole])?;
        self.pending.drain(..whole);
        Ok(())
    }

    /// Pads, encrypts the last block, flushes, and gives back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let pad = BLOCK - self.pending.len() % BLOCK;
        self.pending.extend(std::iter::repeat_n(pad as u8, pad));
        self.encrypt_whole_blocks()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Aes128CbcWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK + BLOCK - self.pending.len();
        let taken = data.len().min(room);
        self.pending.extend_from_slice(&data[..taken]);
        if self.pending.len() >= CHUNK {
            self.encrypt_whole_blocks()?;
        }
        Ok(taken)
    }

    /// Passes on what is encrypted; the partial block waits for more data or `finish`.
    fn flush(&mut self) -> io::Result<()> {
        self.encrypt_whole_blocks()?;
        self.inner.flush()
    }
}

/// Where generated keys and their key info go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDestination {
    /// A local folder (`--key-dir`, or a folder given as `--key-destination`).
    Folder(PathBuf),
    /// A remote destination of the kinds `-o` takes: the keys are written to a private temporary
    /// folder and uploaded from there as they are made.
    Remote(Remote),
}

/// Where keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Fresh random keys, a new one every `rotation` segments (0: one key), written to `keys`.
    Generate {
        rotation: u32,
        keys: KeyDestination,
        key_url: Option<String>,
    },
    /// One key the user supplies.
    File { path: PathBuf, key_url: Option<String> },
    /// FFmpeg's key-info file: URI, key file path, optional IV.
    Info { path: PathBuf },
    /// Keys and their IDs given on the command line (common encryption).
    Given(TrackKeys),
}

impl KeySource {
    /// The files and folder outside the package this source reads or writes, each with what it
    /// is: a job must never replace them with its output.
    pub fn paths(&self) -> Vec<(&'static str, &Path)> {
        match self {
            KeySource::Generate {
                keys: KeyDestination::Folder(key_dir),
                ..
            } => vec![("the key dir", key_dir.as_path())],
            KeySource::Generate { .. } => Vec::new(),
            KeySource::File { path, .. } => vec![("the key file", path.as_path())],
            KeySource::Info { path } => vec![("the key-info file", path.as_path())],
            KeySource::Given(_) => Vec::new(),
        }
    }
}

/// One key and the segments it encrypts.
#[derive(Debug, Clone)]
pub struct KeyPeriod {
    pub id: String,
    key: Key,
    /// The key ID common encryption signals; random for AES-128, which has none.
    pub kid: KeyId,
    pub iv: Iv,
    /// The key file, absolute.
    pub file: PathBuf,
    /// The URI playlists give, when fixed (`--key-url`, a key-info file), percent-encoded where
    /// it holds what a URI cannot; otherwise playlists use the relative path from their folder to
    /// `file`.
    pub uri: Option<String>,
}

/// What SAMPLE-AES encrypts in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleCodec {
    H264(stream_pack_formats::sample_aes::NalFraming),
    Aac,
}

impl KeyPeriod {
    /// One packet's data encrypted with SAMPLE-AES under this period's key and IV.
    pub fn encrypt_sample(&self, codec: SampleCodec, data: &[u8]) -> Vec<u8> {
        use stream_pack_formats::sample_aes;
        match codec {
            SampleCodec::H264(framing) => sample_aes::encrypt_h264(data, framing, self.key.bytes(), &self.iv.0),
            SampleCodec::Aac => sample_aes::encrypt_aac(data, self.key.bytes(), &self.iv.0),
        }
    }
}

/// Where a schedule's generated keys are written and where they end up.
#[derive(Debug)]
struct KeyFolders {
    /// Where key files are written during the job.
    write: PathBuf,
    /// Where they are once the package is published (absolute): the playlists point there.
    published: PathBuf,
    /// Where the operators' key info goes: beside the keys, or beside the package when the keys
    /// are inside it.
    info: PathBuf,
    /// A folder this job created, removed again if the job fails.
    created: Option<PathBuf>,
    /// The private folder keys bound for a remote key destination are written to first.
    _scratch: Option<tempfile::TempDir>,
}

/// The uploads of generated keys to a remote key destination.
struct KeyUpload {
    remote: Remote,
    options: PublishOptions,
    /// Uploading; `None` once every upload is done.
    publisher: Option<Publisher>,
    /// The names uploaded, removed again if the job fails.
    sent: Vec<String>,
}

impl fmt::Debug for KeyUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyUpload({}, {} sent)", self.remote, self.sent.len())
    }
}

impl KeyUpload {
    fn start(remote: &Remote, options: &PublishOptions) -> Result<KeyUpload> {
        Ok(KeyUpload {
            remote: remote.clone(),
            options: options.clone(),
            publisher: Some(Publisher::start(std::slice::from_ref(remote), options)?),
            sent: Vec::new(),
        })
    }

    /// Uploads the file at `local` as `name`, in the background.
    fn send(&mut self, name: &str, local: &Path) -> Result<()> {
        let publisher = self.publisher.as_ref().expect("uploads end only with the schedule");
        publisher.file(name, local)?;
        self.sent.push(name.to_owned());
        Ok(())
    }

    /// The URL of an uploaded file, as the key info names it.
    fn url(&self, name: &str) -> String {
        format!("{}{}", self.remote, name)
    }

    /// Waits until every key is uploaded.
    fn finish(&mut self) -> Result<()> {
        self.publisher.take().map(Publisher::finish).transpose().map(drop)
    }

    /// Removes what was uploaded, as far as the destination lets it: the job failed.
    fn withdraw(&mut self) {
        let publisher = match self.publisher.take() {
            Some(publisher) => Ok(publisher),
            None => Publisher::start(std::slice::from_ref(&self.remote), &self.options),
        };
        if let Ok(publisher) = publisher {
            let _ = self.sent.iter().try_for_each(|name| publisher.delete(name));
            let _ = publisher.finish();
        }
    }
}

/// The folders of keys generated into `key_dir`, for a package at `output` built in `staging`.
fn key_folders(key_dir: &Path, output: &Path, staging: &Path) -> Result<KeyFolders> {
    let published = std::path::absolute(key_dir).map_err(Error::io(key_dir))?;
    Ok(match published.strip_prefix(output) {
        Ok(inside) => KeyFolders {
            write: staging.join(inside),
            info: output.parent().unwrap_or(Path::new("/")).to_owned(),
            published,
            created: None,
            _scratch: None,
        },
        Err(_) => KeyFolders {
            write: published.clone(),
            info: published.clone(),
            created: (!published.exists()).then(|| published.clone()),
            published,
            _scratch: None,
        },
    })
}

/// The keys of a package, made as segments need them and shared by every rendition.
#[derive(Debug)]
pub struct KeySchedule {
    source: KeySource,
    scheme: Scheme,
    /// What the names of generated key files and of the key info start with: the package
    /// folder's name and an id of this job, so packages sharing a key dir never share a name.
    prefix: String,
    folders: Option<KeyFolders>,
    upload: Option<KeyUpload>,
    periods: Vec<KeyPeriod>,
    /// Common encryption's keys: given, or made of the one generated period.
    common_keys: Option<TrackKeys>,
    /// Key files this job wrote, removed again unless the package is published.
    written: Vec<PathBuf>,
    kept: bool,
}

/// The schedule as the segmenters share it.
pub type SharedKeys = Arc<Mutex<KeySchedule>>;

impl KeySchedule {
    /// Keys for a package to be published at `output` (absolute); the package folder's name and
    /// a random job id prefix generated key files. Supplied keys are read and checked here, before
    /// any work.
    pub fn new(source: KeySource, scheme: Scheme, output: &Path) -> Result<KeySchedule> {
        let name = output
            .file_name()
            .map_or_else(|| "package".to_owned(), |n| n.to_string_lossy().into_owned());
        let mut job = [0u8; 4];
        rand::fill(&mut job);
        let mut schedule = KeySchedule {
            source,
            scheme,
            prefix: format!("{name}-{:08x}", u32::from_be_bytes(job)),
            folders: None,
            upload: None,
            periods: Vec::new(),
            common_keys: None,
            written: Vec::new(),
            kept: false,
        };
        match schedule.source.clone() {
            KeySource::Generate { .. } => {}
            KeySource::File { path, key_url } => {
                let (key, raw) = Key::read(&path)?;
                if !raw && key_url.is_none() {
                    return Err(Error::InvalidOption {
                        option: "key_url",
                        reason: format!(
                            "is needed: key file {} holds hex digits, but players fetch 16 raw bytes from the key \
                             URI; give where the raw key is served, or a key file of 16 raw bytes",
                            path.display()
                        ),
                    });
                }
                let file = std::path::absolute(&path).map_err(key_file_error(&path))?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                schedule.periods.push(KeyPeriod {
                    id: name.clone(),
                    key,
                    kid: KeyId::generate(),
                    iv: Iv::generate(),
                    uri: key_url.map(|url| key_url_of(&url, &name)),
                    file,
                });
            }
            KeySource::Info { path } => schedule.periods.push(read_key_info(&path)?),
            KeySource::Given(keys) => schedule.common_keys = Some(keys),
        }
        Ok(schedule)
    }

    /// Creates the folder generated keys are written to while the package is built in
    /// `staging`. A key dir inside the package is written inside the staging folder, so the keys
    /// appear with the package; keys bound for a remote key destination (reached with `publish`)
    /// are written to a private temporary folder and uploaded from there.
    pub fn stage(&mut self, output: &Path, staging: &Path, publish: &PublishOptions) -> Result<()> {
        let KeySource::Generate { keys, .. } = &self.source else {
            return Ok(());
        };
        let folders = match keys {
            KeyDestination::Folder(key_dir) => key_folders(key_dir, output, staging)?,
            KeyDestination::Remote(remote) => {
                let scratch = tempfile::Builder::new()
                    .prefix(".stream-pack-keys-")
                    .tempdir()
                    .map_err(Error::io(&std::env::temp_dir()))?;
                self.upload = Some(KeyUpload::start(remote, publish)?);
                KeyFolders {
                    write: scratch.path().to_owned(),
                    info: scratch.path().to_owned(),
                    published: scratch.path().to_owned(),
                    created: None,
                    _scratch: Some(scratch),
                }
            }
        };
        create_private_dir(&folders.write)?;
        self.folders = Some(folders);
        if matches!(self.scheme, Scheme::Common(_)) {
            // Every init segment names the key ID: the key exists before any segment.
            self.generate_next()?;
            let period = &self.periods[0];
            let pair = KeyPair::new(period.kid, period.key.clone());
            self.common_keys = Some(TrackKeys {
                video: pair.clone(),
                audio: pair,
            });
        }
        Ok(())
    }

    /// The keys of the tracks, when the scheme is common encryption, used as `options` say.
    pub fn common(&self, options: &CommonOptions) -> Option<CommonKey> {
        let (Scheme::Common(scheme), Some(keys)) = (self.scheme, &self.common_keys) else {
            return None;
        };
        Some(CommonKey {
            scheme,
            keys: keys.clone(),
            options: options.clone(),
        })
    }

    fn rotation(&self) -> u32 {
        match self.source {
            KeySource::Generate { rotation, .. } => rotation,
            _ => 0,
        }
    }

    /// The period of segment `index`: every rendition's segment `index` uses the same key.
    pub fn period_of(&self, index: usize) -> usize {
        match self.rotation() {
            0 => 0,
            n => index / n as usize,
        }
    }

    /// The key in force for segment `index`, generating (and storing) it when it is new.
    pub fn for_segment(&mut self, index: usize) -> Result<&KeyPeriod> {
        let period = self.period_of(index);
        while self.periods.len() <= period {
            self.generate_next()?;
        }
        Ok(&self.periods[period])
    }

    fn generate_next(&mut self) -> Result<()> {
        let (KeySource::Generate { key_url, .. }, Some(folders)) = (&self.source, &self.folders) else {
            unreachable!("supplied keys make one period, which `new` created");
        };
        let id = format!("{}-{:05}", self.prefix, self.periods.len());
        let file_name = format!("{id}.key");
        let key = Key::generate();
        let written = folders.write.join(&file_name);
        write_private(&written, key.bytes())?;
        if let Some(upload) = &mut self.upload {
            upload.send(&file_name, &written)?;
        }
        self.written.push(written);
        self.periods.push(KeyPeriod {
            id,
            key,
            kid: KeyId::generate(),
            iv: Iv::generate(),
            uri: key_url.as_ref().map(|url| key_url_of(url, &file_name)),
            file: folders.published.join(&file_name),
        });
        Ok(())
    }

    /// Whether segments are SAMPLE-AES encrypted packet by packet rather than whole.
    pub fn sample_aes(&self) -> bool {
        self.scheme == Scheme::SampleAes
    }

    pub fn periods(&self) -> &[KeyPeriod] {
        &self.periods
    }

    /// What this schedule reads or writes outside the package: the key source's paths, and the
    /// key file a key-info file names.
    pub fn paths(&self) -> Vec<(&'static str, &Path)> {
        let mut paths = self.source.paths();
        if !matches!(self.source, KeySource::Generate { .. }) {
            paths.extend(
                self.periods
                    .iter()
                    .map(|period| ("the key file", period.file.as_path())),
            );
        }
        paths
    }

    /// The package is published: its key files stay.
    pub fn keep(&mut self) {
        self.kept = true;
    }

    /// Where generated keys are published (absolute).
    pub fn key_dir(&self) -> Option<&Path> {
        self.folders.as_ref().map(|f| f.published.as_path())
    }

    /// Writes the operators' record of the keys beside them (generated keys only): id, file (its
    /// URL at a remote key destination), URI, IV and the segments each key encrypts, never the key
    /// itself; where it is. Uploads to a remote key destination are complete when this returns.
    pub fn write_key_info(
        &mut self,
        segments: usize,
        playlist_uri: impl Fn(&KeyPeriod) -> String,
    ) -> Result<Option<String>> {
        let Some(folders) = &self.folders else {
            return Ok(None);
        };
        let records: Vec<KeyRecord> = self
            .periods
            .iter()
            .enumerate()
            .map(|(p, period)| {
                let first = (0..segments).find(|i| self.period_of(*i) == p).unwrap_or(0);
                let last = (0..segments).rev().find(|i| self.period_of(*i) == p).unwrap_or(first);
                // Common encryption has a key ID and no key URI; its IVs are each track's own.
                let common = matches!(self.scheme, Scheme::Common(_));
                KeyRecord {
                    id: period.id.clone(),
                    kid: common.then(|| period.kid.uuid()),
                    file: self.upload.as_ref().map_or_else(
                        || period.file.display().to_string(),
                        |upload| upload.url(&format!("{}.key", period.id)),
                    ),
                    uri: (!common).then(|| playlist_uri(period)),
                    iv: (!common).then(|| period.iv.to_string()),
                    first_segment: first,
                    last_segment: last,
                }
            })
            .collect();
        let name = format!("{}.keyinfo.json", self.prefix);
        let path = folders.info.join(&name);
        let json = serde_json::to_vec_pretty(&KeyInfoFile { keys: records }).expect("plain data serialises");
        write_private(&path, &json)?;
        self.written.push(path.clone());
        let Some(upload) = &mut self.upload else {
            return Ok(Some(path.display().to_string()));
        };
        upload.send(&name, &path)?;
        upload.finish()?;
        Ok(Some(upload.url(&name)))
    }
}

impl Drop for KeySchedule {
    /// A job that failed leaves no keys for a package that does not exist.
    fn drop(&mut self) {
        if !self.kept {
            if let Some(upload) = &mut self.upload {
                upload.withdraw();
            }
            for file in &self.written {
                let _ = std::fs::remove_file(file);
            }
            if let Some(dir) = self.folders.as_ref().and_then(|f| f.created.as_ref()) {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

#[derive(Serialize)]
struct KeyInfoFile {
    keys: Vec<KeyRecord>,
}

#[derive(Serialize)]
struct KeyRecord {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iv: Option<String>,
    first_segment: usize,
    last_segment: usize,
}

/// `--key-url` followed by a key file's name, as one URI.
fn key_url_of(url: &str, file_name: &str) -> String {
    format!("{}{}", attr::uri(url), attr::path_segment(file_name))
}

/// FFmpeg's key-info format: the key URI, the key file's path, and optionally the IV.
fn read_key_info(path: &Path) -> Result<KeyPeriod> {
    let bad = |reason: String| Error::KeyInfoFile {
        path: path.to_owned(),
        reason,
    };
    let text = crate::input::sidefile::read_text(path, KEY_INFO_LIMIT).map_err(|e| bad(e.to_string()))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let uri = lines
        .next()
        .ok_or_else(|| bad("no key URI on line 1".into()))?
        .to_owned();
    let key_path = PathBuf::from(lines.next().ok_or_else(|| bad("no key file path on line 2".into()))?);
    let key_path = if key_path.is_relative() {
        path.parent().unwrap_or(Path::new(".")).join(key_path)
    } else {
        key_path
    };
    let iv = match lines.next() {
        Some(text) => Iv::parse(text).ok_or_else(|| bad("line 3 is not an IV of 32 hex digits".into()))?,
        None => Iv::generate(),
    };
    Ok(KeyPeriod {
        id: uri.clone(),
        key: Key::from_file(&key_path)?,
        kid: KeyId::generate(),
        iv,
        file: std::path::absolute(&key_path).map_err(key_file_error(&key_path))?,
        uri: Some(attr::uri(&uri)),
    })
}

/// A key file that cannot be read or used is exit 4, with the file named: the command line that
/// gave it was right, the file is not.
fn key_file_error(path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |e| Error::KeyFile {
        path,
        reason: e.to_string(),
    }
}

/// Encrypts one segment into `path` with the key and IV of `period`.
pub fn write_encrypted(path: &Path, plain: &[u8], period: &KeyPeriod) -> Result<u64> {
    let file = std::fs::File::create(path).map_err(Error::io(path))?;
    let mut writer = Aes128CbcWriter::new(io::BufWriter::new(file), &period.key, &period.iv);
    writer.write_all(plain).map_err(Error::io(path))?;
    writer.finish().map_err(Error::io(path))?;
    Ok(padded_len(plain.len()))
}

/// The size of `len` bytes after PKCS#7 padding.
pub fn padded_len(len: usize) -> u64 {
    ((len / BLOCK + 1) * BLOCK) as u64
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io(dir))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(Error::io(dir))
}

/// Writes a new file readable by its owner only, atomically: a temporary file beside it, renamed
/// into place only if nothing has the name, so another job's key is never replaced.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // tempfile creates its files with mode 0600.
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(Error::io(dir))?;
    temp.write_all(data).map_err(Error::io(path))?;
    temp.as_file().sync_all().map_err(Error::io(path))?;
    temp.persist_noclobber(path).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::{BlockModeDecrypt, block_padding::Pkcs7};

    fn decrypt(data: &[u8], key: &Key, iv: &Iv) -> Vec<u8> {
        let mut buf = data.to_vec();
        cbc::Decryptor::<Aes128>::new(&Array(*key.bytes()), &Array(iv.0))
            .decrypt_padded::<Pkcs7>(&mut buf)
            .expect("valid padding")
            .to_vec()
    }

    #[test]
    fn matches_the_nist_cbc_vector() {
        // NIST SP 800-38A F.2.1, first block.
        let key = Key(parse_hex("2b7e151628aed2a6abf7158809cf4f3c").unwrap());
        let iv = Iv(parse_hex("000102030405060708090a0b0c0d0e0f").unwrap());
        let plain = parse_hex("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let mut writer = Aes128CbcWriter::new(Vec::new(), &key, &iv);
        writer.write_all(&plain).unwrap();
        let out = writer.finish().unwrap();
        assert_eq!(&out[..16], &parse_hex("7649abac8119b246cee98e9b12e9197d").unwrap());
        assert_eq!(out.len(), 32, "a whole block of padding follows a full block");
    }

    #[test]
    fn streams_in_any_pieces_and_round_trips_with_padding() {
        let key = Key::generate();
        let iv = Iv::generate();
        for len in [0, 1, 15, 16, 17, CHUNK - 1, CHUNK, CHUNK + 17, 3 * CHUNK + 5] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut writer = Aes128CbcWriter::new(Vec::new(), &key, &iv);
            for piece in plain.chunks(1000) {
                writer.write_all(piece).unwrap();
            }
            let out = writer.finish().unwrap();
            assert_eq!(out.len() as u64, padded_len(len));
            assert_eq!(decrypt(&out, &key, &iv), plain, "length {len}");
        }
    }

    #[test]
    fn keys_do_not_print() {
        let key = Key([0xab; 16]);
        assert_eq!(format!("{key:?}"), "Key(<redacted>)");
    }

    #[test]
    fn key_files_are_raw_or_hex_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, [7u8; 16]).unwrap();
        assert_eq!(Key::from_file(&raw).unwrap(), Key([7; 16]));
        let hex = dir.path().join("hex.key");
        std::fs::write(&hex, "000102030405060708090A0B0C0D0E0F\n").unwrap();
        assert_eq!(Key::from_file(&hex).unwrap().0[15], 15);
        let short = dir.path().join("short.key");
        std::fs::write(&short, [1u8; 15]).unwrap();
        let err = Key::from_file(&short).unwrap_err().to_string();
        assert!(err.contains("short.key") && err.contains("15 bytes"), "{err}");
    }

    #[test]
    fn a_key_file_of_another_job_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("show-00000.key");
        std::fs::write(&path, b"theirs").unwrap();
        assert!(write_private(&path, b"ours").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
    }

    #[test]
    fn rotation_shares_periods_and_failed_jobs_remove_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = dir.path().join("keys");
        let source = KeySource::Generate {
            rotation: 2,
            keys: KeyDestination::Folder(key_dir.clone()),
            key_url: None,
        };
        let out = dir.path().join("out");
        let mut schedule = KeySchedule::new(source, Scheme::Aes128, &out).unwrap();
        schedule
            .stage(&out, &dir.path().join(".staging"), &PublishOptions::default())
            .unwrap();
        let first = schedule.for_segment(1).unwrap().id.clone();
        let prefix = schedule.prefix.clone();
        assert!(
            prefix.starts_with("out-") && prefix.len() == "out-".len() + 8,
            "{prefix}"
        );
        assert_eq!(first, format!("{prefix}-00000"));
        assert_eq!(schedule.for_segment(2).unwrap().id, format!("{prefix}-00001"));
        assert_eq!(schedule.period_of(3), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_dir), 0o700);
        assert_eq!(mode(&key_dir.join(format!("{first}.key"))), 0o600);
        drop(schedule);
        assert!(!key_dir.exists(), "the key dir this job created goes with its keys");
    }
}
