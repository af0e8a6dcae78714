//! The command-line flag of each library option: the library's errors name the field of its
//! options struct (`segment_duration`), the CLI's the flag the user typed (`--segment-duration`).

/// The options whose flag is not their name with `-` for `_`.
const RENAMED: [(&str, &str); 6] = [
    ("video_codec", "--codec"),
    ("encryption", "--encrypt"),
    ("concurrency", "--upload-concurrency"),
    ("output", "-o"),
    ("websocket_url", "--ws"),
    ("headers", "--header"),
];

/// The flag that sets the library's `option`.
pub fn flag(option: &str) -> String {
    RENAMED.iter().find(|(name, _)| *name == option).map_or_else(
        || format!("--{}", option.replace('_', "-")),
        |(_, flag)| (*flag).to_owned(),
    )
}

/// One cause of an error as the CLI says it: an invalid option by its flag, an existing output with
/// the flag that replaces it, anything else as it is.
pub fn in_cli_terms(cause: &(dyn std::error::Error + 'static)) -> String {
    match cause.downcast_ref::<stream_pack::Error>() {
        Some(stream_pack::Error::InvalidOption { option, reason }) => format!("{} {reason}", flag(option)),
        Some(exists @ stream_pack::Error::OutputExists { .. }) => format!("{exists} (use --force to replace it)"),
        _ => cause.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_by_their_flags() {
        for (option, expected) in [
            ("segment_duration", "--segment-duration"),
            ("video_codec", "--codec"),
            ("audio_codec", "--audio-codec"),
            ("passthrough_top", "--passthrough-top"),
            ("copy", "--copy"),
            ("encryption", "--encrypt"),
            ("window", "--window"),
            ("delete_segments", "--delete-segments"),
            ("key_rotation", "--key-rotation"),
            ("concurrency", "--upload-concurrency"),
            ("upload_concurrency", "--upload-concurrency"),
            ("capture", "--capture"),
            ("headers", "--header"),
            ("websocket_url", "--ws"),
            ("list", "--list"),
            ("init", "--init"),
            ("encoder_preset", "--encoder-preset"),
            ("format", "--format"),
            ("live", "--live"),
            ("output", "-o"),
        ] {
            assert_eq!(flag(option), expected, "{option}");
        }
    }

    #[test]
    fn an_invalid_option_reads_as_its_flag() {
        let error = anyhow::Error::new(stream_pack::Error::InvalidOption {
            option: "segment_duration",
            reason: "0: must be between 0.1 and 3600 seconds".into(),
        })
        .context("job 1 out.mp4");
        let causes: Vec<String> = error.chain().map(in_cli_terms).collect();
        assert_eq!(
            causes,
            [
                "job 1 out.mp4",
                "--segment-duration 0: must be between 0.1 and 3600 seconds"
            ]
        );
    }
}
