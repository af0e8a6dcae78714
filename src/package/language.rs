//! Languages as manifests name them. Containers tag streams with ISO 639-2 codes (`eng`, `jpn`,
//! and for twenty languages a bibliographic code beside the terminological one: `fre`/`fra`),
//! while HLS LANGUAGE and DASH @lang are BCP 47, which takes the ISO 639-1 code where one exists
//! (RFC 5646 §2.2.1): `en`, `ja`, `fr`. The table is every ISO 639-2 code with an ISO 639-1
//! equivalent, taken from Debian's iso-codes, with its English name for renditions that have no
//! title of their own.

/// A language that has a two-letter code.
struct Language {
    /// ISO 639-1: the BCP 47 primary subtag.
    code: &'static str,
    /// ISO 639-2/T.
    terminological: &'static str,
    /// ISO 639-2/B, where it differs from the terminological code.
    bibliographic: Option<&'static str>,
    name: &'static str,
}

const fn lang(
    code: &'static str,
    terminological: &'static str,
    bibliographic: Option<&'static str>,
    name: &'static str,
) -> Language {
    Language {
        code,
        terminological,
        bibliographic,
        name,
    }
}

/// The BCP 47 tag of "no language stated" (RFC 5646 §4.1).
pub const UNDETERMINED: &str = "und";

/// The tag, if it is a language tag by the syntax of BCP 47 (RFC 5646): subtags of letters and
/// digits, up to 8 each, joined by `-`, the first of 2 to 8 letters. Anything else (a quote, a
/// line break, an empty subtag) is no language, and manifests then name none.
pub fn well_formed(tag: &str) -> Option<&str> {
    let mut subtags = tag.split('-');
    let primary = subtags.next()?;
    let primary_ok = (2..=8).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
    let rest_ok = subtags.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    (primary_ok && rest_ok).then_some(tag)
}

/// The BCP 47 tag for a container's language tag: an ISO 639-2 code with a two-letter equivalent
/// becomes that code, any other tag passes the BCP 47 gate as it is, and no tag, or text that is
/// no language tag, is `und`.
pub fn bcp47(tag: Option<&str>) -> String {
    let Some(tag) = tag.and_then(well_formed) else {
        return UNDETERMINED.to_owned();
    };
    let mut subtags = tag.splitn(2, '-');
    let primary = subtags.next().unwrap_or_default().to_ascii_lowercase();
    let primary = find(&primary).map_or(primary, |language| language.code.to_owned());
    match subtags.next() {
        Some(rest) => format!("{primary}-{rest}"),
        None => primary,
    }
}

/// The English name of a BCP 47 tag's language (`en-GB` → English), if it has a two-letter code.
pub fn english_name(tag: &str) -> Option<&'static str> {
    let primary = tag.split('-').next()?.to_ascii_lowercase();
    find(&primary).map(|language| language.name)
}

/// The language a lower-case ISO 639-1 or ISO 639-2 (B or T) code names.
fn find(code: &str) -> Option<&'static Language> {
    LANGUAGES
        .iter()
        .find(|l| l.code == code || l.terminological == code || l.bibliographic == Some(code))
}

const LANGUAGES: [Language; 184] = [
    lang("aa", "aar", None, "Afar"),
    lang("ab", "abk", None, "Abkhazian"),
    lang("ae", "ave", None, "Avestan"),
    lang("af", "afr", None, "Afrikaans"),
    lang("ak", "aka", None, "Akan"),
    lang("am", "amh", None, "Amharic"),
    lang("an", "arg", None, "Aragonese"),
    lang("ar", "ara", None, "Arabic"),
    lang("as", "asm", None, "Assamese"),
    lang("av", "ava", None, "Avaric"),
    lang("ay", "aym", None, "Aymara"),
    lang("az", "aze", None, "Azerbaijani"),
    lang("ba", "bak", None, "Bashkir"),
    lang("be", "bel", None, "Belarusian"),
    lang("bg", "bul", None, "Bulgarian"),
    lang("bh", "bih", None, "Bihari languages"),
    lang("bi", "bis", None, "Bislama"),
    lang("bm", "bam", None, "Bambara"),
    lang("bn", "ben", None, "Bengali"),
    lang("bo", "bod", Some("tib"), "Tibetan"),
    lang("br", "bre", None, "Breton"),
    lang("bs", "bos", None, "Bosnian"),
    lang("ca", "cat", None, "Catalan"),
    lang("ce", "che", None, "Chechen"),
    lang("ch", "cha", None, "Chamorro"),
    lang("co", "cos", None, "Corsican"),
    lang("cr", "cre", None, "Cree"),
    lang("cs", "ces", Some("cze"), "Czech"),
    lang("cu", "chu", None, "Church Slavic"),
    lang("cv", "chv", None, "Chuvash"),
    lang("cy", "cym", Some("wel"), "Welsh"),
    lang("da", "dan", None, "Danish"),
    lang("de", "deu", Some("ger"), "German"),
    lang("dv", "div", None, "Divehi"),
    lang("dz", "dzo", None, "Dzongkha"),
    lang("ee", "ewe", None, "Ewe"),
    lang("el", "ell", Some("gre"), "Greek"),
    lang("en", "eng", None, "English"),
    lang("eo", "epo", None, "Esperanto"),
    lang("es", "spa", None, "Spanish"),
    lang("et", "est", None, "Estonian"),
    lang("eu", "eus", Some("baq"), "Basque"),
    lang("fa", "fas", Some("per"), "Persian"),
    lang("ff", "ful", None, "Fulah"),
    lang("fi", "fin", None, "Finnish"),
    lang("fj", "fij", None, "Fijian"),
    lang("fo", "fao", None, "Faroese"),
    lang("fr", "fra", Some("fre"), "French"),
    lang("fy", "fry", None, "Western Frisian"),
    lang("ga", "gle", None, "Irish"),
    lang("gd", "gla", None, "Scottish Gaelic"),
    lang("gl", "glg", None, "Galician"),
    lang("gn", "grn", None, "Guarani"),
    lang("gu", "guj", None, "Gujarati"),
    lang("gv", "glv", None, "Manx"),
    lang("ha", "hau", None, "Hausa"),
    lang("he", "heb", None, "Hebrew"),
    lang("hi", "hin", None, "Hindi"),
    lang("ho", "hmo", None, "Hiri Motu"),
    lang("hr", "hrv", None, "Croatian"),
    lang("ht", "hat", None, "Haitian"),
    lang("hu", "hun", None, "Hungarian"),
    lang("hy", "hye", Some("arm"), "Armenian"),
    lang("hz", "her", None, "Herero"),
    lang("ia", "ina", None, "Interlingua"),
    lang("id", "ind", None, "Indonesian"),
    lang("ie", "ile", None, "Interlingue"),
    lang("ig", "ibo", None, "Igbo"),
    lang("ii", "iii", None, "Sichuan Yi"),
    lang("ik", "ipk", None, "Inupiaq"),
    lang("io", "ido", None, "Ido"),
    lang("is", "isl", Some("ice"), "Icelandic"),
    lang("it", "ita", None, "Italian"),
    lang("iu", "iku", None, "Inuktitut"),
    lang("ja", "jpn", None, "Japanese"),
    lang("jv", "jav", None, "Javanese"),
    lang("ka", "kat", Some("geo"), "Georgian"),
    lang("kg", "kon", None, "Kongo"),
    lang("ki", "kik", None, "Kikuyu"),
    lang("kj", "kua", None, "Kuanyama"),
    lang("kk", "kaz", None, "Kazakh"),
    lang("kl", "kal", None, "Kalaallisut"),
    lang("km", "khm", None, "Central Khmer"),
    lang("kn", "kan", None, "Kannada"),
    lang("ko", "kor", None, "Korean"),
    lang("kr", "kau", None, "Kanuri"),
    lang("ks", "kas", None, "Kashmiri"),
    lang("ku", "kur", None, "Kurdish"),
    lang("kv", "kom", None, "Komi"),
    lang("kw", "cor", None, "Cornish"),
    lang("ky", "kir", None, "Kyrgyz"),
    lang("la", "lat", None, "Latin"),
    lang("lb", "ltz", None, "Luxembourgish"),
    lang("lg", "lug", None, "Ganda"),
    lang("li", "lim", None, "Limburgan"),
    lang("ln", "lin", None, "Lingala"),
    lang("lo", "lao", None, "Lao"),
    lang("lt", "lit", None, "Lithuanian"),
    lang("lu", "lub", None, "Luba-Katanga"),
    lang("lv", "lav", None, "Latvian"),
    lang("mg", "mlg", None, "Malagasy"),
    lang("mh", "mah", None, "Marshallese"),
    lang("mi", "mri", Some("mao"), "Maori"),
    lang("mk", "mkd", Some("mac"), "Macedonian"),
    lang("ml", "mal", None, "Malayalam"),
    lang("mn", "mon", None, "Mongolian"),
    lang("mr", "mar", None, "Marathi"),
    lang("ms", "msa", Some("may"), "Malay"),
    lang("mt", "mlt", None, "Maltese"),
    lang("my", "mya", Some("bur"), "Burmese"),
    lang("na", "nau", None, "Nauru"),
    lang("nb", "nob", None, "Norwegian Bokmål"),
    lang("nd", "nde", None, "North Ndebele"),
    lang("ne", "nep", None, "Nepali"),
    lang("ng", "ndo", None, "Ndonga"),
    lang("nl", "nld", Some("dut"), "Dutch"),
    lang("nn", "nno", None, "Norwegian Nynorsk"),
    lang("no", "nor", None, "Norwegian"),
    lang("nr", "nbl", None, "South Ndebele"),
    lang("nv", "nav", None, "Navajo"),
    lang("ny", "nya", None, "Chichewa"),
    lang("oc", "oci", None, "Occitan"),
    lang("oj", "oji", None, "Ojibwa"),
    lang("om", "orm", None, "Oromo"),
    lang("or", "ori", None, "Oriya"),
    lang("os", "oss", None, "Ossetian"),
    lang("pa", "pan", None, "Punjabi"),
    lang("pi", "pli", None, "Pali"),
    lang("pl", "pol", None, "Polish"),
    lang("ps", "pus", None, "Pashto"),
    lang("pt", "por", None, "Portuguese"),
    lang("qu", "que", None, "Quechua"),
    lang("rm", "roh", None, "Romansh"),
    lang("rn", "run", None, "Rundi"),
    lang("ro", "ron", Some("rum"), "Romanian"),
    lang("ru", "rus", None, "Russian"),
    lang("rw", "kin", None, "Kinyarwanda"),
    lang("sa", "san", None, "Sanskrit"),
    lang("sc", "srd", None, "Sardinian"),
    lang("sd", "snd", None, "Sindhi"),
    lang("se", "sme", None, "Northern Sami"),
    lang("sg", "sag", None, "Sango"),
    lang("si", "sin", None, "Sinhala"),
    lang("sk", "slk", Some("slo"), "Slovak"),
    lang("sl", "slv", None, "Slovenian"),
    lang("sm", "smo", None, "Samoan"),
    lang("sn", "sna", None, "Shona"),
    lang("so", "som", None, "Somali"),
    lang("sq", "sqi", Some("alb"), "Albanian"),
    lang("sr", "srp", None, "Serbian"),
    lang("ss", "ssw", None, "Swati"),
    lang("st", "sot", None, "Southern Sotho"),
    lang("su", "sun", None, "Sundanese"),
    lang("sv", "swe", None, "Swedish"),
    lang("sw", "swa", None, "Swahili"),
    lang("ta", "tam", None, "Tamil"),
    lang("te", "tel", None, "Telugu"),
    lang("tg", "tgk", None, "Tajik"),
    lang("th", "tha", None, "Thai"),
    lang("ti", "tir", None, "Tigrinya"),
    lang("tk", "tuk", None, "Turkmen"),
    lang("tl", "tgl", None, "Tagalog"),
    lang("tn", "tsn", None, "Tswana"),
    lang("to", "ton", None, "Tonga"),
    lang("tr", "tur", None, "Turkish"),
    lang("ts", "tso", None, "Tsonga"),
    lang("tt", "tat", None, "Tatar"),
    lang("tw", "twi", None, "Twi"),
    lang("ty", "tah", None, "Tahitian"),
    lang("ug", "uig", None, "Uyghur"),
    lang("uk", "ukr", None, "Ukrainian"),
    lang("ur", "urd", None, "Urdu"),
    lang("uz", "uzb", None, "Uzbek"),
    lang("ve", "ven", None, "Venda"),
    lang("vi", "vie", None, "Vietnamese"),
    lang("vo", "vol", None, "Volapük"),
    lang("wa", "wln", None, "Walloon"),
    lang("wo", "wol", None, "Wolof"),
    lang("xh", "xho", None, "Xhosa"),
    lang("yi", "yid", None, "Yiddish"),
    lang("yo", "yor", None, "Yoruba"),
    lang("za", "zha", None, "Zhuang"),
    lang("zh", "zho", Some("chi"), "Chinese"),
    lang("zu", "zul", None, "Zulu"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_keep_to_the_bcp47_syntax() {
        for good in ["en", "eng", "pt-BR", "zh-Hant-TW", "sgn-BE-FR", "de-CH-1996"] {
            assert_eq!(well_formed(good), Some(good));
        }
        for bad in [
            "",
            "e",
            "en\"><x",
            "en\n#EXT-X-STREAM-INF:BANDWIDTH=1",
            "en-",
            "en--US",
            "e1",
            "en US",
        ] {
            assert_eq!(well_formed(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn iso_639_2_codes_become_their_two_letter_tags() {
        for (tag, expected) in [
            ("eng", "en"),
            ("jpn", "ja"),
            ("fre", "fr"),
            ("fra", "fr"),
            ("ger", "de"),
            ("deu", "de"),
            ("chi", "zh"),
            ("zho", "zh"),
            ("ENG", "en"),
            ("por-BR", "pt-BR"),
        ] {
            assert_eq!(bcp47(Some(tag)), expected, "{tag}");
        }
    }

    #[test]
    fn other_tags_pass_the_gate_and_the_rest_is_undetermined() {
        assert_eq!(bcp47(Some("pt-BR")), "pt-BR");
        assert_eq!(bcp47(Some("yue")), "yue");
        assert_eq!(bcp47(Some("en")), "en");
        assert_eq!(bcp47(None), "und");
        assert_eq!(bcp47(Some("und")), "und");
        assert_eq!(bcp47(Some("en\"\n")), "und");
        assert_eq!(bcp47(Some("")), "und");
    }

    #[test]
    fn names_are_english_and_plain() {
        assert_eq!(english_name("en"), Some("English"));
        assert_eq!(english_name("ja-JP"), Some("Japanese"));
        assert_eq!(english_name("el"), Some("Greek"));
        assert_eq!(english_name("es"), Some("Spanish"));
        assert_eq!(english_name("und"), None);
    }

    #[test]
    fn the_table_has_each_code_once() {
        let mut codes: Vec<&str> = LANGUAGES
            .iter()
            .flat_map(|l| [l.code, l.terminological].into_iter().chain(l.bibliographic))
            .collect();
        let all = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all);
    }
}
